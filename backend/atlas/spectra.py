"""Spectra on the web side: what a `compute_spectra` Job's parameters mean and how they are
checked (its planner, registered in `backend/atlas/jobkinds.py`), queueing one Job for every
layer and basis a researcher selected, saving the rows, and reading them back for the pages,
the API and the per-layer CSV. The worker's side is `backend/atlas/spectra_work.py`.

Parameters of a job (JSON): `layers` (layer ids, one network) and/or `unit_sets` (ids: each a
basis on its own layer), `image_set`, `sampling` (`pooled`, the default, or `positions`),
`positions_per_image`, `seed`, `ranks` ([first, last] of the fit, default [11, 500]),
`manifold_dim` (d of the criterion 1 + 2/d; null: high-dimensional input, the bound 1),
`path` ({kind: circle | translate | rotate, steps, step, image: position, directions, seed};
null: no random-projection test), `images_per_shard`, `batch_size`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet

from backend.atlas.models import Spectrum
from backend.stimuli import jobkinds, services
from backend.stimuli.models import ImageSet, Job, Layer, UnitSet

KIND = "compute_spectra"
DEFAULT_RANKS = (11, 500)
PATH_KINDS = ("circle", "translate", "rotate")
DEFAULT_PATH = {"kind": "circle", "steps": 128, "directions": 16, "seed": 0}


def layer_dimension(shape: Iterable[int]) -> int:
    """Channels of a layer from its activation shape: (C, H, W), (tokens, C) or (C,)."""
    sizes = list(shape)
    return int(sizes[0]) if len(sizes) == 3 else int(sizes[-1]) if sizes else 0


def spectrum_targets(params: dict[str, Any]) -> tuple[list[Layer], list[UnitSet]]:
    """The layers (their channels) and the unit sets (their bases) a job's parameters name."""
    layer_ids, unit_set_ids = params.get("layers") or [], params.get("unit_sets") or []
    if not isinstance(layer_ids, list) or not isinstance(unit_set_ids, list):
        raise ValidationError("layers and unit_sets must be lists of ids")
    layers = list(Layer.objects.filter(pk__in=layer_ids).select_related("network"))
    unit_sets = list(UnitSet.objects.filter(pk__in=unit_set_ids).select_related("layer__network"))
    if len(layers) != len(set(layer_ids)) or len(unit_sets) != len(set(unit_set_ids)):
        raise ValidationError("some of the layers or unit sets named do not exist")
    if not layers and not unit_sets:
        raise ValidationError("choose the layers (or unit sets) to compute spectra for")
    networks = {layer.network_id for layer in layers} | {u.layer.network_id for u in unit_sets}
    if len(networks) > 1:
        raise ValidationError("one job covers one network: choose layers of a single network")
    unready = [str(u) for u in unit_sets if not u.is_ready]
    if unready:
        raise ValidationError(f"fit these unit sets first: {', '.join(unready)}")
    return sorted(layers, key=lambda x: x.position), unit_sets


def plan_spectra(params: dict[str, Any]) -> list[jobkinds.ShardPlan]:
    """Ranges of images; each shard returns the float64 sums of every target (mergeable)."""
    layers, unit_sets = spectrum_targets(params)
    image_set_id = params.get("image_set")
    image_set = None
    if isinstance(image_set_id, int):
        image_set = ImageSet.objects.filter(pk=image_set_id).first()
    if image_set is None:
        raise ValidationError(f"image set {params.get('image_set')!r} does not exist")
    sampling = params.get("sampling", "pooled")
    if sampling not in Spectrum.Sampling.values:
        raise ValidationError("sampling must be 'pooled' or 'positions'")
    per_image = jobkinds.positive_int(params, "positions_per_image", 16)
    first, last = fit_ranks(params)
    manifold_dim = params.get("manifold_dim")
    if manifold_dim is not None:
        jobkinds.positive_int(params, "manifold_dim", 1)
    check_path(params.get("path", DEFAULT_PATH))
    n_images = image_set.members.count()
    samples = n_images if sampling == "pooled" else n_images * per_image
    for name, dimension in target_dimensions(layers, unit_sets):
        needed = min(last, dimension) + 1
        if samples < needed:
            raise ValidationError(
                f"{name}: {samples} samples ({n_images} images, {sampling}) cannot reach rank "
                f"{min(last, dimension)} of the fit range {first}–{last}: use at least {needed} "
                f"samples (more images, or sampling 'positions'), or lower the range"
            )
    return jobkinds.image_ranges(image_set.pk, params)


def fit_ranks(params: dict[str, Any]) -> tuple[int, int]:
    ranks = params.get("ranks", list(DEFAULT_RANKS))
    valid = isinstance(ranks, list | tuple) and len(ranks) == 2
    if not valid or not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks):
        raise ValidationError("ranks must be [first, last], two whole numbers")
    if not 1 <= ranks[0] <= ranks[1]:
        raise ValidationError("ranks must satisfy 1 ≤ first ≤ last")
    return int(ranks[0]), int(ranks[1])


def check_path(path: Any) -> None:
    if path is None:
        return
    if not isinstance(path, dict) or path.get("kind", "circle") not in PATH_KINDS:
        raise ValidationError(f"path must be null or an object with kind one of {PATH_KINDS}")
    for name in ("steps", "directions"):
        value = path.get(name, 3)
        if isinstance(value, bool) or not isinstance(value, int) or value < 3 and name == "steps":
            raise ValidationError(f"path {name} must be a whole number (steps ≥ 3)")


def target_dimensions(layers: list[Layer], unit_sets: list[UnitSet]) -> list[tuple[str, int]]:
    dims = [(f"{layer.name}", layer_dimension(layer.shape)) for layer in layers]
    for unit_set in unit_sets:
        width = unit_set.n_units or layer_dimension(unit_set.layer.shape)
        dims.append((f"{unit_set.layer.name} in {unit_set.name}", int(width)))
    return dims


def do_queue_spectra(params: dict[str, Any], user: Any = None, send: bool = True) -> Job:
    """One Job for every layer and basis selected (one pass over the images for all)."""
    return services.do_queue_job(KIND, params, user, send)


# --- Saving and reading ----------------------------------------------------------------------


@transaction.atomic
def do_save_spectra(rows: list[dict[str, Any]]) -> list[Spectrum]:
    """Write each spectrum (replacing the one of the same layer, basis, set and sampling)."""
    saved = []
    keys = ("layer_id", "unit_set_id", "image_set_id", "sampling")
    for row in rows:
        key = {name: row[name] for name in keys}
        values = {name: value for name, value in row.items() if name not in keys}
        spectrum, _ = Spectrum.objects.update_or_create(**key, defaults=values)
        saved.append(spectrum)
    return saved


def spectra_of(
    network_id: int | None = None, image_set_id: int | None = None
) -> QuerySet[Spectrum]:
    rows = Spectrum.objects.select_related("layer__network", "unit_set", "image_set")
    if network_id is not None:
        rows = rows.filter(layer__network_id=network_id)
    if image_set_id is not None:
        rows = rows.filter(image_set_id=image_set_id)
    return rows.order_by("layer__network", "image_set", "sampling", "unit_set", "layer__position")


def spectrum_summary(spectrum: Spectrum) -> dict[str, Any]:
    """One layer's figures (no eigenvalues or curves): a row of the API list and the CSV."""
    return {
        "id": spectrum.pk, "network": spectrum.layer.network.name, "layer": spectrum.layer.name,
        "depth": spectrum.layer.position, "basis": spectrum.basis,
        "image_set": spectrum.image_set.name, "sampling": spectrum.sampling,
        "n_samples": spectrum.n_samples, "dimension": spectrum.dimension,
        "alpha": spectrum.alpha, "alpha_r2": spectrum.alpha_r2,
        "fit_first": spectrum.fit_first, "fit_last": spectrum.fit_last,
        "fit_error": spectrum.fit_error, "criterion": spectrum.criterion,
        "manifold_dim": spectrum.manifold_dim, "smooth": spectrum.smooth,
        "participation_ratio": spectrum.participation_ratio,
        "pr_fraction": spectrum.pr_fraction,
        "components_50": spectrum.components.get("50"),
        "components_90": spectrum.components.get("90"),
        "components_99": spectrum.components.get("99"),
        "energy": spectrum.energy, "energy_shuffled": spectrum.energy_shuffled,
        "energy_pixels": spectrum.energy_pixels, "job": spectrum.job_id,
    }  # fmt: skip


CSV_COLUMNS = [
    "network", "layer", "depth", "basis", "image_set", "sampling", "n_samples", "dimension",
    "alpha", "alpha_r2", "fit_first", "fit_last", "criterion", "manifold_dim", "smooth",
    "participation_ratio", "pr_fraction", "components_50", "components_90", "components_99",
    "energy", "energy_shuffled", "energy_pixels", "fit_error", "job", "id",
]  # fmt: skip


def spectra_csv(rows: Iterable[Spectrum]) -> str:
    """One line per layer and basis, the columns of `CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for spectrum in rows:
        writer.writerow(spectrum_summary(spectrum))
    return buffer.getvalue()


# --- Beside human accuracy (the study results page) -----------------------------------------

MIN_LAYERS_FOR_SPEARMAN = 4


def layer_code_density(by_layer: Iterable[Any]) -> dict[str, Any]:
    """Per layer of a study (its results' `by_layer` cells, labelled "source layer"): human
    accuracy beside the layer's α and participation ratio (its channels' spectrum, the latest
    computed), and Spearman's ρ across layers of accuracy with each once
    MIN_LAYERS_FOR_SPEARMAN layers have both."""
    from scipy.stats import spearmanr

    rows = []
    for cell in by_layer:
        network, _, layer = str(cell.label).rpartition(" ")
        # The cells name the network by its source (or name): the latest spectrum of a
        # network with that source and layer stands for it.
        named = Q(layer__network__source=network) | Q(layer__network__name=network)
        spectrum = (
            Spectrum.objects.filter(named, layer__name=layer, unit_set__isnull=True)
            .order_by("-computed_at").first()
        )  # fmt: skip
        rows.append({"label": cell.label, "n": cell.n, "accuracy": cell.accuracy,
                     "alpha": spectrum.alpha if spectrum else None,
                     "criterion": spectrum.criterion if spectrum else None,
                     "participation_ratio": spectrum.participation_ratio if spectrum else None,
                     "spectrum_id": spectrum.pk if spectrum else None})  # fmt: skip
    correlations = {}
    for name in ("alpha", "participation_ratio"):
        pairs = [(r["accuracy"], r[name]) for r in rows if r[name] is not None]
        if len(pairs) >= MIN_LAYERS_FOR_SPEARMAN:
            result = spearmanr(*zip(*pairs, strict=True))
            correlations[name] = {"rho": float(result.statistic), "p": float(result.pvalue),
                                  "layers": len(pairs)}  # fmt: skip
    return {"rows": rows, "spearman": correlations, "min_layers": MIN_LAYERS_FOR_SPEARMAN}
