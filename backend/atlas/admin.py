"""Admin pages of the atlas: every machine measure of every unit, read-only (computed by Jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backend.atlas.access import THROUGH
from backend.atlas.models import AblationCurve, Description, Measure, Observer, Population
from backend.stimuli.admin_access import CatalogueScoped


@admin.register(Measure)
class MeasureAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    scope_through = THROUGH[Measure]
    list_display = ["unit", "name", "value", "image_set", "computed_at"]
    list_filter = ["name", "unit__unit_set", "image_set"]
    search_fields = ["name", "unit__unit_set__name"]
    readonly_fields = ["unit", "image_set", "name", "value", "details", "job", "computed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- #15: ablation curves and populations (read-only: computed by Jobs) ---


class _ReadOnly(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AblationCurve)
class AblationCurveAdmin(_ReadOnly):
    scope_through = THROUGH[AblationCurve]
    list_display = ["unit_set", "ranked_by", "image_set", "ks", "computed_at"]
    list_filter = ["ranked_by", "unit_set"]
    readonly_fields = ["unit_set", "image_set", "ranked_by", "ks", "ranked", "random_mean",
                       "random_sd", "details", "job", "computed_at"]  # fmt: skip


@admin.register(Population)
class PopulationAdmin(_ReadOnly):
    scope_through = THROUGH[Population]
    list_display = ["unit_set", "basis", "index", "size", "image_set", "computed_at"]
    list_filter = ["basis", "unit_set"]
    readonly_fields = ["unit_set", "image_set", "basis", "index", "members", "details", "job",
                       "computed_at"]  # fmt: skip

    @admin.display(description="members")
    def size(self, obj: Population) -> int:
        return len(obj.members)


# Spectra (issue 16): their admin pages live in their own module.
from backend.atlas import spectra_admin  # noqa: E402, F401

# --- The machine observer ---------------------------------------------------------------------


@admin.register(Observer)
class ObserverAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    """Observers are made here or through the API; their MIS, pilots and calibrations are Jobs
    (the researcher API: /api/v1/researcher/atlas/observers/)."""

    scope_through = THROUGH[Observer]

    list_display = ["name", "network", "layer", "similarity", "alpha", "created_at"]
    readonly_fields = ["calibrations", "created_at"]
    change_form_template = "admin/atlas/observer/change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        shown = self.get_queryset(request).filter(pk=object_id) if object_id.isdigit() else None
        observer = shown.first() if shown is not None else None
        pilots = pilot_tables(observer, request.user) if observer else []
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "pilots": pilots}
        )

    def get_urls(self) -> list[Any]:
        """The study page's "Run the machine observer" and the export with its columns
        (backend/atlas/observer_pages.py)."""
        from django.urls import path

        from backend.atlas import observer_pages

        view = self.admin_site.admin_view
        return [
            path("pilot-study/<int:study_id>/", view(observer_pages.run_pilot),
                 name="atlas_observer_pilot_study"),
            path("<int:observer_id>/study/<int:study_id>/responses.csv",
                 view(observer_pages.export_with_observer), name="atlas_observer_study_export"),
            *super().get_urls(),
        ]  # fmt: skip


def pilot_tables(observer: Observer, user: Any) -> list[dict[str, Any]]:
    """Each piloted study the viewer may see: predicted accuracy per condition, with flags."""
    from backend.atlas import observers
    from backend.studies.permissions import visible_studies

    piloted = visible_studies(user).filter(
        task_lists__trials__observer_answers__observer=observer
    ).distinct()  # fmt: skip
    tables = []
    for study in piloted:
        summary = observers.pilot_summary(observer, study)
        flags = {f["condition"]: f["flag"] for f in summary["flags"]}
        rows = [
            {"condition": name, **cell, "flag": flags.get(name, "")}
            for name, cell in summary["condition"].items()
        ]
        csv_url = f"/api/v1/researcher/atlas/observers/{observer.pk}/pilot/{study.pk}.csv"
        tables.append({"study": study.slug, "trials": summary["trials"], "rows": rows,
                       "catch": summary["catch"], "csv_url": csv_url})  # fmt: skip
    return tables


@admin.register(Description)
class DescriptionAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    """Descriptions in words (soft-WPMI), read-only; each unit's page shows its own."""

    scope_through = THROUGH[Description]

    list_display = ["unit", "text", "source", "image_set", "computed_at"]
    list_filter = ["source", "unit__unit_set", "image_set"]
    search_fields = ["text", "unit__unit_set__name"]
    readonly_fields = ["unit", "image_set", "source", "text", "concepts", "details", "job",
                       "computed_at"]  # fmt: skip

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
class LWTANetworkAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    scope_through = THROUGH[LWTANetwork]
    list_display = ["network", "base", "block_size", "agreement", "imagenet_accuracy"]
    readonly_fields = [
        "network", "base", "image_set", "block_size", "temperature", "modules", "checkpoint",
        "fine_tune", "job", "agreement", "imagenet_accuracy", "active_fractions",
        "training_curve",
    ]  # fmt: skip
    fields = readonly_fields  # type: ignore[assignment]
    change_list_template = "admin/atlas/lwtanetwork/change_list.html"

    def get_urls(self) -> list[Any]:
        from django.urls import path

        from backend.atlas.lwta_admin import fine_tune_view

        def view(request: HttpRequest) -> Any:
            return fine_tune_view(self.admin_site, request)

        name = "atlas_lwtanetwork_fine_tune"
        fine_tune = path("fine-tune/", self.admin_site.admin_view(view), name=name)
        return [fine_tune, *super().get_urls()]

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


# Confound reports (#20): their pages and the form that queues one (confounds_admin.py).
from backend.atlas import confounds_admin  # noqa: E402, F401

# --- Retrained networks (backend/atlas/retrain.py) --------------------------------------------
from backend.atlas.models import RetrainedNetwork  # noqa: E402


@admin.register(RetrainedNetwork)
class RetrainedNetworkAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    scope_through = THROUGH[RetrainedNetwork]
    list_display = ["network", "base", "attribute", "accuracy", "worst_group"]
    readonly_fields = [
        "network", "base", "train_set", "eval_set", "attribute", "module", "weights", "fit",
        "job", "evaluation",
    ]  # fmt: skip
    fields = readonly_fields  # type: ignore[assignment]
    change_list_template = "admin/atlas/retrainednetwork/change_list.html"

    def get_urls(self) -> list[Any]:
        from django.urls import path

        from backend.atlas.retrain_admin import curated_export_view, retrain_view

        def view(request: HttpRequest) -> Any:
            return retrain_view(self.admin_site, request)

        def export(request: HttpRequest) -> Any:
            return curated_export_view(self.admin_site, request)

        name = "atlas_retrainednetwork_retrain"
        retrain = path("retrain/", self.admin_site.admin_view(view), name=name)
        curate = path("curated-export/", self.admin_site.admin_view(export),
                      name="atlas_retrainednetwork_curated_export")  # fmt: skip
        return [retrain, curate, *super().get_urls()]

    @staticmethod
    def _pair(obj: RetrainedNetwork, key: str) -> str:
        base = (obj.report.get("base") or {}).get(key)
        new = (obj.report.get("retrained") or {}).get(key)
        if base is None or new is None:
            return "–"
        return f"{new:.1%} (base {base:.1%})"

    @admin.display(description="accuracy, held-out set")
    def accuracy(self, obj: RetrainedNetwork) -> str:
        return self._pair(obj, "accuracy")

    @admin.display(description="worst-group accuracy")
    def worst_group(self, obj: RetrainedNetwork) -> str:
        return self._pair(obj, "worst_group_accuracy")

    @admin.display(description="evaluation on the held-out set (base beside retrained)")
    def evaluation(self, obj: RetrainedNetwork) -> SafeString:
        from backend.atlas.retrain_admin import report_table

        return report_table(obj.report)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
