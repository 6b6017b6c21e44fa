"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import Image, ImageSet, Job, Network, Unit
from backend.studies.models import Trial


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


# --- The machine observer (docs/observer.md) ------------------------------------------------


class Observer(models.Model):
    """A machine that answers the platform's 2AFC trials: a backbone (a network the platform
    loads and a layer, pooled to one vector per image), a similarity and a temperature α. It
    scores units (MIS, a Measure named `mis:<name>`) and pilots whole studies (ObserverAnswer)."""

    class Similarity(models.TextChoices):
        COSINE = "cosine", "cosine"
        DOT = "dot", "dot product"
        NEG_EUCLIDEAN = "neg_euclidean", "negative Euclidean distance"

    name = models.SlugField(max_length=60, unique=True)
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="observers")
    layer = models.CharField(
        max_length=200,
        default="global_pool",
        help_text="the tapped layer (`name` or `name:input`); its output is pooled per image",
    )
    similarity = models.CharField(
        max_length=16, choices=Similarity.choices, default=Similarity.COSINE
    )
    alpha = models.FloatField(
        default=0.16, help_text="temperature: P(correct) = σ(α · gap); 0.16 is the paper's fit"
    )
    description = models.TextField(blank=True)
    calibrations = models.JSONField(
        default=list, blank=True, help_text="α fits against human data (newest last)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def measure_name(self) -> str:
        return f"mis:{self.name}"


class ObserverEmbedding(models.Model):
    """One image's pooled embedding under one observer's backbone, computed once and kept
    (keyed by the image, i.e. its content hash, and the observer): tasks are matrix products."""

    observer = models.ForeignKey(Observer, on_delete=models.CASCADE, related_name="embeddings")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    vector = models.BinaryField(help_text="float32, little-endian")
    dim = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["observer", "image"], name="one_embedding_per_image")
        ]

    def __str__(self) -> str:
        return f"{self.observer} embedding of image {self.image_id}"


class ObserverAnswer(models.Model):
    """The observer's answer to one trial of a study's task list (the machine pilot): the
    probability of choosing query 0 as the max-side one, its hard choice (null: a tie) and the
    gap Δ(q₀) − Δ(q₁). Scoring uses the trial's answer key; the choice never does."""

    observer = models.ForeignKey(Observer, on_delete=models.CASCADE, related_name="answers")
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="observer_answers")
    p_first = models.FloatField()
    choice = models.PositiveSmallIntegerField(null=True, blank=True)
    gap = models.FloatField()
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["observer", "trial"], name="one_answer_per_trial")
        ]

    def __str__(self) -> str:
        return f"{self.observer} on trial {self.trial_id}"

    @property
    def p_correct(self) -> float:
        return self.p_first if self.trial.correct_query == 0 else 1.0 - self.p_first
