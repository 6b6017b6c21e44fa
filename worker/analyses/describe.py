"""Text descriptions of units by soft-WPMI (CLIP-Dissect, Oikarinen & Weng, ICLR 2023; used by
DISCOVER, Panousis & Chatzis, NeurIPS 2023). Pure torch: no Django.

Inputs: the activations of a set of units over a probe image set, ``acts [n_images, n_units]``,
and a concept matrix ``P(concept | image)``, ``probs [n_images, n_concepts]`` (from a concept
source: `worker/analyses/concepts.py`). For unit k, let E_k be its ``top_k`` most activating
images in descending order (rank i = 0 … top_k-1). Soft-WPMI treats image i as belonging to E_k
with probability

    p_i = p_start - (i / top_k) * (p_start - p_end)

and scores concept t by

    log P(t | E_k) = sum_i log(1 + p_i * (P(t | x_i) - 1) + min_prob)
    log P(t)       = logsumexp_k log P(t | E_k) - log(n_units)     (the mean over the unit set)
    soft_wpmi(k,t) = log P(t | E_k) - lam * log P(t)

which is CLIP-Dissect's `similarity.soft_wpmi` (its defaults: top_k=100, a=10, lam=1,
p_start=0.998, p_end=0.97, min_prob=1e-7; `a` is the softmax temperature that turns a
vision-language model's image-text cosine similarities into P(t | x)). The prior P(t) is taken
over the units described together, so a description depends on its unit set (as in the paper).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor


class DescribeError(ValueError):
    """The inputs cannot be described; the message is one line meant for a researcher."""


@dataclass(frozen=True)
class SoftWpmiConfig:
    """CLIP-Dissect's parameters (its defaults)."""

    top_k: int = 100  # most activating images per unit
    lam: float = 1.0  # weight of the concept prior log P(t)
    p_start: float = 0.998  # P(top image belongs to the unit's set)
    p_end: float = 0.97  # … falling linearly to this at rank top_k
    min_prob: float = 1e-7  # keeps the log finite
    n_top: int = 5  # concepts stored per unit

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.n_top < 1:
            raise DescribeError("top_k and n_top must be ≥ 1")
        if not 0.0 < self.p_end <= self.p_start <= 1.0:
            raise DescribeError("need 0 < p_end ≤ p_start ≤ 1")
        if self.min_prob <= 0:
            raise DescribeError("min_prob must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def concept_probabilities(scores: Tensor, temperature: float) -> Tensor:
    """P(t | x) = softmax over concepts of ``temperature * scores`` ([n_images, n_concepts]):
    CLIP-Dissect's ``softmax(a * cos)`` with a = 10, or a classifier's softmax of its logits
    (temperature 1)."""
    return torch.softmax(float(temperature) * scores.float(), dim=1)


def membership_schedule(k: int, config: SoftWpmiConfig) -> Tensor:
    """p_i for ranks 0 … k-1 (k ≤ top_k where the probe set is smaller than top_k)."""
    ranks = torch.arange(k, dtype=torch.float64)
    return (config.p_start - ranks / k * (config.p_start - config.p_end)).float()


def top_images(acts: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per unit, the ``k`` largest activations and their image rows, descending (ties: the
    lower row first, so the result does not depend on the device): ``[k, n_units]`` each."""
    values = acts.float()
    idx = torch.argsort(-values, dim=0, stable=True)[:k]
    return values.gather(0, idx), idx


def log_p_concepts_given_units(
    probs: Tensor, rows: Tensor, config: SoftWpmiConfig = SoftWpmiConfig()
) -> Tensor:
    """log P(t | E_k) for every unit: ``probs [n_images, C]``, ``rows [k, n_units]`` (each
    unit's top images, descending) → ``[n_units, C]``."""
    k, n_units = rows.shape
    schedule = membership_schedule(k, config).to(probs.device).unsqueeze(1)  # [k, 1]
    out = torch.empty(n_units, probs.shape[1], device=probs.device)
    for unit in range(n_units):
        chosen = probs[rows[:, unit]].float()  # [k, C]
        soft = 1.0 + schedule * (chosen - 1.0)
        out[unit] = torch.log(soft + config.min_prob).sum(dim=0)
    return out


def soft_wpmi_from_log_conditionals(log_cond: Tensor, lam: float) -> Tensor:
    """soft-WPMI [n_units, C] from log P(t | E_k) [n_units, C] (the prior is their mean)."""
    n_units = log_cond.shape[0]
    log_prior = torch.logsumexp(log_cond, dim=0, keepdim=True) - math.log(n_units)
    return log_cond - lam * log_prior


def soft_wpmi(acts: Tensor, probs: Tensor, config: SoftWpmiConfig = SoftWpmiConfig()) -> Tensor:
    """The soft-WPMI score of every concept for every unit: ``[n_units, n_concepts]``."""
    if acts.ndim != 2 or probs.ndim != 2 or acts.shape[0] != probs.shape[0]:
        raise DescribeError(
            f"activations {tuple(acts.shape)} and concept probabilities {tuple(probs.shape)} "
            "must be [images, units] and [images, concepts] over the same images"
        )
    if acts.shape[0] == 0 or acts.shape[1] == 0 or probs.shape[1] == 0:
        raise DescribeError("need at least one image, one unit and one concept")
    k = min(config.top_k, acts.shape[0])
    _, rows = top_images(acts, k)
    return soft_wpmi_from_log_conditionals(
        log_p_concepts_given_units(probs.to(acts.device), rows, config), config.lam
    )


@dataclass(frozen=True)
class UnitDescription:
    """One unit's best concepts, best first, with their soft-WPMI scores."""

    unit: int
    concepts: list[str]
    scores: list[float]

    @property
    def text(self) -> str:
        return self.concepts[0] if self.concepts else ""


def top_concepts(scores: Tensor, concepts: list[str], n_top: int = 5) -> list[UnitDescription]:
    """The ``n_top`` best concepts of every unit (ties: the earlier concept)."""
    if scores.shape[1] != len(concepts):
        raise DescribeError(f"{scores.shape[1]} concept scores but {len(concepts)} concept names")
    n = min(n_top, len(concepts))
    order = torch.argsort(-scores.float().cpu(), dim=1, stable=True)[:, :n]
    values = scores.float().cpu().gather(1, order)
    return [
        UnitDescription(
            unit, [concepts[int(i)] for i in order[unit]], [float(v) for v in values[unit]]
        )
        for unit in range(scores.shape[0])
    ]


# --- A mergeable pass: per shard of images, per unit its top images; the images' P(t|x) --------


@dataclass
class DescribeState:
    """One shard's part of a description pass: per unit the ``k`` best activations over the
    shard's images with their row in ``probs``, the P(t | x) of those images (in image order).
    Merging two states (the earlier images first) keeps the best ``k`` per unit over both,
    exactly as one pass over all images would."""

    values: Tensor  # [k', n_units]
    rows: Tensor  # [k', n_units] int64: rows into `probs`
    probs: Tensor  # [rows used, C]
    n_images: int = 0  # images the state has seen

    @classmethod
    def from_batch(cls, acts: Tensor, probs: Tensor, top_k: int) -> DescribeState:
        values, rows = top_images(acts.float().cpu(), min(top_k, acts.shape[0]))
        return cls(values, rows, probs.float().cpu(), int(acts.shape[0])).compact()

    def compact(self) -> DescribeState:
        """Keep only the P(t | x) rows some unit's top images use (at most units x top_k), so a
        state stays small however many images it covers; the order of images is kept."""
        used, inverse = torch.unique(self.rows, sorted=True, return_inverse=True)
        rows = inverse.reshape(self.rows.shape)
        return DescribeState(self.values, rows, self.probs[used], self.n_images)

    def merge(self, other: DescribeState, top_k: int) -> DescribeState:
        offset = self.probs.shape[0]
        values = torch.cat([self.values, other.values])
        rows = torch.cat([self.rows, other.rows + offset])
        # Descending by value; ties: the earlier row (the earlier image), as in one pass.
        order = torch.argsort(rows, dim=0, stable=True)
        values, rows = values.gather(0, order), rows.gather(0, order)
        best = torch.argsort(-values, dim=0, stable=True)[: min(top_k, values.shape[0])]
        probs = torch.cat([self.probs, other.probs])
        n_images = self.n_images + other.n_images
        return DescribeState(
            values.gather(0, best), rows.gather(0, best), probs, n_images
        ).compact()

    def scores(self, config: SoftWpmiConfig) -> Tensor:
        return soft_wpmi_from_log_conditionals(
            log_p_concepts_given_units(self.probs, self.rows, config), config.lam
        )

    def state_dict(self) -> dict[str, Tensor]:
        n_images = torch.tensor(self.n_images)
        return {"values": self.values, "rows": self.rows, "probs": self.probs, "n_images": n_images}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, Tensor]) -> DescribeState:
        n_images = int(tensors["n_images"])
        return cls(tensors["values"], tensors["rows"], tensors["probs"], n_images)
