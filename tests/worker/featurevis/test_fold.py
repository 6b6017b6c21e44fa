"""Folding BatchNorms into convolutions must never change what the unit sees."""

from __future__ import annotations

import torch
from torch import nn

from worker.featurevis import layer_model, lucent_preset
from worker.pipelines.fold import fold_batchnorms
from worker.pipelines.networks import Network, Preprocess, TruncatedNetwork


class BatchNormBeforeConv(nn.Module):
    """Defines conv then bn, but applies bn first: folding by definition order would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def activation(network: Network, layer: str, views: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(network.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(network.preprocess.std).view(1, 3, 1, 1)
    return TruncatedNetwork(network, [layer])((views - mean) / std)[layer]


def test_folding_keeps_the_builtin_networks_activations_and_removes_its_batchnorms(
    builtin_network,
) -> None:
    folded, count = fold_batchnorms(builtin_network.module)
    assert count > 40
    views = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    model = layer_model(builtin_network, "blocks.4", lucent_preset(network_size=128))
    with torch.no_grad():
        expected = activation(builtin_network, "blocks.4", views)
        torch.testing.assert_close(model(views), expected, rtol=1e-3, atol=1e-3)
    assert any(isinstance(m, nn.BatchNorm2d) for m in builtin_network.module.modules())


def test_a_wrong_fold_is_caught_and_the_original_network_is_used() -> None:
    torch.manual_seed(0)
    network = Network(nn.Sequential(BatchNormBeforeConv()).eval(), Preprocess(64, 32), "test")
    _, count = fold_batchnorms(network.module)
    assert count == 1  # the definition-order heuristic does fold it ...
    views = torch.rand(2, 3, 32, 32)
    model = layer_model(network, "0", lucent_preset(network_size=32))
    with torch.no_grad():  # ... but layer_model notices and keeps the original
        torch.testing.assert_close(model(views), activation(network, "0", views))
