"""Chosen activation bands (mid-range explanations): an image belongs to band [lower, upper]
exactly when its quantile r / (n - 1) lies in it, both edges included, whatever the floating
point error of lower * (n - 1)."""

from __future__ import annotations

import pytest
import torch

from tests.worker.factories import value_network
from worker.pipelines.exemplars import ExemplarConfig, QuantileBand, compute_exemplars
from worker.pipelines.loading import ImageBatch
from worker.pipelines.units import UnitSetSpec, build_projector

UNITS = {"values": build_projector(UnitSetSpec("channels", "layer"), (3, 1, 1))}


def band_members(n: int, lower: float, upper: float) -> list[int]:
    """Image ids in the band of n images whose activation is their id (ascending), by the pass."""
    values = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 3).contiguous()
    ids = torch.arange(100, 100 + n)
    batches = [ImageBatch(ids[s : s + 7], values[s : s + 7, :, None, None]) for s in range(0, n, 7)]
    band = QuantileBand("chosen", lower, upper)
    config = ExemplarConfig(k=min(5, n), bands=(band,), band_size=n, sketch_size=max(n, 1))
    result = compute_exemplars(value_network(), UNITS, batches, config)["values"]
    return [int(i) - 100 for i in result.bands["chosen"].image_ids[0].tolist()]


@pytest.mark.parametrize(
    ("n", "lower", "upper", "ranks"),
    [
        (11, 0.40, 0.60, [4, 5, 6]),  # 0.6 * 10 = 6.000000000000001: rank 6 is inside
        (11, 0.30, 0.70, [3, 4, 5, 6, 7]),  # 0.7 * 10 = 7.000000000000001: rank 7 is inside
        (11, 0.41, 0.59, [5]),  # 4.1 and 5.9 round inwards
        (101, 0.40, 0.60, list(range(40, 61))),
        (6, 0.0, 0.2, [0, 1]),  # 0.2 * 5 = 1: the upper edge is in
        (6, 0.8, 1.0, [4, 5]),
    ],
)
def test_band_membership_is_exact_at_both_edges(
    n: int, lower: float, upper: float, ranks: list[int]
) -> None:
    assert band_members(n, lower, upper) == ranks


def test_touching_bands_share_exactly_their_edge_image() -> None:
    assert set(band_members(21, 0.4, 0.5)) & set(band_members(21, 0.5, 0.6)) == {10}
