"""Natural exemplars: one streaming pass over an image set for every unit of several unit sets.

For each unit the pass keeps

- the exact top-k and bottom-k images (value, image id), sorted, ties broken by the smaller
  image id, by merging each batch into the running lists (``[units, k + batch]``, then cut);
- a seeded uniform sample of the images (the bottom-k sketch of
  :mod:`worker.pipelines.sampling`: the ``sketch_size`` images of smallest hash priority, one
  sample shared by all units, with every unit's value on it), from which quantile-band
  thresholds are read at the end and images inside each band are drawn. With at most
  ``sketch_size`` images the sketch holds every image and the bands are exact; beyond that, a
  band image's true quantile differs from the band's by about ``sqrt(q (1 - q) / sketch_size)``
  (0.8 points at the median for 4096);
- running statistics (mean, std, min, max, fraction positive).

Memory is ``units x (2k + sketch_size)`` values whatever the number of images: no images x units
matrix is ever held. The network runs only as deep as the deepest tapped layer.

The state is mergeable (:class:`ExemplarState`): a Job cuts an image set into ranges, each shard
returns its range's state, and the merge gives exactly what one pass over all images gives.

From the top and bottom lists, :func:`imi_batches` builds the Borowski et al. (2021) /
Zimmermann et al. (2023) structure: 20 batches of 10, interleaved by rank (batch b holds ranks
b, b+20, ..., b+180, so all batches are comparably extreme); the batch's most extreme image is
the query and the other nine are the references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from worker.pipelines.loading import ImageBatch, ImageRef, image_batches
from worker.pipelines.networks import (
    LayerTap,
    Network,
    TruncatedNetwork,
    autocast_context,
    inference_network,
    prepare_batch,
)
from worker.pipelines.sampling import bottom_k, hash_priorities
from worker.pipelines.units import UnitProjector

__all__ = [
    "DEFAULT_BANDS",
    "BandExemplars",
    "ExemplarConfig",
    "ExemplarSet",
    "ExemplarState",
    "ImiBatch",
    "QuantileBand",
    "compute_exemplars",
    "exemplar_states",
    "merge_states",
    "imi_batches",
    "oom_fallback",
    "run_exemplar_pass",
]

Progress = Callable[[float, str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class QuantileBand:
    """Images whose activation quantile lies in ``[lower_q, upper_q]`` (0 = lowest)."""

    name: str
    lower_q: float
    upper_q: float


# Each tail quantile q gets a band of width 2 points centred on it (clamped to [0, 1]); the
# middle band is 45-55.
DEFAULT_BANDS: tuple[QuantileBand, ...] = (
    QuantileBand("q01", 0.00, 0.02),
    QuantileBand("q05", 0.04, 0.06),
    QuantileBand("q15", 0.14, 0.16),
    QuantileBand("q45_55", 0.45, 0.55),
    QuantileBand("q85", 0.84, 0.86),
    QuantileBand("q95", 0.94, 0.96),
    QuantileBand("q99", 0.98, 1.00),
)


@dataclass(frozen=True)
class ExemplarConfig:
    k: int = 200  # top-k and bottom-k per unit
    band_size: int = 20  # images drawn inside each quantile band
    bands: tuple[QuantileBand, ...] = DEFAULT_BANDS
    sketch_size: int = 4096  # reservoir of images for quantile thresholds
    seed: int = 0
    batch_size: int = 64
    num_workers: int = 0  # decoding processes
    # At most one image per source photo in the top/bottom lists and in each band (crops and
    # flips of one photo are one photo); needs the batches' source_ids.
    distinct_sources: bool = False


@dataclass
class BandExemplars:
    band: QuantileBand
    lower_threshold: Tensor  # [units]
    upper_threshold: Tensor  # [units]
    values: Tensor  # [units, n] sorted ascending
    image_ids: Tensor  # [units, n]


@dataclass(frozen=True)
class ImiBatch:
    query_id: int
    query_value: float
    reference_ids: tuple[int, ...]
    reference_values: tuple[float, ...]


@dataclass
class ExemplarSet:
    """Exemplars of every unit of one unit set (unit u is row u of each tensor)."""

    n_images: int
    top_values: Tensor  # [units, k] descending
    top_ids: Tensor  # [units, k]
    bottom_values: Tensor  # [units, k] ascending
    bottom_ids: Tensor  # [units, k]
    bands: dict[str, BandExemplars]
    mean: Tensor  # [units]
    std: Tensor
    minimum: Tensor
    maximum: Tensor
    fraction_positive: Tensor
    skipped_ids: list[int] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return int(self.top_values.shape[0])

    def imi_batches(self, unit: int, side: Literal["top", "bottom"]) -> list[ImiBatch]:
        values, ids = (
            (self.top_values[unit], self.top_ids[unit])
            if side == "top"
            else (self.bottom_values[unit], self.bottom_ids[unit])
        )
        real = ids >= 0  # with distinct sources, a row may end in padding
        return imi_batches(values[real], ids[real])

    def unit_record(self, unit: int) -> dict[str, Any]:
        """Everything about one unit as JSON-able lists (for storing rows)."""

        def pairs(ids: Tensor, values: Tensor) -> list[list[float]]:
            rows = zip(ids.tolist(), values.tolist(), strict=True)
            return [[int(i), float(v)] for i, v in rows if i >= 0]  # padding has id -1

        return {
            "top": pairs(self.top_ids[unit], self.top_values[unit]),
            "bottom": pairs(self.bottom_ids[unit], self.bottom_values[unit]),
            "bands": {
                name: {
                    "lower_q": band.band.lower_q,
                    "upper_q": band.band.upper_q,
                    "lower_threshold": float(band.lower_threshold[unit]),
                    "upper_threshold": float(band.upper_threshold[unit]),
                    "images": pairs(band.image_ids[unit], band.values[unit]),
                }
                for name, band in self.bands.items()
            },
            "stats": {
                "mean": float(self.mean[unit]),
                "std": float(self.std[unit]),
                "min": float(self.minimum[unit]),
                "max": float(self.maximum[unit]),
                "fraction_positive": float(self.fraction_positive[unit]),
                "n_images": self.n_images,
            },
            "imi": {
                side: [
                    {"query": b.query_id, "references": list(b.reference_ids)}
                    for b in self.imi_batches(unit, side)  # type: ignore[arg-type]
                ]
                for side in ("top", "bottom")
            },
        }


def imi_batches(
    values: Tensor, image_ids: Tensor, n_batches: int = 20, batch_size: int = 10
) -> list[ImiBatch]:
    """Interleaved rank batches from one sorted extreme list (most extreme first).

    With fewer than ``n_batches * batch_size`` images, fewer batches are made (same stride rule).
    """
    available = int(image_ids.shape[0])
    count = min(n_batches, available // batch_size)
    batches = []
    for b in range(count):
        ranks = [b + count * i for i in range(batch_size)]
        batches.append(
            ImiBatch(
                query_id=int(image_ids[ranks[0]]),
                query_value=float(values[ranks[0]]),
                reference_ids=tuple(int(image_ids[r]) for r in ranks[1:]),
                reference_values=tuple(float(values[r]) for r in ranks[1:]),
            )
        )
    return batches


# --------------------------------------------------------------------------------------------
# Accumulators


def _sort_by_value_then_id(values: Tensor, ids: Tensor, descending: bool) -> tuple[Tensor, Tensor]:
    """Row-wise sort of ``values, ids: [units, n]`` by value, ties by ascending id."""
    order = _value_then_id_order(values, ids, descending)
    return values.gather(1, order), ids.gather(1, order)


def _value_then_id_order(values: Tensor, ids: Tensor, descending: bool) -> Tensor:
    """The row-wise permutation that sorts by value, ties by ascending id."""
    by_id = torch.argsort(ids, dim=1, stable=True)
    by_value = torch.argsort(values.gather(1, by_id), dim=1, descending=descending, stable=True)
    return by_id.gather(1, by_value)


def _first_per_source(sources: Tensor) -> Tensor:
    """``sources: [units, n]`` -> mask of each source's first occurrence along every row."""
    order = torch.argsort(sources, dim=1, stable=True)  # equal sources keep their order
    ordered = sources.gather(1, order)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return torch.zeros_like(first).scatter_(1, order, first)


def _kept_first(keep: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    """Move each row's kept entries (``keep: [units, n]``) to its front, in their order."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    return tuple(row.gather(1, order) for row in rows)


class _ExtremeTracker:
    """Running exact top-k (``largest``) or bottom-k of each unit; with ``distinct``, of each
    unit's best image per source photo (rows may then end in padding: id -1, the worst value).

    Either way the lists of two shards merge into the lists of one pass: a source among the
    union's k best has its best image among its own shard's k best sources.
    """

    def __init__(
        self, n_units: int, k: int, largest: bool, device: torch.device, distinct: bool = False
    ) -> None:
        self.k = k
        self.largest = largest
        self.distinct = distinct
        self.values = torch.empty(n_units, 0, device=device)
        self.ids = torch.empty(n_units, 0, dtype=torch.int64, device=device)
        self.sources = torch.empty(n_units, 0, dtype=torch.int64, device=device)

    @property
    def worst(self) -> float:
        return -math.inf if self.largest else math.inf

    def update(self, unit_acts: Tensor, image_ids: Tensor, source_ids: Tensor | None) -> None:
        """``unit_acts: [batch, units]``, ``image_ids, source_ids: [batch]``."""
        # A NaN (e.g. a bf16 overflow) must never count as extreme.
        incoming = torch.nan_to_num(unit_acts.T, nan=self.worst)  # [units, batch]
        units = incoming.shape[0]
        if not self.distinct:
            self._fold(incoming, image_ids.expand(units, -1))
            return
        sources = image_ids if source_ids is None else source_ids
        self._fold_distinct(incoming, image_ids.expand(units, -1), sources.expand(units, -1))

    def merge(self, other: _ExtremeTracker) -> None:
        device = self.values.device
        values, ids = other.values.to(device), other.ids.to(device)
        if self.distinct:
            self._fold_distinct(values, ids, other.sources.to(device))
        else:
            self._fold(values, ids)

    def _fold(self, values: Tensor, ids: Tensor) -> None:
        """Merge ``values, ids: [units, n]`` into the lists: sort by value, ties by id, cut."""
        values = torch.cat([self.values, values], dim=1)  # [units, k + n]
        ids = torch.cat([self.ids, ids], dim=1)
        values, ids = _sort_by_value_then_id(values, ids, descending=self.largest)
        self.values, self.ids = values[:, : self.k], ids[:, : self.k]

    def _fold_distinct(self, values: Tensor, ids: Tensor, sources: Tensor) -> None:
        """As `_fold`, keeping only the first (best) image of each source photo."""
        values = torch.cat([self.values, values], dim=1)
        ids = torch.cat([self.ids, ids], dim=1)
        sources = torch.cat([self.sources, sources], dim=1)
        order = _value_then_id_order(values, ids, descending=self.largest)
        values, ids, sources = (
            values.gather(1, order),
            ids.gather(1, order),
            sources.gather(1, order),
        )
        keep = _first_per_source(sources) & (ids >= 0)
        values, ids, sources = _kept_first(keep, values, ids, sources)
        kept = keep.sum(dim=1, keepdim=True)
        padding = torch.arange(ids.shape[1], device=ids.device)[None, :] >= kept
        width = min(self.k, int(kept.max()) if kept.numel() else 0)
        self.values = values.masked_fill(padding, self.worst)[:, :width]
        self.ids = ids.masked_fill(padding, -1)[:, :width]
        self.sources = sources.masked_fill(padding, -1)[:, :width]


class _Sketch:
    """A seeded uniform sample of images (their ``sketch_size`` smallest hash priorities) with
    every unit's value on them: the bottom-k sketch of :mod:`worker.pipelines.sampling`, so two
    shards' sketches merge into exactly the sketch of one pass."""

    def __init__(self, n_units: int, size: int, seed: int, device: torch.device) -> None:
        self.size = size
        self.seed = seed
        self.values = torch.empty(n_units, 0, device=device)  # [units, n]
        self.ids = torch.empty(0, dtype=torch.int64, device=device)  # [n]
        self.sources = torch.empty(0, dtype=torch.int64, device=device)  # [n]
        self.priorities = torch.empty(0, dtype=torch.int64, device=device)  # [n]

    def update(self, unit_acts: Tensor, image_ids: Tensor, source_ids: Tensor | None) -> None:
        priorities = hash_priorities(image_ids, self.seed)
        sources = image_ids if source_ids is None else source_ids
        self._fold(unit_acts.T, image_ids, sources, priorities)

    def merge(self, other: _Sketch) -> None:
        device = self.ids.device
        self._fold(
            other.values.to(device), other.ids.to(device), other.sources.to(device),
            other.priorities.to(device),
        )  # fmt: skip

    def _fold(self, values: Tensor, ids: Tensor, sources: Tensor, priorities: Tensor) -> None:
        """``values: [units, n]``; ``ids, sources, priorities: [n]``."""
        if self.ids.shape[0] >= self.size:  # full: only images beating the largest kept enter
            keep = priorities < self.priorities.max()
            if not bool(keep.any()):
                return
            values, ids, sources = values[:, keep], ids[keep], sources[keep]
            priorities = priorities[keep]
        values = torch.cat([self.values, values], dim=1)
        ids, sources = torch.cat([self.ids, ids]), torch.cat([self.sources, sources])
        priorities = torch.cat([self.priorities, priorities])
        chosen = bottom_k(priorities, self.size)
        self.values, self.ids, self.sources = values[:, chosen], ids[chosen], sources[chosen]
        self.priorities = priorities[chosen]


class _Stats:
    def __init__(self, n_units: int, device: torch.device) -> None:
        self.count = 0
        self.total = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.total_sq = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.positive = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.minimum = torch.full((n_units,), math.inf, device=device)
        self.maximum = torch.full((n_units,), -math.inf, device=device)

    def update(self, unit_acts: Tensor) -> None:
        acts = unit_acts.double()
        self.count += acts.shape[0]
        self.total += acts.sum(dim=0)
        self.total_sq += acts.square().sum(dim=0)
        self.positive += (acts > 0).sum(dim=0)
        self.minimum = torch.minimum(self.minimum, unit_acts.min(dim=0).values)
        self.maximum = torch.maximum(self.maximum, unit_acts.max(dim=0).values)

    def merge(self, other: _Stats) -> None:
        device = self.total.device
        self.count += other.count
        self.total += other.total.to(device)
        self.total_sq += other.total_sq.to(device)
        self.positive += other.positive.to(device)
        self.minimum = torch.minimum(self.minimum, other.minimum.to(device))
        self.maximum = torch.maximum(self.maximum, other.maximum.to(device))


class ExemplarState:
    """The exemplar pass's state for one unit set: what a shard over a range of images returns.

    ``add`` takes a batch; ``merge`` folds in another range's state, and the result is exactly
    the state of one pass over both ranges, in any order (top/bottom lists sorted by value with
    ties by image id, the sketch by hash priority; the statistics are float64 sums, equal up to
    their last bits). ``state_dict``/``from_state_dict`` carry it between processes; ``finish``
    reads out the :class:`ExemplarSet`. Its size is ``units x (2k + sketch_size)`` values,
    whatever the number of images.
    """

    _TENSORS = ("top", "bottom", "sketch", "stats")

    def __init__(self, n_units: int, config: ExemplarConfig, device: torch.device) -> None:
        self.config = config
        distinct = config.distinct_sources
        self.top = _ExtremeTracker(n_units, config.k, True, device, distinct)
        self.bottom = _ExtremeTracker(n_units, config.k, False, device, distinct)
        self.sketch = _Sketch(n_units, config.sketch_size, config.seed, device)
        self.stats = _Stats(n_units, device)
        self.skipped_ids: list[int] = []

    def add(self, unit_acts: Tensor, image_ids: Tensor, source_ids: Tensor | None = None) -> None:
        """``unit_acts: [batch, units]``, ``image_ids, source_ids: [batch]`` (no source ids:
        every image is its own source)."""
        self.top.update(unit_acts, image_ids, source_ids)
        self.bottom.update(unit_acts, image_ids, source_ids)
        self.sketch.update(unit_acts, image_ids, source_ids)
        self.stats.update(unit_acts)

    def merge(self, other: ExemplarState) -> ExemplarState:
        self.top.merge(other.top)
        self.bottom.merge(other.bottom)
        self.sketch.merge(other.sketch)
        self.stats.merge(other.stats)
        self.skipped_ids = sorted({*self.skipped_ids, *other.skipped_ids})
        return self

    def state_dict(self) -> dict[str, Tensor]:
        stats = self.stats
        tensors = {
            "top_values": self.top.values, "top_ids": self.top.ids,
            "top_sources": self.top.sources,
            "bottom_values": self.bottom.values, "bottom_ids": self.bottom.ids,
            "bottom_sources": self.bottom.sources,
            "sketch_values": self.sketch.values, "sketch_ids": self.sketch.ids,
            "sketch_sources": self.sketch.sources, "sketch_priorities": self.sketch.priorities,
            "count": torch.tensor(stats.count), "total": stats.total, "total_sq": stats.total_sq,
            "positive": stats.positive, "minimum": stats.minimum, "maximum": stats.maximum,
            "skipped_ids": torch.tensor(self.skipped_ids, dtype=torch.int64),
        }  # fmt: skip
        return {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}

    @classmethod
    def from_state_dict(
        cls, tensors: Mapping[str, Tensor], config: ExemplarConfig, device: torch.device
    ) -> ExemplarState:
        state = cls(int(tensors["top_values"].shape[0]), config, device)
        t = {name: tensor.to(device) for name, tensor in tensors.items()}
        state.top.values, state.top.ids = t["top_values"], t["top_ids"]
        state.top.sources = t["top_sources"]
        state.bottom.values, state.bottom.ids = t["bottom_values"], t["bottom_ids"]
        state.bottom.sources = t["bottom_sources"]
        sketch = state.sketch
        sketch.values, sketch.ids, sketch.sources = (
            t["sketch_values"],
            t["sketch_ids"],
            t["sketch_sources"],
        )
        sketch.priorities = t["sketch_priorities"]
        stats = state.stats
        stats.count = int(t["count"])
        stats.total, stats.total_sq, stats.positive = t["total"], t["total_sq"], t["positive"]
        stats.minimum, stats.maximum = t["minimum"], t["maximum"]
        state.skipped_ids = [int(i) for i in t["skipped_ids"].tolist()]
        return state

    def finish(self) -> ExemplarSet:
        stats = self.stats
        count = max(stats.count, 1)
        mean = stats.total / count
        variance = (stats.total_sq / count - mean.square()).clamp_min(0.0)
        return ExemplarSet(
            n_images=stats.count,
            top_values=self.top.values.cpu(),
            top_ids=self.top.ids.cpu(),
            bottom_values=self.bottom.values.cpu(),
            bottom_ids=self.bottom.ids.cpu(),
            bands=self._bands(),
            mean=mean.float().cpu(),
            std=variance.sqrt().float().cpu(),
            minimum=stats.minimum.cpu(),
            maximum=stats.maximum.cpu(),
            fraction_positive=(stats.positive / count).float().cpu(),
            skipped_ids=list(self.skipped_ids),
        )

    def _bands(self) -> dict[str, BandExemplars]:
        values, ids = self.sketch.values, self.sketch.ids
        n = int(ids.shape[0])
        if n == 0:
            return {}
        units = values.shape[0]
        order = _value_then_id_order(values, ids.expand(units, -1), descending=False)
        sorted_values = values.gather(1, order).cpu()
        sorted_ids = ids.expand(units, -1).gather(1, order).cpu()
        sorted_sources = self.sketch.sources.expand(units, -1).gather(1, order).cpu()
        generator = torch.Generator().manual_seed(self.config.seed)
        bands = {}
        for band in self.config.bands:
            first, last = _band_ranks(band, n)
            span = last - first + 1
            permutation = torch.randperm(span, generator=generator)
            if self.config.distinct_sources:
                band_values, band_ids = self._distinct_band(
                    sorted_values, sorted_ids, sorted_sources, first + permutation
                )
            else:
                positions = first + torch.sort(permutation[: self.config.band_size]).values
                band_values, band_ids = sorted_values[:, positions], sorted_ids[:, positions]
            bands[band.name] = BandExemplars(
                band=band,
                lower_threshold=sorted_values[:, first],
                upper_threshold=sorted_values[:, last],
                values=band_values,
                image_ids=band_ids,
            )
        return bands

    def _distinct_band(
        self, values: Tensor, ids: Tensor, sources: Tensor, drawn: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The band's images drawn in the order ``drawn`` (ranks), skipping a source already
        drawn, up to band_size per unit, in ascending rank; rows end in padding (id -1)."""
        units = values.shape[0]
        candidates = drawn.expand(units, -1)  # [units, span] ranks in drawing order
        keep = _first_per_source(sources.gather(1, candidates))
        keep &= keep.cumsum(dim=1) <= self.config.band_size
        (ranks,) = _kept_first(keep, candidates)
        count = keep.sum(dim=1, keepdim=True)
        width = min(self.config.band_size, int(count.max()))
        ranks = ranks[:, :width]
        padding = torch.arange(width)[None, :] >= count
        ranks = torch.where(padding, torch.iinfo(torch.int64).max, ranks).sort(dim=1).values
        safe = ranks.clamp_max(values.shape[1] - 1)
        band_values = values.gather(1, safe).masked_fill(padding, math.nan)
        band_ids = ids.gather(1, safe).masked_fill(padding, -1)
        return band_values, band_ids


def _band_ranks(band: QuantileBand, n: int) -> tuple[int, int]:
    """Ranks r (0 = lowest) of n sorted values whose quantile r / (n - 1) lies in the band."""
    if n == 1:
        return 0, 0
    first = math.ceil(band.lower_q * (n - 1) - 1e-9)
    last = math.floor(band.upper_q * (n - 1) + 1e-9)
    if first > last:  # too few images for the band: take the nearest rank
        middle = round((band.lower_q + band.upper_q) / 2 * (n - 1))
        return middle, middle
    return first, last


# --------------------------------------------------------------------------------------------
# The pass


def compute_exemplars(
    network: Network,
    unit_sets: Mapping[str, UnitProjector],
    batches: Iterable[ImageBatch],
    config: ExemplarConfig = ExemplarConfig(),
    progress: Progress | None = None,
    total_images: int | None = None,
) -> dict[str, ExemplarSet]:
    """One pass over ``batches`` for all ``unit_sets``; returns an ExemplarSet per unit set."""
    states = exemplar_states(network, unit_sets, batches, config, progress, total_images)
    return {name: state.finish() for name, state in states.items()}


def exemplar_states(
    network: Network,
    unit_sets: Mapping[str, UnitProjector],
    batches: Iterable[ImageBatch],
    config: ExemplarConfig = ExemplarConfig(),
    progress: Progress | None = None,
    total_images: int | None = None,
) -> dict[str, ExemplarState]:
    """The mergeable state of one pass over ``batches`` (a shard's range of an image set)."""
    if not unit_sets:
        raise ValueError("no unit set was given")
    device = network.device
    taps = list(dict.fromkeys(projector.tap for projector in unit_sets.values()))
    truncated = inference_network(network, taps)
    projectors = {name: projector.to(device).eval() for name, projector in unit_sets.items()}
    states = {
        name: ExemplarState(projector.n_units, config, device)
        for name, projector in projectors.items()
    }
    done = 0
    for batch in batches:
        for state in states.values():
            state.skipped_ids.extend(batch.skipped_ids)
        if len(batch):
            image_ids = batch.image_ids.to(device)
            sources = None if batch.source_ids is None else batch.source_ids.to(device)
            for name, unit_acts in _unit_activations(truncated, projectors, batch.pixels, device):
                states[name].add(unit_acts, image_ids, sources)
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"{done} of {total_images or '?'} images")
    return states


def merge_states(shards: Iterable[Mapping[str, ExemplarState]]) -> dict[str, ExemplarState]:
    """Fold shards' states (each a unit set name -> state) into one per unit set."""
    merged: dict[str, ExemplarState] = {}
    for states in shards:
        for name, state in states.items():
            if name in merged:
                merged[name].merge(state)
            else:
                merged[name] = state
    return merged


def _unit_activations(
    truncated: TruncatedNetwork,
    projectors: Mapping[str, UnitProjector],
    pixels: Tensor,
    device: torch.device,
) -> Iterable[tuple[str, Tensor]]:
    with torch.no_grad():
        with autocast_context(device):
            acts = truncated(prepare_batch(pixels, device))
        # Projections (NMF codes, SAE top-k) run in fp32: bf16 would reorder near-ties.
        for name, projector in projectors.items():
            layer_acts = acts[projector.tap.key].float().contiguous()
            yield name, projector(layer_acts).float()  # [batch, units]


def oom_fallback(
    run: Callable[[int], T],
    batch_size: int,
    min_batch_size: int = 1,
    on_retry: Callable[[int], None] | None = None,
) -> T:
    """``run(batch_size)``, halving the batch and retrying after a CUDA out-of-memory error."""
    while True:
        try:
            return run(batch_size)
        except torch.cuda.OutOfMemoryError:
            if batch_size <= min_batch_size:
                raise
        # Outside the except block, so the traceback (and the tensors it holds) is released.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        batch_size = max(min_batch_size, batch_size // 2)
        if on_retry is not None:
            on_retry(batch_size)


def run_exemplar_pass(
    network: Network,
    unit_sets: Mapping[str, UnitProjector],
    images: Sequence[ImageRef],
    config: ExemplarConfig = ExemplarConfig(),
    progress: Progress | None = None,
) -> dict[str, ExemplarSet]:
    """Decode ``images`` in ``config.num_workers`` processes and run :func:`compute_exemplars`.

    On CUDA out-of-memory the whole pass restarts with half the batch (its result does not
    depend on the batch size).
    """

    def attempt(batch_size: int) -> dict[str, ExemplarSet]:
        batches = image_batches(
            images,
            network.preprocess,
            batch_size,
            num_workers=config.num_workers,
            pin_memory=network.device.type == "cuda",
        )
        return compute_exemplars(network, unit_sets, batches, config, progress, len(images))

    def announce(batch_size: int) -> None:
        if progress is not None:
            progress(0.0, f"out of GPU memory: restarting with batch size {batch_size}")

    return oom_fallback(attempt, config.batch_size, on_retry=announce)


def layer_taps(unit_sets: Mapping[str, UnitProjector]) -> list[LayerTap]:
    """The distinct layer taps a set of projectors reads (for sizing and logging)."""
    return list(dict.fromkeys(projector.tap for projector in unit_sets.values()))
