"""Random geometric transforms, drawn per batch element and applied in one grid_sample.

Lucid's chain pad → jitter → scale → rotate → jitter (→ optional crop) and the resize to the
network's input size compose into one affine map per element, so a batch of units, each with its
own draw, costs a single `affine_grid` + `grid_sample`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from worker.featurevis import rng
from worker.featurevis.config import TransformConfig

PAD_VALUE = 0.5  # Lucent pads with grey


def identity_view(batch: int, image_size: int, crop_size: int | None) -> torch.Tensor:
    """theta: [batch, 2, 3], the undistorted view (whole image, or its centre crop)."""
    theta = torch.zeros(batch, 2, 3)
    side = 1.0 if crop_size is None else crop_size / image_size
    theta[:, 0, 0] = theta[:, 1, 1] = side
    return theta


def sample_affine(
    keys: torch.Tensor, stream: int, image_size: int, config: TransformConfig
) -> torch.Tensor:
    """theta: [batch, 2, 3] mapping output coordinates to image coordinates (both in [-1, 1]).

    In image pixels about the centre: c = R(-angle) (u * B/2 + t2) / s + t1, with t1 the first
    jitter, s the scale, t2 the second jitter and B the side of the final view.
    """
    u = rng.uniform(keys, stream, 6).to(torch.float64)  # [batch, 6]
    low, high = config.scale_range
    scale = low + (high - low) * u[:, 0]
    angle = math.radians(config.max_angle_degrees) * (2 * u[:, 1] - 1)
    shift1 = config.jitter * (u[:, 2:4] - 0.5)  # [batch, 2] pixels
    shift2 = config.jitter_after * (u[:, 4:6] - 0.5)
    padded = image_size + 2 * config.pad - config.jitter
    if config.crop_size is None:
        view = padded * scale - config.jitter_after  # the whole transformed image
    else:
        view = torch.full_like(scale, float(config.crop_size))
    return _compose(scale, angle, shift1, shift2, view, image_size).float()


def _compose(
    scale: torch.Tensor,
    angle: torch.Tensor,
    shift1: torch.Tensor,
    shift2: torch.Tensor,
    view: torch.Tensor,
    image_size: int,
) -> torch.Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    # R(-angle) = [[cos, sin], [-sin, cos]]
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    linear = rotation * (view / (2 * scale))[:, None, None]  # [batch, 2, 2] pixels per unit u
    offset = torch.einsum("bij,bj->bi", rotation, shift2) / scale[:, None] + shift1
    theta = torch.cat([linear, offset.unsqueeze(-1)], -1)
    return theta * (2.0 / image_size)  # pixels → grid_sample's normalised coordinates


def warp(
    images: torch.Tensor,
    theta: torch.Tensor,
    out_size: int,
    normalise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """images: [batch, 3, S, S] in [0, 1], theta: [batch, 2, 3] → views: [batch, 3, out, out].

    Outside the image reads as grey, as with Lucent's constant padding. With
    normalise=(mean, std), each [1, 3, 1, 1], the views come out as (views - mean) / std, the
    network's input: sampling is linear per channel, so the division runs on the S×S image and
    the out×out views get a single shift (less memory traffic than normalising the views).
    """
    grid = affine_grid(theta.to(images.dtype), out_size)
    if normalise is None:
        centred = images - PAD_VALUE
        return F.grid_sample(centred, grid, mode="bilinear", align_corners=False) + PAD_VALUE
    mean, std = normalise
    centred = (images - PAD_VALUE) / std
    sampled = F.grid_sample(centred, grid, mode="bilinear", align_corners=False)
    return sampled + (PAD_VALUE - mean) / std


def affine_grid(theta: torch.Tensor, out_size: int) -> torch.Tensor:
    """grid: [batch, out, out, 2], as F.affine_grid(theta, [batch, C, out, out], False).

    Computed as two broadcast sums: F.affine_grid's batched matrix product with an inner
    dimension of 3 is ten times slower on CPUs. The grid is a permuted view; grid_sample reads
    its strides.
    """
    # pixel centres in normalised coordinates (align_corners=False)
    base = (torch.arange(out_size, device=theta.device, dtype=theta.dtype) * 2 + 1) / out_size - 1
    columns = theta[:, :, None, None, 0] * base[None, None, None, :]  # [batch, 2, 1, out]
    rows = theta[:, :, None, None, 1] * base[None, None, :, None] + theta[:, :, None, None, 2]
    # summed with the coordinate first (the fast order), then viewed as grid_sample wants it
    return (columns + rows).permute(0, 2, 3, 1)  # [batch, out (y), out (x), 2 (x, y)]


def sample_crops(
    keys: torch.Tensor, stream: int, crops: int, crop_range: tuple[float, float]
) -> torch.Tensor:
    """theta: [batch * crops, 2, 3], MACO's random square crops (side a fraction of the image)."""
    u = rng.uniform(keys, stream, 3 * crops).reshape(len(keys) * crops, 3)
    side = crop_range[0] + (crop_range[1] - crop_range[0]) * u[:, 0]
    theta = torch.zeros(len(side), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = (1 - side)[:, None] * (2 * u[:, 1:3] - 1)  # crop stays inside the image
    return theta
