"""The work of a `compute_spectra` Job on a worker (its parameters: `backend/atlas/spectra.py`).

Each shard runs its range of images through the network once and returns, for every layer and
basis, the float64 covariance sums (worker/analyses/spectrum.py); the merge adds the sums (one
pass over every image, exactly), takes the eigenvalues and their figures, runs the stimulus
path once for the random-projection test, and writes one Spectrum row per layer and basis.
"""

from __future__ import annotations

from typing import Any

from backend.atlas import spectra
from backend.stimuli.jobs import JobFailed, ProgressReporter, ShardOutput, load_state
from backend.stimuli.models import ImageSet, Job, Layer, Shard, UnitSet
from backend.stimuli.work import batch_size_for, image_refs, load_network, load_projector


def _rows(job: Job) -> tuple[list[Layer], list[UnitSet], ImageSet]:
    try:
        layers, unit_sets = spectra.spectrum_targets(job.params)
    except Exception as err:  # noqa: BLE001 - a row went away since the job was planned
        raise JobFailed(str(err)) from None
    return layers, unit_sets, ImageSet.objects.get(pk=job.params["image_set"])


def _config(job: Job) -> Any:
    from worker.analyses import spectrum

    params = job.params
    try:
        return spectrum.SpectrumConfig(
            sampling=params.get("sampling", "pooled"),
            positions_per_image=int(params.get("positions_per_image", 16)),
            seed=int(params.get("seed", 0)),
        )
    except spectrum.SpectrumError as err:
        raise JobFailed(str(err)) from None


def _targets(layers: list[Layer], unit_sets: list[UnitSet]) -> dict[str, Any]:
    """Target name → SpectrumTarget: `layer:<id>` (its channels), `unit_set:<id>` (its basis)."""
    from worker.analyses.spectrum import SpectrumTarget
    from worker.pipelines.networks import LayerTap

    targets = {f"layer:{layer.pk}": SpectrumTarget(LayerTap(layer.name)) for layer in layers}
    for unit_set in unit_sets:
        projector = load_projector(unit_set)
        targets[f"unit_set:{unit_set.pk}"] = SpectrumTarget(projector.tap, projector)
    return targets


def spectrum_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """The shard's images once through the network: every target's covariance sums."""
    from worker.analyses import spectrum
    from worker.pipelines import exemplars, loading

    layers, unit_sets, image_set = _rows(job)
    network = load_network((layers[0] if layers else unit_sets[0].layer).network)
    targets, config = _targets(layers, unit_sets), _config(job)
    refs = image_refs(image_set, shard.covers)

    def run(batch_size: int) -> Any:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return spectrum.spectrum_sums(network, targets, batches, config, progress, len(refs))

    try:
        sums = exemplars.oom_fallback(run, batch_size_for(job))
    except spectrum.SpectrumError as err:
        raise JobFailed(str(err)) from None
    state = {name: s.state_dict() for name, s in sums.items()}
    return ShardOutput({"images": len(refs)}, state=state)


def compute_spectra(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    """Merge the sums, read the figures, run the path, and write the rows."""
    from worker.analyses import spectrum

    layers, unit_sets, image_set = _rows(job)
    merged: dict[str, Any] = {}
    for shard in shards:
        for name, tensors in load_state(shard).items():
            part = spectrum.CovarianceSums.from_state_dict(tensors)
            merged[name] = merged[name].merge(part) if name in merged else part
    ranks, manifold_dim = spectra.fit_ranks(job.params), job.params.get("manifold_dim")
    progress(None, f"eigendecomposition of {len(merged)} covariances")
    figures = {}
    for name, sums in merged.items():
        try:
            figures[name] = spectrum.spectrum_figures(sums, ranks, manifold_dim)
        except spectrum.SpectrumError as err:  # e.g. a layer whose activity never varies
            raise JobFailed(f"{_target_label(name)}: {err}") from None
    progress(None, "random projections of the stimulus path")
    energies = path_energies(job, layers, unit_sets, image_set)
    rows = [_row(job, name, figures[name], energies, image_set) for name in sorted(merged)]

    def save() -> None:
        spectra.do_save_spectra(rows)

    result = {
        "spectra": len(rows), "images": sum(int(s.result.get("images", 0)) for s in shards),
        "alpha": {name: f.fit.alpha if f.fit else None for name, f in figures.items()},
    }  # fmt: skip
    return ShardOutput(result, save=save)


def _target_label(name: str) -> str:
    kind, _, pk = name.partition(":")
    if kind == "unit_set":
        unit_set = UnitSet.objects.select_related("layer").get(pk=int(pk))
        return f"{unit_set.layer.name} in {unit_set.name}"
    return str(Layer.objects.get(pk=int(pk)).name)


def _row(
    job: Job, name: str, figures: Any, energies: dict[str, Any], image_set: ImageSet
) -> dict[str, Any]:
    kind, _, pk = name.partition(":")
    unit_set = UnitSet.objects.get(pk=int(pk)) if kind == "unit_set" else None
    layer_id = unit_set.layer_id if unit_set else int(pk)
    layer = Layer.objects.get(pk=layer_id)
    own = energies.get(layer.name) if unit_set is None else None  # a basis: see docs/spectra.md
    pixels = energies.get("pixels")
    fit = figures.fit
    return {
        "layer_id": layer_id, "unit_set_id": unit_set.pk if unit_set else None,
        "image_set_id": image_set.pk, "sampling": job.params.get("sampling", "pooled"),
        "n_samples": figures.n_samples, "dimension": figures.dimension,
        "eigenvalues": figures.eigenvalues, "alpha": fit.alpha if fit else None,
        "alpha_r2": fit.r_squared if fit else None, "fit_first": fit.first if fit else None,
        "fit_last": fit.last if fit else None, "fit_error": figures.fit_error,
        "participation_ratio": figures.participation_ratio, "components": figures.components,
        "manifold_dim": job.params.get("manifold_dim"), "criterion": figures.criterion,
        "energy": own.energy if own else None, "energy_shuffled": own.shuffled if own else None,
        "energy_pixels": pixels.energy if pixels and own else None, "job": job,
        "details": {
            "intercept": fit.intercept if fit else None, "weights": fit.weights if fit else None,
            "path": energies.get("config"), "projections": own.projections if own else [],
            "pixel_projections": pixels.projections if pixels and own else [],
            "positions_per_image": job.params.get("positions_per_image", 16)
            if job.params.get("sampling") == "positions" else None,
        },
    }  # fmt: skip


def path_energies(
    job: Job, layers: list[Layer], unit_sets: list[UnitSet], image_set: ImageSet
) -> dict[str, Any]:
    """The random-projection test on every selected layer (and the pixels), or {} when the
    job's `path` is null. Keys: layer names, `pixels`, and `config` (what was run)."""
    from dataclasses import asdict

    from worker.analyses import spectrum
    from worker.pipelines.networks import LayerTap

    params: dict[str, Any] = {**spectra.DEFAULT_PATH, **(job.params.get("path") or {})}
    if job.params.get("path", spectra.DEFAULT_PATH) is None or not layers:
        return {}
    image_position = int(params.pop("image", 0))
    network = load_network(layers[0].network)
    try:
        config = spectrum.PathConfig(**params, size=network.preprocess.crop)
    except (TypeError, spectrum.SpectrumError) as err:
        raise JobFailed(f"path: {err}") from None
    if config.kind == "circle":
        frames = spectrum.circle_path(config)
    else:
        frames = spectrum.image_path(_path_image(network, image_set, image_position), config)
    taps = [LayerTap(layer.name) for layer in layers]
    energies: dict[str, Any] = dict(spectrum.path_energies(network, taps, frames, config))
    energies["config"] = {**asdict(config), "image": image_position}
    return energies


def _path_image(network: Any, image_set: ImageSet, position: int) -> Any:
    """The image at `position` in the set, resized and cropped as the network sees it, in
    [0, 1] (the normalisation is applied after the path's shifts)."""
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from worker.pipelines import networks

    member = image_set.members.select_related("image").filter(position=position).first()
    if member is None:
        raise JobFailed(f"image set {image_set} has no image at position {position}")
    raw = networks.Preprocess(
        resize=network.preprocess.resize, crop=network.preprocess.crop, mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0), interpolation=network.preprocess.interpolation,
    )  # fmt: skip
    with PILImage.open(default_storage.path(str(member.image.file.name))) as source:
        return networks.preprocess_image(source.convert("RGB"), raw)
