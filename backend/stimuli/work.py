"""The work of each Job kind: load rows, call the pure pipeline in worker/pipelines, save.

Each function takes the Job and a progress reporter and returns a JSON-able summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.stimuli import services
from backend.stimuli.jobs import JobFailed, ProgressReporter
from backend.stimuli.models import ImageSet, Job, Network, Unit, UnitSet
from worker.pipelines import imagesets


def import_images(job: Job, progress: ProgressReporter) -> dict[str, Any]:
    """Import a server folder, an uploaded ZIP (kept in media under `uploads/`) or the demo set."""
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    report = imagesets.ImportReport()
    progress(0.0, f"reading {image_set.get_origin_display()}")
    try:
        services.do_import_images(image_set, _candidates(image_set, report), report, progress)
    except imagesets.ImageSetError as err:  # the folder or archive as a whole is unreadable
        raise JobFailed(str(err)) from None
    return services.report_as_dict(report)


def _candidates(image_set: ImageSet, report: imagesets.ImportReport) -> Any:
    if image_set.origin == ImageSet.Origin.DEMO:
        return (
            imagesets.ImageCandidate(name=name, label=label, data=data)
            for name, label, data in imagesets.demo_images()
        )
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

    spec = unit_spec(unit_set)
    if not spec.needs_fit:
        return units.build_projector(spec, tuple(unit_set.layer.shape))
    if not unit_set.state_file:
        raise JobFailed(f"{unit_set} is not fitted yet: fit it first")
    return units.load_projector(default_storage.path(str(unit_set.state_file.name)))


def image_refs(image_set: ImageSet) -> list[Any]:
    from worker.pipelines.loading import ImageRef

    return [ImageRef(image_id=i, path=p) for i, p in services.image_set_paths(image_set)]


def batch_size_for(job: Job) -> int:
    return int(job.params.get("batch_size", 64))


def fit_unit_set(job: Job, progress: ProgressReporter) -> dict[str, Any]:
    """Fit NMF, a sparse autoencoder, PCA or random directions on a layer over an image set."""
    from worker.pipelines import dictionary, exemplars, loading, units

    unit_set = UnitSet.objects.select_related("layer__network", "image_set").get(
        pk=job.params["unit_set"]
    )
    if unit_set.image_set is None:
        raise JobFailed(f"{unit_set} has no image set to fit on")
    network, spec = load_network(unit_set.layer.network), unit_spec(unit_set)
    refs = image_refs(unit_set.image_set)
    config = dictionary_config(unit_set, spec)

    def fit(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        pixels = loading.preprocessed_batches(batches)
        total = -(-len(refs) // batch_size)
        return dictionary.fit_dictionary(network, pixels, spec.tap, config, progress, total)

    try:
        fitted = exemplars.oom_fallback(fit, batch_size_for(job))
        projector = units.build_projector(spec, tuple(unit_set.layer.shape), fitted)
    except (dictionary.DictionaryError, units.UnitError) as err:
        raise JobFailed(str(err)) from None
    services.do_save_fitted_unit_set(unit_set, projector, fitted)
    return {"reconstruction_error": fitted.reconstruction_error, "n_units": fitted.n_atoms}


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


def compute_exemplars(job: Job, progress: ProgressReporter) -> dict[str, Any]:
    """One streaming pass over an image set for every unit of the given unit sets."""
    from worker.pipelines import exemplars, loading

    params = job.params
    image_set = ImageSet.objects.get(pk=params["image_set"])
    unit_sets = list(
        UnitSet.objects.select_related("layer__network").filter(pk__in=params["unit_sets"])
    )
    network = load_network(unit_sets[0].layer.network)
    projectors = {str(u.pk): load_projector(u) for u in unit_sets}
    refs = image_refs(image_set)
    if not refs:
        raise JobFailed(f"image set {image_set} has no images")
    config = exemplars.ExemplarConfig(k=min(int(params.get("k", 200)), len(refs)))

    def run(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return exemplars.compute_exemplars(
            network, projectors, batches, config, progress, len(refs)
        )

    results = exemplars.oom_fallback(run, batch_size_for(job))
    progress(1.0, "saving exemplars")
    for unit_set in unit_sets:
        services.do_save_exemplars(unit_set, image_set, results[str(unit_set.pk)])
    return {"unit_sets": [u.pk for u in unit_sets], "images": len(refs), "k": config.k}


# --- Feature visualizations and occlusion maps ----------------------------------------------


def objective_for(unit_set: UnitSet, projector: Any) -> Any:
    """The featurevis objective of a unit set's units: channel or neuron for local units, the
    direction for NMF/PCA/random, the pre-activation code for a sparse autoencoder."""
    from worker import featurevis

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


class Negated:
    """Minimise a unit (the minimally activating visualization) by maximising its negative."""

    def __init__(self, objective: Any) -> None:
        self.objective = objective

    def __call__(self, acts: Any, units: Any) -> Any:
        return -self.objective(acts, units)


def render_visualizations(job: Job, progress: ProgressReporter) -> dict[str, Any]:
    """Feature visualizations for units (grouped by unit set: one objective, one batch)."""
    from worker import featurevis

    params = job.params
    units = list(
        Unit.objects.select_related("unit_set__layer__network").filter(pk__in=params["units"])
    )
    preset_name = str(params.get("preset", "lucent"))
    try:
        config = featurevis.preset(
            preset_name,
            images_per_unit=int(params.get("n_images", 1)),
            **params.get("overrides", {}),
        )
    except (TypeError, ValueError) as err:
        raise JobFailed(f"feature-visualization settings: {err}") from None
    signs = [int(sign) for sign in params.get("signs", [1, -1])]
    runs = [(unit_set, members, sign) for unit_set, members in group_by_unit_set(units)
            for sign in signs]  # fmt: skip
    saved = 0
    for done, (unit_set, members, sign) in enumerate(runs):
        share = Share(progress, start=done / len(runs), width=1 / len(runs))
        saved += render_group(job, unit_set, members, config, preset_name, sign, share)
    return {"visualizations": saved, "units": len(units), "preset": preset_name}


def group_by_unit_set(units: list[Unit]) -> list[tuple[UnitSet, list[Unit]]]:
    groups: dict[int, tuple[UnitSet, list[Unit]]] = {}
    for unit in units:
        groups.setdefault(unit.unit_set_id, (unit.unit_set, []))[1].append(unit)
    return list(groups.values())


class Share:
    """One run's slice [start, start + width] of a job's progress bar."""

    def __init__(self, progress: ProgressReporter, start: float, width: float) -> None:
        self.progress, self.start, self.width = progress, start, width

    def __call__(self, fraction: float, message: str) -> None:
        self.progress(self.start + self.width * fraction, message)


def render_group(
    job: Job, unit_set: UnitSet, units: list[Unit], config: Any, preset_name: str, sign: int,
    progress: Share,
) -> int:  # fmt: skip
    from worker import featurevis

    network = load_network(unit_set.layer.network)
    objective = objective_for(unit_set, load_projector(unit_set))
    if sign < 0:
        objective = Negated(objective)
    extremes = [extreme_natural_activation(unit, sign) for unit in units]
    values = [sign * v for v in extremes if v is not None]
    known = values if len(values) == len(units) else None  # None: some unit lacks exemplars
    label = f"{unit_set.name} ({'max' if sign > 0 else 'min'})"
    results = featurevis.visualize(
        network, unit_set.layer.name, objective, [u.index for u in units], config,
        seed=int(job.params.get("seed", 0)), top_natural_activations=known,
        progress=lambda fraction, message: progress(fraction, f"{label}: {message}"),
    )  # fmt: skip
    by_index = {unit.index: unit for unit in units}
    for result in results:
        services.do_save_visualization(by_index[result.unit], result, preset_name, sign)
    return len(results)


def extreme_natural_activation(unit: Unit, sign: int) -> float | None:
    """The unit's most extreme natural exemplar activation in the direction of `sign`."""
    for exemplar_set in unit.exemplar_sets.all():
        entries = exemplar_set.top if sign > 0 else exemplar_set.bottom
        if entries:
            return float(entries[0]["value"])
    return None


def compute_occlusion(job: Job, progress: ProgressReporter) -> dict[str, Any]:
    """Occlusion maps of units on base images (default: each unit's strongest exemplars)."""
    from worker.pipelines import occlusion

    params = job.params
    config = occlusion.OcclusionConfig(
        occluder_fraction=float(params.get("occluder_fraction", 0.4)),
        stride=int(params.get("stride", 2)),
    )
    units = list(
        Unit.objects.select_related("unit_set__layer__network").filter(pk__in=params["units"])
    )
    work_items = [(unit, image_id) for unit in units for image_id in base_images(unit, params)]
    for done, (unit, image_id) in enumerate(work_items):
        progress(done / max(len(work_items), 1), f"unit {unit}, image {image_id}")
        occlusion_for(unit, services.Image.objects.get(pk=image_id), config)
    return {"maps": len(work_items), "units": len(units)}


def base_images(unit: Unit, params: dict[str, Any]) -> list[int]:
    if params.get("base_images"):
        return [int(i) for i in params["base_images"]]
    n_base = int(params.get("n_base", 3))
    for exemplar_set in unit.exemplar_sets.all():
        return [entry["image"] for entry in exemplar_set.top[:n_base]]
    raise JobFailed(f"{unit} has no exemplars: compute them first")


def occlusion_for(unit: Unit, image: Any, config: Any) -> None:
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
    result = occlusion.occlusion_map(unit_fn, pixels, config)
    services.do_save_occlusion_map(unit, image, result, config, pixels)
