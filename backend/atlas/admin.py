"""Admin pages of the atlas: every machine measure of every unit, read-only (computed by Jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backend.atlas.models import Measure


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


# --- LWTA networks (backend/atlas/lwta.py) ----------------------------------------------------

from django.utils.html import format_html, format_html_join  # noqa: E402
from django.utils.safestring import SafeString  # noqa: E402

from backend.atlas.models import LWTANetwork  # noqa: E402


def training_curve_svg(curve: list[dict[str, Any]], width: int = 480, height: int = 160) -> str:
    """The loss per step as an inline SVG polyline (no plotting library on the web side)."""
    losses = [float(point["loss"]) for point in curve if point.get("loss") is not None]
    if len(losses) < 2:
        return ""
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    points = " ".join(
        f"{i * (width - 8) / (len(losses) - 1) + 4:.1f},"
        f"{height - 4 - (loss - low) * (height - 8) / span:.1f}"
        for i, loss in enumerate(losses)
    )
    return (
        f'<svg class="lwta-curve" width="{width}" height="{height}" role="img" '
        f'aria-label="training loss over {len(losses)} steps, from {losses[0]:.4g} '
        f'to {losses[-1]:.4g}"><polyline fill="none" stroke="#447e9b" stroke-width="1.5" '
        f'points="{points}"/></svg>'
    )


@admin.register(LWTANetwork)
class LWTANetworkAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["network", "base", "block_size", "agreement", "imagenet_accuracy"]
    readonly_fields = [
        "network", "base", "image_set", "block_size", "temperature", "modules", "checkpoint",
        "fine_tune", "job", "agreement", "imagenet_accuracy", "active_fractions",
        "training_curve",
    ]  # fmt: skip
    fields = readonly_fields  # type: ignore[assignment]

    @admin.display(description="top-1 agreement with the base (image set)")
    def agreement(self, obj: LWTANetwork) -> str:
        before = obj.report.get("agreement_before")
        after = (obj.report.get("image_set") or {}).get("agreement")
        if after is None:
            return "–"
        return f"{after:.1%}" + (
            f" (before fine-tuning {before:.1%})" if before is not None else ""
        )

    @admin.display(description="accuracy on foolbox's 20 ImageNet photos (base)")
    def imagenet_accuracy(self, obj: LWTANetwork) -> str:
        photos = obj.report.get("imagenet_photos") or {}
        if photos.get("accuracy") is None:
            return "–"
        return f"{photos['accuracy']:.0%} ({photos['teacher_accuracy']:.0%})"

    @admin.display(description="fraction of active units per layer (≈ 1/U)")
    def active_fractions(self, obj: LWTANetwork) -> SafeString:
        fractions = (obj.report.get("image_set") or {}).get("active_fraction", {})
        return format_html_join(
            "", "<div>{}: {}</div>", ((n, f"{f:.4f}") for n, f in fractions.items())
        )

    @admin.display(description="training curve (loss per step)")
    def training_curve(self, obj: LWTANetwork) -> SafeString:
        return format_html("{}", SafeString(training_curve_svg(obj.curve)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
