"""The registry of job kinds: which queue runs each kind and how it cuts its work into shards.

The web side plans a job's shards here and sends them by task name (`<queue>.run_shard`, see
`send_shards`), so it never imports worker code. The worker side maps the same kind names to
their work (`WORK` in `backend/stimuli/work.py`, gathered by `worker/tasks.py`).

A planner reads a Job's parameters and the rows they name and returns the shards' covers (the
slice of the work each shard does) and weights (its share of the job, for the progress bar). It
raises ValidationError, with a message for the researcher, for parameters that cannot run, so
nothing is queued. Shard sizes come from the work, never from the number of workers: an image
pass is cut into ranges of `images_per_shard` images, feature visualizations into groups of
units filling one GPU batch, occlusion maps into groups of about 16k occluded copies, so one
worker or forty all stay busy.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from backend.stimuli.models import ExemplarSet, ImageSet, Job, Shard, Unit, UnitSet

# An image pass (exemplars, dictionary sampling) per shard: about a minute on one GPU, a few on a
# CPU core; below ~100 images a shard's fixed cost passes 5 % of its work (docs/benchmarks.md).
IMAGES_PER_SHARD = 2048
# Feature visualizations: images optimised at once by one GPU (the engine's CUDA batch).
VISUALIZATION_IMAGES_PER_SHARD = 64
# Occlusion maps: occluded copies scored per shard (4 maps at 224 px, 40 % occluder, stride 2).
OCCLUSION_COPIES_PER_SHARD = 16_384


@dataclass(frozen=True)
class ShardPlan:
    covers: dict[str, Any]
    weight: float = 1.0


Planner = Callable[[dict[str, Any]], list[ShardPlan]]


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str  # "gpu" (networks) or "default" (light work)
    plan: Planner
    label: str = ""  # what the Job list shows; default: the name in words

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    @property
    def task_name(self) -> str:
        return f"{self.queue}.run_shard"


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> JobKind:
    if name not in KINDS:
        raise ValidationError(f"unknown job kind {name!r}; known: {', '.join(sorted(KINDS))}")
    return KINDS[name]


# --- Sending ----------------------------------------------------------------------------------


def send_shards(shards: Sequence[Shard]) -> None:
    """Send the shards' tasks as one Celery group (by name: no worker code is imported here) and
    mark them sent. A broker that cannot be reached leaves them unsent: a worker's reaper sends
    them once it can (`backend.stimuli.jobs.reap`)."""
    from celery import group

    from backend.celery import app

    if not shards:
        return
    signatures = [
        app.signature(
            kind_of(shard.job.kind).task_name,
            args=(shard.pk,),
            options={"task_id": shard.task_id, "queue": kind_of(shard.job.kind).queue},
            immutable=True,
        )
        for shard in shards
    ]
    group(signatures).apply_async()
    Shard.objects.filter(pk__in=[s.pk for s in shards]).update(sent_at=timezone.now())


def send_on_commit(shards: Sequence[Shard]) -> None:
    transaction.on_commit(lambda: send_shards(shards))


def new_task_id() -> str:
    return uuid.uuid4().hex


# --- Describing shards ------------------------------------------------------------------------


def describe_covers(covers: dict[str, Any]) -> str:
    """What a shard covers, in a researcher's words (for the Job page and error messages)."""
    if "positions" in covers:
        start, stop = covers["positions"]
        return f"images {start}–{stop - 1}"
    if "units" in covers:
        units = covers["units"]
        sign = {1: " (max)", -1: " (min)"}.get(covers.get("sign", 0), "")
        return f"{len(units)} unit{'s' * (len(units) != 1)}{sign}"
    if "items" in covers:
        items = covers["items"]
        return f"{len(items)} occlusion map{'s' * (len(items) != 1)}"
    if "image_set" in covers:
        return "the whole import"
    if "task_lists" in covers:
        lists = covers["task_lists"]
        return f"{len(lists)} task list{'s' * (len(lists) != 1)}"
    return ", ".join(f"{key}={value}" for key, value in covers.items()) or "everything"


# --- Planners ---------------------------------------------------------------------------------


def positive_int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a whole number ≥ 1 (got {value!r})")
    return value


def image_ranges(image_set_id: Any, params: dict[str, Any]) -> list[ShardPlan]:
    """Ranges of member positions of `images_per_shard` images each (weight: their count)."""
    image_set = _row(ImageSet, {"image_set": image_set_id}, "image_set")
    positions = sorted(image_set.members.values_list("position", flat=True))
    if not positions:
        raise ValidationError(f"image set {image_set} has no images: import some first")
    size = positive_int(params, "images_per_shard", IMAGES_PER_SHARD)
    plans = []
    for start in range(0, len(positions), size):
        chunk = positions[start : start + size]
        plans.append(ShardPlan({"positions": [chunk[0], chunk[-1] + 1]}, float(len(chunk))))
    return plans


def plan_import(params: dict[str, Any]) -> list[ShardPlan]:
    """One shard: the file listing happens on the worker (a folder of the worker machines)."""
    image_set = _row(ImageSet, params, "image_set")
    return [ShardPlan({"image_set": image_set.pk})]


def plan_fit(params: dict[str, Any]) -> list[ShardPlan]:
    """Sampling position vectors by ranges of images; the merge step fits on the sample."""
    unit_set = _row(UnitSet, params, "unit_set")
    if unit_set.image_set_id is None:
        raise ValidationError(f"{unit_set} has no image set to fit on")
    return image_ranges(unit_set.image_set_id, params)


def plan_exemplars(params: dict[str, Any]) -> list[ShardPlan]:
    """Ranges of images; each shard keeps mergeable state and the merge writes the rows."""
    unit_sets = list(UnitSet.objects.filter(pk__in=params.get("unit_sets", [])))
    if not unit_sets or len(unit_sets) != len(set(params["unit_sets"])):
        raise ValidationError("name existing unit sets to compute exemplars for")
    if params.get("distinct_sources") not in (None, True, False):
        raise ValidationError("distinct_sources must be true or false")
    exemplar_band_check(params)
    return image_ranges(params.get("image_set"), params)


def exemplar_band_check(params: dict[str, Any]) -> None:
    """`bands`: [[lower, upper], …] in percent (mid-range explanations); `band_size`: images
    drawn per band."""
    from backend.stimuli import bands

    chosen = params.get("bands", [])
    if not isinstance(chosen, list) or not all(
        isinstance(pair, list) and len(pair) == 2 for pair in chosen
    ):
        raise ValidationError("bands must be a list of [lower, upper] pairs in percent")
    for lower, upper in chosen:
        try:
            bands.parse_band(f"{lower}-{upper}")
        except bands.BandError as err:
            raise ValidationError(str(err)) from None
    positive_int(params, "band_size", 20)


def plan_visualizations(params: dict[str, Any]) -> list[ShardPlan]:
    """Groups of units of one unit set and one sign, about one GPU batch of images each."""
    units = list(Unit.objects.filter(pk__in=params.get("units", [])).order_by("unit_set", "index"))
    if not units:
        raise ValidationError("choose the units to visualise")
    n_images = positive_int(params, "n_images", 1)
    per_shard = positive_int(params, "images_per_shard", VISUALIZATION_IMAGES_PER_SHARD)
    units_per_shard = max(1, per_shard // n_images)
    signs = params.get("signs", [1, -1])
    if not signs or any(sign not in (1, -1) for sign in signs):
        raise ValidationError("signs must be a list of 1 (maximise) and -1 (minimise)")
    plans = []
    for members in _by_unit_set(units):
        for sign in signs:
            for chunk in _chunks(members, units_per_shard):
                weight = float(len(chunk) * n_images)
                plans.append(ShardPlan({"units": [u.pk for u in chunk], "sign": sign}, weight))
    return plans


def plan_occlusion(params: dict[str, Any]) -> list[ShardPlan]:
    """Groups of (unit, base image) maps, about `copies_per_shard` forwards each."""
    units = list(
        Unit.objects.filter(pk__in=params.get("units", []))
        .select_related("unit_set__layer__network")
        .order_by("unit_set", "index")
    )
    if not units:
        raise ValidationError("choose the units to compute occlusion maps for")
    items = [[unit.pk, image] for unit in units for image in _base_images(unit, params)]
    copies = _occluded_copies(units[0], params)
    target = positive_int(params, "copies_per_shard", OCCLUSION_COPIES_PER_SHARD)
    per_shard = max(1, math.ceil(target / copies))
    return [
        ShardPlan({"items": chunk}, float(len(chunk) * copies))
        for chunk in _chunks(items, per_shard)
    ]


def _row(model: Any, params: dict[str, Any], name: str) -> Any:
    """The row a parameter names (its primary key), or ValidationError."""
    value = params.get(name)
    row = model.objects.filter(pk=value).first() if isinstance(value, int) else None
    if row is None:
        raise ValidationError(f"{name.replace('_', ' ')} {value!r} does not exist")
    return row


def _base_images(unit: Unit, params: dict[str, Any]) -> list[int]:
    if params.get("base_images"):
        return [int(i) for i in params["base_images"]]
    n_base = positive_int(params, "n_base", 3)
    exemplar_set = ExemplarSet.objects.filter(unit=unit).order_by("pk").first()
    if exemplar_set is None:
        raise ValidationError(f"{unit} has no exemplars: compute them first")
    return [entry["image"] for entry in exemplar_set.top[:n_base]]


def _occluded_copies(unit: Unit, params: dict[str, Any]) -> int:
    """Occluder positions of one map (the same rule as worker/pipelines/occlusion.py)."""
    crop = int(unit.unit_set.layer.network.preprocess.get("crop") or 224)
    fraction = float(params.get("occluder_fraction", 0.4))
    stride = positive_int(params, "stride", 2)
    side = max(1, round(fraction * crop))
    return ((crop - side) // stride + 1) ** 2


def _by_unit_set(units: Iterable[Unit]) -> list[list[Unit]]:
    groups: dict[int, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.unit_set_id, []).append(unit)
    return list(groups.values())


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


register(JobKind(Job.Kind.IMPORT_IMAGES, "default", plan_import, "import images"))
register(JobKind(Job.Kind.FIT_UNIT_SET, "gpu", plan_fit, "fit dictionary / directions"))
register(JobKind(Job.Kind.COMPUTE_EXEMPLARS, "gpu", plan_exemplars, "compute exemplars"))
register(
    JobKind(
        Job.Kind.RENDER_VISUALIZATIONS, "gpu", plan_visualizations, "render feature visualizations"
    )
)
register(JobKind(Job.Kind.COMPUTE_OCCLUSION, "gpu", plan_occlusion, "compute occlusion maps"))
