"""Admin pages of the atlas: every machine measure of every unit, read-only (computed by Jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backend.atlas.models import Description, Measure


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


@admin.register(Description)
class DescriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Descriptions in words (soft-WPMI), read-only; each unit's page shows its own."""

    list_display = ["unit", "text", "source", "image_set", "computed_at"]
    list_filter = ["source", "unit__unit_set", "image_set"]
    search_fields = ["text", "unit__unit_set__name"]
    readonly_fields = ["unit", "image_set", "source", "text", "concepts", "details", "job",
                       "computed_at"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
