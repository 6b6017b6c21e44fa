"""The atlas: what the machine says about each unit (measures, ablations, populations, spectra,
the machine observer, descriptions), beside what people made of it."""

from __future__ import annotations

from django.apps import AppConfig


class AtlasConfig(AppConfig):
    name = "backend.atlas"
    label = "atlas"
    verbose_name = "Atlas"

    def ready(self) -> None:
        from backend.atlas import jobkinds  # noqa: F401 - registers the atlas's job kinds
