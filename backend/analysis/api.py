"""Researcher API (v1) of the results: counts and statistics as JSON, the exports (CSV,
Parquet, design JSON), the platform submission lists and manual exclusion, under
/api/v1/researcher/studies/<slug>/. Token or session authentication; a study that is not the
caller's (owner or collaborator) is a 404, as in the studies API.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.analysis import progress, services, views
from backend.analysis.dashboard import results_version, study_results
from backend.core.errors import ApiError
from backend.participation.models import Session
from backend.studies import permissions as study_permissions
from backend.studies.api import IsResearcher
from backend.studies.models import Study


class AnyMediaRenderer(BaseRenderer):
    """Lets file downloads through content negotiation whatever the client accepts."""

    media_type = "*/*"
    format = "file"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return data


class ResultsView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsResearcher]

    def study(self, slug: str) -> Study:
        return study_permissions.get_study_or_404(self.request.user, slug=slug)


class Results(ResultsView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        """Counts, places still needed, and accuracy by condition, layer, basis and unit;
        `?with=<imported dataset id>` (repeatable) adds those datasets' accuracy by condition."""
        study = self.study(slug)
        version = results_version(study)
        results = study_results(study, version)
        body = {
            "version": version,
            "counts": progress.study_counts(study).as_dict(),
            "by_condition": [dataclasses.asdict(cell) for cell in results.by_condition],
            "by_layer": [dataclasses.asdict(cell) for cell in results.by_layer],
            "by_basis": [dataclasses.asdict(cell) for cell in results.by_basis],
            "units": [dataclasses.asdict(line) for line in results.units],
            "chance": results.chance,
            "compared": [
                dataclasses.asdict(other) for other in views.compared_datasets(request._request)
            ],
        }
        return Response(body)


class FileNegotiation(DefaultContentNegotiation):
    """A file is what it is: no `?format=` (DRF's override answered an HTML 404 to one outside
    its list); errors are JSON, the file its own type."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]


class Download(ResultsView):
    """One file of the study: the view for each kind is made by `download(kind)`."""

    renderer_classes = [JSONRenderer, AnyMediaRenderer]
    content_negotiation_class = FileNegotiation
    kind = ""

    def file(self, slug: str) -> HttpResponseBase:
        study = self.study(slug)
        if self.kind == "csv":
            return views.csv_response(study)
        if self.kind == "parquet":
            return views.parquet_response(study)
        if self.kind == "design":
            return views.design_response(study)
        return views.submissions_response(study, valid=self.kind == "approve")


# What each file is, as the schema declares it: (media type, schema).
FILE_SCHEMAS: dict[str, tuple[str, Any]] = {
    "csv": ("text/csv", OpenApiTypes.STR),
    "parquet": ("application/vnd.apache.parquet", OpenApiTypes.BINARY),
    "design": ("application/json", OpenApiTypes.OBJECT),
    "approve": ("text/csv", OpenApiTypes.STR),
    "reject": ("text/csv", OpenApiTypes.STR),
}


def download(kind: str) -> Any:
    media_type, file_schema = FILE_SCHEMAS[kind]

    class KindDownload(Download):
        @extend_schema(
            responses={(200, media_type): file_schema},
            operation_id=f"results_{kind}",
            parameters=[OpenApiParameter("format", exclude=True)],
        )
        def get(self, request: Request, slug: str) -> HttpResponseBase:
            """The file (CSV is streamed)."""
            return self.file(slug)

    KindDownload.kind = kind
    KindDownload.__name__ = KindDownload.__qualname__ = f"Download{kind.title()}"
    return KindDownload.as_view()


class ExclusionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    session = serializers.CharField(help_text="the export's session id, e.g. s-42")
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    include = serializers.BooleanField(required=False, default=False)


class Exclusion(ResultsView):
    @extend_schema(request=ExclusionSerializer, responses={200: dict})
    def post(self, request: Request, slug: str) -> Response:
        """Exclude a completed session by hand (reason required), or undo it (include)."""
        study = self.study(slug)
        data = ExclusionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = _session(study, data.validated_data["session"])
        try:
            if data.validated_data["include"]:
                exclusion = services.do_clear_manual_exclusion(session)
            else:
                user = request.user
                assert isinstance(user, User)
                exclusion = services.do_exclude_manually(
                    session, data.validated_data["reason"], user
                )
        except services.Refused as err:
            raise ApiError("refused", err.message, 409) from None
        return Response({"session": f"s-{session.pk}", "excluded": exclusion.excluded,
                         "reasons": exclusion.reasons})  # fmt: skip


def _session(study: Study, raw: str) -> Session:
    pk = raw.strip().removeprefix("s-")
    session = Session.objects.filter(study=study, pk=int(pk)).first() if pk.isdigit() else None
    if session is None:
        raise ApiError("not_found", "There is no such session in this study.", 404)
    return session
