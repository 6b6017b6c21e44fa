"""The work of each Job kind on a worker: one shard's slice (load rows, call the pure pipeline
in worker/pipelines or worker/featurevis) and the merge of every slice.

A shard's work returns a `ShardOutput`: a JSON summary, the mergeable state to keep (exemplar
and sampling passes), and the rows to write, which the runner (`backend/stimuli/jobs.py`) writes
in the transaction that ends the shard. `WORK` maps each kind (registered with its planner in
`backend/stimuli/jobkinds.py`) to its two functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.stimuli import bands, services
from backend.stimuli.jobs import JobFailed, KindWork, ProgressReporter, ShardOutput, load_state
from backend.stimuli.models import Image, ImageSet, Job, Network, Shard, Unit, UnitSet
from worker.pipelines import imagesets


def import_images(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Import a server folder, an uploaded ZIP (kept in media under `uploads/`) or the demo set.

    One shard. Its rows are written image by image, each keyed by content, so a rerun after a
    killed worker adds only what is missing."""
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    report = imagesets.ImportReport()
    progress(0.0, f"reading {image_set.get_origin_display()}")
    try:
        services.do_import_images(image_set, _candidates(image_set, report), report, progress)
    except imagesets.ImageSetError as err:  # the folder or archive as a whole is unreadable
        raise JobFailed(str(err)) from None
    return ShardOutput(services.report_as_dict(report))


def import_report(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    return ShardOutput(shards[0].result)


def _candidates(image_set: ImageSet, report: imagesets.ImportReport) -> Any:
    """What the import reads, each candidate with its source photo (images.csv, the set's
    source rule, or the demo's photo)."""
    if image_set.origin == ImageSet.Origin.DEMO:
        return imagesets.demo_images()
    candidates = _scanned(image_set, report)
    if image_set.source_rule:
        return imagesets.with_source_rule(candidates, image_set.source_rule)
    return candidates


def _scanned(image_set: ImageSet, report: imagesets.ImportReport) -> Any:
    path = Path(image_set.source)
    if image_set.origin == ImageSet.Origin.ZIP:
        from django.core.files.storage import default_storage

        path = Path(default_storage.path(image_set.source))
    if not path.exists():
        raise JobFailed(f"{path} does not exist on the worker machine")
    if image_set.origin == ImageSet.Origin.ZIP:
        return imagesets.scan_zip(str(path), report)
    return imagesets.scan_folder(path, report)


# --- Networks and unit sets on the worker ----------------------------------------------------

# Loading a network takes seconds; a worker process keeps the ones it has used.
_NETWORKS: dict[str, Any] = {}


def load_network(network: Network) -> Any:
    from worker.pipelines import networks

    if network.source not in _NETWORKS:
        try:
            _NETWORKS[network.source] = networks.load_network(
                network.source, device=networks.pick_device()
            )
        except networks.NetworkError as err:
            raise JobFailed(str(err)) from None
    return _NETWORKS[network.source]


def unit_spec(unit_set: UnitSet) -> Any:
    """The pipeline's description of a unit set."""
    from worker.pipelines.units import UnitError, UnitSetSpec

    kind, method = PIPELINE_KINDS[unit_set.kind]
    position = unit_set.params.get("position")
    try:
        return UnitSetSpec(
            kind=kind, layer=unit_set.layer.name, point=unit_set.point,  # type: ignore[arg-type]
            n_units=unit_set.n_units if unit_set.needs_fit else None,
            method=method, position=tuple(position) if position else None,  # type: ignore[arg-type]
            seed=int(unit_set.params.get("seed", 0)),
        )  # fmt: skip
    except UnitError as err:
        raise JobFailed(f"{unit_set}: {err}") from None


PIPELINE_KINDS: dict[str, tuple[str, str | None]] = {
    UnitSet.Kind.CHANNELS: ("channels", None),
    UnitSet.Kind.NEURONS: ("neurons", None),
    UnitSet.Kind.NMF: ("dictionary", "nmf"),
    UnitSet.Kind.SAE: ("dictionary", "sae"),
    UnitSet.Kind.PCA: ("pca", None),
    UnitSet.Kind.RANDOM: ("random", None),
}


def load_projector(unit_set: UnitSet) -> Any:
    from django.core.files.storage import default_storage

    from worker.pipelines import units

    if unit_set.kind == UnitSet.Kind.POPULATION:  # the atlas's populations of another unit set
        source = UnitSet.objects.select_related("layer").get(pk=unit_set.params["source_unit_set"])
        try:
            return units.PopulationProjector(load_projector(source), unit_set.params["members"])
        except units.UnitError as err:
            raise JobFailed(f"{unit_set}: {err}") from None

    spec = unit_spec(unit_set)
    if not spec.needs_fit:
        return units.build_projector(spec, tuple(unit_set.layer.shape))
    if not unit_set.state_file:
        raise JobFailed(f"{unit_set} is not fitted yet: fit it first")
    return units.load_projector(default_storage.path(str(unit_set.state_file.name)))


def image_refs(image_set: ImageSet, covers: dict[str, Any] | None = None) -> list[Any]:
    """The set's images in position order; a shard's `covers` limit them to its range."""
    from worker.pipelines.loading import ImageRef

    positions = tuple(covers["positions"]) if covers and "positions" in covers else None
    paths = services.image_set_paths(image_set, positions)
    return [ImageRef(image_id=i, path=p, source_id=source) for i, p, source in paths]


def batch_size_for(job: Job) -> int:
    return int(job.params.get("batch_size", 64))


def fit_sample(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Sample position vectors of the layer over the shard's range of images."""
    from worker.pipelines import dictionary, exemplars, loading

    unit_set = _unit_set_to_fit(job)
    network, spec = load_network(unit_set.layer.network), unit_spec(unit_set)
    refs = image_refs(unit_set.image_set, shard.covers)  # type: ignore[arg-type]
    config = dictionary_config(unit_set, spec)

    def sample(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        total = -(-len(refs) // batch_size)
        return dictionary.sample_positions(
            network, batches, spec.tap, config.max_samples, config.seed, progress, total
        )

    try:
        positions = exemplars.oom_fallback(sample, batch_size_for(job))
    except dictionary.DictionaryError as err:
        raise JobFailed(str(err)) from None
    return ShardOutput({"samples": len(positions)}, state=positions.state_dict())


def fit_unit_set(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """Merge the shards' samples into one pass's sample and fit the dictionary on it."""
    from worker.pipelines import dictionary, units

    unit_set = _unit_set_to_fit(job)
    spec = unit_spec(unit_set)
    config = dictionary_config(unit_set, spec)
    sample = None
    for shard in shards:
        part = dictionary.PositionSample.from_state_dict(load_state(shard))
        sample = part if sample is None else sample.merge(part)
    assert sample is not None
    progress(None, f"fitting {config.kind} with {config.n_atoms} atoms on {len(sample)} vectors")
    try:
        fitted = dictionary.fit_dictionary_on_samples(sample.vectors, config)
        projector = units.build_projector(spec, tuple(unit_set.layer.shape), fitted)
    except (dictionary.DictionaryError, units.UnitError) as err:
        raise JobFailed(str(err)) from None
    result = {"reconstruction_error": fitted.reconstruction_error, "n_units": fitted.n_atoms}

    def save() -> None:
        services.do_save_fitted_unit_set(unit_set, projector, fitted)

    return ShardOutput(result, save=save)


def _unit_set_to_fit(job: Job) -> UnitSet:
    unit_set = UnitSet.objects.select_related("layer__network", "image_set").get(
        pk=job.params["unit_set"]
    )
    if unit_set.image_set is None:
        raise JobFailed(f"{unit_set} has no image set to fit on")
    return unit_set


def dictionary_config(unit_set: UnitSet, spec: Any) -> Any:
    from worker.pipelines.dictionary import DictionaryConfig, DictionaryError

    params = unit_set.params
    try:
        return DictionaryConfig(
            kind=spec.fit_kind,
            n_atoms=int(unit_set.n_units or 0),
            seed=int(params.get("seed", 0)),
            sae_top_k=params.get("top_k"),
            max_samples=int(params.get("max_samples", 50_000)),
        )
    except (DictionaryError, TypeError, ValueError) as err:
        raise JobFailed(f"{unit_set}: {err}") from None


def exemplar_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """The streaming pass over the shard's range of images, for every unit of the job's unit
    sets: its mergeable state (top-k, bottom-k, the bands' sketch, sums)."""
    from worker.pipelines import exemplars, loading

    image_set, unit_sets = _exemplar_rows(job)
    network = load_network(unit_sets[0].layer.network)
    projectors = {str(u.pk): load_projector(u) for u in unit_sets}
    refs = image_refs(image_set, shard.covers)
    config = exemplar_config(job, image_set)

    def run(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return exemplars.exemplar_states(network, projectors, batches, config, progress, len(refs))

    states = exemplars.oom_fallback(run, batch_size_for(job))
    state = {name: s.state_dict() for name, s in states.items()}
    return ShardOutput({"images": len(refs)}, state=state)


def compute_exemplars(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """Merge the shards' states (exactly one pass over every image) and write the rows."""
    from worker.pipelines import exemplars, networks

    image_set, unit_sets = _exemplar_rows(job)
    config = exemplar_config(job, image_set)
    device = networks.pick_device()
    merged = exemplars.merge_states(
        {
            name: exemplars.ExemplarState.from_state_dict(tensors, config, device)
            for name, tensors in load_state(shard).items()
        }
        for shard in shards
    )
    progress(None, "saving exemplars")
    results = {name: state.finish() for name, state in merged.items()}

    def save() -> None:
        for unit_set in unit_sets:
            services.do_save_exemplars(
                unit_set, image_set, results[str(unit_set.pk)], config.distinct_sources
            )

    n_images = sum(int(shard.result.get("images", 0)) for shard in shards)
    result = {"unit_sets": [u.pk for u in unit_sets], "images": n_images, "k": config.k,
              "distinct_sources": config.distinct_sources}  # fmt: skip
    return ShardOutput(result, save=save)


def _exemplar_rows(job: Job) -> tuple[ImageSet, list[UnitSet]]:
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    unit_sets = list(
        UnitSet.objects.select_related("layer__network").filter(pk__in=job.params["unit_sets"])
    )
    return image_set, unit_sets


def exemplar_config(job: Job, image_set: ImageSet) -> Any:
    """The pass's settings: every shard and the merge must agree, so they come from the job."""
    from worker.pipelines import exemplars

    n_images = image_set.members.count()
    if not n_images:
        raise JobFailed(f"image set {image_set} has no images")
    distinct = job.params.get("distinct_sources")
    return exemplars.ExemplarConfig(
        k=min(int(job.params.get("k", 200)), n_images),
        distinct_sources=image_set.has_sources if distinct is None else bool(distinct),
        bands=exemplars.DEFAULT_BANDS + extra_bands(job.params.get("bands") or []),
        band_size=int(job.params.get("band_size", 20)),
    )


def extra_bands(pairs: list[list[float]]) -> tuple[Any, ...]:
    """The job's chosen activation bands ([[lower, upper] in percent, …]; mid-range
    explanations, backend/stimuli/bands.py) as the pass's quantile bands."""
    from worker.pipelines import exemplars

    chosen = [bands.ActivationBand(float(lower), float(upper)) for lower, upper in pairs]
    return tuple(
        exemplars.QuantileBand(band.name, *band.quantiles) for band in dict.fromkeys(chosen)
    )


# --- Feature visualizations and occlusion maps ----------------------------------------------


def objective_for(unit_set: UnitSet, projector: Any) -> Any:
    """The featurevis objective of a unit set's units: channel or neuron for local units, the
    direction for NMF/PCA/random, the pre-activation code for a sparse autoencoder."""
    from worker import featurevis

    if unit_set.kind == UnitSet.Kind.POPULATION:
        return population_objective(unit_set, projector)
    config, tensors = projector.state()
    if unit_set.kind == UnitSet.Kind.CHANNELS:
        return featurevis.ChannelObjective()
    if unit_set.kind == UnitSet.Kind.NEURONS:
        position = unit_set.params.get("position")
        return featurevis.NeuronObjective(*(position or []))
    if unit_set.kind == UnitSet.Kind.SAE:
        # codes = ((x - mean) / scale) @ W.T + b, folded into one position-wise linear map
        weight = tensors["encoder_weight"] / tensors["input_scale"]
        bias = tensors["encoder_bias"] - weight @ tensors["input_mean"]
        return featurevis.CodeObjective(featurevis.linear_encoder(weight, bias))
    directions = tensors["atoms"] if unit_set.kind == UnitSet.Kind.NMF else tensors["weight"]
    return featurevis.DirectionObjective(directions)


def population_objective(unit_set: UnitSet, projector: Any) -> Any:
    """Populations of channels or of linear directions are directions themselves (the members'
    equal-weight mean); populations of neurons or dictionary codes have no direction here."""
    from worker import featurevis

    base = UnitSet.objects.get(pk=unit_set.params["source_unit_set"])
    if base.kind == UnitSet.Kind.CHANNELS:
        return featurevis.DirectionObjective(projector.weights)
    if base.kind in (UnitSet.Kind.PCA, UnitSet.Kind.RANDOM):
        return featurevis.DirectionObjective(projector.weights @ projector.base.weight)
    raise JobFailed(f"{unit_set}: feature visualizations of populations of {base.kind} units")


class Negated:
    """Minimise a unit (the minimally activating visualization) by maximising its negative."""

    def __init__(self, objective: Any) -> None:
        self.objective = objective

    def __call__(self, acts: Any, units: Any) -> Any:
        return -self.objective(acts, units)


def render_visualizations(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Feature visualizations of the shard's units (one unit set, one sign: one objective)."""
    params = job.params
    units = list(
        Unit.objects.select_related("unit_set__layer__network")
        .filter(pk__in=shard.covers["units"])
        .order_by("index")
    )
    preset_name = str(params.get("preset", "lucent"))
    config = visualization_config(params, preset_name)
    sign = int(shard.covers.get("sign", 1))
    unit_set = units[0].unit_set
    results = render_group(job, unit_set, units, config, sign, progress)
    by_index = {unit.index: unit for unit in units}

    def save() -> None:
        for result in results:
            services.do_save_visualization(by_index[result.unit], result, preset_name, sign)

    return ShardOutput({"visualizations": len(results), "units": len(units)}, save=save)


def visualization_summary(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    saved = sum(int(s.result.get("visualizations", 0)) for s in shards)
    units = len({unit for s in shards for unit in s.covers.get("units", [])})
    preset = str(job.params.get("preset", "lucent"))
    return ShardOutput({"visualizations": saved, "units": units, "preset": preset})


def visualization_config(params: dict[str, Any], preset_name: str) -> Any:
    from worker import featurevis

    try:
        return featurevis.preset(
            preset_name,
            images_per_unit=int(params.get("n_images", 1)),
            **params.get("overrides", {}),
        )
    except (TypeError, ValueError) as err:
        raise JobFailed(f"feature-visualization settings: {err}") from None


def render_group(
    job: Job, unit_set: UnitSet, units: list[Unit], config: Any, sign: int,
    progress: ProgressReporter,
) -> list[Any]:  # fmt: skip
    from worker import featurevis

    network = load_network(unit_set.layer.network)
    objective = objective_for(unit_set, load_projector(unit_set))
    if sign < 0:
        objective = Negated(objective)
    extremes = [extreme_natural_activation(unit, sign) for unit in units]
    values = [sign * v for v in extremes if v is not None]
    known = values if len(values) == len(units) else None  # None: some unit lacks exemplars
    label = f"{unit_set.name} ({'max' if sign > 0 else 'min'})"
    return list(
        featurevis.visualize(
            network, unit_set.layer.name, objective, [u.index for u in units], config,
            seed=int(job.params.get("seed", 0)), top_natural_activations=known,
            progress=lambda fraction, message: progress(fraction, f"{label}: {message}"),
        )
    )  # fmt: skip


def extreme_natural_activation(unit: Unit, sign: int) -> float | None:
    """The unit's most extreme natural exemplar activation in the direction of `sign`."""
    for exemplar_set in unit.exemplar_sets.all():
        entries = exemplar_set.top if sign > 0 else exemplar_set.bottom
        if entries:
            return float(entries[0]["value"])
    return None


def compute_occlusion(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Occlusion maps of the shard's (unit, base image) pairs."""
    from worker.pipelines import occlusion

    params = job.params
    config = occlusion.OcclusionConfig(
        occluder_fraction=float(params.get("occluder_fraction", 0.4)),
        stride=int(params.get("stride", 2)),
    )
    items = [(int(unit), int(image)) for unit, image in shard.covers["items"]]
    units = Unit.objects.select_related("unit_set__layer__network").in_bulk([u for u, _ in items])
    images = Image.objects.in_bulk([i for _, i in items])
    maps = []
    for done, (unit_id, image_id) in enumerate(items):
        progress(done / len(items), f"unit {units[unit_id]}, image {image_id}")
        maps.append(
            (
                units[unit_id],
                images[image_id],
                *occlusion_for(units[unit_id], images[image_id], config),
            )
        )

    def save() -> None:
        for unit, image, result, pixels in maps:
            services.do_save_occlusion_map(unit, image, result, config, pixels)

    return ShardOutput({"maps": len(maps)}, save=save)


def occlusion_summary(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    units = {unit for s in shards for unit, _ in s.covers.get("items", [])}
    return ShardOutput(
        {"maps": sum(int(s.result.get("maps", 0)) for s in shards), "units": len(units)}
    )


def occlusion_for(unit: Unit, image: Any, config: Any) -> tuple[Any, Any]:
    """The map of `unit` on `image` and the image's pixels (for the occluded copies)."""
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from worker.pipelines import networks, occlusion

    unit_set = unit.unit_set
    network = load_network(unit_set.layer.network)
    unit_fn = occlusion.unit_function(network, load_projector(unit_set), unit.index)
    raw = networks.Preprocess(
        resize=network.preprocess.resize, crop=network.preprocess.crop,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation=network.preprocess.interpolation,
    )  # fmt: skip
    with PILImage.open(default_storage.path(image.file.name)) as source:
        pixels = networks.preprocess_image(source.convert("RGB"), raw).to(network.device)
    return occlusion.occlusion_map(unit_fn, pixels, config), pixels


WORK: dict[str, KindWork] = {
    Job.Kind.IMPORT_IMAGES: KindWork(import_images, import_report),
    Job.Kind.FIT_UNIT_SET: KindWork(fit_sample, fit_unit_set),
    Job.Kind.COMPUTE_EXEMPLARS: KindWork(exemplar_shard, compute_exemplars),
    Job.Kind.RENDER_VISUALIZATIONS: KindWork(render_visualizations, visualization_summary),
    Job.Kind.COMPUTE_OCCLUSION: KindWork(compute_occlusion, occlusion_summary),
}
