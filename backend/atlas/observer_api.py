"""Researcher API of the machine observer, under /api/v1/researcher/atlas/observers/:

- `GET observers/` lists them; `POST observers/` creates one (network name, layer, similarity,
  α) — superusers only, as observers are shared by every study;
- `POST observers/<id>/mis` queues MIS for unit sets (`k`, `n_tasks`, `quantile`, `seed`);
  `GET observers/<id>/mis?unit_set=<id>` reads it per unit;
- `POST observers/<id>/pilot` runs the machine pilot of a built study the caller may see;
  `GET observers/<id>/pilot/<study id>` its predicted accuracy and flags, `.../<study id>.csv`
  one row per trial;
- `POST observers/<id>/calibrate` fits α to the study's valid human responses (`{"study": id}`)
  or to an imported dataset's trials (`{"dataset": id}`).

Views that queue answer 202 with the Job (`jobs/<id>/` follows it); bad input is a 400 that
queues nothing; a study the caller may not see is a 404.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import observers
from backend.atlas.access import visible_observers
from backend.atlas.models import Observer
from backend.core.errors import ApiError
from backend.stimuli import access
from backend.stimuli.api import job_response
from backend.stimuli.models import Network
from backend.studies.api import IsResearcher
from backend.studies.models import Study
from backend.studies.permissions import visible_imported_datasets, visible_studies

MIS_SETTINGS = ("k", "n_tasks", "quantile", "seed", "units_per_shard")


class ObserverSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    network = serializers.SlugRelatedField(slug_field="name", queryset=Network.objects.all())

    class Meta:
        model = Observer
        fields = ["id", "name", "network", "layer", "similarity", "alpha", "description",
                  "calibrations"]  # fmt: skip
        read_only_fields = ["id", "calibrations"]


def observer_or_404(request: Request, pk: int) -> Observer:
    """An observer the caller may see (its network: backend.stimuli.access), else a 404."""
    observer = visible_observers(request.user).select_related("network").filter(pk=pk).first()
    if observer is None:
        raise ApiError("not_found", f"observer {pk} not found", status_code=404)
    return observer


def study_or_404(request: Request, value: Any) -> Study:
    study = visible_studies(request.user).filter(pk=value).first() if _is_id(value) else None
    if study is None:
        raise ApiError("not_found", f"study {value!r} not found", status_code=404)
    return study


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or str(value).isdigit()


def body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("invalid", "send a JSON object")
    return dict(request.data)


def queued(queue: Any, *args: Any, **kwargs: Any) -> Response:
    try:
        return job_response(queue(*args, **kwargs))
    except ValidationError as err:
        raise ApiError("invalid", " ".join(err.messages)) from None


class ObserverList(APIView):
    permission_classes = [IsResearcher]

    def get(self, request: Request) -> Response:
        return Response(ObserverSerializer(visible_observers(request.user), many=True).data)

    def post(self, request: Request) -> Response:
        if not request.user.is_superuser:
            raise ApiError("forbidden", "only an administrator creates observers", 403)
        serializer = ObserverSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            observer = observers.do_create_observer(
                data["name"], data["network"], data.get("layer", "global_pool"),
                data.get("similarity", Observer.Similarity.COSINE), data.get("alpha", 0.16),
                data.get("description", ""),
            )  # fmt: skip
        except ValidationError as err:
            raise ApiError("invalid", " ".join(err.messages)) from None
        return Response(ObserverSerializer(observer).data, status=201)


class ObserverMis(APIView):
    permission_classes = [IsResearcher]

    def post(self, request: Request, pk: int) -> Response:
        observer = observer_or_404(request, pk)
        data = body(request)
        ids = data.get("unit_sets")
        if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
            raise ApiError("invalid", "unit_sets must be a list of unit set ids")
        shown = access.visible_unit_sets(request.user)
        unit_sets = list(shown.filter(pk__in=[int(i) for i in ids]))
        if len(unit_sets) != len({int(i) for i in ids}):
            raise ApiError("invalid", "some of the unit sets named do not exist")
        settings = {key: data[key] for key in MIS_SETTINGS if key in data}
        return queued(observers.do_queue_mis, observer, unit_sets, request.user, **settings)

    def get(self, request: Request, pk: int) -> Response:
        observer = observer_or_404(request, pk)
        raw = str(request.query_params.get("unit_set") or "")
        shown = access.visible_unit_sets(request.user)
        unit_set = shown.filter(pk=int(raw)).first() if raw.isdigit() else None
        if unit_set is None:
            raise ApiError("invalid", "name a unit set: ?unit_set=<id>")
        values = observers.observer_mis(observer, unit_set)
        return Response({
            "observer": observer.name, "measure": observer.measure_name,
            "unit_set": unit_set.pk,
            "units": [{"index": i, "mis": v} for i, v in sorted(values.items())],
        })  # fmt: skip


class ObserverPilot(APIView):
    permission_classes = [IsResearcher]

    def post(self, request: Request, pk: int) -> Response:
        observer = observer_or_404(request, pk)
        study = study_or_404(request, body(request).get("study"))
        return queued(observers.do_queue_pilot, observer, study, request.user)


class ObserverPilotResults(APIView):
    permission_classes = [IsResearcher]

    def get(self, request: Request, pk: int, study: int) -> Response:
        observer = observer_or_404(request, pk)
        return Response(observers.pilot_summary(observer, study_or_404(request, study)))


class ObserverPilotExport(APIView):
    """The machine pilot as CSV: one row per trial (docs/data-dictionary.md)."""

    permission_classes = [IsResearcher]

    def get(self, request: Request, pk: int, study: int) -> StreamingHttpResponse:
        observer = observer_or_404(request, pk)
        chosen = study_or_404(request, study)

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(observers.PILOT_COLUMNS)
            for row in observers.pilot_rows(observer, chosen):
                writer.writerow(row)
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        name = f"{chosen.slug}-observer-{observer.name}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ObserverCalibrate(APIView):
    permission_classes = [IsResearcher]

    def post(self, request: Request, pk: int) -> Response:
        observer = observer_or_404(request, pk)
        data = body(request)
        if "dataset" in data:  # the caller's own imports and the shared ones
            dataset = dataset_or_404(request, data["dataset"])
            return queued(
                observers.do_queue_calibration, observer, None, request.user, dataset=dataset
            )
        study = study_or_404(request, data.get("study"))
        return queued(observers.do_queue_calibration, observer, study, request.user)


def dataset_or_404(request: Request, value: Any) -> Any:
    """An imported dataset the caller may see (`visible_imported_datasets`); others are a 404."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    scope = visible_imported_datasets(request.user)
    dataset = scope.filter(pk=value).first() if ok else None
    if dataset is None:
        raise ApiError("not_found", f"imported dataset {value!r} not found", status_code=404)
    return dataset
