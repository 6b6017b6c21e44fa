"""Fit dictionaries (NMF, TopK sparse autoencoder, PCA, random directions) on a layer.

The fit streams an image set through the network (truncated at the layer), keeps a bounded,
seeded uniform sample of spatial position vectors (``max_samples`` rows, whatever the number of
images; mergeable, so shards over ranges of images combine into one pass's sample), and fits
on that sample. NMF and the SAE come from the ``overcomplete`` package; PCA and
the random rotation baseline are a few lines of linear algebra.

NMF needs non-negative input: activations are clamped at zero, which is lossless after a ReLU
but discards the negative part of linear layers (e.g. the projection at the end of an
EfficientNet block). Pick a post-nonlinearity layer (or a module's ``input`` point after a
ReLU) for NMF units.

``reconstruction_error`` is the fraction of variance left unexplained (1 - R^2) on a held-out
tenth of the sampled positions (for NMF, of the clamped activations it models).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import (
    LayerTap,
    Network,
    autocast_context,
    inference_network,
    prepare_batch,
)
from worker.pipelines.sampling import bottom_k, hash_priorities, position_keys
from worker.pipelines.units import nnls_codes, position_vectors

__all__ = [
    "DictionaryConfig",
    "DictionaryError",
    "FittedDictionary",
    "PositionSample",
    "fit_dictionary",
    "fit_dictionary_on_samples",
    "sample_position_vectors",
    "sample_positions",
]

DictionaryKind = Literal["nmf", "sae", "pca", "random"]
Progress = Callable[[float, str], None]


class DictionaryError(ValueError):
    """A dictionary cannot be fitted with these settings; one line for a researcher."""


@dataclass(frozen=True)
class DictionaryConfig:
    kind: DictionaryKind
    n_atoms: int
    max_samples: int = 50_000  # position vectors kept for fitting (bounds memory)
    seed: int = 0
    nmf_max_iter: int = 300
    nmf_encode_iterations: int = 100
    sae_top_k: int | None = None  # default: n_atoms // 8, between 1 and 64
    sae_epochs: int = 40
    sae_batch_size: int = 256
    sae_learning_rate: float = 1e-3
    # The fit's matrices are small (positions x channels), so per-operation threading overhead
    # dominates: on a busy 2-core machine one HALS step took 95 ms with 2 threads and 1.6 ms
    # with 1. None keeps torch's setting.
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in ("nmf", "sae", "pca", "random"):
            raise DictionaryError(f"unknown dictionary kind {self.kind!r}")
        if self.n_atoms < 1:
            raise DictionaryError("a dictionary needs at least one atom")

    @property
    def top_k(self) -> int:
        if self.sae_top_k is not None:
            return max(1, min(self.sae_top_k, self.n_atoms))
        return max(1, min(64, self.n_atoms // 8))


@dataclass
class FittedDictionary:
    """A fitted dictionary: tensors (see :mod:`worker.pipelines.units`) and how well it fits."""

    kind: DictionaryKind
    n_atoms: int
    config: dict[str, Any]
    tensors: dict[str, Tensor]
    reconstruction_error: float  # 1 - R^2 on held-out position vectors
    fit_seconds: float
    n_samples: int = 0
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Sampling position vectors


@dataclass
class PositionSample:
    """A bounded uniform sample of a layer's position vectors, mergeable across shards.

    Each position vector (one image, one spatial position) gets a seeded hash priority of its
    key (:mod:`worker.pipelines.sampling`); the sample is the ``max_samples`` vectors of
    smallest priority, kept in ascending priority. Two shards' samples over disjoint images
    merge into exactly the sample of one pass over both.
    """

    vectors: Tensor  # [n, C] float32
    priorities: Tensor  # [n] int64, ascending
    max_samples: int

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def add(self, vectors: Tensor, priorities: Tensor) -> None:
        if len(self) >= self.max_samples:  # full: only vectors beating the largest kept enter
            keep = priorities < self.priorities[-1]
            vectors, priorities = vectors[keep], priorities[keep]
            if vectors.shape[0] == 0:
                return
        if len(self):
            vectors = torch.cat([self.vectors, vectors])
            priorities = torch.cat([self.priorities, priorities])
        chosen = bottom_k(priorities, self.max_samples)
        self.vectors, self.priorities = vectors[chosen], priorities[chosen]

    def merge(self, other: PositionSample) -> PositionSample:
        self.add(other.vectors, other.priorities)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "vectors": self.vectors.contiguous(),
            "priorities": self.priorities.contiguous(),
            "max_samples": torch.tensor(self.max_samples),
        }

    @classmethod
    def from_state_dict(cls, tensors: dict[str, Tensor]) -> PositionSample:
        return cls(tensors["vectors"], tensors["priorities"], int(tensors["max_samples"]))


def sample_positions(
    network: Network,
    batches: Iterable[ImageBatch | Tensor],
    tap: str | LayerTap,
    max_samples: int,
    seed: int = 0,
    progress: Progress | None = None,
    total_batches: int | None = None,
) -> PositionSample:
    """The :class:`PositionSample` of ``tap`` over ``batches``.

    Batches are :class:`ImageBatch` (keys from their image ids, as a shard of an image set
    needs) or plain pixel tensors (images numbered 0, 1, 2, … in stream order).
    """
    truncated = inference_network(network, [tap])
    key = LayerTap.parse(tap).key
    sample: PositionSample | None = None
    next_image = 0
    for index, batch in enumerate(batches):
        if isinstance(batch, ImageBatch):
            images, image_ids = batch.pixels, batch.image_ids
        else:
            images = batch
            image_ids = torch.arange(next_image, next_image + batch.shape[0], dtype=torch.int64)
        next_image += int(images.shape[0])
        if images.shape[0] == 0:
            continue
        with torch.no_grad(), autocast_context(network.device):
            acts = truncated(prepare_batch(images, network.device))[key]
        per_image = position_vectors(acts)  # [batch, positions, C]
        vectors = per_image.reshape(-1, per_image.shape[-1]).float().cpu()
        keys = position_keys(image_ids.cpu(), per_image.shape[1])
        if sample is None:
            sample = PositionSample(vectors[:0], keys[:0], max_samples)
        sample.add(vectors, hash_priorities(keys, seed))
        if progress is not None:
            fraction = (index + 1) / total_batches if total_batches else 0.0
            progress(min(fraction, 1.0), f"sampled activations of {index + 1} batches")
    if sample is None:
        raise DictionaryError("the image set is empty")
    return sample


def sample_position_vectors(
    network: Network,
    batches: Iterable[ImageBatch | Tensor],
    tap: str | LayerTap,
    max_samples: int,
    seed: int = 0,
    progress: Progress | None = None,
    total_batches: int | None = None,
) -> Tensor:
    """A uniform sample (without replacement) of ``max_samples`` position vectors ``[n, C]``,
    whatever the number of images (see :func:`sample_positions`)."""
    return sample_positions(
        network, batches, tap, max_samples, seed, progress, total_batches
    ).vectors


# --------------------------------------------------------------------------------------------
# Fitting


def fit_dictionary(
    network: Network,
    batches: Iterable[ImageBatch | Tensor],
    tap: str | LayerTap,
    config: DictionaryConfig,
    progress: Progress | None = None,
    total_batches: int | None = None,
) -> FittedDictionary:
    """Stream ``batches`` (preprocessed ``[batch, 3, H, W]``) and fit on ``tap``'s activations."""
    samples = sample_position_vectors(
        network, batches, tap, config.max_samples, config.seed, progress, total_batches
    )
    if progress is not None:
        progress(
            1.0, f"fitting {config.kind} with {config.n_atoms} atoms on {len(samples)} vectors"
        )
    return fit_dictionary_on_samples(samples, config)


def fit_dictionary_on_samples(samples: Tensor, config: DictionaryConfig) -> FittedDictionary:
    """Fit on ``samples: [n, C]`` position vectors; the last tenth is held out for the error."""
    samples = samples.float().cpu()
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise DictionaryError("need at least two activation vectors to fit a dictionary")
    if config.kind in ("pca", "random") and config.n_atoms > samples.shape[1]:
        raise DictionaryError(
            f"{config.kind} can give at most {samples.shape[1]} directions on this layer "
            f"(asked for {config.n_atoms})"
        )
    train, held_out = _split(samples, config.seed)
    if config.kind in ("nmf", "sae"):
        _import_overcomplete()  # outside the timed fit: the first import takes seconds
    started = time.perf_counter()
    with _cpu_threads(config.cpu_threads), _seeded(config.seed):
        fitter = {"nmf": _fit_nmf, "sae": _fit_sae, "pca": _fit_pca, "random": _fit_random}
        tensors, extra_config, reconstruct = fitter[config.kind](train, config)
    seconds = time.perf_counter() - started
    if config.kind == "nmf":
        held_out = held_out.clamp_min(0.0)  # NMF models the clamped activations
    with _cpu_threads(config.cpu_threads), torch.no_grad():
        error = _unexplained_variance(held_out, reconstruct(held_out))
    return FittedDictionary(
        kind=config.kind,
        n_atoms=config.n_atoms,
        config=extra_config,
        tensors={name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()},
        reconstruction_error=error,
        fit_seconds=seconds,
        n_samples=int(samples.shape[0]),
    )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and NumPy's global generators for the fit, restoring them afterwards.

    overcomplete draws from torch's global generator and its NMF initialisation (scikit-learn's
    NNDSVDa, via a randomized SVD) from NumPy's.
    """
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


@contextlib.contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _split(samples: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    order = torch.randperm(samples.shape[0], generator=torch.Generator().manual_seed(seed + 1))
    n_held_out = max(1, samples.shape[0] // 10)
    return samples[order[n_held_out:]], samples[order[:n_held_out]]


def _unexplained_variance(samples: Tensor, reconstruction: Tensor) -> float:
    residual = (samples - reconstruction).square().sum()
    total = (samples - samples.mean(dim=0)).square().sum().clamp_min(1e-12)
    return float(residual / total)


Reconstruct = Callable[[Tensor], Tensor]
FitResult = tuple[dict[str, Tensor], dict[str, Any], Reconstruct]


def _import_overcomplete() -> None:
    """Import ``overcomplete`` despite its plotting module.

    overcomplete 0.3 imports its visualization helpers at package import, and they call
    ``matplotlib.cm.get_cmap``, which matplotlib 3.9 removed. Restoring that one alias (to the
    registry's own lookup) lets the package import; PsyLens uses none of its plotting.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.cm

    if not hasattr(matplotlib.cm, "get_cmap"):
        matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap  # type: ignore[attr-defined]
    import overcomplete  # noqa: F401


def _fit_nmf(train: Tensor, config: DictionaryConfig) -> FitResult:
    _import_overcomplete()
    from overcomplete.optimization import NMF

    non_negative = train.clamp_min(0.0)
    if float(non_negative.max()) <= 0.0:
        raise DictionaryError("NMF needs some positive activations; this layer has none")
    model = NMF(nb_concepts=config.n_atoms, solver="hals", tol=1e-5)
    _, atoms = model.fit(non_negative, max_iter=config.nmf_max_iter)
    atoms = atoms.float()  # [n_atoms, C]
    iterations = config.nmf_encode_iterations

    def reconstruct(vectors: Tensor) -> Tensor:
        return nnls_codes(vectors.clamp_min(0.0), atoms, iterations) @ atoms

    return {"atoms": atoms}, {"iterations": iterations}, reconstruct


def _fit_sae(train: Tensor, config: DictionaryConfig) -> FitResult:
    _import_overcomplete()
    from overcomplete.sae import TopKSAE, train_sae
    from torch.utils.data import DataLoader, TensorDataset

    channels = train.shape[1]
    input_mean = train.mean(dim=0)
    # One scalar scale (root-mean-square distance to the mean) keeps the learning rate sensible
    # across layers whose activations differ by orders of magnitude.
    input_scale = (train - input_mean).square().sum(dim=1).mean().sqrt() / channels**0.5
    input_scale = input_scale.clamp_min(1e-6)
    normalized = (train - input_mean) / input_scale
    model = TopKSAE(channels, config.n_atoms, top_k=config.top_k)
    loader = DataLoader(
        TensorDataset(normalized),
        batch_size=config.sae_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.sae_learning_rate)

    def mse(x: Tensor, x_hat: Tensor, *_: object) -> Tensor:
        return (x - x_hat).square().mean()

    train_sae(model, loader, mse, optimizer, nb_epochs=config.sae_epochs, monitoring=0)
    model.eval()
    linear = model.encoder.final_block[0]
    tensors = {
        "encoder_weight": linear.weight.detach().clone(),
        "encoder_bias": linear.bias.detach().clone(),
        "decoder": model.get_dictionary().detach().clone(),  # [n_atoms, C] in normalized units
        "input_mean": input_mean,
        "input_scale": input_scale.reshape(()),
    }

    def reconstruct(vectors: Tensor) -> Tensor:
        _, codes = model.encode((vectors - input_mean) / input_scale)
        return model.decode(codes) * input_scale + input_mean

    return tensors, {"top_k": config.top_k}, reconstruct


def _fit_pca(train: Tensor, config: DictionaryConfig) -> FitResult:
    mean = train.mean(dim=0)
    centred = (train - mean).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / max(len(train) - 1, 1))
    order = torch.argsort(eigenvalues, descending=True)[: config.n_atoms]
    components = _fix_signs(eigenvectors[:, order].T.float())  # [n_atoms, C]
    bias = -(components @ mean)

    def reconstruct(vectors: Tensor) -> Tensor:
        return (vectors - mean) @ components.T @ components + mean

    explained = eigenvalues[order].float()
    return {"weight": components, "bias": bias, "explained_variance": explained}, {}, reconstruct


def _fit_random(train: Tensor, config: DictionaryConfig) -> FitResult:
    """Random orthonormal directions: QR of a seeded Gaussian (the rotation baseline)."""
    channels = train.shape[1]
    gaussian = torch.randn(
        channels, config.n_atoms, generator=torch.Generator().manual_seed(config.seed)
    )
    q, r = torch.linalg.qr(gaussian.double())
    # Multiplying by sign(diag(r)) makes the factorization unique, so the rotation is
    # uniformly (Haar) distributed rather than biased by the QR algorithm's sign choices.
    directions = (q * torch.sign(torch.diagonal(r))).T.float()  # [n_atoms, C], orthonormal rows
    mean = train.mean(dim=0)

    def reconstruct(vectors: Tensor) -> Tensor:
        return (vectors - mean) @ directions.T @ directions + mean

    return {"weight": directions, "bias": torch.zeros(config.n_atoms)}, {}, reconstruct


def _fix_signs(vectors: Tensor) -> Tensor:
    """Flip each row so its largest-magnitude entry is positive (eigenvector signs are free)."""
    index = vectors.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(vectors.gather(1, index)).clamp_min(0) * 2 - 1
    return vectors * signs
