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
) -> tuple[dict[str, dict[int, float | None]], dict[str, dict[int, dict[str, Any]]]]:
    """Per measure name: each unit's value (None for NaN) and details (for the CSI: the
    preferred class, named, and where the classes came from)."""
    from worker.analyses import activity

    if state.count == 0:
        raise JobFailed("no image of the set could be read")
    finished = state.finish()
    values = {name: dict(enumerate(map(_number, finished[name]))) for name in wanted}
    common = {"images": state.count}
    details = {name: {i: dict(common) for i in values[name]} for name in wanted}
    if "csi" in wanted:
        _, preferred = state.selectivity()
        names = label_names if not classes.from_network else activity.class_names(state.n_classes)
        source = "network top-1" if classes.from_network else "image-set labels"
        for entry, cls in zip(details["csi"].values(), preferred, strict=True):
            entry.update({"classes": source, "n_classes": int((state.class_count > 0).sum())})
            if cls >= 0:
                entry["preferred_class"] = int(cls)
                if names is not None:
                    entry["preferred_class_name"] = names[int(cls)]
    return values, details


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


WORK[jobkinds.COMPUTE_ACTIVITY] = KindWork(activity_shard, compute_activity)

# --- Ablations (#15) ---------------------------------------------------------------------------

ABLATION_MEASURES = {"accuracy_drop": "ablation_accuracy_drop", "kl": "ablation_kl",
                     "logit_change": "ablation_logit_change"}  # fmt: skip
# Copies of the layer's activation per forward of the rest of the network (images × ablations).
COPIES_PER_FORWARD = 256


def ablation_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Every image, the shard's units each ablated alone: their rows, written as it ends."""
    import torch

    from worker.analyses import ablation
    from worker.pipelines import exemplars, loading

    unit_set = UnitSet.objects.select_related("layer__network").get(pk=job.params["unit_set"])
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    network, projector = load_network(unit_set.layer.network), load_projector(unit_set)
    mode = str(job.params.get("mode", "zero"))
    means = torch.tensor(_means(unit_set, image_set)) if mode == "mean" else None
    units = [int(i) for i in shard.covers["units"]]
    labels, names = services.class_source(image_set, str(job.params.get("classes", "auto")))
    refs = image_refs(image_set)
    try:
        remover = ablation.remover_for(projector, mode, means)  # type: ignore[arg-type]

        def run(batch_size: int) -> Any:
            batches = loading.image_batches(refs, network.preprocess, batch_size)
            return ablation.ablation_pass(
                network, projector, remover, [[u] for u in units], batches, labels,
                len(names) or None, progress, len(refs),
            )  # fmt: skip

        default = max(1, COPIES_PER_FORWARD // (len(units) + 1))
        state = exemplars.oom_fallback(run, int(job.params.get("batch_size", default)))
    except ablation.AblationError as err:
        raise JobFailed(str(err)) from None
    values, details = _ablation_table(state.finish(), units, names, labels is None, remover, mode)

    def save() -> None:
        services.do_save_measures(unit_set, image_set, values, details, job)

    return ShardOutput({"units": len(units), "images": state.count}, save=save)


def _means(unit_set: UnitSet, image_set: ImageSet) -> list[float]:
    from backend.atlas.models import Measure

    rows = Measure.objects.filter(unit__unit_set=unit_set, image_set=image_set, name="mean")
    means = dict(rows.values_list("unit__index", "value"))
    return [float(means.get(i) or 0.0) for i in range(max(means, default=-1) + 1)]


def _ablation_table(
    finished: dict[str, Any], units: list[int], names: list[str], from_network: bool,
    remover: Any, mode: str,
) -> tuple[dict[str, dict[int, float | None]], dict[str, dict[int, dict[str, Any]]]]:  # fmt: skip
    """The shard's units' rows, by measure name and unit index."""
    from worker.analyses import activity

    reference = "agreement with the unablated top-1" if from_network else "image-set labels"
    class_drop = finished["class_drop"]
    class_names = names or activity.class_names(class_drop.shape[1]) or []
    note = {"mode": mode, "removal": remover.description, "reference": reference}
    values: dict[str, dict[int, float | None]] = {}
    details: dict[str, dict[int, dict[str, Any]]] = {}
    for key, name in ABLATION_MEASURES.items():
        values[name] = {u: _number(float(finished[key][g])) for g, u in enumerate(units)}
        details[name] = {u: dict(note) for u in units}
    for g, unit in enumerate(units):
        details["ablation_accuracy_drop"][unit].update(
            class_profile=_profile(class_drop[g], class_names),
            base_accuracy=float(finished["base_accuracy"]),
        )
    return values, details


def _profile(drops: Any, names: list[str]) -> list[dict[str, Any]]:
    """Per class with images: its index, name and the drop in accuracy (or agreement)."""
    return [
        {"class": c, "name": names[c] if c < len(names) else str(c), "drop": float(drop)}
        for c, drop in enumerate(drops)
        if not math.isnan(drop)
    ]


def ablation_summary(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    units = sum(int(s.result.get("units", 0)) for s in shards)
    images = int(shards[0].result.get("images", 0)) if shards else 0
    return ShardOutput({"units": units, "images": images, "mode": job.params.get("mode", "zero")})


WORK[jobkinds.COMPUTE_ABLATION] = KindWork(ablation_shard, ablation_summary)


# --- Group ablations: cumulative curves (#15) ------------------------------------------------


def _ranking(unit_set: UnitSet, image_set: ImageSet, name: str) -> list[int]:
    """Unit indices by the measure, highest first (undefined values last)."""
    from backend.atlas.models import Measure

    rows = Measure.objects.filter(unit__unit_set=unit_set, image_set=image_set, name=name)
    values = list(rows.values_list("unit__index", "value"))
    return [i for i, v in sorted(values, key=lambda iv: (iv[1] is None, -(iv[1] or 0.0), iv[0]))]


def ablation_curve_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """The groups of one ranking (or the random groups), all images, at once."""
    import torch

    from worker.analyses import ablation
    from worker.pipelines import exemplars, loading

    params = job.params
    unit_set = UnitSet.objects.select_related("layer__network").get(pk=params["unit_set"])
    image_set = ImageSet.objects.get(pk=params["image_set"])
    network, projector = load_network(unit_set.layer.network), load_projector(unit_set)
    n_units = unit_set.units.count()
    ks = list(params.get("ks") or jobkinds.doubling(n_units))
    repeats = int(params.get("repeats", 3))
    ranking = str(shard.covers["ranking"])
    if ranking == jobkinds.RANDOM_RANKING:
        groups = ablation.random_groups(n_units, ks, repeats, int(params.get("seed", 0)))
    else:
        groups = ablation.ranked_groups(_ranking(unit_set, image_set, ranking), ks)
    mode = str(params.get("mode", "zero"))
    means = torch.tensor(_means(unit_set, image_set)) if mode == "mean" else None
    labels, names = services.class_source(image_set, str(params.get("classes", "auto")))
    refs = image_refs(image_set)
    try:
        remover = ablation.remover_for(projector, mode, means)  # type: ignore[arg-type]

        def run(batch_size: int) -> Any:
            batches = loading.image_batches(refs, network.preprocess, batch_size)
            return ablation.ablation_pass(
                network, projector, remover, groups, batches, labels, len(names) or None,
                progress, len(refs),
            )  # fmt: skip

        default = max(1, COPIES_PER_FORWARD // (len(groups) + 1))
        finished = exemplars.oom_fallback(run, int(params.get("batch_size", default))).finish()
    except ablation.AblationError as err:
        raise JobFailed(str(err)) from None
    drops = [_number(float(v)) for v in finished["accuracy_drop"]]
    kls = [_number(float(v)) for v in finished["kl"]]
    return ShardOutput({"ranking": ranking, "ks": ks, "drop": drops, "kl": kls,
                        "removal": remover.description,
                        "base_accuracy": float(finished["base_accuracy"])})  # fmt: skip


def compute_ablation_curves(
    job: Job, shards: list[Shard], progress: ProgressReporter
) -> ShardOutput:
    """Each ranking's curve beside the random groups' mean and sd, k by k."""
    import numpy as np

    results = {s.result["ranking"]: s.result for s in shards}
    random = results.pop(jobkinds.RANDOM_RANKING)
    ks = random["ks"]
    repeats = int(job.params.get("repeats", 3))
    random_drops = np.array([np.nan if v is None else v for v in random["drop"]], dtype=float)
    by_k = random_drops.reshape(len(ks), repeats)
    random_mean, random_sd = by_k.mean(1).tolist(), by_k.std(1).tolist()
    curves = {
        name: {"ks": ks, "ranked": result["drop"], "random_mean": random_mean,
               "random_sd": random_sd,
               "details": {"kl": result["kl"], "random_kl": random["kl"], "repeats": repeats,
                           "removal": result["removal"], "mode": job.params.get("mode", "zero"),
                           "base_accuracy": result["base_accuracy"]}}
        for name, result in results.items()
    }  # fmt: skip

    def save() -> None:
        services.do_save_ablation_curves(
            job.params["unit_set"], job.params["image_set"], curves, job
        )

    return ShardOutput({"rankings": sorted(curves), "ks": ks}, save=save)


WORK[jobkinds.COMPUTE_ABLATION_CURVES] = KindWork(ablation_curve_shard, compute_ablation_curves)


# --- Populations (#15) -----------------------------------------------------------------------


def population_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Activity: the streaming correlation over the shard's images. Ablation: nothing to stream
    (the merge reads the stored profiles)."""
    from worker.analyses import populations
    from worker.pipelines import exemplars, loading

    if "profiles" in shard.covers:
        return ShardOutput({"profiles": True})
    unit_set = UnitSet.objects.select_related("layer__network").get(pk=job.params["unit_set"])
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    network, projector = load_network(unit_set.layer.network), load_projector(unit_set)
    refs = image_refs(image_set, shard.covers)

    def run(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return populations.correlation_pass(network, projector, batches, progress, len(refs))

    state = exemplars.oom_fallback(run, batch_size_for(job))
    return ShardOutput({"images": state.count}, state=state.state_dict())


def compute_populations(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """Cluster the units and write the Population rows (replacing the earlier ones)."""
    from worker.analyses import populations

    params = job.params
    unit_set = UnitSet.objects.get(pk=params["unit_set"])
    image_set = ImageSet.objects.get(pk=params["image_set"])
    basis = str(params.get("basis", "activity"))
    if basis == "activity":
        state = None
        for shard in shards:
            part = populations.CorrelationState.from_state_dict(load_state(shard))
            state = part if state is None else state.merge(part)
        assert state is not None
        correlation = state.correlation()
    else:
        correlation = populations.profile_correlation(_profiles(unit_set, image_set))
    threshold = params.get("threshold")
    try:
        found = populations.cluster_units(
            correlation, None if threshold is None else float(threshold),
            int(params.get("max_populations", 20)),
        )  # fmt: skip
    except populations.PopulationError as err:
        raise JobFailed(str(err)) from None
    indices = sorted(unit_set.units.values_list("index", flat=True))
    members = [[indices[i] for i in group] for group in found.members()]
    details = {"rule": found.rule, "silhouette": found.silhouette,
               "n_populations": found.n_populations}  # fmt: skip

    def save() -> None:
        services.do_save_populations(unit_set, image_set, basis, members, details, job)

    result = {**details, "basis": basis, "sizes": [len(m) for m in members],
              "linkage": found.linkage.tolist(), "units": indices}  # fmt: skip
    return ShardOutput(result, save=save)


def _profiles(unit_set: UnitSet, image_set: ImageSet) -> Any:
    """``[units, classes]`` class-wise ablation profiles (drop per class), in unit order."""
    import numpy as np

    from backend.atlas.models import Measure

    rows = Measure.objects.filter(
        unit__unit_set=unit_set, image_set=image_set, name="ablation_accuracy_drop"
    ).order_by("unit__index")
    profiles = [
        {e["class"]: e["drop"] for e in row.details.get("class_profile", [])} for row in rows
    ]
    classes = sorted({c for profile in profiles for c in profile})
    if not classes:
        raise JobFailed("the stored ablations have no class profiles: compute ablations again")
    return np.array([[p.get(c, 0.0) for c in classes] for p in profiles])


WORK[jobkinds.COMPUTE_POPULATIONS] = KindWork(population_shard, compute_populations)

# Spectra (issue 16): covariance sums per shard; eigenvalues, fit and random projections at merge.
from backend.atlas import spectra, spectra_work  # noqa: E402

WORK[spectra.KIND] = KindWork(spectra_work.spectrum_shard, spectra_work.compute_spectra)

# The machine observer (backend/atlas/observer_work.py).
from backend.atlas import observer_work  # noqa: E402

WORK.update(observer_work.WORK)

# Descriptions (#18)
from backend.atlas.describe_work import WORK as _DESCRIBE_WORK  # noqa: E402

WORK.update(_DESCRIBE_WORK)


# LWTA networks (#19).
from backend.atlas import lwta  # noqa: E402

WORK[lwta.KIND] = KindWork(lwta.finetune_shard, lwta.register_lwta_network)


# The confound report (#20): the unit's values per shard; bands and enrichment tests at merge.
from backend.atlas.confounds_work import WORK as _CONFOUND_WORK  # noqa: E402

WORK.update(_CONFOUND_WORK)


# Last-layer retraining (#20).
from backend.atlas import retrain  # noqa: E402

WORK[retrain.KIND] = KindWork(retrain.retrain_shard, retrain.register_retrained_network)
