"""Measures against each other and against human accuracy per unit: Spearman's ρ with a
percentile bootstrap CI over units (the results page's scatter, the unit-set page's matrix —
Meyes et al. 2020's question whether magnitude, selectivity and ablation impact agree)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.atlas import queries
from backend.stimuli.models import UnitSet


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's ρ over `n` units with both values, and its bootstrap CI (None below 3)."""

    statistic: float | None
    low: float | None
    high: float | None
    n: int


def spearman_with_ci(
    x: list[float | None], y: list[float | None], n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> RankCorrelation:  # fmt: skip
    """ρ of the pairs where both are known; CI: percentiles of ρ over units resampled with
    replacement (resamples with a constant side are dropped)."""
    from scipy import stats

    pairs = np.array(
        [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None], float
    ).reshape(-1, 2)
    n = len(pairs)
    if n < 3:
        return RankCorrelation(None, None, None, n)
    rho = float(stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
    draws = bootstrap_rhos(pairs, n_boot, np.random.default_rng(seed))
    if not len(draws) or np.isnan(rho):
        return RankCorrelation(None if np.isnan(rho) else rho, None, None, n)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return RankCorrelation(rho, float(low), float(high), n)


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` unit indices drawn with replacement."""
    return rng.integers(0, n, (n_boot, n))


def bootstrap_rhos(pairs: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """ρ of each resample of ``pairs: [n, 2]`` at once (ranks per row, then Pearson of the
    ranks: Spearman's definition, ties averaged as scipy does); resamples where one side is
    constant are dropped."""
    from scipy import stats

    sample = pairs[resample_indices(len(pairs), n_boot, rng)]  # [n_boot, n, 2]
    ranks = stats.rankdata(sample, axis=1)
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    spread = np.sqrt((centred**2).sum(axis=1))  # [n_boot, 2]
    keep = (spread > 1e-12).all(axis=1)
    products = (centred[..., 0] * centred[..., 1]).sum(axis=1)
    return products[keep] / (spread[keep, 0] * spread[keep, 1])


def spearman_matrix(
    unit_set: UnitSet, image_set_id: int | None = None
) -> tuple[list[str], list[list[float | None]]]:
    """(measure names, ρ between every two measures over the unit set's units)."""
    from scipy import stats

    names, rows = queries.measure_table(unit_set, image_set_id)
    matrix: list[list[float | None]] = []
    for a in names:
        line: list[float | None] = []
        for b in names:
            pairs = [(r[a], r[b]) for r in rows if r[a] is not None and r[b] is not None]
            if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
                line.append(None)
                continue
            xs, ys = zip(*pairs, strict=True)
            line.append(float(stats.spearmanr(xs, ys).statistic))
        matrix.append(line)
    return names, matrix
