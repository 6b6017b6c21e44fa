"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import ImageSet, Job, Unit, UnitSet


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


class AblationCurve(models.Model):
    """Group ablations of one unit set (Morcos et al. 2018; Meyes et al. 2020): the first k
    units ranked by a measure (highest first) removed at once, for k = 1, 2, 4, …, against
    size-matched random groups. `ranked`/`random_mean`/`random_sd`: the drop in top-1 accuracy
    (or agreement with the unablated top-1) at each k; `details` the KL and how it was run."""

    unit_set = models.ForeignKey(UnitSet, on_delete=models.CASCADE, related_name="ablation_curves")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    ranked_by = models.CharField(max_length=100, help_text="the measure the units are ranked by")
    ks = models.JSONField(default=list)
    ranked = models.JSONField(default=list)
    random_mean = models.JSONField(default=list)
    random_sd = models.JSONField(default=list)
    details = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit_set", "ranked_by"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit_set", "image_set", "ranked_by"], name="one_curve_per_ranking"
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit_set} ablated by {self.ranked_by} on {self.image_set}"


class Population(models.Model):
    """A group of units of one unit set that respond alike (`basis` activity: correlation of
    their activations over images) or change the output alike when ablated (`basis` ablation:
    correlation of their class-wise ablation profiles), found by hierarchical clustering
    (Meyes et al. 2020). `members`: unit indices. It can become a unit set of kind
    `population` (`backend.atlas.services.do_create_population_unit_set`)."""

    class Basis(models.TextChoices):
        ACTIVITY = "activity", "activation patterns over images"
        ABLATION = "ablation", "class-wise ablation profiles"

    unit_set = models.ForeignKey(UnitSet, on_delete=models.CASCADE, related_name="populations")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    basis = models.CharField(max_length=16, choices=Basis.choices)
    index = models.PositiveIntegerField()
    members = models.JSONField(default=list)
    details = models.JSONField(default=dict, blank=True, help_text="rule, linkage, silhouette")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit_set", "basis", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit_set", "image_set", "basis", "index"], name="one_population_index"
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit_set} population {self.index} ({self.basis})"
