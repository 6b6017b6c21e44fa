"""The work of the atlas's job kinds on a worker: per shard, load rows and call the pure
analyses in `worker/analyses/`; per job, merge the shards' state and write the rows. `WORK`
maps each kind (registered in `backend/atlas/jobkinds.py`) to its two functions; `worker/tasks.py`
collects it with the stimuli's."""

from __future__ import annotations

import math
from typing import Any

from backend.atlas import jobkinds, services
from backend.stimuli.jobs import JobFailed, KindWork, ProgressReporter, ShardOutput, load_state
from backend.stimuli.models import ImageSet, Job, Shard, UnitSet
from backend.stimuli.work import batch_size_for, image_refs, load_network, load_projector

WORK: dict[str, KindWork] = {}

# --- Activation measures (#15) -----------------------------------------------------------------


def _activity_rows(job: Job) -> tuple[ImageSet, list[UnitSet]]:
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    unit_sets = list(
        UnitSet.objects.select_related("layer__network")
        .filter(pk__in=job.params["unit_sets"])
        .order_by("pk")
    )
    return image_set, unit_sets


def _class_source(job: Job, image_set: ImageSet) -> tuple[Any, list[str]]:
    from worker.analyses.activity import ClassSource

    labels, names = services.class_source(image_set, str(job.params.get("classes", "auto")))
    return ClassSource(labels, len(names)), names


def activity_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """The streaming pass over the shard's range of images: per unit set, the mergeable sums."""
    from worker.analyses import activity
    from worker.pipelines import exemplars, loading

    image_set, unit_sets = _activity_rows(job)
    network = load_network(unit_sets[0].layer.network)
    projectors = {str(u.pk): load_projector(u) for u in unit_sets}
    refs = image_refs(image_set, shard.covers)
    classes, _ = _class_source(job, image_set)

    def run(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return activity.activity_states(network, projectors, batches, classes, progress, len(refs))

    try:
        states = exemplars.oom_fallback(run, batch_size_for(job))
    except activity.ActivityError as err:
        raise JobFailed(str(err)) from None
    return ShardOutput(
        {"images": len(refs)}, state={name: s.state_dict() for name, s in states.items()}
    )


def compute_activity(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """Merge the shards' sums (one exact pass over every image) and write the Measures."""
    from worker.analyses import activity

    image_set, unit_sets = _activity_rows(job)
    classes, label_names = _class_source(job, image_set)
    merged: dict[str, activity.ActivityState] = {}
    for shard in shards:
        for name, tensors in load_state(shard).items():
            state = activity.ActivityState.from_state_dict(tensors)
            merged[name] = merged[name].merge(state) if name in merged else state
    wanted = list(job.params.get("measures", jobkinds.ACTIVITY_MEASURES))
    progress(None, "saving measures")
    tables = {u.pk: _measure_table(merged[str(u.pk)], wanted, classes, label_names)
              for u in unit_sets}  # fmt: skip

    def save() -> None:
        for unit_set in unit_sets:
            values, details = tables[unit_set.pk]
            services.do_save_measures(unit_set, image_set, values, details, job)

    n_images = merged[str(unit_sets[0].pk)].count if unit_sets else 0
    source = "network top-1" if classes.from_network else "image-set labels"
    result = {"unit_sets": [u.pk for u in unit_sets], "images": n_images, "classes": source,
              "measures": wanted}  # fmt: skip
    return ShardOutput(result, save=save)


def _measure_table(
    state: Any, wanted: list[str], classes: Any, label_names: list[str]
) -> tuple[dict[str, list[float | None]], dict[str, list[dict[str, Any]]]]:
    """Per measure name: each unit's value (None for NaN) and details (for the CSI: the
    preferred class, named, and where the classes came from)."""
    from worker.analyses import activity

    if state.count == 0:
        raise JobFailed("no image of the set could be read")
    finished = state.finish()
    values = {name: [_number(v) for v in finished[name]] for name in wanted}
    common = {"images": state.count}
    details = {name: [dict(common) for _ in values[name]] for name in wanted}
    if "csi" in wanted:
        _, preferred = state.selectivity()
        names = label_names if not classes.from_network else activity.class_names(state.n_classes)
        source = "network top-1" if classes.from_network else "image-set labels"
        for entry, cls in zip(details["csi"], preferred, strict=True):
            entry.update({"classes": source, "n_classes": int((state.class_count > 0).sum())})
            if cls >= 0:
                entry["preferred_class"] = int(cls)
                if names is not None:
                    entry["preferred_class_name"] = names[int(cls)]
    return values, details


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


WORK[jobkinds.COMPUTE_ACTIVITY] = KindWork(activity_shard, compute_activity)
