"""URLs of the atlas's researcher API, included under /api/v1/researcher/atlas/. A view that
queues work answers 202 with the Job (`backend.stimuli.api`: `jobs/<id>/` follows it)."""

from __future__ import annotations

from django.urls import URLPattern, path

from backend.atlas import spectra_api

urlpatterns: list[URLPattern] = []

# Spectra (issue 16)
urlpatterns += [
    path("spectra/", spectra_api.Spectra.as_view(), name="atlas-spectra"),
    path("spectra.csv", spectra_api.SpectraCsv.as_view(), name="atlas-spectra-csv"),
    path("spectra/<int:pk>/", spectra_api.SpectrumDetail.as_view(), name="atlas-spectrum"),
]
