"""Occlusion maps: a unit's activation with a square occluder at every position of an image.

Used for the counterfactual (occlusion_choice) task: the argmax and argmin positions give the
two occluded copies a participant chooses between, and `blur_outside_region` gives the "blurred
everywhere except the most activating region" version of a natural exemplar. Pure PyTorch: the
unit is any callable `unit_fn(images: [batch, 3, H, W] in [0, 1]) -> [batch]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF

from worker.pipelines.networks import Network, inference_network, prepare_batch
from worker.pipelines.units import UnitProjector

UnitFn = Callable[[torch.Tensor], torch.Tensor]
GREY = 0.5


@dataclass(frozen=True)
class OcclusionConfig:
    occluder_fraction: float = 0.4  # occluder side as a fraction of the image side (0.3–0.5)
    stride: int = 2  # pixels between neighbouring occluder positions
    fill: str = "mean"  # "mean" (the image's mean colour) or "grey" (0.5)
    batch_size: int = 64  # occluded copies scored per forward pass
    blur_sigma: float = 6.0  # Gaussian blur outside the kept region, in pixels
    keep_fraction: float | None = None  # kept square's side; default: the occluder's

    def __post_init__(self) -> None:
        if not 0 < self.occluder_fraction <= 1:
            raise ValueError("occluder_fraction must be in (0, 1]")
        if self.stride < 1 or self.batch_size < 1:
            raise ValueError("stride and batch_size must be at least 1")
        if self.fill not in ("mean", "grey"):
            raise ValueError("fill must be 'mean' or 'grey'")


@dataclass
class OcclusionMap:
    """activations[i, j]: the unit with the occluder's top-left corner at (ys[i], xs[j])."""

    activations: np.ndarray  # float32 [rows, cols]
    ys: np.ndarray  # int [rows], top edge of each row of positions
    xs: np.ndarray  # int [cols]
    occluder_size: int  # side in pixels
    base_activation: float  # the unit on the unoccluded image

    def position(self, flat_index: int) -> tuple[int, int]:
        row, col = divmod(int(flat_index), self.activations.shape[1])
        return int(self.ys[row]), int(self.xs[col])

    @property
    def argmax(self) -> tuple[int, int]:
        """(top, left) of the occluder position that leaves the highest activation."""
        return self.position(int(np.argmax(self.activations)))

    @property
    def argmin(self) -> tuple[int, int]:
        """(top, left) of the position whose occlusion hurts the unit most: its key region."""
        return self.position(int(np.argmin(self.activations)))

    @property
    def max_activation(self) -> float:
        return float(self.activations.max())

    @property
    def min_activation(self) -> float:
        return float(self.activations.min())


def unit_function(network: Network, projector: UnitProjector, index: int) -> UnitFn:
    """Unit `index` of `projector` on RGB images in [0, 1]: normalised as the network expects,
    then the inference network (folded, channels_last) only as deep as the unit's layer. In
    float32 on every device: neighbouring occluder positions can differ by little."""
    device = network.device
    truncated = inference_network(network, [projector.tap])
    projector = projector.to(device).eval()
    mean = torch.tensor(network.preprocess.mean, device=device)[:, None, None]
    std = torch.tensor(network.preprocess.std, device=device)[:, None, None]
    key = projector.tap.key

    def unit_fn(images: torch.Tensor) -> torch.Tensor:
        acts = truncated(prepare_batch((images - mean) / std, device))[key]
        return projector(acts.float().contiguous())[:, index]

    return unit_fn


def occluder_size(image_side: int, config: OcclusionConfig) -> int:
    return max(1, round(config.occluder_fraction * image_side))


def occluder_positions(height: int, width: int, size: int, stride: int) -> tuple[np.ndarray, ...]:
    """ys, xs: every top-left corner that keeps the occluder inside the image."""
    return np.arange(0, height - size + 1, stride), np.arange(0, width - size + 1, stride)


def fill_colour(image: torch.Tensor, fill: str) -> torch.Tensor:
    """colour: [3, 1, 1] that replaces occluded pixels."""
    if fill == "grey":
        return torch.full((3, 1, 1), GREY, dtype=image.dtype, device=image.device)
    return image.mean(dim=(-2, -1), keepdim=True)


def square_masks(
    tops: torch.Tensor, lefts: torch.Tensor, size: int, height: int, width: int
) -> torch.Tensor:
    """masks: [batch, 1, H, W] bool, True inside the square at (tops[b], lefts[b])."""
    rows = torch.arange(height, device=tops.device)[None, :, None]
    cols = torch.arange(width, device=tops.device)[None, None, :]
    inside_rows = (rows >= tops[:, None, None]) & (rows < tops[:, None, None] + size)
    inside_cols = (cols >= lefts[:, None, None]) & (cols < lefts[:, None, None] + size)
    return (inside_rows & inside_cols).unsqueeze(1)


def occluded_images(
    image: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, size: int, fill: str
) -> torch.Tensor:
    """image: [3, H, W] → copies [batch, 3, H, W], each with one square replaced by the fill."""
    masks = square_masks(tops, lefts, size, *image.shape[-2:])
    return torch.where(masks, fill_colour(image, fill), image.unsqueeze(0))


@torch.no_grad()
def occlusion_map(unit_fn: UnitFn, image: torch.Tensor, config: OcclusionConfig) -> OcclusionMap:
    """The unit's activation for every occluder position, config.batch_size copies at a time."""
    height, width = image.shape[-2:]
    size = occluder_size(min(height, width), config)
    ys, xs = occluder_positions(height, width, size, config.stride)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    tops = torch.as_tensor(grid_y.ravel(), device=image.device)
    lefts = torch.as_tensor(grid_x.ravel(), device=image.device)
    scores = []
    for start in range(0, len(tops), config.batch_size):
        chunk = slice(start, start + config.batch_size)
        batch = occluded_images(image, tops[chunk], lefts[chunk], size, config.fill)
        scores.append(unit_fn(batch).float().cpu())
    activations = torch.cat(scores).reshape(len(ys), len(xs)).numpy()
    base = float(unit_fn(image.unsqueeze(0)).float().cpu()[0])
    return OcclusionMap(activations.astype(np.float32), ys, xs, size, base)


def key_region(
    occlusion: OcclusionMap, height: int, width: int, config: OcclusionConfig
) -> tuple[int, int, int]:
    """(top, left, side) of the kept square, centred on the most activating region."""
    top, left = occlusion.argmin
    side = occlusion.occluder_size
    if config.keep_fraction is not None:
        side = max(1, round(config.keep_fraction * min(height, width)))
    centre_y, centre_x = top + occlusion.occluder_size / 2, left + occlusion.occluder_size / 2
    new_top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    new_left = int(np.clip(round(centre_x - side / 2), 0, width - side))
    return new_top, new_left, side


def blur_outside_region(
    image: torch.Tensor, occlusion: OcclusionMap, config: OcclusionConfig
) -> torch.Tensor:
    """image: [3, H, W] Gaussian-blurred everywhere except the square around its key region."""
    height, width = image.shape[-2:]
    top, left, side = key_region(occlusion, height, width, config)
    kernel = 2 * int(3 * config.blur_sigma) + 1
    blurred = TF.gaussian_blur(image.unsqueeze(0), [kernel, kernel], [config.blur_sigma] * 2)[0]
    mask = square_masks(torch.tensor([top]), torch.tensor([left]), side, height, width)[0]
    return torch.where(mask.to(image.device), image, blurred)
