"""Fuse a convolution with the ReLU or ReLU6 after it into one oneDNN call, on CPUs.

After BatchNorms are folded (fold.py), most of a network like EfficientNet-Lite is
conv → clamp → conv → clamp. Eager PyTorch runs each clamp as its own pass over the activation,
and in place under autograd it first copies its input; oneDNN applies the clamp while it writes
the convolution's output instead. The fused op has no autograd formula, so `ConvActivation`
gives it one: the activation's gradient from the saved output (0 < y < 6 exactly where
0 < x < 6), then the convolution's input gradient (weights are frozen). Results are identical
to the unfused network in float32; `layer_model` checks the fused copy against the original.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import torch
from torch import nn

# activation module → oneDNN post-op name and scalars
_CLAMPS: dict[type[nn.Module], tuple[str, list[float]]] = {
    nn.ReLU: ("relu", []),
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
}


def fusion_available(device: torch.device) -> bool:
    return device.type == "cpu" and torch.backends.mkldnn.is_available()


def fuse_conv_activations(module: nn.Module) -> int:
    """Fuse, in place, every Conv2d whose next sibling (skipping Identities) is a ReLU or ReLU6,
    or a Sequential that starts with one after Identities (timm's folded BatchNormAct2d).

    `module` must be a private copy (fold_batchnorms makes one). Returns how many were fused.
    """
    count = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for index, (conv_name, conv) in enumerate(children):
            if not _fusable_conv(conv):
                continue
            found = _next_activation(children[index + 1 :])
            if found is None:
                continue
            owner, name, activation = found
            setattr(parent, conv_name, ConvActivation(conv, *_CLAMPS[type(activation)]))
            setattr(owner if owner is not None else parent, name, nn.Identity())
            count += 1
    return count


class ConvActivation(nn.Module):
    """clamp(conv2d(x)) as one oneDNN convolution with a post-op, and its input gradient."""

    def __init__(self, conv: nn.Conv2d, post_op: str, scalars: list[float]) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding = list(conv.stride), list(conv.padding)  # type: ignore[arg-type]
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.post_op, self.scalars = post_op, scalars

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = _ConvActivationFunction.apply(x, self)
        return result

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, stride={self.stride}, post_op={self.post_op}"


class _ConvActivationFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fused: ConvActivation) -> torch.Tensor:
        y = torch.ops.mkldnn._convolution_pointwise(
            x,
            fused.weight,
            fused.bias,
            fused.padding,
            fused.stride,
            fused.dilation,
            fused.groups,
            fused.post_op,
            fused.scalars,
            "",
        )
        ctx.save_for_backward(x, y)
        ctx.fused = fused
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        x, y = ctx.saved_tensors
        fused: ConvActivation = ctx.fused
        if not ctx.needs_input_grad[0]:
            return None, None
        if fused.post_op == "relu":
            grad = torch.ops.aten.threshold_backward(grad, y, 0.0)
        else:
            low, high = fused.scalars
            grad = torch.ops.aten.hardtanh_backward(grad, y, low, high)
        grad_x, _, _ = torch.ops.aten.convolution_backward(
            grad,
            x,
            fused.weight,
            None,
            fused.stride,
            fused.padding,
            fused.dilation,
            False,
            [0, 0],
            fused.groups,
            [True, False, False],
        )
        return grad_x, None


def _fusable_conv(conv: nn.Module) -> TypeGuard[nn.Conv2d]:
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and not conv.weight.requires_grad
        and conv.weight.dtype == torch.float32
    )


def _next_activation(
    siblings: list[tuple[str, nn.Module]],
) -> tuple[nn.Module | None, str, nn.Module] | None:
    """(owner or None for the parent, attribute name, activation) of the first module after a
    conv that is not an Identity, if it is a fusable activation."""
    for name, sibling in siblings:
        if isinstance(sibling, nn.Identity):
            continue
        if type(sibling) in _CLAMPS:
            return None, name, sibling
        if isinstance(sibling, nn.Sequential):
            for inner_name, inner in sibling.named_children():
                if isinstance(inner, nn.Identity):
                    continue
                if type(inner) in _CLAMPS:
                    return sibling, inner_name, inner
                return None
        return None
    return None
