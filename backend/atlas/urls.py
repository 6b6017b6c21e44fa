"""URLs of the atlas's researcher API, included under /api/v1/researcher/atlas/. A view that
queues work answers 202 with the Job (`backend.stimuli.api`: `jobs/<id>/` follows it)."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.atlas import observer_api

urlpatterns: list[URLPattern] = []

# The machine observer (backend/atlas/observer_api.py).
urlpatterns += [
    path("observers/", observer_api.ObserverList.as_view(), name="atlas-observers"),
    path("observers/<int:pk>/mis", observer_api.ObserverMis.as_view(), name="atlas-observer-mis"),
    path("observers/<int:pk>/pilot", observer_api.ObserverPilot.as_view(),
         name="atlas-observer-pilot"),
    path("observers/<int:pk>/pilot/<int:study>", observer_api.ObserverPilotResults.as_view(),
         name="atlas-observer-pilot-results"),
    path("observers/<int:pk>/pilot/<int:study>.csv", observer_api.ObserverPilotExport.as_view(),
         name="atlas-observer-pilot-export"),
    path("observers/<int:pk>/calibrate", observer_api.ObserverCalibrate.as_view(),
         name="atlas-observer-calibrate"),
]  # fmt: skip
