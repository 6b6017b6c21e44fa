"""Populations: groups of units that respond alike, found by hierarchical clustering (Meyes et al.
2020, "Under the hood of neural networks: characterizing learned representations by functional
neuron populations and network ablations").

Two patterns per unit can be clustered: its activations over the images (streamed: a
:class:`CorrelationState` keeps ``Σ x`` and ``Σ x xᵀ``, mergeable across shards, never
images × units) or its class-wise ablation profile (a ``[units, classes]`` matrix). Units are
clustered by average linkage on the correlation distance ``1 - r``; the number of populations
is the one with the best silhouette (2 … ``max_populations``) or, with a threshold, what cutting
the dendrogram at that distance leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import Network, autocast_context, inference_network, prepare_batch
from worker.pipelines.units import UnitProjector

__all__ = [
    "CorrelationState",
    "PopulationError",
    "Populations",
    "cluster_units",
    "correlation_pass",
    "profile_correlation",
]

Progress = Callable[[float | None, str], None]


class PopulationError(ValueError):
    """Units cannot be clustered as asked; the message is one line for a researcher."""


class CorrelationState:
    """Streaming correlation of ``n_units`` activations over images (sums in float64)."""

    def __init__(self, n_units: int) -> None:
        self.count = 0
        self.total = torch.zeros(n_units, dtype=torch.float64)
        self.products = torch.zeros(n_units, n_units, dtype=torch.float64)

    def add(self, acts: Tensor) -> None:
        """``acts: [batch, units]``."""
        acts = acts.detach().cpu().double()
        self.count += int(acts.shape[0])
        self.total += acts.sum(0)
        self.products += acts.T @ acts

    def merge(self, other: CorrelationState) -> CorrelationState:
        self.count += other.count
        self.total += other.total
        self.products += other.products
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return {"count": torch.tensor([self.count]), "total": self.total, "products": self.products}

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, Tensor]) -> CorrelationState:
        state = cls(int(tensors["total"].shape[0]))
        state.count = int(tensors["count"][0])
        state.total, state.products = tensors["total"].double(), tensors["products"].double()
        return state

    def correlation(self) -> np.ndarray:
        """``[units, units]`` Pearson correlation (0 off the diagonal for a constant unit)."""
        if self.count < 2:
            raise PopulationError("clustering needs at least two images")
        n = self.count
        mean = self.total / n
        covariance = (self.products / n - torch.outer(mean, mean)).numpy()
        sd = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = covariance / np.outer(sd, sd)
        r = np.where(np.isfinite(r), r, 0.0)
        np.fill_diagonal(r, 1.0)
        return np.clip(r, -1.0, 1.0)


def profile_correlation(profiles: np.ndarray) -> np.ndarray:
    """Pearson correlation between the rows of ``profiles: [units, classes]`` (0 for a flat row)."""
    centred = profiles - profiles.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (centred @ centred.T) / np.outer(norms, norms)
    r = np.where(np.isfinite(r), r, 0.0)
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class Populations:
    """``labels[u]``: unit u's population (0-based, largest population first); ``linkage``:
    scipy's linkage matrix (for the dendrogram); ``rule`` how their number was chosen."""

    labels: np.ndarray
    linkage: np.ndarray
    rule: str
    silhouette: float | None

    @property
    def n_populations(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def members(self) -> list[list[int]]:
        return [np.flatnonzero(self.labels == p).tolist() for p in range(self.n_populations)]


def cluster_units(
    correlation: np.ndarray, threshold: float | None = None, max_populations: int = 20
) -> Populations:
    """Average-linkage clustering on ``1 - r``; the number of populations by the best
    silhouette (``threshold`` None) or by cutting at distance ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n_units = correlation.shape[0]
    if n_units < 3:
        raise PopulationError("clustering needs at least three units")
    distance = np.clip(1.0 - correlation, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform((distance + distance.T) / 2, checks=False), method="average")
    if threshold is not None:
        if not 0.0 <= threshold <= 2.0:
            raise PopulationError("the distance threshold must be between 0 and 2 (1 - r)")
        labels = fcluster(tree, t=threshold, criterion="distance")
        return Populations(_by_size(labels), tree, f"distance threshold {threshold}", None)
    best: tuple[float, np.ndarray] | None = None
    for n in range(2, min(max_populations, n_units - 1) + 1):
        labels = fcluster(tree, t=n, criterion="maxclust")
        if len(set(labels)) < 2:
            continue
        score = _silhouette(distance, labels)
        if best is None or score > best[0] + 1e-12:
            best = (score, labels)
    if best is None:
        return Populations(np.zeros(n_units, dtype=int), tree, "silhouette (one population)", None)
    return Populations(_by_size(best[1]), tree, "best silhouette", float(best[0]))


def _silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(distance, labels, metric="precomputed"))


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel 0, 1, … from the largest population down (ties: by first member)."""
    names, counts = np.unique(labels, return_counts=True)
    first = {name: int(np.flatnonzero(labels == name)[0]) for name in names}
    order = sorted(names, key=lambda name: (-counts[list(names).index(name)], first[name]))
    mapping = {name: i for i, name in enumerate(order)}
    return np.array([mapping[label] for label in labels])


def correlation_pass(
    network: Network,
    projector: UnitProjector,
    batches: Iterable[ImageBatch],
    progress: Progress | None = None,
    total_images: int | None = None,
) -> CorrelationState:
    """The streaming correlation state of one unit set over ``batches``."""
    device = network.device
    truncated = inference_network(network, [projector.tap])
    projector = projector.to(device).eval()
    state = CorrelationState(projector.n_units)
    done = 0
    for batch in batches:
        if len(batch):
            with torch.no_grad():
                with autocast_context(device):
                    acts = truncated(prepare_batch(batch.pixels, device))[projector.tap.key]
                state.add(projector(acts.float().contiguous()).float())
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"{done} of {total_images or '?'} images")
    return state
