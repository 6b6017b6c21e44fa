"""Ablations: the network's output with units of a layer removed, for many removals at once.

How a unit is removed from the layer's activation ``x`` (every spatial position ``x_p``):

- channels: the channel set to 0 (``zero``) or to its mean over the image set (``mean``).
- neurons: the channel at the unit set's position only, likewise.
- PCA / random directions (orthonormal bases): the projection on the direction removed,
  ``x_p ← x_p - (x_p·w) w / ‖w‖²``.
- NMF: the unit's code times its atom subtracted, ``x_p ← x_p - z_p,u a_u`` (``z`` the
  non-negative codes of ``max(x_p, 0)``).
- TopK sparse autoencoder: likewise with its decoder atom, in the layer's units,
  ``x_p ← x_p - s · z_p,u d_u`` (``s`` the input scale the autoencoder was trained with).

A group (several units at once) removes each member's share of the same unablated ``x``.

Speed by design: per image batch, the network runs up to the layer once; a forward hook on the
layer swaps its output for ``[images × ablations]`` modified copies (the first one unablated),
so the rest of the network runs once for all ablations of the batch. A layer inside a skip
connection (a later module also reads an earlier tensor) cannot be cut there and is refused.

Per ablation the pass sums, over images: agreement with the reference class (the label, or
the unablated top-1), the KL divergence ``KL(p_unablated ‖ p_ablated)``, the change of the
unablated top class's logit, and the per-class agreement; :meth:`AblationState.finish` turns
them into the drop in top-1 accuracy, mean KL, mean logit change and the class profile
(Morcos et al. 2018; Meyes et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import Network, autocast_context, inference_network
from worker.pipelines.units import (
    ChannelProjector,
    LinearProjector,
    NeuronProjector,
    NMFProjector,
    PopulationProjector,
    SAEProjector,
    UnitProjector,
    nnls_codes,
    position_vectors,
)

__all__ = [
    "AblationError",
    "AblationState",
    "UnitRemover",
    "ablation_pass",
    "remover_for",
]

Progress = Callable[[float | None, str], None]
Mode = Literal["zero", "mean"]


class AblationError(ValueError):
    """The ablation cannot run as asked; the message is one line for a researcher."""


# --- Removing units from an activation ---------------------------------------------------------


class UnitRemover:
    """``remove(acts: [B, C, H, W] or [B, C], groups) -> [G, B, ...]``: each group's ablation
    of the same activation."""

    description = ""

    def remove(self, acts: Tensor, groups: Sequence[Sequence[int]]) -> Tensor:
        return torch.stack([self.remove_group(acts, list(group)) for group in groups])

    def remove_group(self, acts: Tensor, units: list[int]) -> Tensor:
        raise NotImplementedError


class LocalRemover(UnitRemover):
    """Channels (all positions) or neurons (one position): set to 0 or to the unit's mean."""

    def __init__(self, mode: Mode, means: Tensor | None, position: tuple[int, int] | None) -> None:
        if mode == "mean" and means is None:
            raise AblationError("mean-ablation needs each unit's mean: compute the measures first")
        self.mode, self.means, self.position = mode, means, position
        where = "at the unit set's position" if position else "at every position"
        self.description = (
            f"{'set to its mean over the image set' if mode == 'mean' else 'set to 0'} {where}"
        )

    def remove_group(self, acts: Tensor, units: list[int]) -> Tensor:
        out = acts.clone()
        if not units:
            return out
        index = torch.tensor(units, device=acts.device)
        value = (
            self.means[index].to(acts) if self.mode == "mean" and self.means is not None else 0.0
        )
        if acts.ndim == 2:
            out[:, index] = value
        elif self.position is None:
            out[:, index] = value if isinstance(value, float) else value[:, None, None]
        else:
            row, col = self.position
            out[:, index, row, col] = value
        return out


class ComponentRemover(UnitRemover):
    """Directions: subtract each member's component (``component(vectors, units)``) per
    position vector."""

    def __init__(self, component: Callable[[Tensor, list[int]], Tensor], description: str) -> None:
        self.component = component
        self.description = description

    def remove_group(self, acts: Tensor, units: list[int]) -> Tensor:
        if not units:
            return acts.clone()
        vectors = position_vectors(acts).float()  # [B, P, C]
        batch, positions, channels = vectors.shape
        removed = self.component(vectors.reshape(-1, channels), units).reshape(vectors.shape)
        return _from_position_vectors(vectors - removed, acts)


class PopulationRemover(UnitRemover):
    """A population is removed by removing all its members at once (the base unit set's way)."""

    def __init__(self, base: UnitRemover, members: list[list[int]]) -> None:
        self.base, self.members = base, members
        self.description = f"all its members removed at once: {base.description}"

    def remove_group(self, acts: Tensor, units: list[int]) -> Tensor:
        chosen = sorted({member for unit in units for member in self.members[unit]})
        return self.base.remove_group(acts, chosen)


def _from_position_vectors(vectors: Tensor, like: Tensor) -> Tensor:
    if like.ndim == 4:
        batch, channels, height, width = like.shape
        return vectors.transpose(1, 2).reshape(batch, channels, height, width).to(like.dtype)
    if like.ndim == 3:
        return vectors.to(like.dtype)
    return vectors[:, 0, :].to(like.dtype)


def remover_for(
    projector: UnitProjector, mode: Mode = "zero", means: Tensor | None = None
) -> UnitRemover:
    """How to remove the units of ``projector``'s unit set (see the module docstring)."""
    if isinstance(projector, PopulationProjector):
        return PopulationRemover(remover_for(projector.base, mode, means), projector.members)
    if isinstance(projector, ChannelProjector):
        return LocalRemover(mode, means, None)
    if isinstance(projector, NeuronProjector):
        return LocalRemover(mode, means, projector.spec.position)
    if isinstance(projector, LinearProjector):
        weight = projector.weight  # [units, C]

        def projection(vectors: Tensor, units: list[int]) -> Tensor:
            w = weight[units].to(vectors)
            return ((vectors @ w.T) / (w * w).sum(1)) @ w

        return ComponentRemover(projection, "its projection on the direction removed")
    if isinstance(projector, NMFProjector):
        atoms = projector.atoms

        def nmf_part(vectors: Tensor, units: list[int]) -> Tensor:
            codes = nnls_codes(vectors.clamp_min(0.0), atoms.to(vectors), projector.iterations)
            return codes[:, units] @ atoms[units].to(vectors)

        return ComponentRemover(nmf_part, "its NMF code times its atom subtracted")
    if isinstance(projector, SAEProjector):
        decoder = getattr(projector, "decoder", None)
        if decoder is None:
            raise AblationError("this sparse autoencoder was saved without its decoder: refit it")

        def sae_part(vectors: Tensor, units: list[int]) -> Tensor:
            codes = projector.encode(vectors)
            return projector.input_scale * (codes[:, units] @ decoder[units].to(vectors))

        return ComponentRemover(sae_part, "its code times its decoder atom subtracted")
    raise AblationError(f"cannot ablate units of kind {projector.spec.kind}")


# --- The pass ------------------------------------------------------------------------------------


class AblationState:
    """Sums over images for ``n_groups`` ablations (and the unablated network) over
    ``n_classes`` reference classes."""

    def __init__(self, n_groups: int, n_classes: int) -> None:
        self.n_groups, self.n_classes = n_groups, n_classes
        self.count = 0
        self.base_correct = 0.0
        self.correct = np.zeros(n_groups)
        self.kl = np.zeros(n_groups)
        self.logit_change = np.zeros(n_groups)
        self.class_count = np.zeros(n_classes)
        self.class_base_correct = np.zeros(n_classes)
        self.class_correct = np.zeros((n_groups, n_classes))

    def add(self, logits: Tensor, reference: Tensor) -> None:
        """``logits: [1 + groups, batch, classes]`` (the first unablated); ``reference: [batch]``
        the class each image should get (label or unablated top-1)."""
        logits = logits.float()
        base, ablated = logits[0], logits[1:]
        top = base.argmax(dim=1)
        log_p = torch.log_softmax(base, dim=1)
        log_q = torch.log_softmax(ablated, dim=2)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=2)  # [groups, batch]
        index = top[None, :, None].expand(len(ablated), -1, 1)
        change = ablated.gather(2, index)[..., 0] - base.gather(1, top[:, None])[:, 0]
        hits = (ablated.argmax(dim=2) == reference).double()  # [groups, batch]
        base_hits = (top == reference).double()
        classes = reference.clamp(0, self.n_classes - 1).cpu().numpy()
        self.count += int(base.shape[0])
        self.base_correct += float(base_hits.sum())
        self.correct += hits.sum(1).cpu().numpy()
        self.kl += kl.double().sum(1).cpu().numpy()
        self.logit_change += change.double().sum(1).cpu().numpy()
        np.add.at(self.class_count, classes, 1.0)
        np.add.at(self.class_base_correct, classes, base_hits.cpu().numpy())
        for g in range(len(ablated)):
            np.add.at(self.class_correct[g], classes, hits[g].cpu().numpy())

    def finish(self) -> dict[str, np.ndarray]:
        """Per group: ``accuracy_drop``, ``kl``, ``logit_change`` ([groups]) and
        ``class_drop`` ([groups, classes]; NaN for classes without images)."""
        if self.count == 0:
            raise AblationError("no image was read")
        n = self.count
        with np.errstate(divide="ignore", invalid="ignore"):
            class_base = self.class_base_correct / self.class_count
            class_drop = class_base[None, :] - self.class_correct / self.class_count[None, :]
        return {
            "accuracy_drop": self.base_correct / n - self.correct / n,
            "kl": self.kl / n,
            "logit_change": self.logit_change / n,
            "class_drop": class_drop,
            "base_accuracy": np.array(self.base_correct / n),
        }


class _Swap:
    """The forward hook that swaps the layer's activation for its ablated copies."""

    def __init__(self, remover: UnitRemover, groups: Sequence[Sequence[int]]) -> None:
        self.remover, self.groups = remover, [[], *groups]

    def output_hook(self, _module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        copies = self.remover.remove(output.float(), self.groups).to(output.dtype)
        return copies.reshape(-1, *output.shape[1:])  # [groups × batch, ...], group-major

    def input_hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.output_hook(_module, (), inputs[0]), *inputs[1:])


def ablated_logits(
    network: Network, projector: UnitProjector, remover: UnitRemover,
    groups: Sequence[Sequence[int]], pixels: Tensor,
) -> Tensor:  # fmt: skip
    """``[1 + groups, batch, classes]``: the unablated output, then each group's."""
    truncated = inference_network(network, [projector.tap])
    module = truncated.network.module
    layer = dict(module.named_modules()).get(projector.tap.name)
    if layer is None:
        raise AblationError(f"unknown layer {projector.tap.name!r}")
    swap = _Swap(remover, groups)
    if projector.tap.point == "input":
        handle = layer.register_forward_pre_hook(swap.input_hook)
    else:
        handle = layer.register_forward_hook(swap.output_hook)
    try:
        with torch.no_grad(), autocast_context(network.device):
            output = module(pixels.to(network.device))
    except RuntimeError as err:
        if "size" in str(err) or "shape" in str(err):
            raise AblationError(
                f"layer {projector.tap.name!r} sits inside a skip connection: "
                "ablate the output of a whole block"
            ) from None
        raise
    finally:
        handle.remove()
    if not isinstance(output, Tensor) or output.ndim != 2:
        raise AblationError(
            "ablations need a classifier: the network's output must be [batch, classes]"
        )
    return output.reshape(len(groups) + 1, pixels.shape[0], -1)


def ablation_pass(
    network: Network,
    projector: UnitProjector,
    remover: UnitRemover,
    groups: Sequence[Sequence[int]],
    batches: Iterable[ImageBatch],
    labels: dict[int, int] | None = None,
    n_classes: int | None = None,
    progress: Progress | None = None,
    total_images: int | None = None,
) -> AblationState:
    """Sums for every group of ``groups`` over ``batches`` (see :class:`AblationState`).

    With ``labels`` (image id → class index) the reference is the label; without, the unablated
    network's top-1 (the drop in accuracy is then the drop in agreement with it)."""
    state: AblationState | None = None
    done = 0
    for batch in batches:
        if len(batch):
            logits = ablated_logits(network, projector, remover, groups, batch.pixels)
            if labels is not None:
                ids = batch.image_ids.tolist()
                reference = torch.tensor(
                    [labels.get(int(i), -1) for i in ids], device=logits.device
                )
            else:
                reference = logits[0].argmax(dim=1)
            if state is None:
                state = AblationState(len(groups), n_classes or int(logits.shape[2]))
            state.add(logits, reference)
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"{len(groups)} ablations: {done} of {total_images or '?'} images")
    if state is None:
        raise AblationError("no image was read")
    return state


# --- Group ablations ------------------------------------------------------------------------------


def ranked_groups(ranking: Sequence[int], ks: Sequence[int]) -> list[list[int]]:
    """The first k units of ``ranking`` (best first), for each k."""
    if any(k < 1 or k > len(ranking) for k in ks):
        raise AblationError(f"every k must be between 1 and the {len(ranking)} units")
    return [list(ranking[:k]) for k in ks]


def random_groups(n_units: int, ks: Sequence[int], repeats: int, seed: int) -> list[list[int]]:
    """``repeats`` random groups of each size k (k-major: all of k=1, then k=2, …)."""
    rng = np.random.default_rng(seed)
    return [
        sorted(int(u) for u in rng.choice(n_units, size=k, replace=False))
        for k in ks
        for _ in range(repeats)
    ]
