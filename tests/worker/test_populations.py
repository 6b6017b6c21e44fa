"""Populations (worker/analyses/populations.py): the streaming correlation equals numpy's, the
clustering recovers groups planted in a constructed network, and the rules behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.worker.factories import TINY_PREPROCESS, image_refs
from worker.analyses.populations import (
    CorrelationState,
    PopulationError,
    cluster_units,
    correlation_pass,
    profile_correlation,
)
from worker.pipelines.loading import image_batches
from worker.pipelines.networks import wrap_module
from worker.pipelines.units import ChannelProjector, UnitSetSpec


class PlantedNet(nn.Module):
    """9 channels: 0-3 follow red, 4-6 green, 7-8 blue (each with its own gain and a little of
    the others), so the channels' spatial means form three planted populations."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Conv2d(3, 9, 1)
        weight = torch.zeros(9, 3)
        for channel, colour in enumerate([0, 0, 0, 0, 1, 1, 1, 2, 2]):
            weight[channel, colour] = 1.0 + channel / 4
        weight += 0.05 * torch.rand(9, 3)
        self.mix.weight.data = weight[:, :, None, None]
        self.head = nn.Linear(9, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(x).mean(dim=(2, 3)))


def test_streaming_correlation_matches_numpy_and_merges() -> None:
    acts = np.random.default_rng(0).normal(size=(50, 4))
    acts[:, 3] = acts[:, 0] * 2 + 0.1 * acts[:, 3]
    whole, first, second = CorrelationState(4), CorrelationState(4), CorrelationState(4)
    whole.add(torch.from_numpy(acts))
    first.add(torch.from_numpy(acts[:20]))
    second.add(torch.from_numpy(acts[20:]))
    merged = CorrelationState.from_state_dict(first.state_dict()).merge(second)
    np.testing.assert_allclose(whole.correlation(), np.corrcoef(acts.T), atol=1e-10)
    np.testing.assert_allclose(merged.correlation(), np.corrcoef(acts.T), atol=1e-10)


def test_clustering_recovers_the_populations_planted_in_a_network() -> None:
    network = wrap_module(PlantedNet(), TINY_PREPROCESS, "test:planted", "cpu")
    projector = ChannelProjector(UnitSetSpec("channels", "mix"), 9)
    batches = image_batches(image_refs(40), TINY_PREPROCESS, batch_size=16)
    state = correlation_pass(network, projector, batches)
    populations = cluster_units(state.correlation())
    assert populations.members() == [[0, 1, 2, 3], [4, 5, 6], [7, 8]]
    assert populations.rule == "best silhouette" and populations.silhouette > 0.5


def test_a_distance_threshold_cuts_the_dendrogram_there() -> None:
    blocks = np.kron(np.eye(2), np.ones((3, 3))) * 0.9 + 0.1
    np.fill_diagonal(blocks, 1.0)
    assert cluster_units(blocks, threshold=0.5).members() == [[0, 1, 2], [3, 4, 5]]
    assert cluster_units(blocks, threshold=1.0).n_populations == 1
    with pytest.raises(PopulationError, match="between 0 and 2"):
        cluster_units(blocks, threshold=3.0)


def test_ablation_profiles_correlate_row_by_row() -> None:
    profiles = np.array([[0.0, 0.5, 0.1], [0.0, 1.0, 0.2], [0.3, 0.0, 0.0]])
    np.testing.assert_allclose(profile_correlation(profiles), np.corrcoef(profiles), atol=1e-12)
