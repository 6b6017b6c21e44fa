"""Fold eval-mode BatchNorms into the convolutions before them, for faster passes.

With frozen weights, a BatchNorm after a convolution is an affine map that can live in the
conv's weights instead of costing a pass over the activation (each way, under autograd).
Feature visualization (its optimisation steps) and the streaming passes (exemplars, occlusion
maps, dictionary samples: `networks.inference_network`) run folded copies. The network is
copied, never changed in place, and each user checks the copy against the original with
`same_activations` before use: folding moves a BatchNorm's effect into the conv module, so a
tap on that conv itself would read something else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

Activations = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def fold_batchnorms(module: nn.Module) -> tuple[nn.Module, int]:
    """(a folded copy of `module`, how many BatchNorms were folded).

    Folds a BatchNorm2d that is the next sibling (in definition order) of a Conv2d with matching
    channels; whether forward really applies them in that order is checked by the caller.
    """
    folded = copy.deepcopy(module)
    count = 0
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            replacement = _after_fold(bn)
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and _foldable(conv, bn)
                and replacement is not None
            ):
                _fold_into(conv, bn)
                setattr(parent, bn_name, replacement)
                count += 1
    return folded, count


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
        and not bn.training
    )


def _after_fold(bn: nn.Module) -> nn.Module | None:
    """What is left of a BatchNorm once its affine map is folded: nothing, or its activation
    (timm's BatchNormAct2d applies drop and act after normalising); None where unknown."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    drop, act = getattr(bn, "drop", None), getattr(bn, "act", None)
    if isinstance(drop, nn.Module) and isinstance(act, nn.Module):
        return nn.Sequential(drop, act)
    return None


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    assert bn.running_mean is not None and bn.running_var is not None  # checked by _foldable
    scale = torch.rsqrt(bn.running_var + bn.eps)  # [out_channels]
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None], requires_grad=False)
    conv.bias = nn.Parameter(shift, requires_grad=False)


@torch.no_grad()
def same_activations(
    reference: Activations, candidate: Activations, size: int, device: torch.device
) -> bool:
    """Whether `candidate` gives every tap `reference` gives (within float32 rounding) on a
    seeded, roughly normalised probe image of `size` px."""
    probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    probe = (probe - 0.5).to(device)
    expected, got = reference(probe), candidate(probe)
    for key, value in expected.items():
        scale = float(value.abs().max()) + 1e-6
        if key not in got or not torch.allclose(got[key], value, rtol=1e-3, atol=1e-4 * scale):
            return False
    return True
