"""URLs of the atlas's researcher API, included under /api/v1/researcher/atlas/. A view that
queues work answers 202 with the Job (`backend.stimuli.api`: `jobs/<id>/` follows it)."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.atlas import descriptions

urlpatterns: list[URLPattern] = []

# Descriptions (#18)
urlpatterns += [
    path("descriptions/", descriptions.Descriptions.as_view(), name="atlas-descriptions"),
]
