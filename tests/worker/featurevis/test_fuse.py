"""Fusing a conv with its ReLU/ReLU6 must give the same activation and the same input gradient."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from worker.featurevis import LayerModel, layer_model, lucent_preset
from worker.featurevis.fuse import ConvActivation, fuse_conv_activations, fusion_available
from worker.pipelines.fold import fold_batchnorms
from worker.pipelines.networks import Network, Preprocess

pytestmark = pytest.mark.skipif(
    not fusion_available(torch.device("cpu")), reason="PyTorch was built without oneDNN"
)


class ActivationUsedTwice(nn.Module):
    """conv, BatchNorm, ReLU6 by definition order, but the pre-activation is used too: folding
    is right, fusing the ReLU6 into the conv is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU6()
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return self.act(y) + y


def frozen(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.eval()


def count_fused(model: LayerModel) -> int:
    return sum(isinstance(module, ConvActivation) for module in model.module.modules())


def activation_and_input_gradient(
    module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = module(x)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)  # every output position counts
    (grad,) = torch.autograd.grad((out * weights).sum(), [x])
    return out.detach(), grad


def test_fused_convs_match_conv_then_relu_or_relu6_in_value_and_gradient() -> None:
    torch.manual_seed(0)
    original = frozen(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU6(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise, no bias
            nn.Identity(),  # a folded BatchNorm
            nn.ReLU(),
            nn.Conv2d(8, 4, 1),  # no activation after it: stays a plain conv
        )
    )
    fused = copy.deepcopy(original)
    assert fuse_conv_activations(fused) == 2
    assert [type(m).__name__ for m in fused] == [
        "ConvActivation",
        "Identity",
        "ConvActivation",
        "Identity",
        "Identity",
        "Conv2d",
    ]
    x = 4 * torch.randn(2, 3, 17, 17)  # many values below 0 and above 6 after the first conv
    x = x.contiguous(memory_format=torch.channels_last)
    expected_out, expected_grad = activation_and_input_gradient(original, x)
    got_out, got_grad = activation_and_input_gradient(fused, x)
    torch.testing.assert_close(got_out, expected_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-5, atol=1e-5)
    clamped = original[1](original[0](x))
    assert bool((clamped == 0).any()) and bool((clamped == 6).any())  # both clamps are exercised


def test_trainable_convs_and_other_activations_are_not_fused() -> None:
    trainable = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    other = frozen(nn.Sequential(nn.Conv2d(3, 4, 1), nn.SiLU()))
    assert fuse_conv_activations(trainable) == 0  # our backward computes no weight gradient
    assert fuse_conv_activations(other) == 0


def test_the_builtin_network_is_fused_and_unchanged_with_its_input_gradient(
    builtin_network,
) -> None:
    views = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    unfused = lucent_preset(network_size=128, fuse_activations=False)
    plain = layer_model(builtin_network, "blocks.4", unfused)
    fused = layer_model(builtin_network, "blocks.4", lucent_preset(network_size=128))
    expected_out, expected_grad = activation_and_input_gradient(plain, views)
    got_out, got_grad = activation_and_input_gradient(fused, views)
    torch.testing.assert_close(got_out, expected_out, rtol=1e-4, atol=1e-4)
    scale = float(expected_grad.abs().max())
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-3, atol=1e-4 * scale)
    assert count_fused(fused) >= 30  # every conv that a ReLU6 follows, stem included
    assert count_fused(plain) == 0


def test_a_wrong_fusion_is_caught_and_the_original_network_is_used() -> None:
    torch.manual_seed(0)
    block = frozen(ActivationUsedTwice())
    module, folded = fold_batchnorms(block)
    assert folded == 1 and fuse_conv_activations(module) == 1  # the heuristics do fuse it ...
    network = Network(nn.Sequential(block), Preprocess(64, 32), "test")
    views = torch.rand(2, 3, 32, 32)
    model = layer_model(network, "0", lucent_preset(network_size=32))
    mean = torch.tensor(network.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(network.preprocess.std).view(1, 3, 1, 1)
    with torch.no_grad():  # ... but layer_model notices and keeps the original
        torch.testing.assert_close(model(views), block((views - mean) / std))
    assert model.module is network.module


def test_a_network_without_batchnorms_is_fused_too(tiny_network) -> None:
    views = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    plain = layer_model(
        tiny_network, "conv3", lucent_preset(network_size=48, fuse_activations=False)
    )
    fused = layer_model(tiny_network, "conv3", lucent_preset(network_size=48))
    expected_out, expected_grad = activation_and_input_gradient(plain, views)
    got_out, got_grad = activation_and_input_gradient(fused, views)
    torch.testing.assert_close(got_out, expected_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-5, atol=1e-5)
    assert count_fused(fused) == 2  # conv1 + relu1, conv2 + relu2: nothing to fold, yet fused
    assert count_fused(plain) == 0
