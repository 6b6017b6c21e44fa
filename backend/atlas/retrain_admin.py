"""The admin's form that queues a last-layer retraining (admin → Atlas → Retrained networks →
"Retrain a network's last layer"; `?base=<network id>` and `?train_set=<image set id>`
preselect). Bad parameters answer 400 with the planner's message on the form, and queue
nothing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from backend.atlas import retrain
from backend.stimuli import access
from backend.stimuli.admin_access import ScopedChoicesForm
from backend.stimuli.models import ImageSet, Network


class RetrainForm(ScopedChoicesForm):
    scoped_fields = {"base": access.visible_networks, "train_set": access.visible_image_sets,
                     "eval_set": access.visible_image_sets}  # fmt: skip
    base = forms.ModelChoiceField(Network.objects.order_by("name"))
    train_set = forms.ModelChoiceField(
        ImageSet.objects.order_by("name"), help_text="the curated set (e.g. an exported selection)"
    )
    eval_set = forms.ModelChoiceField(
        ImageSet.objects.order_by("name"), help_text="a held-out labelled set"
    )
    name = forms.CharField(max_length=200, help_text="the new network's name")
    attribute = forms.CharField(
        required=False, help_text="the confounding attribute: groups are (label, its value)"
    )
    l2 = forms.FloatField(initial=retrain.DEFAULTS["l2"])
    steps = forms.IntegerField(initial=retrain.DEFAULTS["steps"], help_text="L-BFGS iterations")
    seed = forms.IntegerField(initial=retrain.DEFAULTS["seed"])

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "base": data["base"].pk, "train_set": data["train_set"].pk,
            "eval_set": data["eval_set"].pk, "name": data["name"],
            "attribute": data["attribute"], "l2": data["l2"], "steps": data["steps"],
            "seed": data["seed"],
        }  # fmt: skip


def retrain_view(admin_site: Any, request: HttpRequest) -> HttpResponse:
    """Choose a base, the curated and held-out sets and the options; queue one Job."""
    initial = {k: request.GET[k] for k in ("base", "train_set") if request.GET.get(k, "").isdigit()}
    form = RetrainForm(request.POST or None, initial=initial, user=request.user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                job = retrain.do_queue_retrain_params(form.params(), request.user)
            except ValidationError as err:
                form.add_error(None, " ".join(err.messages))
            else:
                messages.success(request, f"Queued job #{job.pk}: follow its progress bar here.")
                return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job.pk]))
    context = {**admin_site.each_context(request), "title": "Retrain a network's last layer",
               "form": form}  # fmt: skip
    return TemplateResponse(
        request, "admin/atlas/retrainednetwork/retrain.html", context, status=status
    )


def report_table(report: dict[str, Any]) -> SafeString:
    """Accuracy overall, per group and worst-group, base beside retrained, as an HTML table."""
    base, new = report.get("base") or {}, report.get("retrained") or {}
    if not base or not new:
        return format_html("{}", "–")
    rows = [("overall", base.get("accuracy"), new.get("accuracy"), base.get("n"))]
    for group, cell in (base.get("groups") or {}).items():
        after = (new.get("groups") or {}).get(group, {}).get("accuracy")
        rows.append((f"group {group}", cell["accuracy"], after, cell["n"]))
    rows.append(("worst group", base.get("worst_group_accuracy"),
                 new.get("worst_group_accuracy"), None))  # fmt: skip

    def percent(value: Any) -> str:
        return "–" if value is None else f"{100 * value:.1f} %"

    body = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((name, percent(b), percent(a), "" if n is None else n) for name, b, a, n in rows),
    )  # fmt: skip
    return format_html(
        '<table class="retrain-report"><thead><tr><th>held-out set</th><th>base</th>'
        "<th>retrained</th><th>images</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


class CuratedExportForm(ScopedChoicesForm):
    scoped_fields = {"image_set": access.visible_image_sets}
    image_set = forms.ModelChoiceField(ImageSet.objects.order_by("name"))
    image_ids = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="the ticked images' ids, space- or comma-separated",
    )
    format = forms.ChoiceField(
        choices=[("zip", "ImageFolder ZIP (with images.csv)"), ("csv", "CSV")], initial="zip"
    )


def curated_export_view(admin_site: Any, request: HttpRequest) -> HttpResponse:
    """Export a selection of an image set's images (ids as ticked in a grid) as a ZIP or CSV;
    bad input answers 400 on the form."""
    from backend.atlas.retrain_api import curated_export

    form = CuratedExportForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            words = form.cleaned_data["image_ids"].replace(",", " ").split()
            if not all(word.isdigit() for word in words):
                form.add_error("image_ids", "image ids are whole numbers")
            else:
                image_set = form.cleaned_data["image_set"]
                data = {"image_ids": [int(w) for w in words], "format": form.cleaned_data["format"]}
                try:
                    body, kind, suffix = curated_export(image_set, data)
                except ValidationError as err:
                    form.add_error(None, " ".join(err.messages))
                else:
                    answer = HttpResponse(body, content_type=kind)
                    answer["Content-Disposition"] = (
                        f'attachment; filename="{image_set.name}-curated{suffix}"'
                    )
                    return answer
    context = {**admin_site.each_context(request), "title": "Export a curated selection",
               "form": form}  # fmt: skip
    return TemplateResponse(
        request, "admin/atlas/retrainednetwork/curated_export.html", context, status=status
    )
