"""Machine measures of units: one named number per unit and image set (activation statistics,
class selectivity, ablation impact, MIS, …), each computed by a Job. They are what the atlas
ranks, what the results page scatters against human accuracy per unit, and what the per-unit
export carries as columns."""

from __future__ import annotations

from django.db import models

from backend.stimuli.models import Image, ImageSet, Job, Layer, Network, Unit, UnitSet
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


class ConfoundReport(models.Model):
    """One unit's activations over one image set split into quantile bands (deciles by
    default), with per band an exemplar grid sample and the distribution of labels and
    attributes, the enrichment tests of each value in each band below the top against the top
    band and against the base rate (Fisher's exact, Holm-corrected together), and the candidate
    confounds they find (`worker/analyses/midrange.py`; O'Mahony, Nikolov & O'Sullivan 2025).
    A logit is unit c of a `channels` unit set on the network's `output` layer."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="confound_reports")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    n_bands = models.PositiveSmallIntegerField(default=10)
    alpha = models.FloatField(default=0.05, help_text="the Holm-corrected p a candidate needs")
    n_images = models.PositiveIntegerField()
    bands = models.JSONField(
        default=list, help_text="per band: quantiles, range, size, images, distributions"
    )
    tests = models.JSONField(default=list, help_text="every test with its p and Holm's p")
    candidates = models.JSONField(default=list, help_text="candidate confounds, best first")
    # Every image's value, in position order ({"image_ids": [...], "values": [...]}): the
    # band of any image is recomputable (decile_bands), e.g. to curate a retraining set.
    values = models.JSONField(default=dict)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit", "image_set", "n_bands"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "image_set", "n_bands"], name="one_confound_report_per_banding"
            )
        ]

    def __str__(self) -> str:
        return f"confounds of {self.unit} on {self.image_set} ({self.n_bands} bands)"


class RetrainedNetwork(models.Model):
    """A network whose last linear layer was refitted on frozen penultimate features of a
    curated, group-balanced image set (deep feature reweighting; `worker/analyses/retrain.py`,
    docs/midrange.md §4). `network` is an ordinary Network (source
    `lastlayer:<base source>@<weights>`); this row keeps how it was fitted and its evaluation on
    a held-out labelled set beside the base's."""

    network = models.OneToOneField(Network, on_delete=models.CASCADE, related_name="retrained")
    base = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="retrained_versions")
    train_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="+")
    eval_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="+")
    attribute = models.CharField(
        max_length=100, blank=True, help_text="the confounding attribute; group = (label, value)"
    )
    module = models.CharField(max_length=200, help_text="the refitted linear layer")
    weights = models.CharField(max_length=500, help_text="path on the worker machines")
    fit = models.JSONField(default=dict, help_text="groups, images per group, optimizer, loss")
    report = models.JSONField(
        default=dict, help_text="accuracy overall, per group and worst-group: base and retrained"
    )
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "retrained network"

    def __str__(self) -> str:
        return f"{self.network} (last layer of {self.base} refitted)"
