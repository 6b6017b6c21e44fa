"""Image parameterisations: Lucid's decorrelated Fourier image and MACO's phase-only image.

Both hold one leading batch dimension (one element per optimised image) and map parameters to
RGB images in [0, 1] through Lucid's colour decorrelation and a sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch

from worker.featurevis import rng

# Lucid's square root of the ImageNet colour correlation matrix (lucid/optvis/param/color.py).
COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)
MAX_NORM_SVD_SQRT = float(COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max())
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT
INIT_STREAM = 0  # rng stream of the initial parameters; steps use streams 1, 2, …


def decorrelated_to_rgb(image: torch.Tensor, decorrelate: bool = True) -> torch.Tensor:
    """image: [batch, 3, H, W] in decorrelated space → [batch, 3, H, W] RGB in [0, 1]."""
    if decorrelate:
        matrix = COLOR_CORRELATION_NORMALIZED.to(image.device, image.dtype)
        # [3, 3] @ [batch, 3, H*W]: an einsum here runs as a batched product with an inner
        # dimension of 3, several times slower forward and backward on CPUs
        image = (matrix @ image.flatten(2)).view(image.shape)
    return torch.sigmoid(image)


def rgb_to_decorrelated(rgb: torch.Tensor) -> torch.Tensor:
    """The inverse of decorrelated_to_rgb: rgb [batch, 3, H, W] in (0, 1) → decorrelated space."""
    logits = torch.logit(rgb.clamp(1e-4, 1 - 1e-4))
    inverse = torch.linalg.inv(COLOR_CORRELATION_NORMALIZED).to(rgb.device, rgb.dtype)
    return torch.einsum("bchw,dc->bdhw", logits, inverse)


def rfft_frequencies(height: int, width: int) -> torch.Tensor:
    """freqs: [height, width // 2 + 1], the radial frequency of each rfft2 bin."""
    fy = torch.fft.fftfreq(height).unsqueeze(1)
    fx = torch.fft.rfftfreq(width).unsqueeze(0)
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage:
    """Lucid's FFT parameterisation: spectrum scaled by 1/f^decay, inverse FFT, /4 ("magic")."""

    def __init__(
        self, keys: torch.Tensor, size: int, decay_power: float, init_sd: float, decorrelate: bool
    ) -> None:
        self.size, self.decorrelate = size, decorrelate
        freqs = rfft_frequencies(size, size)
        self.scale = 1.0 / freqs.clamp_min(1.0 / size) ** decay_power  # [H, W//2+1]
        shape = (3, size, size // 2 + 1, 2)
        noise = rng.normal(keys, INIT_STREAM, math.prod(shape)) * init_sd
        self.spectrum = noise.reshape(len(keys), *shape)  # [batch, 3, H, W//2+1, 2]

    def to(self, device: torch.device) -> FourierImage:
        self.scale, self.spectrum = self.scale.to(device), self.spectrum.to(device)
        return self

    def parameter(self) -> torch.Tensor:
        return self.spectrum

    def set_parameter(self, value: torch.Tensor) -> None:
        self.spectrum = value

    def images(self) -> torch.Tensor:
        """images: [batch, 3, size, size] in [0, 1]."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0
        return decorrelated_to_rgb(image, self.decorrelate)


def magnitude_spectrum(images: torch.Tensor | Iterable[torch.Tensor], size: int) -> torch.Tensor:
    """magnitude: [3, size, size // 2 + 1], the mean rfft2 magnitude of natural images.

    Computed in decorrelated colour space (where MACO's phase lives), images resized to `size`.
    `images` is a tensor [N, 3, H, W] in [0, 1] or an iterable of such tensors or [3, H, W] images.
    """
    total, count = torch.zeros(3, size, size // 2 + 1), 0
    for batch in _batches(images):
        batch = torch.nn.functional.interpolate(
            batch.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        decorrelated = rgb_to_decorrelated(batch)
        centred = decorrelated - decorrelated.mean(dim=(-2, -1), keepdim=True)
        total += torch.fft.rfft2(centred, norm="ortho").abs().sum(0)
        count += len(batch)
    if count == 0:
        raise ValueError("magnitude_spectrum needs at least one image")
    return symmetrise_self_conjugate(total / count)


def symmetrise_self_conjugate(magnitude: torch.Tensor) -> torch.Tensor:
    """Make magnitude[.., k, c] == magnitude[.., -k, c] on the columns rfft2 stores both ways.

    A real image's spectrum has that symmetry; keeping it lets the fixed magnitude survive irfft2.
    """
    fixed = magnitude.clone()
    width = 2 * (magnitude.shape[-1] - 1)
    for column in {0, width // 2}:
        col = magnitude[..., column]
        fixed[..., column] = 0.5 * (col + torch.roll(torch.flip(col, [-1]), 1, -1))
    return fixed


class PhaseImage:
    """MACO's parameterisation: a fixed magnitude spectrum, an optimised phase.

    The phase is the phase of rfft2(z) for a real field z: [batch, 3, size, size], so every
    spectrum built from it is the spectrum of a real image and irfft2 keeps the magnitude exactly.
    """

    def __init__(self, keys: torch.Tensor, magnitude: torch.Tensor, values_std: float) -> None:
        self.size = 2 * (magnitude.shape[-1] - 1)
        # Parseval: the fixed magnitude fixes the image's energy; scale it once to values_std.
        energy = (magnitude**2).sum(dim=(-2, -1), keepdim=True) * 2 / self.size**2
        self.magnitude = magnitude * values_std / energy.sqrt().clamp_min(1e-12)
        self.magnitude[..., 0, 0] = 0.0  # no DC: the sigmoid's midpoint is the image's mean
        shape = (3, self.size, self.size)
        self.field = rng.normal(keys, INIT_STREAM, math.prod(shape)).reshape(len(keys), *shape)

    def to(self, device: torch.device) -> PhaseImage:
        self.magnitude, self.field = self.magnitude.to(device), self.field.to(device)
        return self

    def parameter(self) -> torch.Tensor:
        return self.field

    def set_parameter(self, value: torch.Tensor) -> None:
        self.field = value

    def spectrum(self) -> torch.Tensor:
        """spectrum: [batch, 3, size, size // 2 + 1] complex, |spectrum| == magnitude."""
        unit_phase = torch.fft.rfft2(self.field, norm="ortho")
        unit_phase = unit_phase / unit_phase.abs().clamp_min(1e-12)
        return unit_phase * self.magnitude

    def decorrelated(self) -> torch.Tensor:
        """The pre-sigmoid image [batch, 3, size, size] whose spectrum magnitude is fixed."""
        return torch.fft.irfft2(self.spectrum(), s=(self.size, self.size), norm="ortho")

    def images(self) -> torch.Tensor:
        return decorrelated_to_rgb(self.decorrelated())


def _batches(images: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield [N, 3, H, W] batches lazily, so an iterable of images is never held whole."""
    if isinstance(images, torch.Tensor):
        images = [images]
    for image in images:
        yield image if image.dim() == 4 else image.unsqueeze(0)
