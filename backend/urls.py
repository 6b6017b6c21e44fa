"""URL map: admin, health, API (v1) with its OpenAPI schema, participant page, media."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.analysis import views as analysis_views
from backend.atlas import atlas_pages, human_machine
from backend.core import health
from backend.core.media import serve_media
from backend.participation.page import participant_page
from backend.participation.urls import api_urlpatterns as participant_api

admin.site.site_header = "PsyLens"
admin.site.site_title = "PsyLens"
admin.site.index_title = "Studies, stimuli and results"

api_v1: list[URLPattern | URLResolver] = [
    path("researcher/", include("backend.studies.api_urls")),
    path("researcher/", include("backend.analysis.api_urls")),
    path("researcher/", include("backend.stimuli.api_urls")),
    path("researcher/atlas/", include("backend.atlas.urls")),
    *participant_api,
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", include(analysis_views.urlpatterns())),
    path("admin/", include(atlas_pages.urlpatterns())),  # the atlas's pages (#15)
    path("admin/", include(human_machine.urlpatterns())),  # per-unit export (#15)
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("s/<slug:slug>/", participant_page, name="participant-page"),
]

if settings.SERVE_MEDIA:
    media_prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns.append(re_path(rf"^{media_prefix}(?P<path>.+)$", serve_media, name="media"))

handler404 = "backend.core.errors.handler404"
handler400 = "backend.core.errors.handler400"
handler403 = "backend.core.errors.handler403"
handler500 = "backend.core.errors.handler500"
