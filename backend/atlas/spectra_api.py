"""Researcher API for spectra: queue one Job for the layers and bases chosen (202, then follow
it under `jobs/<id>/`), list the per-layer figures, read one spectrum with its eigenvalues and
projection curves, and download the figures as CSV (one line per layer and basis)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import spectra
from backend.atlas.access import visible_rows
from backend.core.errors import ApiError
from backend.stimuli.api import JOB_SCHEMA, id_filter, queue_from_body
from backend.studies.api import IsResearcher

ID = {"type": "integer", "minimum": 0}
FILTERS = [
    OpenApiParameter("network", ID, description="a network's id"),
    OpenApiParameter("image_set", ID, description="an image set's id"),
]


def _filtered(request: Request) -> Any:
    rows = spectra.spectra_of(id_filter(request, "network"), id_filter(request, "image_set"))
    return visible_rows(rows, request.user)


class Spectra(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_spectra_list", parameters=FILTERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"spectra": [spectra.spectrum_summary(s) for s in _filtered(request)]})

    @extend_schema(request=dict, responses={202: JOB_SCHEMA, 400: None})
    def post(self, request: Request) -> Response:
        return queue_from_body(request, spectra.do_queue_spectra)


class SpectrumDetail(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_spectrum_retrieve", responses={200: dict, 404: None})
    def get(self, request: Request, pk: int) -> Response:
        spectrum = visible_rows(spectra.spectra_of(), request.user).filter(pk=pk).first()
        if spectrum is None:
            raise ApiError("not_found", f"spectrum {pk} not found", status_code=404)
        return Response(
            {**spectra.spectrum_summary(spectrum), "eigenvalues": spectrum.eigenvalues,
             "details": spectrum.details}
        )  # fmt: skip


class SpectraCsv(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        operation_id="atlas_spectra_csv", parameters=FILTERS, responses={(200, "text/csv"): str}
    )
    def get(self, request: Request) -> HttpResponse:
        response = HttpResponse(spectra.spectra_csv(_filtered(request)), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="spectra.csv"'
        return response
