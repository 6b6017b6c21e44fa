"""The admin's form that queues an LWTA fine-tune (admin → Atlas → LWTA networks → "Fine-tune an
LWTA network"; `?base=<network id>` preselects the base). Bad parameters answer 400 with the
planner's message on the form, and queue nothing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from backend.atlas import lwta
from backend.stimuli import access
from backend.stimuli.admin_access import ScopedChoicesForm
from backend.stimuli.models import ImageSet, Network

MODULE_TYPES = [(name, name) for name in lwta.DEFAULTS["module_types"]]


class FineTuneLWTAForm(ScopedChoicesForm):
    scoped_fields = {"base": access.visible_networks, "image_set": access.visible_image_sets}
    base = forms.ModelChoiceField(Network.objects.order_by("name"))
    image_set = forms.ModelChoiceField(ImageSet.objects.order_by("name"))
    name = forms.CharField(max_length=200, help_text="the new network's name")
    module_types = forms.MultipleChoiceField(
        choices=MODULE_TYPES, initial=lwta.DEFAULTS["module_types"],
        widget=forms.CheckboxSelectMultiple, help_text="the activation modules replaced",
    )  # fmt: skip
    modules = forms.CharField(
        required=False,
        help_text="module names, space- or comma-separated (e.g. blocks.6): only the "
        "activations under them; blank: all of the network's",
    )
    block_size = forms.IntegerField(initial=lwta.DEFAULTS["block_size"], help_text="U")
    temperature = forms.FloatField(initial=lwta.DEFAULTS["temperature"], help_text="τ")
    steps = forms.IntegerField(initial=lwta.DEFAULTS["steps"])
    batch_size = forms.IntegerField(initial=lwta.DEFAULTS["batch_size"])
    learning_rate = forms.FloatField(initial=lwta.DEFAULTS["learning_rate"])
    checkpoint_every = forms.IntegerField(initial=lwta.DEFAULTS["checkpoint_every"])
    freeze_prefix = forms.BooleanField(
        required=False, help_text="keep the weights of the layers before the first LWTA block"
    )
    max_images = forms.IntegerField(required=False, help_text="the set's first N (blank: all)")
    seed = forms.IntegerField(initial=lwta.DEFAULTS["seed"])

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        numbers = ["block_size", "temperature", "steps", "batch_size", "learning_rate",
                   "checkpoint_every", "seed"]  # fmt: skip
        params = {
            "base": data["base"].pk, "image_set": data["image_set"].pk, "name": data["name"],
            "module_types": list(data["module_types"]),
            "modules": data["modules"].replace(",", " ").split(),
            "freeze_prefix": data["freeze_prefix"], **{key: data[key] for key in numbers},
        }  # fmt: skip
        if data["max_images"] is not None:
            params["max_images"] = data["max_images"]
        return params


def fine_tune_view(admin_site: Any, request: HttpRequest) -> HttpResponse:
    """Choose a base, an image set and the options; queue one Job and follow its progress."""
    initial = {"base": request.GET.get("base")} if request.GET.get("base", "").isdigit() else {}
    form = FineTuneLWTAForm(request.POST or None, initial=initial, user=request.user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                job = lwta.do_queue_lwta_params(form.params(), request.user)
            except ValidationError as err:
                form.add_error(None, " ".join(err.messages))
            else:
                messages.success(request, f"Queued job #{job.pk}: follow its progress bar here.")
                return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job.pk]))
    context = {**admin_site.each_context(request), "title": "Fine-tune an LWTA network",
               "form": form}  # fmt: skip
    return TemplateResponse(
        request, "admin/atlas/lwtanetwork/fine_tune.html", context, status=status
    )
