"""Stimuli: networks and their layers, image sets, unit sets and units, exemplar sets,
visualizations, occlusion maps, and the Jobs that compute them on the workers.

Every image a participant may see (natural, synthetic or derived) is an `Image`, stored once
under its content hash, so URLs are opaque and say nothing about the answer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property


class Network(models.Model):
    """A model plus its preprocessing, loaded from a source string (nothing from a hub)."""

    name = models.SlugField(max_length=80, unique=True)
    source = models.CharField(
        max_length=500,
        help_text=(
            "builtin:efficientnet_lite0, timm:NAME@WEIGHTS_PATH, torchvision:NAME@WEIGHTS_PATH "
            "or torchscript:PATH (paths on the worker machines)"
        ),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="blank: the shared catalogue (seen by all, changed by superusers)",
    )
    description = models.TextField(blank=True)
    preprocess = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Layer(models.Model):
    """A named module of a network, with its activation shape (without the batch axis)."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="layers")
    name = models.CharField(max_length=200)
    shape = models.JSONField(default=list)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["network", "position"]
        constraints = [
            models.UniqueConstraint(fields=["network", "name"], name="unique_layer_per_network")
        ]

    def __str__(self) -> str:
        shape = "×".join(str(size) for size in self.shape)
        return f"{self.network.name} · {self.name} [{shape}]"

    @property
    def n_channels(self) -> int:
        return int(self.shape[0]) if self.shape else 0


class Image(models.Model):
    """One image file, stored once under the SHA-256 of its bytes."""

    class Kind(models.TextChoices):
        NATURAL = "natural", "natural"
        SYNTHETIC = "synthetic", "synthetic (feature visualization)"
        DERIVED = "derived", "derived (occluded, blurred)"

    sha256 = models.CharField(max_length=64, unique=True)
    file = models.FileField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NATURAL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]

    @property
    def url(self) -> str:
        return str(self.file.url)


class ImageSet(models.Model):
    """A set of natural images: imported from a server folder, an uploaded ZIP, or generated."""

    class Origin(models.TextChoices):
        FOLDER = "folder", "server folder (ImageFolder layout)"
        ZIP = "zip", "uploaded ZIP"
        DEMO = "demo", "built-in demo set (the natural photos that ship offline)"

    name = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    source = models.CharField(max_length=500, blank=True, help_text="folder path or ZIP name")
    source_rule = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "optional: a regular expression whose first group, searched in each file's path, "
            "names the photo the image was derived from, e.g. ^(.+?)_crop for "
            "cat/a_crop3.jpg → cat/a (an images.csv with a source column takes precedence)"
        ),
    )
    images: models.ManyToManyField[Image, ImageSetMember] = models.ManyToManyField(
        Image, through="ImageSetMember", related_name="image_sets"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="blank: the shared catalogue (seen by all, changed by superusers)",
    )
    import_report = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        import re

        if self.source_rule:
            try:
                re.compile(self.source_rule)
            except re.error as err:
                raise ValidationError(
                    {"source_rule": f"Not a regular expression: {err}."}
                ) from None

    @property
    def has_sources(self) -> bool:
        """Whether some image names the photo it was derived from (distinct sources apply)."""
        return self.members.exclude(source="").exists()


class ImageSetMember(models.Model):
    """An image's place in a set: its position (the index pipelines see), class label and the
    source photo it was derived from (crops and flips of one photo share it; blank: its own)."""

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="members")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="memberships")
    position = models.PositiveIntegerField()
    label = models.CharField(max_length=200, blank=True)
    original_name = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="the photo it came from")
    # What else is known of the image beyond its label ({column: value}, strings): images.csv's
    # other columns at import, or an attributes CSV later (backend/stimuli/attributes.py).
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["image_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["image_set", "image"], name="image_once_per_set"),
            models.UniqueConstraint(fields=["image_set", "position"], name="position_per_set"),
        ]

    def __str__(self) -> str:
        return f"{self.image_set.name}[{self.position}]"


class UnitSet(models.Model):
    """How units are defined on a layer."""

    class Kind(models.TextChoices):
        CHANNELS = "channels", "channels (spatial mean)"
        NEURONS = "neurons", "neurons (one spatial position)"
        NMF = "nmf", "dictionary: NMF"
        SAE = "sae", "dictionary: TopK sparse autoencoder"
        PCA = "pca", "PCA directions"
        RANDOM = "random", "random orthogonal directions (rotation baseline)"
        # Made from the atlas's populations (backend.atlas.services), never fitted: each unit
        # is one population of another unit set, the equal-weight mean of its members.
        POPULATION = "population", "populations of another unit set (equal weights on members)"

    class Point(models.TextChoices):
        OUTPUT = "output", "the module's output (post-nonlinearity for an activation module)"
        INPUT = "input", "the module's input (pre-nonlinearity for an activation module)"

    FITTED_KINDS = {Kind.NMF, Kind.SAE, Kind.PCA}

    name = models.SlugField(max_length=80, unique=True)
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="unit_sets")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    point = models.CharField(max_length=8, choices=Point.choices, default=Point.OUTPUT)
    n_units = models.PositiveIntegerField(
        null=True, blank=True, help_text="atoms/directions; channels and neurons: all channels"
    )
    params = models.JSONField(default=dict, blank=True, help_text="e.g. {'top_k': 8, 'seed': 0}")
    image_set = models.ForeignKey(
        ImageSet,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="the image set dictionaries and PCA are fitted on",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="blank: the shared catalogue (seen by all, changed by superusers)",
    )
    state_file = models.FileField(max_length=200, blank=True, editable=False)
    reconstruction_error = models.FloatField(null=True, blank=True, editable=False)
    fit_seconds = models.FloatField(null=True, blank=True, editable=False)
    fitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_fit(self) -> bool:
        return self.kind in self.FITTED_KINDS or self.kind == self.Kind.RANDOM

    @property
    def is_ready(self) -> bool:
        return not self.needs_fit or bool(self.state_file)

    def clean(self) -> None:
        if self.needs_fit and self.image_set_id is None:
            raise ValidationError(
                {"image_set": "Dictionaries, PCA and random directions need an image set."}
            )
        if self.kind in self.FITTED_KINDS | {self.Kind.RANDOM} and not self.n_units:
            raise ValidationError({"n_units": "Say how many atoms or directions to use."})
        if not isinstance(self.params, dict):
            raise ValidationError({"params": "Parameters must be a JSON object."})
        if self.kind == self.Kind.POPULATION and not (
            self.params.get("source_unit_set") and self.params.get("members")
        ):
            raise ValidationError(
                {"kind": "A population unit set is made from the atlas's populations."}
            )


class Unit(models.Model):
    """One index in a UnitSet, with activation statistics over the last exemplar pass."""

    unit_set = models.ForeignKey(UnitSet, on_delete=models.CASCADE, related_name="units")
    index = models.PositiveIntegerField()
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["unit_set", "index"]
        constraints = [
            models.UniqueConstraint(fields=["unit_set", "index"], name="unique_unit_index")
        ]

    def __str__(self) -> str:
        return f"{self.unit_set.name} #{self.index}"


class ExemplarSet(models.Model):
    """Per unit and image set: top-k and bottom-k, quantile bands, and the IMI batches.

    `top`/`bottom`: [{"image": image_id, "value": activation}, …] from most extreme inwards.
    `bands`: {"q01": {"low": …, "high": …, "images": [...]}, …}.
    `imi_batches`: {"max": [{"query": {...}, "references": [...9]}, …20], "min": [...]}.
    """

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="exemplar_sets")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="+")
    k = models.PositiveIntegerField()
    distinct_sources = models.BooleanField(
        default=False, help_text="at most one image per source photo in each list and band"
    )
    top = models.JSONField(default=list)
    bottom = models.JSONField(default=list)
    bands = models.JSONField(default=dict)
    imi_batches = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["unit", "image_set"], name="one_exemplar_set")
        ]

    def __str__(self) -> str:
        return f"exemplars of {self.unit} on {self.image_set}"


class Visualization(models.Model):
    """A synthetic image for a unit, with the recipe that made it."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="visualizations")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=32)  # e.g. "fft" (Lucid recipe) or "maco"
    preset = models.CharField(max_length=32, blank=True)
    params = models.JSONField(default=dict)
    seed = models.BigIntegerField()
    index = models.PositiveIntegerField(default=0, help_text="0 is the non-diverse image")
    sign = models.SmallIntegerField(
        default=1, help_text="+1: maximally activating; -1: minimally activating"
    )
    steps = models.PositiveIntegerField()
    final_activation = models.FloatField()
    exceeds_top_exemplar = models.BooleanField(null=True)
    attribution = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["unit", "method", "preset", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "method", "preset", "sign", "seed", "index"],
                name="one_visualization",
            )
        ]

    def __str__(self) -> str:
        return f"{self.method}/{self.preset} #{self.index} of {self.unit}"


class OcclusionMap(models.Model):
    """Per unit and base image: the activation for each occluder position (counterfactuals)."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="occlusion_maps")
    base_image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    occluder_fraction = models.FloatField()
    stride = models.PositiveIntegerField()
    grid = models.JSONField(help_text="activations [rows][cols] at each occluder position")
    base_activation = models.FloatField()
    argmax = models.JSONField(help_text="[y, x] of the occluder's top-left corner")
    argmin = models.JSONField()
    max_activation = models.FloatField()
    min_activation = models.FloatField()
    occluded_at_max = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, related_name="+"
    )
    occluded_at_min = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, related_name="+"
    )
    blurred = models.ForeignKey(Image, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "base_image", "occluder_fraction", "stride"], name="one_map"
            )
        ]

    def __str__(self) -> str:
        return f"occlusion of {self.unit} on {self.base_image}"


class Job(models.Model):
    """One background run on a worker: kind, parameters, state, progress and timings."""

    class Kind(models.TextChoices):
        IMPORT_IMAGES = "import_images", "import images"
        INSPECT_NETWORK = "inspect_network", "inspect network layers"
        FIT_UNIT_SET = "fit_unit_set", "fit dictionary / directions"
        COMPUTE_EXEMPLARS = "compute_exemplars", "compute exemplars"
        RENDER_VISUALIZATIONS = "render_visualizations", "render feature visualizations"
        COMPUTE_OCCLUSION = "compute_occlusion", "compute occlusion maps"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = {State.SUCCEEDED, State.FAILED, State.CANCELLED}

    # No choices here: the kinds live in the registry (backend/stimuli/jobkinds.py), where the
    # atlas adds its own; `Kind` names the stimuli's.
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind_label} #{self.pk}"

    @property
    def kind_label(self) -> str:
        from backend.stimuli import jobkinds

        registered = jobkinds.KINDS.get(self.kind)
        return registered.label if registered else self.kind.replace("_", " ")

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @cached_property
    def work_shard_count(self) -> int:
        return self.shards.filter(role=Shard.Role.WORK).count()

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far (None before the first progress or once finished)."""
        elapsed = self.duration_seconds
        if self.is_finished or elapsed is None or self.progress <= 0.0:
            return None
        return elapsed * (1.0 - self.progress) / self.progress

    def shard_summary(self) -> dict[str, Any]:
        """Shards per displayed state (stalled apart from running) and the hosts running them."""
        counts = dict.fromkeys(Shard.DISPLAY_STATES, 0)
        hosts: set[str] = set()
        for shard in self.shards.filter(role=Shard.Role.WORK):
            counts[shard.display_state] += 1
            if shard.state == Shard.State.RUNNING and shard.worker_host:
                hosts.add(shard.worker_host)
        return {"shards": counts, "hosts": sorted(hosts)}

    def as_progress(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
            "duration_seconds": self.duration_seconds,
            "eta_seconds": self.eta_seconds,
            **self.shard_summary(),
        }


class Shard(models.Model):
    """One Celery task over a slice of a Job's work (a group of units, a range of images), or the
    job's merge step, which runs once every work shard has succeeded.

    A shard is claimed by one worker at a time (`claim`), which beats `heartbeat_at` while it
    runs; a running shard whose heartbeat is older than `settings.SHARD_STALE_SECONDS` has lost
    its worker and is shown as stalled until a worker's reaper queues it again. Its outputs are
    saved when it ends, in one transaction with its state, and only by the claim that ran it.
    """

    class Role(models.TextChoices):
        WORK = "work"
        MERGE = "merge"

    class State(models.TextChoices):
        WAITING = "waiting", "waiting for the other shards"  # a merge step before they end
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    DISPLAY_STATES = ("succeeded", "running", "stalled", "queued", "failed", "cancelled")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField(help_text="0, 1, … for work shards; the merge is last")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.WORK)
    covers = models.JSONField(default=dict, help_text="the slice of the work: units, images, …")
    weight = models.FloatField(default=1.0, help_text="its share of the job's work")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="its task reached the broker")
    claim = models.CharField(max_length=64, blank=True, help_text="the running attempt's token")
    worker_host = models.CharField(max_length=200, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    state_file = models.CharField(
        max_length=300, blank=True, help_text="media path of the shard's mergeable state"
    )

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_shard_per_index")]

    def __str__(self) -> str:
        return f"{self.label} of job #{self.job_id}"

    @property
    def label(self) -> str:
        return "merge step" if self.role == self.Role.MERGE else f"shard {self.index}"

    @property
    def is_stalled(self) -> bool:
        if self.state != self.State.RUNNING or self.heartbeat_at is None:
            return False
        age = (timezone.now() - self.heartbeat_at).total_seconds()
        return age > settings.SHARD_STALE_SECONDS

    @property
    def display_state(self) -> str:
        if self.is_stalled:
            return "stalled"
        return "queued" if self.state == self.State.WAITING else str(self.state)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()
