"""The machine observer: a network that answers the platform's 2AFC trials, scores units (MIS)
and is calibrated against people.

Zimmermann, Klindt & Brendel (2024), "Measuring Per-Unit Interpretability at Scale Without
Humans" (NeurIPS), answer the task of Borowski et al. (2021) / IMI (Zimmermann et al., 2023)
with a machine. For a trial with queries q and reference sets E⁺ (max side) and E⁻ (min side):

    s(q, E)  = mean over e in E of sim(f(q), f(e))            (f: the backbone's embedding)
    Δ(q)     = s(q, E⁺) − s(q, E⁻)
    P(pick q⁺ as the max-side query) = σ(α · (Δ(q⁺) − Δ(q⁻)))  (α = 0.16: the paper's fit)

and the Machine Interpretability Score of a unit is the mean of that probability over N tasks
drawn from its exemplars (`unit_mis`). A trial with one reference side uses that side alone
(Δ(q) = s(q, E⁺), or −s(q, E⁻)); a trial with none gives 0.5. The hard choice is the sign of
Δ(q₀) − Δ(q₁); on an exact tie there is none (counted as half right).

Everything here is pure torch over embeddings `[images, dim]`: `embed` runs the backbone once
per image, the rest is matrix products. No Django imports (ARCHITECTURE.md §4).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worker.pipelines import networks
from worker.pipelines.loading import ImageBatch

DEFAULT_ALPHA = 0.16  # the paper's fit to IMI's human data (with DreamSim similarities)
DEFAULT_K = 9  # references per side of a MIS task
DEFAULT_TASKS = 20  # MIS tasks per unit
DEFAULT_QUANTILE = 0.25  # the top (bottom) pool: the most extreme ⌈quantile · n⌉ images
SIMILARITIES = ("cosine", "dot", "neg_euclidean")

Progress = Callable[[float, str], None]


class ObserverError(ValueError):
    """Settings or inputs the observer cannot work with (a message for the researcher)."""


@dataclass(frozen=True)
class ObserverConfig:
    alpha: float = DEFAULT_ALPHA
    similarity: str = "cosine"

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ObserverError(f"similarity must be one of {', '.join(SIMILARITIES)}")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ObserverError(f"alpha must be a positive number (got {self.alpha!r})")


# --- Embeddings ---------------------------------------------------------------------------


def pooled(acts: Tensor) -> Tensor:
    """One vector per image: the spatial mean of `[batch, C, H, W]`, the token mean of
    `[batch, T, D]`, a `[batch, D]` as it is."""
    if acts.ndim == 4:
        return acts.mean(dim=(2, 3))
    if acts.ndim == 3:
        return acts.mean(dim=1)
    if acts.ndim == 2:
        return acts
    raise ObserverError(f"cannot pool an activation of shape {tuple(acts.shape)}")


def embed(
    network: networks.Network,
    layer: str,
    batches: Iterable[ImageBatch],
    progress: Progress | None = None,
    total_images: int | None = None,
) -> tuple[list[int], list[int], Tensor]:
    """(embedded image ids, skipped image ids, embeddings `[images, dim]` in fp32 on the CPU):
    one forward per image up to `layer`, pooled (`pooled`)."""
    truncated = networks.inference_network(network, [layer])
    key = networks.LayerTap.parse(layer).key
    device = network.device
    ids: list[int] = []
    skipped: list[int] = []
    parts: list[Tensor] = []
    for batch in batches:
        skipped.extend(int(i) for i in batch.skipped_ids)
        if len(batch):
            with torch.no_grad():
                acts = truncated(networks.prepare_batch(batch.pixels, device))[key]
            parts.append(pooled(acts.float()).cpu())
            ids.extend(int(i) for i in batch.image_ids)
        if progress is not None:
            done = len(ids) + len(skipped)
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"embedded {done} of {total_images or '?'} images")
    embeddings = torch.cat(parts) if parts else torch.empty(0, 0)
    return ids, skipped, embeddings


def prepared(embeddings: Tensor, similarity: str) -> Tensor:
    """Embeddings ready for `similarities`: unit length for cosine (done once per image)."""
    embeddings = embeddings.float()
    if similarity == "cosine":
        return torch.nn.functional.normalize(embeddings, dim=-1)
    return embeddings


def similarities(a: Tensor, b: Tensor, similarity: str) -> Tensor:
    """sim(a_i, b_j) for `a: [..., m, d]`, `b: [..., n, d]` (prepared) → `[..., m, n]`.

    Broadcast products rather than a matrix product: a trial or a task compares a few images,
    and a tiny GEMM costs milliseconds of thread hand-off on a busy CPU (docs/benchmarks.md)."""
    pairs_a, pairs_b = a.unsqueeze(-2), b.unsqueeze(-3)  # [..., m, 1, d], [..., 1, n, d]
    if similarity == "neg_euclidean":
        return -(pairs_a - pairs_b).norm(dim=-1)
    return (pairs_a * pairs_b).sum(dim=-1)


def gram(embeddings: Tensor, similarity: str) -> Tensor:
    """sim(e_i, e_j) for every pair of the (prepared) embeddings `[n, d]` → `[n, n]`: one
    matrix product, after which a trial or a task is indexing (`unit_mis_from_gram`,
    `answer_from_gram`)."""
    products = embeddings @ embeddings.T
    if similarity != "neg_euclidean":
        return products
    squared = embeddings.pow(2).sum(dim=-1)
    return -(squared[:, None] + squared[None, :] - 2 * products).clamp_min(0).sqrt()


# --- One trial ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialAnswer:
    """The observer on one trial: the probability of choosing query 0 as the max-side one, the
    hard choice (None on a tie) and the gap Δ(q₀) − Δ(q₁)."""

    p_first: float
    choice: int | None
    gap: float

    def p_correct(self, correct_query: int) -> float:
        return self.p_first if correct_query == 0 else 1.0 - self.p_first

    def hard_correct(self, correct_query: int) -> float:
        return 0.5 if self.choice is None else float(self.choice == correct_query)


def query_gaps(
    queries: Tensor, references_max: Tensor, references_min: Tensor, similarity: str
) -> Tensor:
    """Δ(q) for each query `[q, d]` against the max side `[k⁺, d]` and the min side `[k⁻, d]`
    (either may have no rows: that side is left out)."""
    gaps = torch.zeros(queries.shape[0])
    if references_max.shape[0]:
        gaps = gaps + similarities(queries, references_max, similarity).mean(dim=-1)
    if references_min.shape[0]:
        gaps = gaps - similarities(queries, references_min, similarity).mean(dim=-1)
    return gaps


def answer(
    queries: Tensor, references_max: Tensor, references_min: Tensor, config: ObserverConfig
) -> TrialAnswer:
    """The observer's answer to a trial from the images' embeddings alone (prepared)."""
    if queries.shape[0] != 2:
        raise ObserverError(f"a 2AFC trial has 2 queries (got {queries.shape[0]})")
    gaps = query_gaps(queries, references_max, references_min, config.similarity)
    gap = float(gaps[0] - gaps[1])
    choice = None if gap == 0 else (0 if gap > 0 else 1)
    return TrialAnswer(1.0 / (1.0 + math.exp(-config.alpha * gap)), choice, gap)


def answer_from_gram(
    sims: np.ndarray, queries: Sequence[int], references_max: Sequence[int],
    references_min: Sequence[int], config: ObserverConfig,
) -> TrialAnswer:  # fmt: skip
    """`answer` for a trial whose images are rows of `sims` (`gram`, as numpy): indexing only."""
    if len(queries) != 2:
        raise ObserverError(f"a 2AFC trial has 2 queries (got {len(queries)})")
    q = np.asarray(queries)
    gaps = np.zeros(2)
    if len(references_max):
        gaps += sims[np.ix_(q, np.asarray(references_max))].mean(axis=1)
    if len(references_min):
        gaps -= sims[np.ix_(q, np.asarray(references_min))].mean(axis=1)
    gap = float(gaps[0] - gaps[1])
    choice = None if gap == 0 else (0 if gap > 0 else 1)
    return TrialAnswer(1.0 / (1.0 + math.exp(-config.alpha * gap)), choice, gap)


# --- MIS per unit -------------------------------------------------------------------------


@dataclass(frozen=True)
class MisConfig:
    k: int = DEFAULT_K
    n_tasks: int = DEFAULT_TASKS
    quantile: float = DEFAULT_QUANTILE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or self.n_tasks < 1:
            raise ObserverError("k and n_tasks must be ≥ 1")
        if not 0 < self.quantile <= 1:
            raise ObserverError("quantile must be in (0, 1]")

    def pool_size(self, n_images: int) -> int:
        """The most extreme ⌈quantile · n⌉ images of each side."""
        return math.ceil(self.quantile * n_images)


@dataclass(frozen=True)
class MisResult:
    mis: float  # mean probability correct over the tasks
    hard_accuracy: float  # the share of tasks whose hard choice is right (ties: half)
    n_tasks: int
    probabilities: list[float]


def unit_seed(seed: int, unit_key: str) -> int:
    """A unit's own stream: the same tasks whichever shard computes it."""
    digest = hashlib.sha256(f"{seed}:{unit_key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def draw_tasks(pool_top: int, pool_bottom: int, config: MisConfig, seed: int) -> Tensor:
    """Positions into each pool (0 = the most extreme), `[2, n_tasks, k + 1]`: per task K + 1
    distinct images of each side, sorted from most extreme inwards, so `[..., :k]` are the
    references and `[..., k]` (the least extreme) is the query."""
    need = config.k + 1
    if min(pool_top, pool_bottom) < need:
        raise ObserverError(
            f"a task needs {need} images per side; the pools hold {pool_top} and {pool_bottom}"
        )
    generator = torch.Generator().manual_seed(seed)
    sides = []
    for pool in (pool_top, pool_bottom):
        # a random permutation per task (argsort of uniform keys), its first K + 1 positions
        keys = torch.rand(config.n_tasks, pool, generator=generator)
        sides.append(keys.argsort(dim=-1)[:, :need].sort(dim=-1).values)
    return torch.stack(sides)


def unit_mis(
    top: Tensor, bottom: Tensor, config: MisConfig, observer: ObserverConfig, seed: int
) -> MisResult:
    """MIS of one unit from its pools' embeddings (prepared), most extreme first: `top: [P⁺, d]`
    (highest activations), `bottom: [P⁻, d]` (lowest)."""
    positions = draw_tasks(top.shape[0], bottom.shape[0], config, seed)
    k = config.k
    e_plus, q_plus = top[positions[0, :, :k]], top[positions[0, :, k]]  # [N, K, d], [N, d]
    e_minus, q_minus = bottom[positions[1, :, :k]], bottom[positions[1, :, k]]

    def s(queries: Tensor, references: Tensor) -> Tensor:  # [N, d], [N, K, d] -> [N]
        sims = similarities(queries.unsqueeze(1), references, observer.similarity)
        return sims.squeeze(1).mean(dim=-1)

    gap = (s(q_plus, e_plus) - s(q_plus, e_minus)) - (s(q_minus, e_plus) - s(q_minus, e_minus))
    return _mis_result(gap, observer, config)


def unit_mis_from_gram(
    sims: Tensor, top: Tensor, bottom: Tensor, config: MisConfig, observer: ObserverConfig,
    seed: int,
) -> MisResult:  # fmt: skip
    """`unit_mis` where the pools are rows of `sims` (`gram`): `top`, `bottom` are row indices,
    most extreme first. The same tasks and the same numbers, by indexing."""
    positions = draw_tasks(len(top), len(bottom), config, seed)
    k = config.k
    plus, minus = top[positions[0]], bottom[positions[1]]  # [N, K + 1] rows of sims
    e_plus, q_plus, e_minus, q_minus = plus[:, :k], plus[:, k], minus[:, :k], minus[:, k]

    def s(queries: Tensor, references: Tensor) -> Tensor:  # [N], [N, K] -> [N]
        return sims[queries[:, None], references].mean(dim=-1)

    gap = (s(q_plus, e_plus) - s(q_plus, e_minus)) - (s(q_minus, e_plus) - s(q_minus, e_minus))
    return _mis_result(gap, observer, config)


def _mis_result(gap: Tensor, observer: ObserverConfig, config: MisConfig) -> MisResult:
    probabilities = torch.sigmoid(observer.alpha * gap)
    hard = torch.where(gap == 0, 0.5, (gap > 0).float())
    return MisResult(
        float(probabilities.mean()), float(hard.mean()), config.n_tasks, probabilities.tolist()
    )


# --- Calibration against people -----------------------------------------------------------


@dataclass(frozen=True)
class AlphaFit:
    """α by maximum likelihood with its 95 % profile-likelihood interval (None: unbounded)."""

    alpha: float
    ci_low: float | None
    ci_high: float | None
    log_likelihood: float
    n: int


# α is searched where α · max |gap| ≤ MAX_LOGIT: beyond, the responses are separable (α is not
# identified). Relative to the gaps, so any similarity's scale works.
MAX_LOGIT = 1e3


def log_likelihood(alpha: float, gaps: Tensor, correct: Tensor) -> float:
    """Σ log P(response) under P(correct) = σ(α · gap), gap oriented to the correct query."""
    logits = alpha * gaps.double()
    return float(
        (correct * torch.nn.functional.logsigmoid(logits)).sum()
        + ((1 - correct) * torch.nn.functional.logsigmoid(-logits)).sum()
    )


def fit_alpha(gaps: Sequence[float] | Tensor, correct: Sequence[bool] | Tensor) -> AlphaFit:
    """Fit α of P(correct) = σ(α · gap) to trial-level responses: `gaps` are the observer's
    Δ(correct query) − Δ(other query) per response, `correct` whether the person was right."""
    g = torch.as_tensor(gaps, dtype=torch.float64)
    y = torch.as_tensor(correct, dtype=torch.float64)
    if g.shape != y.shape or g.numel() < 2:
        raise ObserverError("fit α on at least 2 responses, one gap per response")
    if not bool((g != 0).any()):
        raise ObserverError("every gap is 0: the observer cannot tell these trials apart")

    def score(alpha: float) -> float:  # d/dα of the log-likelihood: decreasing in α
        return float((g * (y - torch.sigmoid(alpha * g))).sum())

    bound = MAX_LOGIT / float(g.abs().max())
    alpha = _root(score, -bound, bound)
    best = log_likelihood(alpha, g, y)
    drop = 1.920729  # χ²₁(0.95) / 2

    def above(a: float) -> float:
        return log_likelihood(a, g, y) - (best - drop)

    low = None if above(-bound) > 0 else _root(above, -bound, alpha, rising=True)
    high = None if above(bound) > 0 else _root(above, alpha, bound)
    return AlphaFit(alpha, low, high, best, int(g.numel()))


def _root(f: Callable[[float], float], lo: float, hi: float, rising: bool = False) -> float:
    """Bisection for f = 0 on [lo, hi], f decreasing (rising: increasing); a bound if none."""
    sign = -1.0 if rising else 1.0
    if sign * f(lo) <= 0:
        return lo
    if sign * f(hi) >= 0:
        return hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if sign * f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * max(1.0, abs(mid)):
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class SpearmanResult:
    statistic: float | None  # None: fewer than 3 pairs, or a constant side
    n: int


def spearman(x: Sequence[float], y: Sequence[float]) -> SpearmanResult:
    """Spearman's rank correlation (average ranks for ties)."""
    if len(x) != len(y):
        raise ObserverError("spearman needs two sequences of the same length")
    if len(x) < 3:
        return SpearmanResult(None, len(x))
    rx, ry = (
        _ranks(torch.as_tensor(x, dtype=torch.float64)),
        _ranks(torch.as_tensor(y, dtype=torch.float64)),
    )
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = float(rx.norm() * ry.norm())
    return SpearmanResult(float((rx * ry).sum()) / norm if norm else None, len(x))


def _ranks(values: Tensor) -> Tensor:
    order = values.argsort()
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=torch.float64)
    for value in values.unique():
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
