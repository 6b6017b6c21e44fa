"""Last-layer retraining on frozen features (deep feature reweighting, Kirichenko, Izmailov &
Wilson 2023, "Last layer re-training is sufficient for robustness to spurious correlations",
ICLR): the network's penultimate features are read once on a curated, group-balanced set and
only its last linear layer is refitted, by L2-regularised softmax regression (full-batch L-BFGS,
seeded, on the CPU). A group is (label, value of a confounding attribute); the balanced set has
the same number of images of every group (the smallest group's count).

The rows of the classes present in the curated set are refitted; the rows of the other classes
keep the base's weights. The refitted layer is saved as a small file
(`save_last_layer`) that the network source ``lastlayer:BASE@PATH`` puts into the base
(`worker/pipelines/networks.py`). Pure functions: no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "psylens-lastlayer-1"


class RetrainError(ValueError):
    """A retraining that cannot run, with a one-line reason."""


def last_linear(module: nn.Module) -> tuple[str, nn.Linear]:
    """The module's last `nn.Linear` (in registration order): its classifier."""
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise RetrainError("the network has no linear layer to retrain")
    return found[-1]


@torch.no_grad()
def features_and_logits(
    module: nn.Module, images: torch.Tensor, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last linear layer's inputs ([n, d], flattened) and the network's outputs ([n, k])."""
    _, linear = last_linear(module)
    captured: list[torch.Tensor] = []

    def keep(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].detach().flatten(1).float().cpu())

    handle = linear.register_forward_pre_hook(keep)
    outputs = []
    try:
        device = next(module.parameters()).device
        for start in range(0, len(images), batch_size):
            outputs.append(module(images[start : start + batch_size].to(device)).float().cpu())
    finally:
        handle.remove()
    return torch.cat(captured), torch.cat(outputs)


def group_keys(labels: Sequence[int], values: Sequence[str]) -> list[str]:
    """Each image's group, `label|value`."""
    return [f"{label}|{value}" for label, value in zip(labels, values, strict=True)]


def balanced_indices(groups: Sequence[str], seed: int) -> np.ndarray:
    """Indices with the same number of images of every group (the smallest group's count),
    each group's chosen by a seeded permutation; sorted."""
    rng = np.random.default_rng(seed)
    keys = np.asarray(groups)
    names = sorted(set(groups))
    size = min(int((keys == name).sum()) for name in names)
    chosen = [rng.permutation(np.flatnonzero(keys == name))[:size] for name in names]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class FitConfig:
    l2: float = 1e-3  # weight decay on the standardised features' weights
    steps: int = 200  # L-BFGS iterations
    seed: int = 0


def fit_last_layer(
    features: torch.Tensor,
    labels: torch.Tensor,
    base_weight: torch.Tensor,
    base_bias: torch.Tensor | None,
    config: FitConfig,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(weight [k, d], bias [k], fit summary): the base's layer with the rows of the classes in
    `labels` refitted on `features` (standardised; the scaling folded into the weights)."""
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise RetrainError("the curated set needs images of at least two classes")
    k = base_weight.shape[0]
    if classes[0] < 0 or classes[-1] >= k:
        raise RetrainError(f"labels must be class indices 0…{k - 1} (got {classes})")
    torch.manual_seed(config.seed)
    x = features.double()
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / scale
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[int(c)] for c in labels.tolist()])
    w = torch.zeros(len(classes), x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=config.steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(x @ w.T + b, y) + config.l2 * (w**2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(x @ w.T + b, y))
        train_accuracy = float(((x @ w.T + b).argmax(1) == y).double().mean())
        weight = base_weight.detach().clone().float()
        bias = (base_bias.detach().clone() if base_bias is not None else torch.zeros(k)).float()
        folded = (w / scale).float()
        weight[classes] = folded
        bias[classes] = (b - (w / scale) @ mean).float()
    summary = {"classes": classes, "loss": loss, "train_accuracy": train_accuracy,
               "images": int(len(labels)), "l2": config.l2, "steps": config.steps,
               "seed": config.seed, "optimizer": "L-BFGS"}  # fmt: skip
    return weight, bias, summary


def group_accuracy(
    predicted: Sequence[int], labels: Sequence[int], groups: Sequence[str]
) -> dict[str, Any]:
    """Accuracy overall, per group (with counts) and of the worst group."""
    right = np.asarray(predicted) == np.asarray(labels)
    keys = np.asarray(groups)
    per_group = {
        name: {"accuracy": float(right[keys == name].mean()), "n": int((keys == name).sum())}
        for name in sorted(set(groups))
    }
    worst = min(per_group, key=lambda name: per_group[name]["accuracy"]) if per_group else None
    return {
        "accuracy": float(right.mean()) if len(right) else 0.0,
        "groups": per_group,
        "worst_group": worst,
        "worst_group_accuracy": per_group[worst]["accuracy"] if worst else 0.0,
        "n": int(len(right)),
    }


def save_last_layer(
    path: str | Path, module_name: str, weight: torch.Tensor, bias: torch.Tensor, **extra: Any
) -> None:
    torch.save({"format": FORMAT, "module": module_name, "weight": weight.contiguous(),
                "bias": bias.contiguous(), "extra": extra}, str(path))  # fmt: skip


def load_last_layer(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise RetrainError(f"last-layer file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle and zip errors alike mean "not such a file"
        raise RetrainError(f"{path} is not a last-layer file ({type(error).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise RetrainError(f"{path} is not a last-layer file")
    return saved


def apply_last_layer(module: nn.Module, saved: dict[str, Any]) -> nn.Module:
    """`module` with its named linear layer's weight and bias replaced (in place)."""
    name = saved["module"]
    linear = dict(module.named_modules()).get(name)
    if not isinstance(linear, nn.Linear):
        raise RetrainError(f"the base network has no linear layer {name!r}")
    weight, bias = saved["weight"], saved["bias"]
    if tuple(weight.shape) != tuple(linear.weight.shape):
        raise RetrainError(
            f"{name}: the saved weights are {tuple(weight.shape)}, "
            f"the base's {tuple(linear.weight.shape)}"
        )
    with torch.no_grad():
        linear.weight.copy_(weight)
        if linear.bias is not None:
            linear.bias.copy_(bias)
        else:
            linear.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return module
