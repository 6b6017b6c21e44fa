"""Admin pages of the atlas: every machine measure of every unit, read-only (computed by Jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backend.atlas.models import Measure, Observer


@admin.register(Measure)
class MeasureAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["unit", "name", "value", "image_set", "computed_at"]
    list_filter = ["name", "unit__unit_set", "image_set"]
    search_fields = ["name", "unit__unit_set__name"]
    readonly_fields = ["unit", "image_set", "name", "value", "details", "job", "computed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Spectra (issue 16): their admin pages live in their own module.
from backend.atlas import spectra_admin  # noqa: E402, F401

# --- The machine observer ---------------------------------------------------------------------


@admin.register(Observer)
class ObserverAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Observers are made here or through the API; their MIS, pilots and calibrations are Jobs
    (the researcher API: /api/v1/researcher/atlas/observers/)."""

    list_display = ["name", "network", "layer", "similarity", "alpha", "created_at"]
    readonly_fields = ["calibrations", "created_at"]
