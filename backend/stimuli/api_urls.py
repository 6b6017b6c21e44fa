"""URLs of the researcher API for Jobs, included under /api/v1/researcher/."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.stimuli import api

urlpatterns: list[URLPattern] = [
    path("jobs/<int:pk>/", api.JobDetail.as_view(), name="researcher-job"),
    path("jobs/<int:pk>/cancel", api.CancelJob.as_view(), name="researcher-job-cancel"),
]
