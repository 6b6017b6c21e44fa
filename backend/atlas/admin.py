"""Admin pages of the atlas: every machine measure of every unit, read-only (computed by Jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backend.atlas.models import AblationCurve, Measure, Population


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


# --- #15: ablation curves and populations (read-only: computed by Jobs) ---


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AblationCurve)
class AblationCurveAdmin(_ReadOnly):
    list_display = ["unit_set", "ranked_by", "image_set", "ks", "computed_at"]
    list_filter = ["ranked_by", "unit_set"]
    readonly_fields = ["unit_set", "image_set", "ranked_by", "ks", "ranked", "random_mean",
                       "random_sd", "details", "job", "computed_at"]  # fmt: skip


@admin.register(Population)
class PopulationAdmin(_ReadOnly):
    list_display = ["unit_set", "basis", "index", "size", "image_set", "computed_at"]
    list_filter = ["basis", "unit_set"]
    readonly_fields = ["unit_set", "image_set", "basis", "index", "members", "details", "job",
                       "computed_at"]  # fmt: skip

    @admin.display(description="members")
    def size(self, obj: Population) -> int:
        return len(obj.members)
