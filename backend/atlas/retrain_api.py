"""Researcher API for last-layer retraining (docs/midrange.md §4): queue the retraining Job of a
network on a curated set (202, then follow it under `jobs/<id>/`) and list the retrained
networks with their evaluations. Bad parameters are a 400 with the planner's message, and queue
nothing."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import retrain
from backend.atlas.access import visible_rows
from backend.atlas.models import ConfoundReport, RetrainedNetwork
from backend.core.errors import ApiError
from backend.stimuli.api import JOB_SCHEMA, queue_from_body
from backend.studies.api import IsResearcher


def retrained_summary(row: RetrainedNetwork) -> dict[str, Any]:
    return {
        "id": row.pk, "network": row.network_id, "name": row.network.name,
        "source": row.network.source, "base": row.base_id, "train_set": row.train_set_id,
        "eval_set": row.eval_set_id, "attribute": row.attribute, "module": row.module,
        "fit": row.fit, "report": row.report, "job": row.job_id,
    }  # fmt: skip


class RetrainedNetworks(APIView):
    """GET: every retrained network with its evaluation. POST {"base", "train_set", "eval_set",
    "name", options…}: queue its retraining (options: `backend.atlas.retrain.DEFAULTS`)."""

    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_retrain_list", responses={200: dict})
    def get(self, request: Request) -> Response:
        rows = RetrainedNetwork.objects.select_related("network").order_by("pk")
        rows = visible_rows(rows, request.user)
        return Response({"retrained_networks": [retrained_summary(row) for row in rows]})

    @extend_schema(operation_id="atlas_retrain_create", request=dict,
                   responses={202: JOB_SCHEMA, 400: None})  # fmt: skip
    def post(self, request: Request) -> Response:
        return queue_from_body(request, retrain.do_queue_retrain_params)


class CuratedExport(APIView):
    """POST {"image_set", and either "image_ids": [...] (a ticked grid) or "rule": {"label",
    "attribute"?, "seed"?, and either "values": {image id: value} with "band": "LL-HH", or
    "report": a confound report's id with "report_bands": [band indices] or "band": "LL-HH"
    over its values}, "format": "zip" | "csv", "bands"?: ["LL-HH", …] (the CSV's band column;
    with a report: its own bands)}: the selection as an ImageFolder ZIP (with images.csv: the
    image-set import reads it back) or as a CSV of name, label, attributes, band and value
    (docs/midrange.md §4). With a report, image_set may be left out (the report's). Bad input:
    400; an image set or report the caller may not see: 404."""

    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_curated_export", request=dict,
                   responses={200: None, 400: None, 404: None})  # fmt: skip
    def post(self, request: Request) -> HttpResponse:
        from backend.stimuli.access import visible_image_sets

        data = request.data if isinstance(request.data, dict) else {}
        report = rule_report(data, request.user)
        set_id = data.get("image_set", report.image_set_id if report else None)
        if isinstance(set_id, bool) or not isinstance(set_id, int):
            raise ApiError("bad_request", "image_set must be an image set's id")
        image_set = visible_image_sets(request.user).filter(pk=set_id).first()
        if image_set is None:
            raise ApiError("not_found", f"image set {set_id} does not exist", status_code=404)
        try:
            body, kind, suffix = curated_export(image_set, data, report)
        except ValidationError as err:
            raise ApiError("invalid_parameters", " ".join(err.messages)) from None
        answer = HttpResponse(body, content_type=kind)
        answer["Content-Disposition"] = f'attachment; filename="{image_set.name}-curated{suffix}"'
        return answer


def rule_report(data: dict[str, Any], user: Any) -> ConfoundReport | None:
    """The confound report a rule names (`rule.report`), when the caller may see it; None for a
    rule without one. A bad id is a 400, a report the caller may not see a 404."""
    from backend.atlas import confounds

    rule = data.get("rule")
    if not isinstance(rule, dict) or rule.get("report") is None:
        return None
    pk = rule["report"]
    if isinstance(pk, bool) or not isinstance(pk, int):
        raise ApiError("bad_request", "the rule's report must be a confound report's id")
    report = visible_rows(confounds.reports_of(), user).filter(pk=pk).first()
    if report is None:
        raise ApiError("not_found", f"confound report {pk} not found", status_code=404)
    return report


def curated_export(
    image_set: Any, data: dict[str, Any], report: ConfoundReport | None = None
) -> tuple[bytes | str, str, str]:
    """(content, content type, file suffix) of the selection `data` describes (its rule over
    `report`'s values when given); ValidationError for a selection that cannot be made."""
    from backend.atlas import curation

    output = data.get("format", "zip")
    if output not in ("zip", "csv"):
        raise ValidationError("format must be zip or csv")
    rule = data.get("rule")
    if rule is not None and data.get("image_ids") is not None:
        raise ValidationError("send image_ids or a rule, not both")
    values = curation.parse_values(data["values"]) if data.get("values") is not None else None
    bands = data.get("bands", [])
    band_names = None
    if rule is not None:
        if not isinstance(rule, dict) or not isinstance(rule.get("label"), str):
            raise ValidationError("rule needs a label, and values and a band or a report")
        seed = rule.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValidationError("the rule's seed must be an integer")
        attribute = str(rule.get("attribute") or "")
        if report is not None:
            if report.image_set_id != image_set.pk:
                raise ValidationError(
                    f"confound report {report.pk} is over the image set {report.image_set}, "
                    f"not {image_set}"
                )
            if rule.get("values") is not None:
                raise ValidationError("send the rule's values or its report, not both")
            chosen = rule.get("report_bands") or ()
            if not isinstance(chosen, list | tuple):
                raise ValidationError("report_bands must be a list of the report's band indices")
            ids: Any = curation.select_from_report(
                report, rule["label"], chosen, str(rule.get("band") or ""), attribute, seed
            )
            values = curation.report_values(report)
            band_names = curation.report_band_names(report) if "bands" not in data else None
        else:
            values = curation.parse_values(rule.get("values"))
            ids = curation.select_by_rule(
                image_set, values, rule["label"], str(rule.get("band", "")), attribute, seed
            )
            bands = data.get("bands", [str(rule.get("band"))])
    else:
        ids = data.get("image_ids")
    if not isinstance(bands, list):
        raise ValidationError('bands must be a list of bands, e.g. ["40-60"]')
    members = curation.selected_members(image_set, ids if isinstance(ids, list) else [])
    if output == "csv":
        table = curation.selection_csv(members, values, [str(b) for b in bands], band_names)
        return table, "text/csv", ".csv"
    return curation.selection_archive(members), "application/zip", ".zip"
