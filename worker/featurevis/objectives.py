"""Unit objectives, vectorised over a batch in which every element targets its own unit.

An objective maps the layer activation `acts: [batch, C, H, W]` (or `[batch, C]`) and the unit
index of each element `units: [batch]` to that element's unit activation `[batch]`. The same
function gives the "final activation" reported with each image, so it must match how the
exemplar pipeline measures the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

EPS = 1e-4


class Objective(Protocol):
    def __call__(self, acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor: ...


def _as_spatial(acts: torch.Tensor) -> torch.Tensor:
    """acts: [batch, C] or [batch, C, H, W] → [batch, C, H, W]."""
    return acts[:, :, None, None] if acts.dim() == 2 else acts


class ChannelObjective:
    """The spatial mean of one channel."""

    def __call__(self, acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        acts = _as_spatial(acts)
        return acts[torch.arange(len(units), device=acts.device), units].mean(dim=(-2, -1))


class NeuronObjective:
    """One channel at the centre position (Lucent's neuron: index H // 2, W // 2)."""

    def __call__(self, acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        acts = _as_spatial(acts)
        height, width = acts.shape[-2:]
        batch = torch.arange(len(units), device=acts.device)
        return acts[batch, units, height // 2, width // 2]


class DirectionObjective:
    """dot × max(cosine, 0.1)^power with the unit's direction, averaged over positions (Lucid).

    directions: [n_units, C], e.g. dictionary atoms, PCA or random orthogonal directions.
    """

    def __init__(self, directions: torch.Tensor, cossim_power: float = 1.0) -> None:
        self.directions, self.cossim_power = directions, cossim_power

    def __call__(self, acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        acts = _as_spatial(acts).float()
        direction = self.directions.to(acts.device, acts.dtype)[units]  # [batch, C]
        dot = torch.einsum("bchw,bc->bhw", acts, direction)
        if self.cossim_power == 0:
            return dot.mean(dim=(-2, -1))
        norms = (acts.norm(dim=1) + EPS) * (direction.norm(dim=1)[:, None, None] + EPS)
        cossim = (dot / norms).clamp_min(0.1)
        return (dot * cossim**self.cossim_power).mean(dim=(-2, -1))


class CodeObjective:
    """A sparse-autoencoder (or any encoder) unit: its pre-activation code.

    encode: acts [batch, C, H, W] → codes [batch, K] or [batch, K, H, W] (spatially averaged).
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encode = encode

    def __call__(self, acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        codes = self.encode(acts)
        if codes.dim() == 4:
            codes = codes.mean(dim=(-2, -1))
        return codes[torch.arange(len(units), device=codes.device), units]


def linear_encoder(
    weight: torch.Tensor, bias: torch.Tensor | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A position-wise linear map: weight [K, C], bias [K] → encode(acts): [batch, K, H, W]."""

    def encode(acts: torch.Tensor) -> torch.Tensor:
        acts = _as_spatial(acts).float()
        codes = torch.einsum("bchw,kc->bkhw", acts, weight.to(acts.device))
        if bias is not None:
            codes = codes + bias.to(acts.device)[None, :, None, None]
        return codes

    return encode


def diversity_penalty(acts: torch.Tensor, group_sizes: Sequence[int]) -> torch.Tensor:
    """penalty: [batch], Lucid's diversity: cosine similarity of an image's Gram matrix with
    those of the other images of its group (a unit's images), divided by the group size.

    The batch is consecutive groups of `group_sizes` elements. Each group is computed on its
    own, so its penalty is bit for bit the same in any batch: one product over the whole batch
    rounds differently with the batch's size, and Adam carries that into the images.
    """
    flat = _as_spatial(acts).float().flatten(2)  # [batch, C, P]
    return torch.cat([_group_penalty(group) for group in flat.split(list(group_sizes))])


def _group_penalty(flat: torch.Tensor) -> torch.Tensor:
    """penalty: [k] for one group, flat: [k, C, P]."""
    size = len(flat)
    gram_products = _gram_products(flat)  # [k, k]: <G_i, G_j>
    norms = gram_products.diagonal().clamp_min(1e-20).sqrt()
    cosine = gram_products / (norms[:, None] * norms[None, :])
    others = ~torch.eye(size, dtype=torch.bool, device=flat.device)
    return (cosine * others).sum(1) / size


def _gram_products(flat: torch.Tensor) -> torch.Tensor:
    """<G_i, G_j>_F for G = F Fᵀ, flat: [batch, C, P]; through whichever side is smaller.

    <F_i F_iᵀ, F_j F_jᵀ> = ||F_iᵀ F_j||², so deep layers (C² ≫ P²) never build C×C Gram matrices.
    """
    channels, positions = flat.shape[1:]
    if channels <= positions:
        grams = torch.einsum("bcp,bdp->bcd", flat, flat).flatten(1)  # [batch, C*C]
        return grams @ grams.T
    cross = torch.einsum("bcp,dcq->bdpq", flat, flat)  # [batch, batch, P, P]
    return cross.pow(2).sum(dim=(-2, -1))
