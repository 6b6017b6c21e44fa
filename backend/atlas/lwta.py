"""LWTA networks as a Job: convert a network to stochastic local winner-takes-all blocks,
fine-tune it by distillation from the original on an image set, and register the result as a
new Network (`lwta:<base source>@<checkpoint>`) with its report (docs/lwta.md).

The planner runs on the web side; the shard and merge work run on a GPU worker and import the
pure pipeline (`worker/analyses/lwta.py`) only inside their functions. Training is one shard
(its steps are sequential); it checkpoints every `checkpoint_every` steps to a file named by the
job, so a killed worker's redelivered shard resumes from the last checkpoint.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from backend.atlas.models import LWTANetwork
from backend.stimuli import services
from backend.stimuli.jobkinds import ShardPlan, positive_int
from backend.stimuli.jobs import JobFailed, ProgressReporter, ShardOutput
from backend.stimuli.models import ImageSet, Job, Network, Shard

KIND = "finetune_lwta"
DEFAULTS: dict[str, Any] = {
    "block_size": 24,
    "temperature": 1.67,
    "modules": [],
    "steps": 300,
    "batch_size": 16,
    "learning_rate": 1e-4,
    "checkpoint_every": 50,
    "seed": 0,
    "module_types": ["ReLU", "ReLU6", "GELU"],  # the activation modules replaced
    "freeze_prefix": False,  # True: the layers before the first LWTA block keep their weights
    "max_images": None,  # the first N images of the set (None: all)
}
PARAMETERS = {"base", "image_set", "name", *DEFAULTS}


def plan_lwta(params: dict[str, Any]) -> list[ShardPlan]:
    """One shard of `steps` steps; refuses unknown parameters and rows, a taken name, bad
    numbers, unknown module types, and a choice of modules that the base network does not have
    (its activations are listed by loading it here once per source)."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise ValidationError(f"unknown parameter(s) {', '.join(unknown)}")
    for key, model in (("base", Network), ("image_set", ImageSet)):
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{key.replace('_', ' ')} must be an id (got {value!r})")
        if not model.objects.filter(pk=value).exists():
            raise ValidationError(f"{key.replace('_', ' ')} {value!r} does not exist")
    name = params.get("name")
    if not isinstance(name, str) or not name or Network.objects.filter(name=name).exists():
        raise ValidationError(f"name {name!r} must be a new network name")
    steps = positive_int(params, "steps", DEFAULTS["steps"])
    for key in ("batch_size", "checkpoint_every"):
        positive_int(params, key, DEFAULTS[key])
    if positive_int(params, "block_size", DEFAULTS["block_size"]) < 2:
        raise ValidationError("block_size (U) must be at least 2")
    for key in ("temperature", "learning_rate"):
        value = params.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValidationError(f"{key} must be a positive number (got {value!r})")
    _check_options(params)
    _check_replaceable(Network.objects.get(pk=params["base"]), params)
    return [ShardPlan({"steps": [0, steps]}, float(steps))]


def _check_options(params: dict[str, Any]) -> None:
    for key in ("modules", "module_types"):
        value = params.get(key, DEFAULTS[key])
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise ValidationError(f"{key} must be a list of names")
    if not isinstance(params.get("freeze_prefix", False), bool):
        raise ValidationError("freeze_prefix must be true or false")
    if params.get("max_images") is not None:
        positive_int(params, "max_images", 1)
    if not ImageSet.objects.get(pk=params["image_set"]).members.exists():
        raise ValidationError("the image set has no images: import some first")


def _check_replaceable(base: Network, params: dict[str, Any]) -> None:
    """ValidationError unless the options choose at least one activation module of `base`."""
    from worker.analyses import lwta

    try:
        config = lwta.LWTAConfig(
            block_size=int(_value(params, "block_size")),
            modules=tuple(_value(params, "modules")),
            types=tuple(_value(params, "module_types")),
        )
        lwta.select_modules(activation_inventory(base.source), config)
    except lwta.LWTAError as err:
        raise ValidationError(f"{base.name}: {err}") from None


@lru_cache(maxsize=16)
def activation_inventory(source: str) -> list[tuple[str, str]]:
    """(module name, activation type) of every ReLU/ReLU6/GELU module of the network `source`
    loads (on the CPU, once per source and process)."""
    from worker.analyses import lwta
    from worker.pipelines import networks

    try:
        loaded = networks.load_network(source, device="cpu")
    except networks.NetworkError as err:
        raise ValidationError(f"the base network does not load: {err}") from None
    return lwta.activation_inventory(loaded.module)


def _value(params: dict[str, Any], key: str) -> Any:
    return params.get(key, DEFAULTS[key])


def do_queue_lwta(
    base: Network, image_set: ImageSet, name: str, send: bool = True, **options: Any
) -> Job:
    params = {"base": base.pk, "image_set": image_set.pk, "name": name, **options}
    return services.do_queue_job(KIND, params, send=send)


def do_queue_lwta_params(params: dict[str, Any], user: Any = None) -> Job:
    """Queue the job from its parameters as the API and the admin form send them; raises
    ValidationError, queueing nothing, for parameters it cannot run."""
    return services.do_queue_job(KIND, params, user)


def checkpoint_path(job: Job) -> Path:
    """Where the job's training checkpoints (paths on the worker machines; shared storage when
    several hosts run GPU workers). The creation time joins the id: ids repeat across databases
    (a reset demo, the tests), a stale checkpoint must never be resumed by another job."""
    folder = Path(settings.MEDIA_ROOT) / "lwta"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"job-{job.pk}-{job.created_at:%Y%m%dT%H%M%S%f}.pt"


def _option(job: Job, key: str) -> Any:
    return _value(job.params, key)


# --- On a worker ------------------------------------------------------------------------------


def _images_and_labels(
    image_set: ImageSet, preprocess: Any, max_images: int | None
) -> tuple[Any, Any]:
    import torch

    from backend.stimuli import work
    from worker.analyses.lwta import parse_class_index
    from worker.pipelines import loading

    labels = {m.image_id: parse_class_index(m.label) for m in image_set.members.all()}
    refs = work.image_refs(image_set)[:max_images]
    batches = list(loading.image_batches(refs, preprocess, 64))
    if not batches:
        raise JobFailed(f"image set {image_set} has no readable images")
    images = torch.cat([batch.pixels for batch in batches])
    ids = torch.cat([batch.image_ids for batch in batches]).tolist()
    return images, torch.tensor([labels.get(i, -1) for i in ids])


def finetune_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Convert, distil (resuming the job's checkpoint), and report."""
    from backend.stimuli import work
    from worker.analyses import lwta

    base_row = Network.objects.get(pk=job.params["base"])
    base = work.load_network(base_row)
    images, labels = _images_and_labels(
        ImageSet.objects.get(pk=job.params["image_set"]), base.preprocess,
        _option(job, "max_images"),
    )  # fmt: skip
    try:
        config = lwta.LWTAConfig(
            block_size=int(_option(job, "block_size")),
            temperature=float(_option(job, "temperature")),
            modules=tuple(_option(job, "modules")),
            types=tuple(_option(job, "module_types")),
        )
        student, replaced = lwta.convert_to_lwta(base.module, config)
        targets = lwta.teacher_logits(base.module, images)
        before = lwta.lwta_report(student, base.module, images, targets=targets).agreement
        fine_tune = lwta.FineTuneConfig(
            steps=int(shard.covers["steps"][1]),
            batch_size=int(_option(job, "batch_size")),
            learning_rate=float(_option(job, "learning_rate")),
            checkpoint_every=int(_option(job, "checkpoint_every")),
            seed=int(_option(job, "seed")),
            freeze_prefix=bool(_option(job, "freeze_prefix")),
        )
    except lwta.LWTAError as err:
        raise JobFailed(str(err)) from None

    def report_step(step: int, steps: int, loss: float) -> None:
        progress(step / steps, f"step {step}/{steps}, loss {loss:.4f}")

    path = checkpoint_path(job)
    result = lwta.fine_tune(
        student, base.module, images, fine_tune, labels, str(path),
        extra={"base": base_row.source}, progress=report_step, targets=targets,
    )  # fmt: skip
    on_set = lwta.lwta_report(student, base.module, images, labels, targets=targets)
    photos, photo_labels = lwta.foolbox_labelled_images(base.preprocess)
    on_photos = (
        lwta.lwta_report(student, base.module, photos, photo_labels) if len(photos) else None
    )
    return ShardOutput({
        "checkpoint": str(path), "replaced": replaced, "lwta": config.to_dict(),
        "fine_tune": {**fine_tune.__dict__, "optimizer": "AdamW",
                      "resumed_from": result.resumed_from, "steps_run": result.steps_run,
                      "trained_parameters": result.trained_parameters,
                      "images": int(images.shape[0]),
                      "images_per_second": result.images_per_second},
        "report": {"agreement_before": before, "image_set": on_set.to_dict(),
                   "imagenet_photos": on_photos.to_dict() if on_photos else None},
        "curve": result.curve,
    })  # fmt: skip


def register_lwta_network(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """The new Network (its layers inspected on this worker) and its LWTANetwork row."""
    from backend.atlas.services import derived_network_output

    trained = shards[0].result
    base = Network.objects.get(pk=job.params["base"])

    def row(network: Network) -> None:
        LWTANetwork.objects.create(
            network=network, base=base, image_set_id=job.params["image_set"],
            block_size=trained["lwta"]["block_size"],
            temperature=trained["lwta"]["temperature"], modules=trained["replaced"],
            checkpoint=trained["checkpoint"], fine_tune=trained["fine_tune"],
            report=trained["report"], curve=trained["curve"], job=job,
        )  # fmt: skip

    return derived_network_output(
        job, f"lwta:{base.source}@{trained['checkpoint']}", f"LWTA version of {base}", row,
        {"report": trained["report"]}, "the fine-tuned network",
    )  # fmt: skip
