"""Dictionary fitting: NMF, TopK SAE, PCA and random directions on sampled activations."""

from __future__ import annotations

import pytest
import torch

from tests.worker.factories import tiny_network
from worker.pipelines.dictionary import (
    DictionaryConfig,
    DictionaryError,
    fit_dictionary,
    fit_dictionary_on_samples,
    sample_position_vectors,
)
from worker.pipelines.units import UnitSetSpec, build_projector


def _sparse_non_negative_data(n: int = 3000, channels: int = 32, atoms: int = 16) -> torch.Tensor:
    """Vectors made of a few of ``atoms`` non-negative patterns, plus a little noise."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(atoms, channels, generator=generator)
    active = torch.rand(n, atoms, generator=generator) < 0.2
    codes = torch.rand(n, atoms, generator=generator) * active
    return codes @ patterns + 0.01 * torch.rand(n, channels, generator=generator)


@pytest.mark.parametrize("kind", ["nmf", "sae", "pca", "random"])
def test_reconstruction_error_falls_with_more_atoms(kind: str) -> None:
    samples = _sparse_non_negative_data()
    errors = [
        fit_dictionary_on_samples(
            samples,
            DictionaryConfig(kind, n, sae_top_k=max(1, n // 4), sae_epochs=20),  # type: ignore[arg-type]
        ).reconstruction_error
        for n in (2, 8, 16)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert all(0.0 <= error <= 1.5 for error in errors)


def test_nmf_recovers_data_made_of_its_atoms_almost_exactly() -> None:
    fitted = fit_dictionary_on_samples(_sparse_non_negative_data(), DictionaryConfig("nmf", 16))
    assert fitted.reconstruction_error < 0.03
    assert (fitted.tensors["atoms"] >= 0).all()
    assert fitted.fit_seconds > 0 and fitted.n_samples == 3000


@pytest.mark.parametrize("kind", ["nmf", "sae", "pca", "random"])
def test_fits_are_deterministic_for_a_seed(kind: str) -> None:
    samples = _sparse_non_negative_data(n=500)
    config = DictionaryConfig(kind, 4, sae_epochs=3)  # type: ignore[arg-type]
    first = fit_dictionary_on_samples(samples, config)
    second = fit_dictionary_on_samples(samples, config)
    assert first.tensors.keys() == second.tensors.keys()
    for name in first.tensors:
        torch.testing.assert_close(first.tensors[name], second.tensors[name])


def test_nmf_clamps_negative_activations() -> None:
    samples = _sparse_non_negative_data(n=500) - 0.2
    fitted = fit_dictionary_on_samples(samples, DictionaryConfig("nmf", 4))
    assert (fitted.tensors["atoms"] >= 0).all()


def test_nmf_refuses_a_layer_without_positive_activations() -> None:
    with pytest.raises(DictionaryError, match="positive activations"):
        fit_dictionary_on_samples(-torch.rand(100, 8), DictionaryConfig("nmf", 2))


def test_pca_and_random_cannot_exceed_the_channel_count() -> None:
    with pytest.raises(DictionaryError, match="at most 8 directions"):
        fit_dictionary_on_samples(torch.rand(100, 8), DictionaryConfig("random", 9))


def test_sampling_keeps_a_bounded_uniform_sample_of_positions() -> None:
    network = tiny_network()
    batches = [
        torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(5)
    ]
    # 5 batches x 4 images x 16x16 positions = 5120 vectors of 8 channels ("stem").
    samples = sample_position_vectors(network, batches, "stem", max_samples=300, seed=1)
    assert samples.shape == (300, 8)
    again = sample_position_vectors(network, batches, "stem", max_samples=300, seed=1)
    torch.testing.assert_close(samples, again)
    everything = sample_position_vectors(network, batches, "stem", max_samples=10_000)
    assert everything.shape == (5120, 8)
    # Each kept vector is one of the layer's vectors.
    distance = (samples[:, None, :] - everything[None, :, :]).abs().amax(dim=2)
    assert distance.min(dim=1).values.max() == 0


def test_fit_dictionary_streams_a_network_layer_into_usable_units() -> None:
    network = tiny_network()
    batches = [
        torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    messages: list[tuple[float, str]] = []
    fitted = fit_dictionary(
        network,
        batches,
        "act1",
        DictionaryConfig("nmf", 4, max_samples=1000),
        progress=lambda fraction, message: messages.append((fraction, message)),
        total_batches=3,
    )
    assert fitted.n_samples == 1000
    assert messages[-1][0] == 1.0
    projector = build_projector(
        UnitSetSpec("dictionary", "act1", n_units=4, method="nmf"), (8, 16, 16), fitted
    )
    assert projector(torch.rand(2, 8, 16, 16)).shape == (2, 4)


@pytest.mark.slow
def test_lite0_block_dictionary_explains_most_of_its_variance(lite0, demo_refs) -> None:  # type: ignore[no-untyped-def]
    from worker.pipelines.loading import image_batches, preprocessed_batches

    batches = preprocessed_batches(image_batches(demo_refs[::20], lite0.preprocess, batch_size=14))
    fitted = fit_dictionary(
        lite0, batches, "blocks.2", DictionaryConfig("pca", 20, max_samples=4000)
    )
    assert fitted.reconstruction_error < 0.5


def test_samples_of_ranges_of_images_merge_into_one_passs_sample() -> None:
    from worker.pipelines.dictionary import PositionSample, sample_positions
    from worker.pipelines.loading import ImageBatch

    network = tiny_network()
    images = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(100, 110)

    def batches(start: int, stop: int) -> list[ImageBatch]:
        return [ImageBatch(ids[i : i + 3], images[i : i + 3]) for i in range(start, stop, 3)]

    one_pass = sample_positions(network, batches(0, 10), "stem", max_samples=500, seed=2)
    parts = [sample_positions(network, batches(a, b), "stem", 500, seed=2) for a, b in
             ((0, 3), (3, 9), (9, 10))]  # fmt: skip
    merged = PositionSample.from_state_dict(parts[2].state_dict())
    merged.merge(parts[0]).merge(parts[1])
    assert torch.equal(merged.priorities, one_pass.priorities)
    assert torch.equal(merged.vectors, one_pass.vectors)
    assert len(merged) == 500
