"""Admin pages of spectra: the list (α beside its criterion, participation ratio, energy), a
layer's page (its log–log spectrum with the fitted line, its random-projection curves, the
figures as a table), the network page (α, participation ratio and energy against depth for
every selected layer, overlaying networks and bases), a form that queues one Job for the
layers chosen, and the per-layer CSV."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from backend.atlas import spectra, spectra_plots
from backend.atlas.access import THROUGH, visible_rows
from backend.atlas.models import Spectrum
from backend.stimuli import access
from backend.stimuli.admin_access import CatalogueScoped, ScopedChoicesForm
from backend.stimuli.models import ImageSet, Layer, UnitSet
from backend.studies import permissions


@admin.register(Spectrum)
class SpectrumAdmin(
    permissions.ResearcherViewOnly,
    CatalogueScoped,
    admin.ModelAdmin,  # type: ignore[type-arg]
):
    scope_through = THROUGH[Spectrum]
    list_display = ["layer", "network", "basis", "image_set", "sampling", "alpha_shown",
                    "criterion", "participation_ratio", "energy", "computed_at"]  # fmt: skip
    list_filter = ["layer__network", "image_set", "sampling"]
    change_list_template = "admin/atlas/spectrum/change_list.html"
    readonly_fields = ["layer", "unit_set", "image_set", "sampling", "figures", "spectrum_plot",
                       "projection_plot", "job", "computed_at"]  # fmt: skip
    fields = ["layer", "unit_set", "image_set", "sampling", "figures", "spectrum_plot",
              "projection_plot", "job", "computed_at"]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Spectrum]:
        return super().get_queryset(request).select_related("layer__network", "unit_set")

    @admin.display(description="network", ordering="layer__network__name")
    def network(self, obj: Spectrum) -> str:
        return obj.layer.network.name

    @admin.display(description="α (fit)", ordering="alpha")
    def alpha_shown(self, obj: Spectrum) -> str:
        return "no fit" if obj.alpha is None else f"{obj.alpha:.3f}"

    @admin.display(description="figures")
    def figures(self, obj: Spectrum) -> SafeString:
        summary = spectra.spectrum_summary(obj)
        shown = [(name, summary[name]) for name in spectra.CSV_COLUMNS if name in summary]
        rows = "".join(
            format_html("<tr><th>{}</th><td>{}</td></tr>", name.replace("_", " "), value)
            for name, value in shown if value not in (None, "")
        )  # fmt: skip
        network_page = reverse("admin:atlas_spectrum_network") + f"?network={obj.layer.network_id}"
        link = format_html('<p><a href="{}">All layers of {} against depth</a></p>',
                           network_page, obj.layer.network.name)  # fmt: skip
        return mark_safe(f"<table>{rows}</table>{link}")  # noqa: S308 - escaped above

    @admin.display(description="eigenspectrum (log–log)")
    def spectrum_plot(self, obj: Spectrum) -> SafeString:
        return mark_safe(spectra_plots.inline_svg(spectra_plots.spectrum_figure(obj)))  # noqa: S308

    @admin.display(description="random projections along the path")
    def projection_plot(self, obj: Spectrum) -> SafeString:
        return mark_safe(spectra_plots.inline_svg(spectra_plots.projection_figure(obj)))  # noqa: S308

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        return [
            path("network/", site.admin_view(self.network_view), name="atlas_spectrum_network"),
            path("compute/", site.admin_view(self.compute_view), name="atlas_spectrum_compute"),
            path("export.csv", site.admin_view(self.csv_view), name="atlas_spectrum_csv"),
            *super().get_urls(),
        ]

    def network_view(self, request: HttpRequest) -> HttpResponse:
        """α, participation ratio and energy against depth for the networks chosen."""
        ids = [int(i) for i in request.GET.getlist("network") if i.isdigit()]
        shown = visible_rows(spectra.spectra_of(), request.user)
        rows = list(shown.filter(layer__network_id__in=ids)) if ids else []
        plots = {name: spectra_plots.depth_figure(rows, name) for name in spectra_plots.METRICS}
        context = {
            **self.admin_site.each_context(request),
            "title": "Spectra against depth",
            "networks": access.visible_networks(request.user).order_by("name"), "chosen": ids,
            "plots": {k: mark_safe(v) for k, v in spectra_plots.svgs(plots).items()},  # noqa: S308
            "rows": [spectra.spectrum_summary(r) for r in rows],
            "csv_url": reverse("admin:atlas_spectrum_csv") + "?" + request.GET.urlencode(),
        }  # fmt: skip
        return TemplateResponse(request, "admin/atlas/spectrum/network.html", context)

    def csv_view(self, request: HttpRequest) -> HttpResponse:
        ids = [int(i) for i in request.GET.getlist("network") if i.isdigit()]
        rows = visible_rows(spectra.spectra_of(), request.user)
        if ids:
            rows = rows.filter(layer__network_id__in=ids)
        response = HttpResponse(spectra.spectra_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="spectra.csv"'
        return response

    def compute_view(self, request: HttpRequest) -> HttpResponse:
        """Choose layers (and bases), an image set and the sampling; queue one Job."""
        form = ComputeSpectraForm(request.POST or None, user=request.user)
        status = 400 if request.method == "POST" else 200  # unless it queues (a redirect)
        if request.method == "POST" and form.is_valid():
            try:
                job = spectra.do_queue_spectra(form.params(), request.user)
            except ValidationError as err:
                form.add_error(None, " ".join(err.messages))
            else:
                messages.success(request, f"Queued job #{job.pk}: follow its progress bar here.")
                return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job.pk]))
        context = {**self.admin_site.each_context(request), "title": "Compute spectra",
                   "form": form}  # fmt: skip
        return TemplateResponse(
            request, "admin/atlas/spectrum/compute.html", context, status=status
        )


class ComputeSpectraForm(ScopedChoicesForm):
    scoped_fields = {"layers": access.visible_layers, "unit_sets": access.visible_unit_sets,
                     "image_set": access.visible_image_sets}  # fmt: skip
    layers = forms.ModelMultipleChoiceField(
        Layer.objects.select_related("network").order_by("network__name", "position"),
        required=False, help_text="layers of one network (their channels)",
    )  # fmt: skip
    unit_sets = forms.ModelMultipleChoiceField(
        UnitSet.objects.order_by("name"), required=False,
        help_text="bases: the spectrum of a unit set's codes (PCA, SAE, …) on its layer",
    )  # fmt: skip
    image_set = forms.ModelChoiceField(ImageSet.objects.order_by("name"))
    sampling = forms.ChoiceField(choices=Spectrum.Sampling.choices, initial="pooled")
    positions_per_image = forms.IntegerField(min_value=1, initial=16)
    first_rank = forms.IntegerField(min_value=1, initial=spectra.DEFAULT_RANKS[0])
    last_rank = forms.IntegerField(min_value=1, initial=spectra.DEFAULT_RANKS[1])
    manifold_dim = forms.IntegerField(
        min_value=1, required=False, help_text="d of the criterion 1 + 2/d (blank: natural images)"
    )
    path = forms.ChoiceField(choices=[(k, k) for k in (*spectra.PATH_KINDS, "none")])
    path_steps = forms.IntegerField(min_value=3, initial=128)

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        path = None if data["path"] == "none" else {
            **spectra.DEFAULT_PATH, "kind": data["path"], "steps": data["path_steps"]
        }  # fmt: skip
        return {
            "layers": [layer.pk for layer in data["layers"]],
            "unit_sets": [u.pk for u in data["unit_sets"]], "image_set": data["image_set"].pk,
            "sampling": data["sampling"], "positions_per_image": data["positions_per_image"],
            "ranks": [data["first_rank"], data["last_rank"]],
            "manifold_dim": data["manifold_dim"], "path": path,
        }  # fmt: skip
