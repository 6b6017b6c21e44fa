"""Researcher API for confound reports (docs/midrange.md §3): queue a report's Job (202, then
follow it under `jobs/<id>/`), list the reports the researcher may see (filtered by unit set,
unit and image set), read one with its bands, tests and candidates, and download its candidate
table as CSV. Bad parameters are a 400 with the planner's message and queue nothing; another
researcher's private report is a 404."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import confounds
from backend.atlas.access import visible_rows
from backend.atlas.models import ConfoundReport
from backend.core.errors import ApiError
from backend.stimuli.api import JOB_SCHEMA, id_filter, queue_from_body
from backend.studies.api import IsResearcher

ID = {"type": "integer", "minimum": 0}
FILTERS = [
    OpenApiParameter("unit_set", ID, description="a unit set's id"),
    OpenApiParameter("unit", ID, description="a unit's index in its unit set"),
    OpenApiParameter("image_set", ID, description="an image set's id"),
]


def visible_report(request: Request, pk: int) -> ConfoundReport:
    row = visible_rows(confounds.reports_of(), request.user).filter(pk=pk).first()
    if row is None:
        raise ApiError("not_found", f"confound report {pk} not found", status_code=404)
    return row


class ConfoundReports(APIView):
    """GET [?unit_set=&unit=&image_set=]: the reports, newest first. POST {"unit_set", "unit",
    "image_set", "n_bands"?, "alpha"?, "grid"?, "images_per_shard"?, "batch_size"?}: queue one."""

    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_confounds_list", parameters=FILTERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        rows = confounds.reports_of(
            id_filter(request, "unit_set"), id_filter(request, "image_set"),
            id_filter(request, "unit"),
        )  # fmt: skip
        rows = visible_rows(rows, request.user)
        return Response({"confound_reports": [confounds.report_summary(r) for r in rows]})

    @extend_schema(operation_id="atlas_confounds_create", request=dict,
                   responses={202: JOB_SCHEMA, 400: None})  # fmt: skip
    def post(self, request: Request) -> Response:
        return queue_from_body(request, confounds.do_queue_confound_report)


class ConfoundReportDetail(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_confound_retrieve", responses={200: dict, 404: None})
    def get(self, request: Request, pk: int) -> Response:
        return Response(confounds.report_detail(visible_report(request, pk)))


class ConfoundCandidatesCsv(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        operation_id="atlas_confound_candidates_csv",
        responses={(200, "text/csv"): str, 404: None},
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        row = visible_report(request, pk)
        response = HttpResponse(confounds.candidates_csv(row), content_type="text/csv")
        name = f"confounds-{row.pk}-unit-{row.unit.index}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
