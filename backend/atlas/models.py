"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import ImageSet, Job, Network, Unit


class Measure(models.Model):
    """One named number of one unit over one image set (`value` null: undefined there, e.g. a
    selectivity without classes); `details` says how it was computed."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="measures")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, help_text="e.g. mean, csi, ablation_kl, mis")
    value = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "image_set", "name"], name="one_measure_per_unit_set_and_name"
            )
        ]
        indexes = [models.Index(fields=["name", "image_set"])]

    def __str__(self) -> str:
        return f"{self.name} of {self.unit} on {self.image_set}"


class LWTANetwork(models.Model):
    """A network whose activations were replaced by stochastic local winner-takes-all blocks and
    fine-tuned by distillation from its base (`worker/analyses/lwta.py`; Panousis & Chatzis
    2023). `network` is an ordinary Network (source `lwta:<base source>@<checkpoint>`), so
    exemplars, visualizations, the atlas and studies take it unchanged; this row keeps how it
    was made and its report."""

    network = models.OneToOneField(Network, on_delete=models.CASCADE, related_name="lwta")
    base = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="lwta_versions")
    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="+")
    block_size = models.PositiveIntegerField(help_text="U: channels competing in each block")
    temperature = models.FloatField(help_text="τ of the Gumbel-softmax while training")
    modules = models.JSONField(default=list, help_text="the replaced activation modules")
    checkpoint = models.CharField(max_length=500, help_text="path on the worker machines")
    fine_tune = models.JSONField(default=dict, help_text="optimizer, steps, losses")
    report = models.JSONField(default=dict, help_text="agreement, accuracy, active fractions")
    curve = models.JSONField(default=list, help_text="loss per step")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "LWTA network"

    def __str__(self) -> str:
        return f"{self.network} (LWTA U={self.block_size} of {self.base})"
