"""dSprites-style images generated in code, for the synthetic experiment of O'Mahony, Nikolov &
O'Sullivan 2025 (arXiv 2411.10019): shape confounded with x-position in a biased training set.

The factors are dSprites' (Matthey et al. 2017): shape ∈ {square, ellipse, heart}; scale, 6
values in [0.5, 1]; orientation, 40 values in [0, 2π); x and y positions, 32 values each in
[0, 1]. A 64×64 binary image draws the shape, scaled and rotated, at the position. In the
*biased* set each shape's x-position lies in its own band — square [0, 0.3), ellipse
[0.35, 0.65), heart [0.7, 1] — so x-position alone tells the shape; in the *unbiased* set every
factor is drawn independently, uniformly over its values. Every set is a function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
POSITIONS = np.linspace(0.0, 1.0, 32)
X_BANDS = ((0.0, 0.3, False), (0.35, 0.65, True), (0.7, 1.0, True))  # (low, high, high included)
SIZE = 64
RADIUS = 10.0  # pixels at scale 1
MARGIN = 11.0  # the shape's centre stays this far from the border


@dataclass(frozen=True)
class Factors:
    """Per image (index i of each array): the factor values that drew it."""

    shape: np.ndarray  # [n] int, index into SHAPES
    scale: np.ndarray  # [n] float
    orientation: np.ndarray  # [n] float, radians
    x: np.ndarray  # [n] float in [0, 1]
    y: np.ndarray  # [n] float in [0, 1]


def band_positions(shape: int) -> np.ndarray:
    """The x-positions a shape may take in the biased set (dSprites' values inside its band)."""
    low, high, closed = X_BANDS[shape]
    x = POSITIONS
    inside = (x >= low) & ((x <= high) if closed else (x < high))
    return x[inside]


def sample_factors(n: int, seed: int, biased: bool) -> Factors:
    """n images' factors: each uniform over its values, x within the shape's band if biased."""
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, len(SHAPES), n)
    x = rng.choice(POSITIONS, n)
    if biased:
        x = np.array([rng.choice(band_positions(int(s))) for s in shape])
    return Factors(
        shape=shape,
        scale=rng.choice(SCALES, n),
        orientation=rng.choice(ORIENTATIONS, n),
        x=x,
        y=rng.choice(POSITIONS, n),
    )


def render(factors: Factors) -> torch.Tensor:
    """The images: [n, 1, 64, 64] float, 1 inside the shape, 0 outside."""
    n = len(factors.shape)
    inside = np.zeros((n, SIZE, SIZE), dtype=bool)
    for index, draw in enumerate((_square, _ellipse, _heart)):
        chosen = np.flatnonzero(factors.shape == index)
        if len(chosen):
            inside[chosen] = draw(*_frame(factors, chosen))
    return torch.from_numpy(inside.astype(np.float32))[:, None]


def _frame(factors: Factors, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's coordinates in the chosen images' own frames, in units of their radius:
    (u, v), each [len(chosen), 64, 64]."""
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    centre_x = MARGIN + factors.x[chosen] * (SIZE - 2 * MARGIN)
    centre_y = MARGIN + factors.y[chosen] * (SIZE - 2 * MARGIN)
    dx = (grid[None, None, :] - centre_x[:, None, None]).astype(np.float32)  # [n, 1, W]
    dy = (grid[None, :, None] - centre_y[:, None, None]).astype(np.float32)  # [n, H, 1]
    angle = factors.orientation[chosen]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    radius = (RADIUS * factors.scale[chosen])[:, None, None]
    return (cos * dx + sin * dy) / radius, (-sin * dx + cos * dy) / radius


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # the implicit heart (x² + y² − 1)³ − x² y³ ≤ 0, point up in the shape's frame
    x, y = u * 1.2, -v * 1.2 + 0.15
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def dataset(n: int, seed: int, biased: bool) -> tuple[torch.Tensor, torch.Tensor, Factors]:
    """(images [n, 1, 64, 64], shape labels [n], factors) for one seed."""
    factors = sample_factors(n, seed, biased)
    return render(factors), torch.from_numpy(factors.shape.astype(np.int64)), factors


def in_own_band(factors: Factors) -> np.ndarray:
    """Per image: whether its x-position lies in its shape's biased band (bias-aligned)."""
    aligned = np.zeros(len(factors.shape), dtype=bool)
    for shape in range(len(SHAPES)):
        chosen = factors.shape == shape
        aligned[chosen] = np.isin(factors.x[chosen], band_positions(shape))
    return aligned
