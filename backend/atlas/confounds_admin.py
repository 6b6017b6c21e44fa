"""Admin pages of confound reports (admin → Atlas → Confound reports): the list (unit, image
set, bands, the first candidate), a report's page (the candidate-confound table with its effect
sizes, then per band its range, an exemplar grid of thumbnails and its label and attribute
distributions as tables), the candidate table as CSV, and a form that queues a report's Job
(bad parameters: 400 with the planner's message on the form, nothing queued)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from backend.atlas import confounds
from backend.atlas.access import THROUGH
from backend.atlas.models import ConfoundReport
from backend.stimuli import access
from backend.stimuli.admin import image_grid
from backend.stimuli.admin_access import CatalogueScoped, ScopedChoicesForm
from backend.stimuli.models import Image, ImageSet, UnitSet
from backend.studies import permissions

SHOWN_VALUES = 12  # the most frequent values of a column shown per band


@admin.register(ConfoundReport)
class ConfoundReportAdmin(
    permissions.ResearcherViewOnly,
    CatalogueScoped,
    admin.ModelAdmin,  # type: ignore[type-arg]
):
    scope_through = THROUGH[ConfoundReport]
    list_display = ["unit_shown", "image_set", "n_bands", "n_images", "top_candidate",
                    "computed_at"]  # fmt: skip
    list_filter = ["unit__unit_set", "image_set", "n_bands"]
    change_list_template = "admin/atlas/confoundreport/change_list.html"
    readonly_fields = ["unit_shown", "image_set", "n_bands", "alpha", "n_images", "job",
                       "computed_at", "candidate_table", "band_sections"]  # fmt: skip
    fields = readonly_fields  # type: ignore[assignment]

    def get_queryset(self, request: HttpRequest) -> Any:
        related = "unit__unit_set__layer__network", "image_set"
        return super().get_queryset(request).select_related(*related)

    @admin.display(description="unit", ordering="unit")
    def unit_shown(self, obj: ConfoundReport) -> str:
        return confounds.unit_label(obj.unit)

    @admin.display(description="first candidate")
    def top_candidate(self, obj: ConfoundReport) -> str:
        if not obj.candidates:
            return "none"
        top = confounds.candidate_row(obj.candidates[0], obj, 1)
        return (f"{top['attribute']} = {top['value']} in band {top['band']} "
                f"(OR {top['odds_ratio']:.2f}, Holm p {top['p_holm']:.2g})")  # fmt: skip

    @admin.display(description="candidate confounds (best first)")
    def candidate_table(self, obj: ConfoundReport) -> SafeString:
        csv_url = reverse("admin:atlas_confoundreport_csv", args=[obj.pk])
        curate_url = reverse("admin:atlas_confoundreport_curate", args=[obj.pk])
        link = format_html(
            '<p><a href="{}">Download the table as CSV</a> · <a href="{}" id="curate-report">'
            "Curate a retraining set from this report</a></p>", csv_url, curate_url,
        )  # fmt: skip
        if not obj.candidates:
            return format_html(
                "<p>No label or attribute value is over-represented in a band below the top "
                "(Holm-corrected p &lt; {}).</p>{}", obj.alpha, link,
            )  # fmt: skip
        # A researcher's attribute names and values may be long: they wrap, the figures do not.
        rows = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", '<td style="{}">{}</td>', (
                (WRAP if column in (1, 2) else "" if column in (3, 4) else NOWRAP, cell)
                for column, cell in enumerate(_candidate_cells(c))
            )),)
            for c in (confounds.candidate_row(t, obj, i + 1) for i, t in enumerate(obj.candidates))
        ))  # fmt: skip
        head = format_html_join("", "<th>{}</th>", ((h,) for h in CANDIDATE_HEADERS))
        return format_html(
            '<div style="max-width:100%;overflow-x:auto"><table class="psylens-confounds" '
            'style="font-size:12px"><thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>{}',
            head, rows, link,
        )  # fmt: skip

    @admin.display(description="bands (most active first in each grid)")
    def band_sections(self, obj: ConfoundReport) -> SafeString:
        ids = [entry["image"] for band in obj.bands for entry in band["images"]]
        images = Image.objects.in_bulk(ids)
        parts = [_band_html(band, images) for band in reversed(obj.bands)]  # top band first
        return format_html_join("", "{}", ((part,) for part in parts))

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        return [
            path("compute/", site.admin_view(self.compute_view),
                 name="atlas_confoundreport_compute"),
            path("<int:pk>/candidates.csv", site.admin_view(self.csv_view),
                 name="atlas_confoundreport_csv"),
            path("<int:pk>/curate/", site.admin_view(self.curate_view),
                 name="atlas_confoundreport_curate"),
            *super().get_urls(),
        ]  # fmt: skip

    def visible_report(self, request: HttpRequest, pk: int) -> ConfoundReport:
        """The report, or a 404 unless the researcher may see it (the admin's own scoping)."""
        row = self.get_object(request, str(pk))
        if row is None:
            raise Http404(f"confound report {pk} not found")
        return row

    def csv_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        row = self.visible_report(request, pk)
        response = HttpResponse(confounds.candidates_csv(row), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="confounds-{pk}.csv"'
        return response

    def curate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        from backend.atlas.curate_admin import curate_view

        return curate_view(self.admin_site, request, self.visible_report(request, pk))

    def compute_view(self, request: HttpRequest) -> HttpResponse:
        """Choose a unit (or a logit) and an image set; queue one Job. `?unit_set=&unit=
        &image_set=` preselect them (links from a unit's page)."""
        initial = {k: request.GET[k] for k in ("unit_set", "unit", "image_set")
                   if request.GET.get(k, "").isdigit()}  # fmt: skip
        form = ConfoundReportForm(request.POST or None, user=request.user, initial=initial)
        status = 200
        if request.method == "POST":
            status = 400
            if form.is_valid():
                try:
                    job = confounds.do_queue_confound_report(form.params(), request.user)
                except ValidationError as err:
                    form.add_error(None, " ".join(err.messages))
                else:
                    messages.success(request, f"Queued job #{job.pk}: follow its progress here.")
                    return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job.pk]))
        context = {**self.admin_site.each_context(request), "title": "Compute a confound report",
                   "form": form}  # fmt: skip
        return TemplateResponse(
            request, "admin/atlas/confoundreport/compute.html", context, status=status
        )


WRAP = "overflow-wrap:anywhere;min-width:6em;padding:6px"
NOWRAP = "white-space:nowrap;padding:6px"
CANDIDATE_HEADERS = ["#", "attribute", "value", "band (quantiles)", "against", "in band",
                     "elsewhere", "share in band", "enrichment", "odds ratio", "p",
                     "Holm p"]  # fmt: skip


def _candidate_cells(c: dict[str, Any]) -> list[str]:
    other = "top band" if c["against"] == "top" else "the rest"
    return [
        str(c["rank"]), c["attribute"], c["value"],
        f"{c['band']} ({c['band_from']:.0%}–{c['band_to']:.0%})", other,
        f"{c['in_band']}/{c['band_size']}", f"{c['in_other']}/{c['other_size']}",
        f"{c['share_in_band']:.0%}", f"{c['enrichment']:.2f}×", f"{c['odds_ratio']:.2f}",
        f"{c['p']:.2g}", f"{c['p_holm']:.2g}",
    ]  # fmt: skip


def _band_html(band: dict[str, Any], images: dict[int, Image]) -> SafeString:
    low, high = band["quantiles"]
    title = format_html(
        "<h3>Band {} ({}–{}): {} images, activations {} … {}</h3>", band["band"],
        f"{low:.0%}", f"{high:.0%}", band["n_images"], f"{band['low']:.3f}",
        f"{band['high']:.3f}",
    )  # fmt: skip
    grid = image_grid(
        (images[e["image"]], f"{e['value']:.3f}") for e in band["images"] if e["image"] in images
    )
    tables = format_html_join("", "{}", (
        (_distribution_table(column, counts, band["n_images"]),)
        for column, counts in band["distribution"].items()
    ))  # fmt: skip
    return format_html('<div class="psylens-band">{}{}<div>{}</div></div>', title, grid, tables)


def _distribution_table(column: str, counts: dict[str, int], n_images: int) -> SafeString:
    shown = list(counts.items())[:SHOWN_VALUES]
    rest = sum(counts.values()) - sum(n for _, n in shown)
    rows = [(value or "(none)", n, f"{n / max(n_images, 1):.0%}") for value, n in shown]
    if rest:
        rows.append((f"{len(counts) - len(shown)} other values", rest, ""))
    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    return format_html(
        '<table class="psylens-distribution" style="display:inline-table;margin:4px">'
        "<thead><tr><th colspan=3>{}</th></tr></thead><tbody>{}</tbody></table>", column, body,
    )  # fmt: skip


class ConfoundReportForm(ScopedChoicesForm):
    scoped_fields = {"unit_set": access.visible_unit_sets, "image_set": access.visible_image_sets}
    unit_set = forms.ModelChoiceField(
        UnitSet.objects.select_related("layer__network").order_by("name"),
        help_text="for a logit: a channels unit set on the network's output layer",
    )
    unit = forms.IntegerField(min_value=0, help_text="the unit's index (for a logit: the class)")
    image_set = forms.ModelChoiceField(ImageSet.objects.order_by("name"))
    n_bands = forms.IntegerField(initial=confounds.DEFAULTS["n_bands"], help_text="10: deciles")
    alpha = forms.FloatField(
        initial=confounds.DEFAULTS["alpha"], help_text="the Holm-corrected p of a candidate"
    )
    grid = forms.IntegerField(initial=confounds.DEFAULTS["grid"], help_text="images per band")
    images_per_shard = forms.IntegerField(required=False, help_text="blank: the default")

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        params = {"unit_set": data["unit_set"].pk, "unit": data["unit"],
                  "image_set": data["image_set"].pk, "n_bands": data["n_bands"],
                  "alpha": data["alpha"], "grid": data["grid"]}  # fmt: skip
        if data["images_per_shard"] is not None:
            params["images_per_shard"] = data["images_per_shard"]
        return params
