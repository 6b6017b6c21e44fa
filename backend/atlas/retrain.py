"""Last-layer retraining as a Job (docs/midrange.md §4): refit a network's last linear layer on
frozen penultimate features of a curated, group-balanced image set (deep feature reweighting,
Kirichenko et al. 2023; group = (label, value of a confounding attribute)), register the result
as a new Network (`lastlayer:<base source>@<weights>`) and evaluate it beside the base on a
held-out labelled set: accuracy overall, per group and of the worst group.

Labels are class indices as ImageFolder folders name them (`0`…`999` or `n_NAME`). The planner
runs on the web side and refuses what cannot run (400, nothing queued); the work runs on one
GPU-queue shard (the fit itself is on the CPU, seeded) and imports the pure pipeline
(`worker/analyses/retrain.py`) only inside its functions. The base network is never written to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from backend.atlas.models import RetrainedNetwork
from backend.stimuli import services
from backend.stimuli.jobkinds import ShardPlan, positive_int
from backend.stimuli.jobs import JobFailed, ProgressReporter, ShardOutput
from backend.stimuli.models import ImageSet, ImageSetMember, Job, Network, Shard

KIND = "retrain_last_layer"
DEFAULTS: dict[str, Any] = {
    "attribute": "",  # the confounding attribute ("" : groups are the labels alone)
    "l2": 1e-3,
    "steps": 200,  # L-BFGS iterations
    "seed": 0,
    "batch_size": 64,
}
PARAMETERS = {"base", "train_set", "eval_set", "name", *DEFAULTS}
CLASS_LABEL = re.compile(r"^\d+(_.*)?$")


def plan_retrain(params: dict[str, Any]) -> list[ShardPlan]:
    """One shard; refuses unknown parameters, missing rows, a taken name, bad numbers, sets
    whose labels are not class indices, a curated set of one class, and an attribute that no
    image of the curated set carries."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise ValidationError(f"unknown parameter(s) {', '.join(unknown)}")
    for key, model in (("base", Network), ("train_set", ImageSet), ("eval_set", ImageSet)):
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{key.replace('_', ' ')} must be an id (got {value!r})")
        if not model.objects.filter(pk=value).exists():
            raise ValidationError(f"{key.replace('_', ' ')} {value!r} does not exist")
    name = params.get("name")
    if not isinstance(name, str) or not name or Network.objects.filter(name=name).exists():
        raise ValidationError(f"name {name!r} must be a new network name")
    positive_int(params, "steps", DEFAULTS["steps"])
    positive_int(params, "batch_size", DEFAULTS["batch_size"])
    l2 = params.get("l2", DEFAULTS["l2"])
    if isinstance(l2, bool) or not isinstance(l2, int | float) or l2 < 0:
        raise ValidationError(f"l2 must be a number ≥ 0 (got {l2!r})")
    seed = params.get("seed", DEFAULTS["seed"])
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed must be an integer (got {seed!r})")
    attribute = params.get("attribute", DEFAULTS["attribute"])
    if not isinstance(attribute, str):
        raise ValidationError("attribute must be an attribute name (or empty)")
    for key in ("train_set", "eval_set"):
        _check_labels(ImageSet.objects.get(pk=params[key]), key.replace("_", " "))
    train = ImageSetMember.objects.filter(image_set=params["train_set"])
    if len({_class_of(label) for label in train.values_list("label", flat=True)}) < 2:
        raise ValidationError("the curated set needs images of at least two classes")
    if attribute and not train.filter(attributes__has_key=attribute).exists():
        raise ValidationError(f"no image of the curated set has the attribute {attribute!r}")
    return [ShardPlan({}, 1.0)]


def _class_of(label: str) -> int:
    return int(label.split("_")[0])


def _check_labels(image_set: ImageSet, what: str) -> None:
    labels = list(image_set.members.values_list("label", flat=True))
    if not labels:
        raise ValidationError(f"the {what} has no images: import some first")
    bad = [label for label in labels if not CLASS_LABEL.match(label)]
    if bad:
        raise ValidationError(
            f"the {what}: {len(bad)} images have no class-index label (e.g. {bad[0]!r}); "
            "labels must be 0…N-1 or n_NAME, as ImageFolder folders"
        )


def do_queue_retrain(
    base: Network, train_set: ImageSet, eval_set: ImageSet, name: str, send: bool = True,
    **options: Any,
) -> Job:  # fmt: skip
    params = {"base": base.pk, "train_set": train_set.pk, "eval_set": eval_set.pk,
              "name": name, **options}  # fmt: skip
    return services.do_queue_job(KIND, params, send=send)


def do_queue_retrain_params(params: dict[str, Any], user: Any = None) -> Job:
    """Queue the job from its parameters as the API and the admin form send them; raises
    ValidationError, queueing nothing, for parameters it cannot run."""
    return services.do_queue_job(KIND, params, user)


def weights_path(job: Job) -> Path:
    """Where the refitted layer is saved (the creation time joins the id: ids repeat across
    databases)."""
    folder = Path(settings.MEDIA_ROOT) / "retrain"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"job-{job.pk}-{job.created_at:%Y%m%dT%H%M%S%f}.pt"


def _option(job: Job, key: str) -> Any:
    return job.params.get(key, DEFAULTS[key])


# --- On a worker ------------------------------------------------------------------------------


def _labelled(image_set: ImageSet, preprocess: Any, attribute: str) -> tuple[Any, Any, list[str]]:
    """(images, class indices, the attribute's value per image) in position order."""
    import torch

    from backend.stimuli import work
    from worker.pipelines import loading

    members = {m.image_id: m for m in image_set.members.all()}
    batches = list(loading.image_batches(work.image_refs(image_set), preprocess, 64))
    if not batches:
        raise JobFailed(f"image set {image_set} has no readable images")
    images = torch.cat([batch.pixels for batch in batches])
    ids = torch.cat([batch.image_ids for batch in batches]).tolist()
    labels = torch.tensor([_class_of(members[i].label) for i in ids])
    values = [str(members[i].attributes.get(attribute, "")) if attribute else "" for i in ids]
    return images, labels, values


def retrain_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Features, balance, fit, save; evaluate base and retrained on the held-out set."""
    import copy

    from backend.stimuli import work
    from worker.analyses import retrain

    base_row = Network.objects.get(pk=job.params["base"])
    base = work.load_network(base_row)
    attribute = str(_option(job, "attribute"))
    batch_size = int(_option(job, "batch_size"))
    train_images, train_labels, train_values = _labelled(
        ImageSet.objects.get(pk=job.params["train_set"]), base.preprocess, attribute
    )
    progress(0.2, f"features of {len(train_labels)} curated images")
    features, _ = retrain.features_and_logits(base.module, train_images, batch_size)
    groups = retrain.group_keys(train_labels.tolist(), train_values)
    chosen = retrain.balanced_indices(groups, int(_option(job, "seed")))
    try:
        module_name, linear = retrain.last_linear(base.module)
        config = retrain.FitConfig(
            l2=float(_option(job, "l2")), steps=int(_option(job, "steps")),
            seed=int(_option(job, "seed")),
        )  # fmt: skip
        weight, bias, summary = retrain.fit_last_layer(
            features[chosen], train_labels[chosen], linear.weight.cpu(),
            None if linear.bias is None else linear.bias.cpu(), config,
        )  # fmt: skip
    except retrain.RetrainError as err:
        raise JobFailed(str(err)) from None
    path = weights_path(job)
    retrain.save_last_layer(path, module_name, weight, bias, base=base_row.source)
    progress(0.6, "evaluating on the held-out set")
    eval_images, eval_labels, eval_values = _labelled(
        ImageSet.objects.get(pk=job.params["eval_set"]), base.preprocess, attribute
    )
    eval_groups = retrain.group_keys(eval_labels.tolist(), eval_values)
    new_module = retrain.apply_last_layer(
        copy.deepcopy(base.module), retrain.load_last_layer(str(path))
    )
    report = {}
    for key, module in (("base", base.module), ("retrained", new_module)):
        _, logits = retrain.features_and_logits(module, eval_images, batch_size)
        report[key] = retrain.group_accuracy(
            logits.argmax(1).tolist(), eval_labels.tolist(), eval_groups
        )
    names, counts = sorted(set(groups)), {}
    for name in names:
        counts[name] = groups.count(name)
    fit = {**summary, "groups": counts, "per_group": len(chosen) // len(names),
           "attribute": attribute, "curated_images": len(groups)}  # fmt: skip
    return ShardOutput({"weights": str(path), "module": module_name, "fit": fit,
                        "report": report})  # fmt: skip


def register_retrained_network(
    job: Job, shards: list[Shard], progress: ProgressReporter
) -> ShardOutput:
    """The new Network (its layers inspected on this worker) and its RetrainedNetwork row."""
    from backend.atlas.services import derived_network_output

    fitted = shards[0].result
    base = Network.objects.get(pk=job.params["base"])

    def row(network: Network) -> None:
        RetrainedNetwork.objects.create(
            network=network, base=base, train_set_id=job.params["train_set"],
            eval_set_id=job.params["eval_set"], attribute=fitted["fit"]["attribute"],
            module=fitted["module"], weights=fitted["weights"], fit=fitted["fit"],
            report=fitted["report"], job=job,
        )  # fmt: skip

    return derived_network_output(
        job, f"lastlayer:{base.source}@{fitted['weights']}",
        f"{base} with its last layer ({fitted['module']}) refitted", row,
        {"report": fitted["report"]}, "the retrained network",
    )  # fmt: skip
