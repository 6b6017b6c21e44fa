"""URLs of the atlas's researcher API, included under /api/v1/researcher/atlas/. A view that
queues work answers 202 with the Job (`backend.stimuli.api`: `jobs/<id>/` follows it)."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.atlas import api

urlpatterns: list[URLPattern] = [
    # --- #15: measures, ablations, populations ---
    path("jobs/", api.QueueAtlasJob.as_view(), name="atlas-queue-job"),
    path("unit-sets/<int:pk>/measures/", api.UnitSetMeasures.as_view(), name="atlas-measures"),
    path(
        "unit-sets/<int:pk>/measures.csv",
        api.UnitSetMeasuresCsv.as_view(),
        name="atlas-measures-csv",
    ),
    path(
        "unit-sets/<int:pk>/populations/",
        api.UnitSetPopulations.as_view(),
        name="atlas-populations",
    ),
    path(
        "unit-sets/<int:pk>/ablation-curves/",
        api.UnitSetAblationCurves.as_view(),
        name="atlas-ablation-curves",
    ),
]
