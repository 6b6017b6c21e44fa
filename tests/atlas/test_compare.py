"""Spearman's ρ and its bootstrap CI over units agree with scipy; the measures' matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from backend.atlas import services
from backend.atlas.compare import spearman_matrix, spearman_with_ci


def test_spearman_and_its_bootstrap_agree_with_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    result = spearman_with_ci([*x, None], [*y, 1.0], n_boot=500, seed=1)
    assert result.n == 40
    assert result.statistic == pytest.approx(stats.spearmanr(x, y).statistic)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return float(stats.spearmanr(a, b).statistic)

    reference = stats.bootstrap(
        (x, y), rho, paired=True, vectorized=False, n_resamples=500, method="percentile",
        random_state=np.random.default_rng(1),
    )  # fmt: skip
    assert result.low == pytest.approx(reference.confidence_interval.low, abs=0.06)
    assert result.high == pytest.approx(reference.confidence_interval.high, abs=0.06)
    assert result.low < result.statistic < result.high


def test_each_bootstrap_rho_is_scipys_on_the_same_resample() -> None:
    from backend.atlas.compare import bootstrap_rhos, resample_indices

    rng = np.random.default_rng(5)
    pairs = np.column_stack([rng.integers(0, 6, 25), rng.normal(size=25)]).astype(float)
    pairs[:3, 0] = 2.0  # ties, averaged as scipy does
    draws = bootstrap_rhos(pairs, 300, np.random.default_rng(9))
    expected = [
        stats.spearmanr(pairs[i, 0], pairs[i, 1]).statistic
        for i in resample_indices(25, 300, np.random.default_rng(9))
        if np.ptp(pairs[i, 0]) > 0 and np.ptp(pairs[i, 1]) > 0
    ]
    assert draws == pytest.approx(expected, abs=1e-12)


def test_too_few_units_have_no_correlation() -> None:
    assert spearman_with_ci([1.0, 2.0], [2.0, 1.0]).statistic is None


@pytest.mark.django_db
def test_the_measures_matrix_is_spearman_between_columns(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    rng = np.random.default_rng(0)
    mean, csi = rng.normal(size=24), rng.normal(size=24)
    services.do_save_measures(
        channels, image_set, {"mean": dict(enumerate(mean)), "csi": dict(enumerate(csi))}, {},
        None,
    )  # fmt: skip
    names, matrix = spearman_matrix(channels)
    assert names == ["csi", "mean"]
    assert matrix[0][1] == pytest.approx(stats.spearmanr(csi, mean).statistic)
    assert matrix[0][0] == pytest.approx(1.0)
