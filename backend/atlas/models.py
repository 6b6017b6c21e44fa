"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import ImageSet, Job, Layer, Unit, UnitSet


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


class Spectrum(models.Model):
    """Code density of one layer, in one basis, over one image set (Marshall & Kirchner 2024):
    the eigenvalues of its activation covariance, the power-law exponent α fitted to them as
    Stringer et al. 2019 do, the participation ratio, the components holding 50/90/99 % of the
    variance, the smoothness criterion 1 + 2/d beside α, and the random-projection energy of a
    smooth stimulus path (docs/spectra.md). Computed by a `compute_spectra` Job."""

    class Sampling(models.TextChoices):
        POOLED = "pooled", "one spatially pooled vector per image"
        POSITIONS = "positions", "channel vectors at sampled spatial positions"

    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="spectra")
    unit_set = models.ForeignKey(
        UnitSet, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        help_text="the basis (a unit set's codes); blank: the layer's channels",
    )  # fmt: skip
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    sampling = models.CharField(max_length=16, choices=Sampling.choices, default=Sampling.POOLED)
    n_samples = models.PositiveIntegerField()
    dimension = models.PositiveIntegerField()
    eigenvalues = models.JSONField(default=list, help_text="descending")
    alpha = models.FloatField(null=True, blank=True, help_text="power-law exponent")
    alpha_r2 = models.FloatField(null=True, blank=True)
    fit_first = models.PositiveIntegerField(null=True, blank=True)
    fit_last = models.PositiveIntegerField(null=True, blank=True)
    fit_error = models.TextField(blank=True, help_text="why α could not be fitted")
    participation_ratio = models.FloatField()
    components = models.JSONField(default=dict, help_text="'50', '90', '99' → components")
    manifold_dim = models.PositiveIntegerField(null=True, blank=True)
    criterion = models.FloatField(help_text="1 + 2/d: α at or above it allows a smooth code")
    energy = models.FloatField(null=True, blank=True, help_text="random-projection energy")
    energy_shuffled = models.FloatField(null=True, blank=True)
    energy_pixels = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="path, directions, curves")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["layer__network", "layer__position", "unit_set"]
        verbose_name_plural = "spectra"
        constraints = [
            models.UniqueConstraint(
                fields=["layer", "unit_set", "image_set", "sampling"],
                name="one_spectrum_per_layer_basis_set_and_sampling",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"spectrum of {self.layer.name} ({self.basis}) on {self.image_set}"

    @property
    def basis(self) -> str:
        return self.unit_set.name if self.unit_set is not None else "channels"

    @property
    def pr_fraction(self) -> float:
        return self.participation_ratio / self.dimension if self.dimension else 0.0

    @property
    def smooth(self) -> bool | None:
        """Whether α reaches the criterion (None: no fit)."""
        return None if self.alpha is None else self.alpha >= self.criterion
