"""The work of the `describe_units` job on a worker: per shard (a range of the probe images),
the units' top images and the images' P(concept | image) from the job's concept source; the
merge folds them (exactly one pass over every image), scores every concept of every unit by
soft-WPMI and writes the top concepts (`backend.atlas.descriptions.do_save_descriptions`)."""

from __future__ import annotations

from typing import Any

from backend.atlas.descriptions import DEFAULTS, do_save_descriptions
from backend.stimuli.jobs import JobFailed, KindWork, ProgressReporter, ShardOutput, load_state
from backend.stimuli.models import ImageSet, Job, Network, Shard, UnitSet
from backend.stimuli.work import batch_size_for, image_refs, load_network, load_projector

# A worker process keeps the concept sources it has loaded (an open_clip model takes seconds).
_SOURCES: dict[tuple[str, str, str], Any] = {}


def _rows(job: Job) -> tuple[ImageSet, list[UnitSet]]:
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    unit_sets = list(
        UnitSet.objects.select_related("layer__network")
        .filter(pk__in=job.params["unit_sets"])
        .order_by("pk")
    )
    return image_set, unit_sets


def soft_wpmi_config(job: Job) -> Any:
    from worker.analyses.describe import DescribeError, SoftWpmiConfig

    p = {**DEFAULTS, **job.params}
    try:
        return SoftWpmiConfig(
            top_k=int(p["top_k"]), lam=float(p["lam"]), p_start=float(p["p_start"]),
            p_end=float(p["p_end"]), n_top=int(p["n_top"]),
        )  # fmt: skip
    except DescribeError as err:
        raise JobFailed(str(err)) from None


def concept_source(job: Job, network_row: Network) -> Any:
    """The job's concept source, loaded once per worker process."""
    import torch

    from worker.analyses import concepts
    from worker.analyses.describe import DescribeError

    spec = str(job.params.get("source", DEFAULTS["source"]))
    key = (spec, network_row.source, str(job.params.get("concepts_file", "")))
    if key not in _SOURCES:
        network = load_network(network_row)
        try:
            if spec == "classifier":
                crop = network.preprocess.crop
                with torch.no_grad():
                    out = network.module(torch.zeros(1, 3, crop, crop, device=network.device))
                out = out[0] if isinstance(out, (tuple, list)) else out
                _SOURCES[key] = concepts.classifier_source(network, int(out.flatten(1).shape[1]))
            else:
                words = concepts.read_concepts(str(job.params["concepts_file"]))
                _SOURCES[key] = concepts.open_clip_source(
                    spec.removeprefix("open_clip:"), words, network.device
                )
        except DescribeError as err:
            raise JobFailed(str(err)) from None
    return _SOURCES[key]


def describe_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    from worker.analyses import concepts
    from worker.analyses.describe import DescribeError
    from worker.pipelines import exemplars

    image_set, unit_sets = _rows(job)
    network_row = unit_sets[0].layer.network
    network = load_network(network_row)
    source = concept_source(job, network_row)
    projectors = {str(u.pk): load_projector(u) for u in unit_sets}
    refs = image_refs(image_set, shard.covers)
    config = soft_wpmi_config(job)

    def run(batch_size: int) -> Any:
        return concepts.describe_states(
            network, projectors, refs, source, config.top_k, batch_size, progress
        )

    try:
        states = exemplars.oom_fallback(run, batch_size_for(job))
    except DescribeError as err:
        raise JobFailed(str(err)) from None
    state = {name: s.state_dict() for name, s in states.items()}
    n_images = next(iter(states.values())).n_images
    return ShardOutput({"images": n_images, "concepts": len(source.concepts)}, state=state)


def describe_units(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    from worker.analyses.describe import DescribeState, top_concepts

    image_set, unit_sets = _rows(job)
    source = concept_source(job, unit_sets[0].layer.network)
    config = soft_wpmi_config(job)
    merged: dict[str, DescribeState] = {}
    for shard in sorted(shards, key=lambda s: s.index):
        for name, tensors in load_state(shard).items():
            part = DescribeState.from_state_dict(tensors)
            merged[name] = merged[name].merge(part, config.top_k) if name in merged else part
    progress(None, "scoring concepts (soft-WPMI)")
    rows: dict[int, dict[int, dict[str, Any]]] = {}
    own_class = 0
    for unit_set in unit_sets:
        state = merged[str(unit_set.pk)]
        found = top_concepts(state.scores(config), source.concepts, config.n_top)
        rows[unit_set.pk] = {
            d.unit: {"concepts": d.concepts, "scores": d.scores, "details": {
                "method": "soft-WPMI (CLIP-Dissect)", "config": config.to_dict(),
                "source": source.details, "n_images": state.n_images,
            }}
            for d in found
        }  # fmt: skip
        if source.details.get("kind") == "classifier" and len(found) == len(source.concepts):
            own_class += sum(d.concepts[0] == source.concepts[d.unit] for d in found)

    def save() -> None:
        do_save_descriptions(job, image_set, source.label, rows)

    result = {
        "unit_sets": [u.pk for u in unit_sets],
        "units": sum(len(r) for r in rows.values()),
        "images": sum(int(s.result.get("images", 0)) for s in shards),
        "source": source.label,
        "own_class_top": own_class,
    }
    return ShardOutput(result, save=save)


WORK = {"describe_units": KindWork(describe_shard, describe_units)}
