"""URLs of the atlas's researcher API, included under /api/v1/researcher/atlas/. A view that
queues work answers 202 with the Job (`backend.stimuli.api`: `jobs/<id>/` follows it)."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.atlas import api, descriptions, observer_api, spectra_api

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


# Spectra (issue 16)
urlpatterns += [
    path("spectra/", spectra_api.Spectra.as_view(), name="atlas-spectra"),
    path("spectra.csv", spectra_api.SpectraCsv.as_view(), name="atlas-spectra-csv"),
    path("spectra/<int:pk>/", spectra_api.SpectrumDetail.as_view(), name="atlas-spectrum"),
]

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


# Descriptions (#18)
urlpatterns += [
    path("descriptions/", descriptions.Descriptions.as_view(), name="atlas-descriptions"),
]


# LWTA networks (#19): queue a fine-tune, list them with their reports.
from backend.atlas import lwta_api  # noqa: E402

urlpatterns += [
    path("lwta/", lwta_api.LWTANetworks.as_view(), name="atlas-lwta"),
]


# Confound reports (#20): queue, list, read one, its candidate table as CSV.
from backend.atlas import confounds_api  # noqa: E402

urlpatterns += [
    path("confounds/", confounds_api.ConfoundReports.as_view(), name="atlas-confounds"),
    path("confounds/<int:pk>/", confounds_api.ConfoundReportDetail.as_view(),
         name="atlas-confound"),
    path("confounds/<int:pk>/candidates.csv", confounds_api.ConfoundCandidatesCsv.as_view(),
         name="atlas-confound-candidates-csv"),
]  # fmt: skip


# Last-layer retraining (#20): queue a retraining, list the retrained networks.
from backend.atlas import retrain_api  # noqa: E402

urlpatterns += [
    path("retrained/", retrain_api.RetrainedNetworks.as_view(), name="atlas-retrained"),
]
urlpatterns += [
    path("curated-export/", retrain_api.CuratedExport.as_view(), name="atlas-curated-export"),
]
