"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import ImageSet, Job, Unit


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


class Description(models.Model):
    """Words for one unit over one probe image set: its best concepts by soft-WPMI (CLIP-Dissect),
    best first, each with its score, and the concept source that produced them."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="descriptions")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(
        max_length=300, help_text="the concept source, e.g. 'classifier: builtin:…'"
    )
    text = models.CharField(max_length=300, help_text="the best concept")
    concepts = models.JSONField(default=list, help_text="[{concept, score}], best first")
    details = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit", "source"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "image_set", "source"], name="one_description_per_unit_set_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit}: {self.text}"
