"""Covariance eigenspectra and random projections (worker/analyses/spectrum.py): the streaming
covariance equals numpy's and shards merge to one pass; α is recovered from planted power-law
spectra and agrees with Stringer et al.'s own fit; the participation ratio and the components
of a known spectrum; too few samples for the fit range is an error, not a fit; a smooth path
through a tiny smooth network has less energy than the same path shuffled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from worker.analyses import spectrum
from worker.pipelines.loading import ImageBatch
from worker.pipelines.networks import LayerTap, Preprocess, wrap_module


def planted(alpha: float, dimension: int, n: int, seed: int) -> np.ndarray:
    """Gaussian samples whose covariance has eigenvalues n^−α, in a random orthonormal basis."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dimension + 1, dtype=np.float64) ** (-alpha / 2)
    basis, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    return (rng.standard_normal((n, dimension)) * scales) @ basis.T + 3.0


def stringer_get_powerlaw(ss: np.ndarray, trange: np.ndarray) -> float:
    """Stringer et al. 2019's `get_powerlaw` (MouseLand/stringer-pachitariu-et-al-2018b,
    python/utils.py), written out here to check our fit against it: weights 1/n, 0-based
    indices `trange` (their default np.arange(11, 500): ranks 12–500)."""
    y = np.log(np.abs(ss))[trange][:, None]
    n = (trange + 1).astype(np.float64)
    x = np.concatenate((-np.log(n)[:, None], np.ones((n.size, 1))), axis=1)
    w = 1.0 / n[:, None]
    b = np.linalg.solve(x.T @ (x * w), (w * x).T @ y).flatten()
    return float(b[0])


def test_streaming_covariance_equals_numpys_and_shards_merge_to_one_pass() -> None:
    data = np.random.default_rng(0).standard_normal((900, 40)) * np.linspace(0.1, 5, 40) + 7.0
    whole = spectrum.CovarianceSums(40)
    for start in range(0, 900, 128):
        whole.add(torch.from_numpy(data[start : start + 128]).float())
    expected = np.cov(data.astype(np.float32).astype(np.float64), rowvar=False)
    np.testing.assert_allclose(whole.covariance().numpy(), expected, rtol=1e-10)
    shards = [spectrum.CovarianceSums(40) for _ in range(3)]
    for shard, part in zip(shards, np.array_split(data, 3), strict=True):
        shard.add(torch.from_numpy(part).float())
    restored = [spectrum.CovarianceSums.from_state_dict(s.state_dict()) for s in shards]
    merged = restored[0].merge(restored[1]).merge(restored[2])
    assert merged.count == 900
    np.testing.assert_allclose(merged.covariance().numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.5])
def test_alpha_is_recovered_from_a_planted_power_law_spectrum(alpha: float) -> None:
    sums = spectrum.CovarianceSums(500)
    sums.add(torch.from_numpy(planted(alpha, 500, 12_000, seed=int(alpha * 10))))
    figures = spectrum.spectrum_figures(sums)
    assert figures.fit is not None, figures.fit_error
    assert figures.fit.alpha == pytest.approx(alpha, abs=0.05)
    assert (figures.fit.first, figures.fit.last) == (11, 500)
    assert figures.fit.r_squared > 0.95
    assert figures.fit_error == ""


def test_the_fit_is_stringer_et_als_on_the_same_ranks() -> None:
    eigenvalues = torch.arange(1, 801, dtype=torch.float64) ** -1.2
    eigenvalues *= torch.exp(0.05 * torch.sin(torch.arange(800, dtype=torch.float64)))  # noise
    ours = spectrum.fit_power_law(eigenvalues, (12, 500))
    theirs = stringer_get_powerlaw(eigenvalues.numpy(), np.arange(11, 500))
    assert ours.alpha == pytest.approx(theirs, rel=1e-9)
    exact = spectrum.fit_power_law(torch.arange(1, 801, dtype=torch.float64) ** -1.2)
    assert exact.alpha == pytest.approx(1.2, abs=1e-9) and exact.r_squared == pytest.approx(1.0)


def test_participation_ratio_and_components_of_a_known_spectrum() -> None:
    flat = torch.ones(10, dtype=torch.float64)
    assert spectrum.participation_ratio(flat) == pytest.approx(10.0)
    known = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    assert spectrum.participation_ratio(known) == pytest.approx(64.0 / 22.0)
    # cumulative variance 0.5, 0.75, 0.875, 1.0
    assert spectrum.components_for_variance(known) == {0.5: 1, 0.9: 4, 0.99: 4}
    assert spectrum.smoothness_criterion(1) == 3.0
    assert spectrum.smoothness_criterion(None) == 1.0


def test_too_few_samples_for_the_rank_range_is_an_error_not_a_fit() -> None:
    sums = spectrum.CovarianceSums(64)
    sums.add(torch.randn(40, 64, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(spectrum.SpectrumError, match="40 samples .* ranks 11–64"):
        spectrum.fit_power_law(spectrum.eigenspectrum(sums), (11, 500), sums.count)
    figures = spectrum.spectrum_figures(sums)
    assert figures.fit is None and "use at least 65 samples" in figures.fit_error
    assert figures.participation_ratio > 1 and figures.dimension == 64
    with pytest.raises(spectrum.SpectrumError, match="too few for a fit"):
        spectrum.fit_power_law(torch.ones(12, dtype=torch.float64), (11, 500))


def test_sampled_positions_are_the_same_whatever_the_batches() -> None:
    acts = torch.randn(6, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    ids = torch.arange(100, 106)
    config = spectrum.SpectrumConfig(sampling="positions", positions_per_image=4, seed=3)
    whole = spectrum.sample_vectors(acts, ids, config)
    parts = [spectrum.sample_vectors(acts[i : i + 2], ids[i : i + 2], config) for i in (0, 2, 4)]
    assert whole.shape == (24, 8)
    assert torch.equal(whole, torch.cat(parts))


def smooth_network() -> nn.Module:
    """A tiny smooth network: blurring convolutions and tanh (no sharp nonlinearity)."""
    torch.manual_seed(0)
    first = nn.Conv2d(3, 8, 5, padding=2)
    second = nn.Conv2d(8, 8, 5, padding=2, stride=2)
    return nn.Sequential(first, nn.Tanh(), second, nn.Tanh())


def test_a_circle_path_has_less_energy_than_the_same_path_shuffled() -> None:
    network = wrap_module(smooth_network(), Preprocess(resize=64, crop=64), device="cpu")
    config = spectrum.PathConfig(kind="circle", steps=128, size=64, directions=8, seed=0)
    frames = spectrum.circle_path(config)
    assert frames.shape == (128, 3, 64, 64)
    energies = spectrum.path_energies(network, [LayerTap("1"), LayerTap("3")], frames, config)
    for name in ("pixels", "1", "3"):
        energy = energies[name]
        assert energy.energy is not None and energy.shuffled is not None
        assert energy.energy < 0.5 * energy.shuffled, name
        assert len(energy.projections) == 128 and len(energy.projections[0]) == 8
    assert energies["3"].shuffled == pytest.approx(2.0, abs=0.6)  # unordered: about 2


def test_a_translated_image_path_is_smooth_and_centred() -> None:
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    config = spectrum.PathConfig(kind="translate", steps=9, step=1.0)
    frames = spectrum.image_path(image, config)
    assert torch.allclose(frames[4], image, atol=1e-5)  # the middle frame is the image
    assert torch.allclose(frames[5][:, :, 2:-2], image[:, :, 1:-3], atol=1e-5)  # one pixel right
    rotated = spectrum.image_path(image, spectrum.PathConfig(kind="rotate", steps=5, step=3.0))
    assert torch.allclose(rotated[2], image, atol=1e-5)


def test_the_spectrum_pass_sums_each_layer_in_one_pass() -> None:
    network = wrap_module(smooth_network(), Preprocess(resize=16, crop=16), device="cpu")
    pixels = torch.randn(10, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    batches = [ImageBatch(torch.arange(i, i + 5), pixels[i : i + 5]) for i in (0, 5)]
    targets = {
        "a": spectrum.SpectrumTarget(LayerTap("1")),
        "b": spectrum.SpectrumTarget(LayerTap("3")),
    }
    sums = spectrum.spectrum_sums(network, targets, batches)
    assert sums["a"].count == 10 and sums["a"].dimension == 8
    pooled = network.module[:2](pixels).mean(dim=(2, 3)).double()
    np.testing.assert_allclose(sums["a"].covariance().numpy(), np.cov(pooled.numpy(), rowvar=False),
                               rtol=1e-5, atol=1e-9)  # fmt: skip


def test_a_layer_whose_activity_never_varies_is_an_error() -> None:
    sums = spectrum.CovarianceSums(30)
    sums.add(torch.full((50, 30), 2.5))
    with pytest.raises(spectrum.SpectrumError, match="does not vary"):
        spectrum.spectrum_figures(sums)
