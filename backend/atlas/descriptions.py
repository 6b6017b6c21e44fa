"""Descriptions of units in words (soft-WPMI, CLIP-Dissect; docs/descriptions.md): the job's
planner and parameters, the write of its rows, how a unit's page shows them, and the
researcher API (queue a description job; list a unit set's descriptions).

The web side never imports `worker/`: the pass runs on a GPU worker
(`backend/atlas/describe_work.py`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas.access import visible_rows
from backend.atlas.models import Description
from backend.core.errors import ApiError
from backend.stimuli import access, jobkinds, services
from backend.stimuli.api import JOB_SCHEMA, job_response
from backend.stimuli.models import ImageSet, Job, Unit, UnitSet
from backend.studies.api import IsResearcher

KIND = "describe_units"
# CLIP-Dissect's soft-WPMI defaults (worker/analyses/describe.py SoftWpmiConfig).
DEFAULTS: dict[str, Any] = {
    "top_k": 100, "lam": 1.0, "p_start": 0.998, "p_end": 0.97, "n_top": 5, "source": "classifier",
}  # fmt: skip


def plan_describe(params: dict[str, Any]) -> list[jobkinds.ShardPlan]:
    """Ranges of images of the probe set (each shard: its images' top units and P(t|x)); the
    merge computes soft-WPMI over all units of the job (the prior is over them)."""
    ids = params.get("unit_sets", [])
    unit_sets = list(UnitSet.objects.filter(pk__in=ids).select_related("layer"))
    if not unit_sets or len(unit_sets) != len(set(ids)):
        raise ValidationError("name existing unit sets to describe")
    if len({u.layer.network_id for u in unit_sets}) != 1:
        raise ValidationError("the unit sets of one description job must share one network")
    jobkinds.positive_int(params, "top_k", DEFAULTS["top_k"])
    jobkinds.positive_int(params, "n_top", DEFAULTS["n_top"])
    lam = params.get("lam", DEFAULTS["lam"])
    p_start = params.get("p_start", DEFAULTS["p_start"])
    p_end = params.get("p_end", DEFAULTS["p_end"])
    numbers = (lam, p_start, p_end)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise ValidationError("lam, p_start and p_end must be numbers")
    if not 0 < p_end <= p_start <= 1:
        raise ValidationError("need 0 < p_end ≤ p_start ≤ 1")
    source = params.get("source", DEFAULTS["source"])
    if source != "classifier":
        arch, _, checkpoint = str(source).removeprefix("open_clip:").partition("@")
        if not str(source).startswith("open_clip:") or not arch or not checkpoint:
            raise ValidationError(
                "source must be 'classifier' or 'open_clip:ARCH@CHECKPOINT_PATH' (a file on the "
                "worker machines)"
            )
        if not params.get("concepts_file"):
            raise ValidationError("an open_clip source needs concepts_file: one concept a line")
    return jobkinds.image_ranges(params.get("image_set"), params)


def queue_descriptions(
    unit_sets: list[UnitSet],
    image_set: ImageSet,
    user: Any = None,
    send: bool = True,
    **params: Any,
) -> Job:
    body = {"unit_sets": [u.pk for u in unit_sets], "image_set": image_set.pk, **params}
    return services.do_queue_job(KIND, body, user, send=send)


@transaction.atomic
def do_save_descriptions(
    job: Job, image_set: ImageSet, source: str, rows: dict[int, dict[int, dict[str, Any]]]
) -> int:
    """Write one Description per (unit, image set, source): `rows` maps unit set id → unit
    index → {"concepts": [...], "scores": [...], "details": {...}}. A rerun replaces them."""
    written = 0
    for unit_set_id, by_index in rows.items():
        units = {u.index: u for u in Unit.objects.filter(unit_set_id=unit_set_id)}
        for index, row in by_index.items():
            unit = units.get(index)
            if unit is None:
                unit = Unit.objects.create(unit_set_id=unit_set_id, index=index)
            concepts = [
                {"concept": c, "score": round(float(s), 6)}
                for c, s in zip(row["concepts"], row["scores"], strict=True)
            ]
            Description.objects.update_or_create(
                unit=unit, image_set=image_set, source=source,
                defaults={"text": concepts[0]["concept"][:300] if concepts else "",
                          "concepts": concepts, "details": row.get("details", {}), "job": job},
            )  # fmt: skip
            written += 1
    return written


def description_html(unit: Unit, viewer: Any = None) -> SafeString:
    """A unit page's section: each description with its source, probe set and top concepts
    (with a `viewer`: over the probe sets they may see)."""
    described = unit.descriptions.select_related("image_set")  # type: ignore[attr-defined]
    if viewer is not None:
        described = visible_rows(described, viewer)
    rows = list(described)
    if not rows:
        return format_html(
            "<p>No description yet: queue a “describe units” job (researcher API "
            "<code>{}</code>).</p>",
            "/api/v1/researcher/atlas/descriptions/",
        )
    parts = []
    for d in rows:
        items = format_html_join(
            "", "<li>{} <small>({})</small></li>",
            ((c["concept"], f"{c['score']:.3f}") for c in d.concepts),
        )  # fmt: skip
        parts.append(
            format_html(
                "<div class='psylens-description'><p><strong>{}</strong> — concept source: {}; "
                "probe images: {}; soft-WPMI (CLIP-Dissect)</p><ol>{}</ol></div>",
                d.text,
                d.source,
                d.image_set,
                items,
            )  # fmt: skip
        )
    return format_html_join("", "{}", ((p,) for p in parts))


def description_body(d: Description) -> dict[str, Any]:
    return {
        "unit_set": d.unit.unit_set_id,
        "unit": d.unit.index,
        "image_set": d.image_set_id,
        "source": d.source,
        "text": d.text,
        "concepts": d.concepts,
        "job": d.job_id,
        "computed_at": d.computed_at.isoformat(),
    }


class Descriptions(APIView):
    """GET ?unit_set=ID[&source=…]: the unit set's descriptions. POST {unit_sets, image_set,
    source?, concepts_file?, top_k?, lam?, p_start?, p_end?, n_top?}: queue a job (202)."""

    permission_classes = [IsResearcher]

    @extend_schema(
        parameters=[
            OpenApiParameter("unit_set", {"type": "integer", "minimum": 0}, required=True,
                             description="the unit set's id"),
            OpenApiParameter("source", str, description="only this concept source"),
        ],
        responses={200: None, 400: None, 404: None},
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        unit_set = request.query_params.get("unit_set", "")
        if not unit_set.isdigit():
            raise ApiError("bad_request", "give ?unit_set=<id>")
        if not access.visible_unit_sets(request.user).filter(pk=int(unit_set)).exists():
            raise ApiError("not_found", f"unit set {unit_set} not found", status_code=404)
        rows = Description.objects.filter(unit__unit_set_id=int(unit_set)).select_related("unit")
        rows = visible_rows(rows, request.user)
        if request.query_params.get("source"):
            rows = rows.filter(source=request.query_params["source"])
        rows = rows.order_by("unit__index", "source")
        return Response({"descriptions": [description_body(d) for d in rows]})

    @extend_schema(request=None, responses={202: JOB_SCHEMA, 400: None})
    def post(self, request: Request) -> Response:
        params = request.data if isinstance(request.data, dict) else None
        if params is None:
            raise ApiError("bad_request", "send a JSON object")
        allowed = {"unit_sets", "image_set", "images_per_shard", "batch_size",
                   "concepts_file", *DEFAULTS}  # fmt: skip
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ApiError("bad_request", f"unknown parameter(s): {', '.join(unknown)}")
        try:
            job = services.do_queue_job(KIND, dict(params), request.user)
        except ValidationError as err:
            raise ApiError("invalid_job", " ".join(err.messages)) from None
        return job_response(job)
