"""The curation page of a confound report (admin → a report → "Curate a retraining set"): the
rule — the images of a label in some of the report's bands, balanced against an attribute's
values — or the images ticked in the report's exemplar grids, exported as an ImageFolder ZIP
(which the image-set import reads back) or as a CSV (docs/midrange.md §4). Bad input answers 400
on the page; a report the researcher may not see is a 404 (the report admin's own scoping)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from backend.atlas.models import ConfoundReport
from backend.stimuli.models import Image


class CurateForm(forms.Form):
    selection = forms.ChoiceField(
        choices=[("rule", "by the rule below"), ("ticked", "the images ticked in the grids")],
        initial="rule", widget=forms.RadioSelect,
    )  # fmt: skip
    label = forms.ChoiceField(required=False, help_text="the target class's label")
    report_bands = forms.TypedMultipleChoiceField(
        coerce=int, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="the report's bands to take the label's images from (the middle, typically)",
    )  # fmt: skip
    attribute = forms.ChoiceField(
        required=False, help_text="balance against its values (blank: take every image)"
    )
    seed = forms.IntegerField(initial=0, help_text="which images a balanced draw keeps")
    image_ids = forms.TypedMultipleChoiceField(coerce=int, required=False)
    format = forms.ChoiceField(
        choices=[("zip", "ImageFolder ZIP (with images.csv)"), ("csv", "CSV")], initial="zip"
    )

    def __init__(self, *args: Any, report: ConfoundReport, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        members = report.image_set.members.all()
        labels = sorted({label for label in members.values_list("label", flat=True) if label})
        columns = sorted({c for a in members.values_list("attributes", flat=True) for c in a or {}})
        self._choices("label", [(label, label) for label in labels])
        self._choices("attribute", [("", "(none)"), *((c, c) for c in columns)])
        self._choices("report_bands", [
            (band["band"], f"band {band['band']} ({band['quantiles'][0]:.0%}–"
                           f"{band['quantiles'][1]:.0%}): {band['n_images']} images")
            for band in report.bands
        ])  # fmt: skip
        shown = [entry["image"] for band in report.bands for entry in band["images"]]
        self._choices("image_ids", [(i, str(i)) for i in shown])

    def _choices(self, name: str, choices: list[tuple[Any, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("selection") == "rule":
            if not data.get("label"):
                self.add_error("label", "choose the target class's label")
            if not data.get("report_bands"):
                self.add_error("report_bands", "tick at least one band")
        elif data.get("selection") == "ticked" and not data.get("image_ids"):
            self.add_error("image_ids", "tick at least one image in the grids")
        return data

    def export_request(self) -> dict[str, Any]:
        """The curated export's request (`backend/atlas/retrain_api.curated_export`)."""
        data = self.cleaned_data
        if data["selection"] == "ticked":
            return {"image_ids": data["image_ids"], "format": data["format"]}
        rule = {"report": self.report.pk, "label": data["label"],
                "report_bands": data["report_bands"], "attribute": data["attribute"],
                "seed": data["seed"]}  # fmt: skip
        return {"rule": rule, "format": data["format"]}


def curate_view(admin_site: Any, request: HttpRequest, report: ConfoundReport) -> HttpResponse:
    from backend.atlas.retrain_api import curated_export

    form = CurateForm(request.POST or None, report=report)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                body, kind, suffix = curated_export(report.image_set, form.export_request(), report)
            except ValidationError as err:
                form.add_error(None, " ".join(err.messages))
            else:
                answer = HttpResponse(body, content_type=kind)
                name = f"{report.image_set.name}-report-{report.pk}-curated{suffix}"
                answer["Content-Disposition"] = f'attachment; filename="{name}"'
                return answer
    ticked = set(form.cleaned_data.get("image_ids") or []) if form.is_bound else set()
    context = {
        **admin_site.each_context(request), "title": f"Curate a retraining set: {report}",
        "form": form, "report": report, "grids": tickable_grids(report, ticked),
    }  # fmt: skip
    return TemplateResponse(
        request, "admin/atlas/confoundreport/curate.html", context, status=status
    )


def tickable_grids(report: ConfoundReport, ticked: set[int]) -> SafeString:
    """Each band's exemplar grid (top band first), a checkbox under every thumbnail."""
    ids = [entry["image"] for band in report.bands for entry in band["images"]]
    images = Image.objects.in_bulk(ids)
    parts = []
    for band in reversed(report.bands):
        low, high = band["quantiles"]
        cells = format_html_join("", (
            '<label class="psylens-tick" style="display:inline-block;margin:2px;'
            'text-align:center;font-size:11px"><img src="{}" width="96" height="96" '
            'style="object-fit:cover;display:block" loading="lazy">'
            '<input type="checkbox" name="image_ids" value="{}"{}> {}</label>'
        ), (
            (images[e["image"]].url, e["image"], " checked" if e["image"] in ticked else "",
             f"{e['value']:.3f}")
            for e in band["images"] if e["image"] in images
        ))  # fmt: skip
        parts.append(format_html(
            '<div class="psylens-band"><h3>Band {} ({}–{}): {} images</h3>'
            '<div class="psylens-grid">{}</div></div>',
            band["band"], f"{low:.0%}", f"{high:.0%}", band["n_images"], cells,
        ))  # fmt: skip
    return format_html_join("", "{}", ((part,) for part in parts))
