"""Code density per layer: the eigenspectrum of a layer's activation covariance, and random
projections of its responses to a smoothly varying stimulus.

Marshall & Kirchner 2024 ("Understanding polysemanticity in neural networks through coding
theory", arXiv 2401.17975) read how redundant and how smooth a layer's code is from two things:

1. The eigenvalues λ₁ ≥ λ₂ ≥ … of the covariance of its activation vectors. Stringer et al. 2019
   ("High-dimensional geometry of population responses in visual cortex", Nature 571) showed
   that a code of a d-dimensional input manifold can be smooth (differentiable) only if the
   spectrum decays as a power law λₙ ∝ n^−α with α ≥ 1 + 2/d. We fit α as their code does
   (`get_powerlaw`): weighted least squares of log λₙ on −log n with weights 1/n (which spreads
   the weight evenly along log n), over ranks 11–500 clipped to the dimension. The
   participation ratio (Σλ)²/Σλ² counts the effective dimensions; the components needed for
   50/90/99 % of the variance say the same in rank terms.
2. Random projections p(t) = Wᵀ r(t) of the responses r(t) to a stimulus path with one known
   parameter t (a dot moving on a circle; a natural image translated or rotated in small
   steps), on R seeded random unit directions W. The normalised energy
   E = Σᵢ ‖p(tᵢ₊₁) − p(tᵢ)‖² / Σᵢ ‖p(tᵢ) − p̄‖² is small for a smooth code and about 2 for
   an unordered one (the same path in shuffled order is the reference; so are the pixels).

The covariance is accumulated as mergeable float64 sums (count, Σx, Σxxᵀ) in the shape of
baukit's running statistics: a shard adds its images and returns the sums, the merge adds the
sums, and nothing ever holds images × dimensions. Pure PyTorch: no Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import (
    LayerTap,
    Network,
    TruncatedNetwork,
    inference_network,
    prepare_batch,
)
from worker.pipelines.sampling import hash_priorities, position_keys
from worker.pipelines.units import NeuronProjector, UnitProjector, position_vectors

Progress = Callable[[float | None, str], None]
Sampling = Literal["pooled", "positions"]

# Stringer et al.'s default fit range (ranks, 1-based, inclusive). Their code's
# `np.arange(11, 500)` indexes 0-based eigenvalues, i.e. ranks 12–500; the issue asks for 11–500.
DEFAULT_RANKS = (11, 500)
VARIANCE_LEVELS = (0.5, 0.9, 0.99)
MIN_FIT_POINTS = 5


class SpectrumError(ValueError):
    """A spectrum or a fit cannot be computed; the message is one line for a researcher."""


# --- Streaming covariance -----------------------------------------------------------------------


class CovarianceSums:
    """count, Σx and Σxxᵀ of a stream of vectors ``[n, D]``, in float64; `merge` adds two.

    The sums are kept about a reference point (`shift`, the first batch's mean) so that a large
    mean (post-ReLU activations) does not cancel the variance away in Σxxᵀ − n x̄x̄ᵀ; `merge`
    moves the other's sums to this reference exactly (Σ(x − a) = Σ(x − b) + n(b − a), and the
    same for the outer products), so shards still combine into the one-pass result."""

    def __init__(self, dimension: int, device: torch.device | str = "cpu") -> None:
        self.count = 0
        self.shift = torch.zeros(dimension, dtype=torch.float64, device=device)  # [D]
        self.total = torch.zeros(dimension, dtype=torch.float64, device=device)  # Σ(x − shift)
        self.outer = torch.zeros(dimension, dimension, dtype=torch.float64, device=device)

    @property
    def dimension(self) -> int:
        return int(self.total.shape[0])

    def add(self, vectors: Tensor) -> None:
        """Fold in ``vectors: [n, D]`` (any float dtype; summed in float64)."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise SpectrumError(
                f"expected vectors [n, {self.dimension}], got {tuple(vectors.shape)}"
            )
        x = vectors.to(self.total.device, torch.float64)
        if self.count == 0 and len(x):
            self.shift = x.mean(dim=0)
        x = x - self.shift
        self.count += int(x.shape[0])
        self.total += x.sum(dim=0)
        self.outer += x.T @ x

    def merge(self, other: CovarianceSums) -> CovarianceSums:
        if other.dimension != self.dimension:
            raise SpectrumError(f"cannot merge {other.dimension}-d sums into {self.dimension}-d")
        if self.count == 0:
            self.shift = other.shift.to(self.shift.device).clone()
        d = other.shift.to(self.shift.device) - self.shift  # other's reference, seen from ours
        total = other.total.to(self.total.device)
        self.outer += other.outer.to(self.outer.device) + torch.outer(d, total)
        self.outer += torch.outer(total, d) + other.count * torch.outer(d, d)
        self.total += total + other.count * d
        self.count += other.count
        return self

    def mean(self) -> Tensor:
        return self.shift + self.total / max(self.count, 1)

    def covariance(self) -> Tensor:
        """The unbiased sample covariance ``[D, D]`` (divisor n − 1)."""
        if self.count < 2:
            raise SpectrumError(f"a covariance needs at least 2 samples (got {self.count})")
        centred = self.outer - torch.outer(self.total, self.total) / self.count
        covariance = centred / (self.count - 1)
        return (covariance + covariance.T) / 2  # exact symmetry for eigh

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "count": torch.tensor(self.count, dtype=torch.int64),
            "shift": self.shift.cpu(),
            "total": self.total.cpu(),
            "outer": self.outer.cpu(),
        }

    @classmethod
    def from_state_dict(
        cls, tensors: Mapping[str, Tensor], device: torch.device | str = "cpu"
    ) -> CovarianceSums:
        sums = cls(int(tensors["total"].shape[0]), device)
        sums.count = int(tensors["count"])
        sums.shift = tensors["shift"].to(device, torch.float64).clone()
        sums.total = tensors["total"].to(device, torch.float64).clone()
        sums.outer = tensors["outer"].to(device, torch.float64).clone()
        return sums


def eigenspectrum(sums: CovarianceSums) -> Tensor:
    """Eigenvalues of the covariance, descending, by `torch.linalg.eigh` in float64 (tiny
    negative round-off values are set to 0: a covariance is positive semi-definite)."""
    values = torch.linalg.eigvalsh(sums.covariance())
    return values.flip(0).clamp_min(0.0).cpu()


# --- Figures of a spectrum ---------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """λₙ ≈ exp(intercept) · n^−alpha over ranks ``first``–``last`` (1-based, inclusive)."""

    alpha: float
    intercept: float
    r_squared: float  # weighted, with the fit's weights 1/n, in log–log space
    first: int
    last: int
    weights: str = "1/n (Stringer et al. 2019)"

    def predicted(self, ranks: Tensor) -> Tensor:
        return torch.exp(self.intercept - self.alpha * torch.log(ranks.double()))


def fit_power_law(
    eigenvalues: Tensor, ranks: tuple[int, int] = DEFAULT_RANKS, n_samples: int | None = None
) -> PowerLawFit:
    """Fit α as Stringer et al. 2019 do: minimise Σₙ (1/n)(log λₙ − b + α log n)² over the rank
    range, its end clipped to the dimension. Raises SpectrumError when the range holds fewer
    than MIN_FIT_POINTS ranks, when the samples (rank ≤ n − 1) cannot reach it, or when an
    eigenvalue inside it is zero."""
    first, last = _fit_range(len(eigenvalues), ranks, n_samples)
    n = torch.arange(first, last + 1, dtype=torch.float64)
    values = eigenvalues[first - 1 : last].double()
    if bool((values <= 0).any()):
        zero = first + int(torch.nonzero(values <= 0)[0])
        raise SpectrumError(
            f"eigenvalue {zero} is zero: the activity spans fewer dimensions than the fit range "
            f"{first}–{last}; fit a lower range"
        )
    y, w = torch.log(values), 1.0 / n
    design = torch.stack([-torch.log(n), torch.ones_like(n)], dim=1)  # [ranks, 2]
    solution = torch.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * y))
    alpha, intercept = float(solution[0]), float(solution[1])
    residual = y - design @ solution
    mean = (w * y).sum() / w.sum()
    r_squared = 1.0 - float((w * residual**2).sum() / (w * (y - mean) ** 2).sum())
    return PowerLawFit(alpha, intercept, r_squared, first, last)


def _fit_range(dimension: int, ranks: tuple[int, int], n_samples: int | None) -> tuple[int, int]:
    first, last = int(ranks[0]), min(int(ranks[1]), dimension)
    if first < 1 or ranks[1] < first:
        raise SpectrumError(f"the fit range {ranks[0]}–{ranks[1]} must be 1 ≤ first ≤ last")
    if last - first + 1 < MIN_FIT_POINTS:
        raise SpectrumError(
            f"the layer has {dimension} dimensions: too few for a fit from rank {first} "
            f"(at least {MIN_FIT_POINTS} ranks are needed)"
        )
    if n_samples is not None and n_samples - 1 < last:
        raise SpectrumError(
            f"{n_samples} samples give at most {max(n_samples - 1, 0)} non-zero eigenvalues, but "
            f"the fit needs ranks {first}–{last}: use at least {last + 1} samples (more images, "
            f"or sampled positions) or a lower rank range"
        )
    return first, last


def participation_ratio(eigenvalues: Tensor) -> float:
    """(Σλ)² / Σλ²: 1 for one dimension, D for D equal ones."""
    values = eigenvalues.double()
    squares = float((values**2).sum())
    if squares == 0:
        raise SpectrumError("every eigenvalue is zero: the layer's activity does not vary")
    return float(values.sum()) ** 2 / squares


def components_for_variance(
    eigenvalues: Tensor, levels: Sequence[float] = VARIANCE_LEVELS
) -> dict[float, int]:
    """The fewest leading components whose eigenvalues hold each level of the total variance."""
    values = eigenvalues.double()
    total = float(values.sum())
    if total == 0:
        raise SpectrumError("every eigenvalue is zero: the layer's activity does not vary")
    explained = torch.cumsum(values, 0) / total
    counts = {}
    for level in levels:
        reached = torch.nonzero(explained >= level - 1e-12)
        counts[level] = int(reached[0]) + 1 if len(reached) else len(values)
    return counts


def smoothness_criterion(manifold_dim: int | None) -> float:
    """α ≥ 1 + 2/d for a smooth code of a d-dimensional input (Stringer et al. 2019); d = None
    stands for a high-dimensional input (natural images), where the bound tends to 1."""
    if manifold_dim is None:
        return 1.0
    if manifold_dim < 1:
        raise SpectrumError(f"the input manifold's dimension must be ≥ 1 (got {manifold_dim})")
    return 1.0 + 2.0 / manifold_dim


@dataclass(frozen=True)
class SpectrumFigures:
    """Everything stored per layer: the spectrum and what is read from it."""

    eigenvalues: list[float]
    n_samples: int
    dimension: int
    participation_ratio: float
    components: dict[str, int]  # "50", "90", "99" → leading components for that % of variance
    criterion: float  # 1 + 2/d
    fit: PowerLawFit | None
    fit_error: str = ""

    @property
    def pr_fraction(self) -> float:
        return self.participation_ratio / self.dimension

    def as_dict(self) -> dict[str, object]:
        fit = self.fit
        return {
            "n_samples": self.n_samples, "dimension": self.dimension,
            "participation_ratio": self.participation_ratio, "pr_fraction": self.pr_fraction,
            "components": self.components, "criterion": self.criterion,
            "alpha": fit.alpha if fit else None, "alpha_r2": fit.r_squared if fit else None,
            "fit_ranks": [fit.first, fit.last] if fit else None, "fit_error": self.fit_error,
        }  # fmt: skip


def spectrum_figures(
    sums: CovarianceSums, ranks: tuple[int, int] = DEFAULT_RANKS, manifold_dim: int | None = None
) -> SpectrumFigures:
    """The eigenvalues and the figures of one layer's sums. A fit that cannot be made (too few
    samples or dimensions for the range) is reported in `fit_error`, the rest still stands."""
    eigenvalues = eigenspectrum(sums)
    fit, fit_error = None, ""
    try:
        fit = fit_power_law(eigenvalues, ranks, sums.count)
    except SpectrumError as err:
        fit_error = str(err)
    counts = components_for_variance(eigenvalues)
    return SpectrumFigures(
        eigenvalues=[float(v) for v in eigenvalues], n_samples=sums.count,
        dimension=sums.dimension, participation_ratio=participation_ratio(eigenvalues),
        components={f"{round(level * 100)}": count for level, count in counts.items()},
        criterion=smoothness_criterion(manifold_dim), fit=fit, fit_error=fit_error,
    )  # fmt: skip


# --- The spectrum pass over an image set ---------------------------------------------------------


@dataclass(frozen=True)
class SpectrumConfig:
    """How activation vectors are sampled. ``pooled`` (the default): one vector per image, the
    spatial mean, as the channel units see it and as Stringer et al. use one response vector
    per stimulus; its rank is at most images − 1. ``positions``: the channel vectors at
    `positions_per_image` spatial positions per image, picked by a seeded hash of (image,
    position), so shards and reruns pick the same ones: more samples, but neighbours within an
    image are correlated and spatial variance enters the spectrum."""

    sampling: Sampling = "pooled"
    positions_per_image: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampling not in ("pooled", "positions"):
            raise SpectrumError(f"sampling must be 'pooled' or 'positions' (got {self.sampling!r})")
        if self.positions_per_image < 1:
            raise SpectrumError("positions_per_image must be ≥ 1")


@dataclass(frozen=True)
class SpectrumTarget:
    """One spectrum to accumulate: a layer tap, in the basis of a unit set's projector (None:
    the layer's own channels)."""

    tap: LayerTap
    basis: UnitProjector | None = None


def fp32_forward(
    truncated: TruncatedNetwork, pixels: Tensor, device: torch.device
) -> dict[str, Tensor]:
    """The taps' activations in plain float32: no bf16 autocast and no TF32 convolutions on a
    GPU (the other passes use both). Their rounding, about 1e-3 relative, would lay a noise
    floor under the spectrum's tail: rank 500 of a spectrum with α = 1.5 is 1e-4 of rank 1."""
    cudnn = torch.backends.cudnn
    with (
        torch.no_grad(),
        cudnn.flags(
            enabled=cudnn.enabled,
            benchmark=cudnn.benchmark,
            deterministic=cudnn.deterministic,
            allow_tf32=False,
        ),
    ):
        return truncated(prepare_batch(pixels, device))


def sample_vectors(
    acts: Tensor, image_ids: Tensor, config: SpectrumConfig, basis: UnitProjector | None = None
) -> Tensor:
    """``acts: [batch, …]`` → the vectors ``[n, D]`` whose covariance is the spectrum's."""
    if config.sampling == "pooled":
        if basis is not None:
            return basis(acts.contiguous()).double()
        if acts.ndim == 4:  # in place of position_vectors: no copy of a channels_last map
            return acts.mean(dim=(2, 3)).double()
        return position_vectors(acts).mean(dim=1).double()
    vectors = position_vectors(acts)  # [batch, positions, C]
    batch, positions, channels = vectors.shape
    keys = position_keys(image_ids.cpu(), positions).reshape(batch, positions)
    priorities = hash_priorities(keys.reshape(-1), config.seed).reshape(batch, positions)
    k = min(config.positions_per_image, positions)
    chosen = torch.argsort(priorities, dim=1)[:, :k].to(vectors.device)  # [batch, k]
    picked = vectors.gather(1, chosen[:, :, None].expand(-1, -1, channels)).reshape(-1, channels)
    if basis is None or isinstance(basis, NeuronProjector):  # a position's neurons: its channels
        return picked.double()
    return basis(picked[:, :, None, None]).double()  # each vector as a 1×1 map


def spectrum_sums(
    network: Network,
    targets: Mapping[str, SpectrumTarget],
    batches: Iterable[ImageBatch],
    config: SpectrumConfig = SpectrumConfig(),
    progress: Progress | None = None,
    total_images: int | None = None,
) -> dict[str, CovarianceSums]:
    """One pass over ``batches`` (a shard's range of an image set) for every target."""
    if not targets:
        raise SpectrumError("no layer was chosen")
    device = network.device
    truncated = inference_network(network, list(dict.fromkeys(t.tap for t in targets.values())))
    bases = {name: t.basis.to(device).eval() if t.basis else None for name, t in targets.items()}
    sums: dict[str, CovarianceSums] = {}
    done = 0
    for batch in batches:
        if len(batch):
            acts = fp32_forward(truncated, batch.pixels, device)
            with torch.no_grad():  # the bases' codes (SAE, NMF) need no graph either
                for name, target in targets.items():
                    layer = acts[target.tap.key].float()
                    vectors = sample_vectors(layer, batch.image_ids, config, bases[name])
                    if name not in sums:
                        sums[name] = CovarianceSums(vectors.shape[1], device)
                    sums[name].add(vectors)
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            fraction = min(done / total_images, 1.0) if total_images else 0.0
            progress(fraction, f"{done} of {total_images or '?'} images")
    if not sums:
        raise SpectrumError("no image could be read")
    return sums


# --- Random projections of a smooth stimulus path ----------------------------------------------

PathKind = Literal["circle", "translate", "rotate"]


@dataclass(frozen=True)
class PathConfig:
    """A stimulus path with one known parameter. ``circle``: a white dot moving once round a
    circle on grey (the paper's stimulus, a closed path); ``translate``/``rotate``: a natural
    image shifted right by `step` pixels or turned by `step` degrees per frame."""

    kind: PathKind = "circle"
    steps: int = 128
    size: int = 224
    dot_radius: float = 0.08  # of the image side
    circle_radius: float = 0.3  # of the image side
    step: float = 2.0  # pixels (translate) or degrees (rotate) per frame
    directions: int = 16  # R random unit directions
    seed: int = 0
    shuffles: int = 4  # shuffled orders averaged for the reference

    def __post_init__(self) -> None:
        if self.kind not in ("circle", "translate", "rotate"):
            raise SpectrumError(f"path must be circle, translate or rotate (got {self.kind!r})")
        if self.steps < 3 or self.directions < 1:
            raise SpectrumError("a path needs ≥ 3 steps and ≥ 1 direction")

    @property
    def closed(self) -> bool:
        return self.kind == "circle"


def circle_path(config: PathConfig) -> Tensor:
    """``[steps, 3, size, size]`` in [0, 1]: a soft-edged dot at angle 2πi/steps."""
    size = config.size
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    rows, cols = grid[:, None], grid[None, :]
    angles = torch.arange(config.steps, dtype=torch.float32) * (2 * math.pi / config.steps)
    centre_x = config.circle_radius * torch.cos(angles)[:, None, None]
    centre_y = config.circle_radius * torch.sin(angles)[:, None, None]
    distance = torch.sqrt((cols - centre_x) ** 2 + (rows - centre_y) ** 2)
    edge = 1.0 / size  # one pixel of anti-aliasing keeps the path smooth between frames
    dot = torch.clamp((config.dot_radius - distance) / edge + 0.5, 0.0, 1.0)
    frames = 0.5 + 0.5 * dot  # grey background, white dot
    return frames[:, None].expand(-1, 3, -1, -1).contiguous()


def image_path(image: Tensor, config: PathConfig) -> Tensor:
    """``image: [3, H, W]`` → ``[steps, 3, H, W]``: translated or rotated in small steps
    (bilinear resampling, borders reflected), centred on the original position."""
    steps = torch.arange(config.steps, dtype=torch.float32) - (config.steps - 1) / 2
    theta = torch.zeros(config.steps, 2, 3)
    if config.kind == "translate":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2.0 * config.step * steps / image.shape[-1]
    else:
        radians = torch.deg2rad(config.step * steps)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(radians), -torch.sin(radians)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(radians), torch.cos(radians)
    frames = image[None].expand(config.steps, -1, -1, -1).float()
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, padding_mode="reflection", align_corners=False)


def random_directions(dimension: int, count: int, seed: int) -> Tensor:
    """``[dimension, count]`` unit columns, Gaussian then normalised (seeded, on CPU)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(dimension, count, generator=generator, dtype=torch.float64)
    return directions / directions.norm(dim=0, keepdim=True)


def path_energy(projections: Tensor, closed: bool = False) -> float | None:
    """Σᵢ ‖p(tᵢ₊₁) − p(tᵢ)‖² / Σᵢ ‖p(tᵢ) − p̄‖² for ``projections: [steps, R]`` (a closed path
    counts its last step back to the start); None when the responses do not vary."""
    p = projections.double()
    differences = p.roll(-1, dims=0) - p if closed else p[1:] - p[:-1]
    variance = float(((p - p.mean(dim=0)) ** 2).sum())
    if variance <= 1e-24 * max(float((p**2).sum()), 1e-300):
        return None
    return float((differences**2).sum()) / variance


@dataclass(frozen=True)
class PathEnergy:
    """One layer's random-projection test (the pixels are a 'layer' named ``pixels``)."""

    energy: float | None
    shuffled: float | None  # mean over `shuffles` seeded orders of the same responses
    projections: list[list[float]] = field(default_factory=list)  # [steps][R], for plotting


def layer_energy(responses: Tensor, config: PathConfig) -> PathEnergy:
    """``responses: [steps, …]`` (flattened per frame) projected on R seeded random unit
    directions; the energy of the path and of shuffled orders of it."""
    flat = responses.reshape(responses.shape[0], -1).double().cpu()
    directions = random_directions(flat.shape[1], config.directions, config.seed)
    projections = flat @ directions  # [steps, R]
    generator = torch.Generator().manual_seed(config.seed + 1)
    shuffled = [
        path_energy(projections[torch.randperm(len(projections), generator=generator)])
        for _ in range(config.shuffles)
    ]
    known = [value for value in shuffled if value is not None]
    return PathEnergy(
        energy=path_energy(projections, config.closed),
        shuffled=sum(known) / len(known) if known else None,
        projections=[[float(v) for v in row] for row in projections],
    )


def path_energies(
    network: Network, taps: Sequence[LayerTap], frames: Tensor, config: PathConfig
) -> dict[str, PathEnergy]:
    """``frames: [steps, 3, H, W]`` in [0, 1] through the network: each tap's energy, and the
    input pixels' under the key ``pixels``."""
    preprocess = network.preprocess
    mean = torch.tensor(preprocess.mean)[None, :, None, None]
    std = torch.tensor(preprocess.std)[None, :, None, None]
    if frames.shape[-1] != preprocess.crop:
        frames = F.interpolate(frames, size=(preprocess.crop, preprocess.crop), mode="bilinear")
    pixels = (frames - mean) / std
    truncated = inference_network(network, list(taps))
    acts = fp32_forward(truncated, pixels, network.device)
    results = {"pixels": layer_energy(pixels, config)}
    for tap in taps:
        results[tap.key] = layer_energy(acts[tap.key].float(), config)
    return results
