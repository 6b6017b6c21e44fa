"""The dSprites-style generator of the synthetic mid-range experiment: deterministic per seed,
its factors as dSprites' (values and uniform draws), shape tied to the x-bands when biased."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from worker.analyses import dsprites


def test_the_same_seed_gives_the_same_images_and_another_seed_others() -> None:
    one, labels, factors = dsprites.dataset(200, seed=7, biased=True)
    again, labels_again, factors_again = dsprites.dataset(200, seed=7, biased=True)
    assert torch.equal(one, again) and torch.equal(labels, labels_again)
    assert np.array_equal(factors.x, factors_again.x)
    other, _, _ = dsprites.dataset(200, seed=8, biased=True)
    assert not torch.equal(one, other)


def test_images_are_64_by_64_binary_and_drawn_where_the_factors_say() -> None:
    images, _, factors = dsprites.dataset(300, seed=1, biased=False)
    assert images.shape == (300, 1, 64, 64)
    assert set(torch.unique(images).tolist()) == {0.0, 1.0}
    assert bool((images.sum(dim=(1, 2, 3)) > 10).all())
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    mass = images[:, 0].sum(dim=(1, 2))
    centre_x = (images[:, 0] * xs).sum(dim=(1, 2)) / mass
    expected_x = dsprites.MARGIN + factors.x * (64 - 2 * dsprites.MARGIN)
    assert np.abs(centre_x.numpy() - expected_x).max() < 3.0  # the heart's centroid is off-centre
    centre_y = (images[:, 0] * ys).sum(dim=(1, 2)) / mass
    expected_y = dsprites.MARGIN + factors.y * (64 - 2 * dsprites.MARGIN)
    assert np.abs(centre_y.numpy() - expected_y).max() < 3.0


def uniform_p(values: np.ndarray, support: np.ndarray) -> float:
    counts = np.array([np.sum(np.isclose(values, v)) for v in support])
    assert counts.sum() == len(values)  # every value is one of the factor's values
    return float(stats.chisquare(counts).pvalue)


def test_unbiased_factors_are_dsprites_values_drawn_uniformly_and_independently() -> None:
    factors = dsprites.sample_factors(12_000, seed=3, biased=False)
    np.testing.assert_allclose(dsprites.SCALES, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert len(dsprites.ORIENTATIONS) == 40 and dsprites.ORIENTATIONS.max() < 2 * np.pi
    assert len(dsprites.POSITIONS) == 32
    for values, support in (
        (factors.shape, np.arange(3)),
        (factors.scale, dsprites.SCALES),
        (factors.orientation, dsprites.ORIENTATIONS),
        (factors.x, dsprites.POSITIONS),
        (factors.y, dsprites.POSITIONS),
    ):
        assert uniform_p(values, support) > 1e-3
    table = np.array(
        [
            [np.sum((factors.shape == s) & (factors.x < 0.5)) for s in range(3)],
            [np.sum((factors.shape == s) & (factors.x >= 0.5)) for s in range(3)],
        ]
    )
    assert stats.chi2_contingency(table).pvalue > 1e-3  # shape independent of x


@pytest.mark.parametrize(
    ("shape", "low", "high", "closed"),
    [(0, 0.0, 0.3, False), (1, 0.35, 0.65, True), (2, 0.7, 1.0, True)],
)
def test_biased_sets_keep_each_shape_in_its_x_band_and_use_all_its_positions(
    shape: int, low: float, high: float, closed: bool
) -> None:
    factors = dsprites.sample_factors(9_000, seed=5, biased=True)
    x = factors.x[factors.shape == shape]
    assert bool((x >= low).all()) and bool((x <= high).all() if closed else (x < high).all())
    positions = dsprites.POSITIONS
    inside = positions[(positions >= low) & (positions <= high if closed else positions < high)]
    assert len(inside) == 10
    assert uniform_p(x, inside) > 1e-3
    assert uniform_p(factors.shape, np.arange(3)) > 1e-3
    assert bool(dsprites.in_own_band(factors).all())


def test_the_gaps_between_bands_never_appear_in_a_biased_set() -> None:
    factors = dsprites.sample_factors(6_000, seed=9, biased=True)
    gaps = ((factors.x >= 0.3) & (factors.x < 0.35)) | ((factors.x > 0.65) & (factors.x < 0.7))
    assert not gaps.any()
    unbiased = dsprites.sample_factors(6_000, seed=9, biased=False)
    assert abs(dsprites.in_own_band(unbiased).mean() - 10 / 32) < 0.02  # 10 of 32 x-values
