"""The atlas's researcher API: queue any atlas job (202 with the Job to follow) and read a unit
set's measures (JSON, or CSV with every measure a column), populations and ablation curves.
Bad parameters are a 400 with the planner's message, and queue nothing."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import jobkinds, queries
from backend.atlas.access import visible_rows
from backend.atlas.models import AblationCurve, Population
from backend.core.errors import ApiError
from backend.stimuli import access
from backend.stimuli import services as stimuli_services
from backend.stimuli.api import job_response
from backend.stimuli.models import UnitSet
from backend.studies.api import IsResearcher

ATLAS_KINDS = (
    jobkinds.COMPUTE_ACTIVITY,
    jobkinds.COMPUTE_ABLATION,
    jobkinds.COMPUTE_ABLATION_CURVES,
    jobkinds.COMPUTE_POPULATIONS,
)


class QueueAtlasJob(APIView):
    """POST {"kind": one of ATLAS_KINDS, "params": {...}} → 202 and the Job."""

    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses={202: None, 400: None})
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        kind, params = body.get("kind"), body.get("params", {})
        if kind not in ATLAS_KINDS:
            raise ApiError("unknown_kind", f"kind must be one of {', '.join(ATLAS_KINDS)}")
        if not isinstance(params, dict):
            raise ApiError("bad_params", "params must be a JSON object")
        try:
            job = stimuli_services.do_queue_job(kind, params, request.user)
        except ValidationError as err:
            raise ApiError("bad_params", " ".join(err.messages)) from None
        return job_response(job)


def _unit_set(request: Request, pk: int) -> UnitSet:
    """A unit set the caller may see (backend.stimuli.access), else a 404."""
    unit_set = access.visible_unit_sets(request.user).filter(pk=pk).first()
    if unit_set is None:
        raise ApiError("not_found", f"unit set {pk} not found", status_code=404)
    return unit_set


def _image_set_param(request: Request) -> int | None:
    raw = request.query_params.get("image_set")
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiError("bad_params", "image_set must be an image set's id")
    return int(raw)


class UnitSetMeasures(APIView):
    """GET: one row per unit with every measure (`?image_set=` one image set's)."""

    permission_classes = [IsResearcher]

    @extend_schema(responses={200: None, 404: None})
    def get(self, request: Request, pk: int) -> Any:
        unit_set = _unit_set(request, pk)
        names, rows = queries.measure_table(unit_set, _image_set_param(request), request.user)
        return Response({"unit_set": unit_set.pk, "measures": names, "units": rows})


class UnitSetMeasuresCsv(APIView):
    """GET: the per-unit export, every measure a column (docs/data-dictionary.md)."""

    permission_classes = [IsResearcher]

    @extend_schema(responses={200: None, 404: None})
    def get(self, request: Request, pk: int) -> HttpResponse:
        unit_set = _unit_set(request, pk)
        names, rows = queries.measure_table(unit_set, _image_set_param(request), request.user)
        return _csv(unit_set, names, rows)


def _csv(unit_set: UnitSet, names: list[str], rows: list[dict[str, Any]]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["unit_set", "index", *names])
    writer.writeheader()
    for row in rows:
        writer.writerow({"unit_set": unit_set.name, **row})
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{unit_set.name}-measures.csv"'
    return response


class UnitSetPopulations(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses={200: None, 404: None})
    def get(self, request: Request, pk: int) -> Response:
        unit_set = _unit_set(request, pk)
        rows = visible_rows(Population.objects.filter(unit_set=unit_set), request.user)
        rows = rows.order_by("basis", "image_set", "index")
        return Response({"unit_set": unit_set.pk, "populations": [
            {"basis": p.basis, "image_set": p.image_set_id, "index": p.index,
             "members": p.members, "details": p.details} for p in rows
        ]})  # fmt: skip


class UnitSetAblationCurves(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses={200: None, 404: None})
    def get(self, request: Request, pk: int) -> Response:
        unit_set = _unit_set(request, pk)
        rows = visible_rows(AblationCurve.objects.filter(unit_set=unit_set), request.user)
        return Response({"unit_set": unit_set.pk, "curves": [
            {"ranked_by": c.ranked_by, "image_set": c.image_set_id, "ks": c.ks,
             "ranked": c.ranked, "random_mean": c.random_mean, "random_sd": c.random_sd,
             "details": c.details} for c in rows
        ]})  # fmt: skip
