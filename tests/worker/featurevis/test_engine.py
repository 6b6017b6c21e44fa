"""The engine on a tiny random network: batching, seeding, objectives, diversity, stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.featurevis import (
    ChannelObjective,
    CodeObjective,
    DirectionObjective,
    NeuronObjective,
    imi_preset,
    linear_encoder,
    lucent_preset,
    maco_preset,
    visualize,
)
from worker.featurevis.config import TransformConfig

LAYER = "conv3"
CHANNELS = 12


def small_config(**overrides: object):  # type: ignore[no-untyped-def]
    base = dict(image_size=40, network_size=48, max_steps=24)
    return lucent_preset(**{**base, **overrides})


def images_of(visualizations) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([v.image for v in visualizations]).astype(np.int16)


def test_a_batch_of_units_equals_single_unit_runs_with_the_same_seed(tiny_network) -> None:
    config = small_config(images_per_unit=2, diversity_weight=0.5)
    batch = visualize(tiny_network, LAYER, ChannelObjective(), [0, 3, 7], config, seed=11)
    for unit in (0, 3, 7):
        single = visualize(tiny_network, LAYER, ChannelObjective(), [unit], config, seed=11)
        in_batch = [v for v in batch if v.unit == unit]
        assert np.abs(images_of(in_batch) - images_of(single)).max() <= 2
        for a, b in zip(in_batch, single, strict=True):
            assert a.final_activation == pytest.approx(b.final_activation, rel=1e-3, abs=1e-4)


def test_a_batch_is_cut_into_smaller_batches_without_changing_images(tiny_network) -> None:
    units = [1, 2, 4, 5, 6]
    whole = visualize(tiny_network, LAYER, ChannelObjective(), units, small_config(), seed=2)
    cut = visualize(
        tiny_network, LAYER, ChannelObjective(), units, small_config(batch_size=2), seed=2
    )
    assert [v.unit for v in cut] == units
    assert np.abs(images_of(whole) - images_of(cut)).max() <= 2


def test_channels_last_on_the_cpu_gives_the_images_of_contiguous_memory(tiny_network) -> None:
    units = [0, 5, 9]
    fast = visualize(tiny_network, LAYER, ChannelObjective(), units, small_config(), seed=3)
    plain = visualize(
        tiny_network, LAYER, ChannelObjective(), units, small_config(channels_last=False), seed=3
    )
    # Only the order of float additions differs; 24 steps of Adam carry that to a few levels.
    difference = np.abs(images_of(fast) - images_of(plain))
    assert difference.max() <= 6 and difference.mean() < 0.25
    for a, b in zip(fast, plain, strict=True):
        assert a.final_activation == pytest.approx(b.final_activation, rel=1e-2, abs=1e-3)


def test_the_same_seed_reproduces_the_image_and_another_seed_does_not(tiny_network) -> None:
    first = visualize(tiny_network, LAYER, ChannelObjective(), [4], small_config(), seed=5)
    again = visualize(tiny_network, LAYER, ChannelObjective(), [4], small_config(), seed=5)
    other = visualize(tiny_network, LAYER, ChannelObjective(), [4], small_config(), seed=6)
    assert np.array_equal(first[0].image, again[0].image)
    assert first[0].final_activation == again[0].final_activation
    assert np.abs(images_of(first) - images_of(other)).mean() > 5


def test_the_diversity_term_changes_the_images_and_makes_them_less_alike(tiny_network) -> None:
    plain = small_config(images_per_unit=3, diversity_weight=0.0, max_steps=40)
    diverse = small_config(images_per_unit=3, diversity_weight=50.0, max_steps=40)
    without = visualize(tiny_network, LAYER, ChannelObjective(), [2], plain, seed=3)
    with_term = visualize(tiny_network, LAYER, ChannelObjective(), [2], diverse, seed=3)
    assert np.abs(images_of(without) - images_of(with_term)).mean() > 2
    assert [v.parameters["diversity_weight"] for v in with_term] == [50.0] * 3
    assert mean_pairwise_difference(with_term) > mean_pairwise_difference(without)


def mean_pairwise_difference(visualizations) -> float:  # type: ignore[no-untyped-def]
    images = images_of(visualizations)
    pairs = [(i, j) for i in range(len(images)) for j in range(i + 1, len(images))]
    return float(np.mean([np.abs(images[i] - images[j]).mean() for i, j in pairs]))


@pytest.mark.parametrize(
    "objective",
    [
        ChannelObjective(),
        NeuronObjective(),
        DirectionObjective(torch.randn(4, CHANNELS, generator=torch.Generator().manual_seed(0))),
        CodeObjective(
            linear_encoder(torch.randn(6, CHANNELS, generator=torch.Generator().manual_seed(1)))
        ),
    ],
    ids=["channel", "neuron", "direction", "sae_code"],
)
def test_each_objective_increases_its_units_activation(tiny_network, objective) -> None:
    units = [0, 1, 2]
    before = visualize(tiny_network, LAYER, objective, units, small_config(max_steps=1), seed=0)
    after = visualize(tiny_network, LAYER, objective, units, small_config(max_steps=48), seed=0)
    for start, end in zip(before, after, strict=True):
        assert end.final_activation > start.final_activation + 1e-3


def test_results_carry_method_parameters_seed_steps_and_a_uint8_image(tiny_network) -> None:
    messages = []
    config = small_config(max_steps=20)
    visualizations = visualize(
        tiny_network,
        LAYER,
        ChannelObjective(),
        [1, 2],
        config,
        seed=9,
        top_natural_activations=[-1e9, 1e9],
        progress=lambda fraction, message: messages.append((fraction, message)),
    )
    first = visualizations[0]
    assert (first.method, first.seed, first.steps) == ("lucent", 9, 20)
    assert first.image.dtype == np.uint8 and first.image.shape == (40, 40, 3)
    assert first.parameters["max_steps"] == 20 and first.parameters["image_size"] == 40
    assert [v.exceeds_natural for v in visualizations] == [True, False]
    fractions = [fraction for fraction, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_plateau_stopping_ends_a_run_after_min_steps_once_the_gradient_settles(
    tiny_network,
) -> None:
    config = small_config(max_steps=200, min_steps=30, plateau_window=10, plateau_tolerance=1e9)
    visualizations = visualize(tiny_network, LAYER, ChannelObjective(), [0, 1], config, seed=0)
    assert [v.steps for v in visualizations] == [30, 30]


def test_plateau_stopping_never_stops_while_the_gradient_still_moves(tiny_network) -> None:
    config = small_config(max_steps=40, min_steps=10, plateau_window=10, plateau_tolerance=0.0)
    visualizations = visualize(tiny_network, LAYER, ChannelObjective(), [0], config, seed=0)
    assert visualizations[0].steps == 40


def test_imi_weight_search_keeps_the_strongest_diversity_whose_images_beat_the_exemplar(
    tiny_network,
) -> None:
    config = imi_preset(
        image_size=48,
        network_size=40,
        transforms=TransformConfig(16, 16, (0.95, 1.05), 5.0, 8, crop_size=40),
        max_steps=20,
        min_steps=None,
        images_per_unit=2,
        diversity_weight_candidates=(100.0, 0.0),
    )
    easy = visualize(
        tiny_network, LAYER, ChannelObjective(), [3], config, top_natural_activations=[-1e9]
    )
    impossible = visualize(
        tiny_network, LAYER, ChannelObjective(), [3], config, top_natural_activations=[1e9]
    )
    assert [v.parameters["diversity_weight"] for v in easy] == [100.0, 100.0]
    assert all(v.exceeds_natural for v in easy)
    assert len(impossible) == 2 and not any(v.exceeds_natural for v in impossible)
    assert easy[0].image.shape == (40, 40, 3)  # the stored image is the 224-style crop


def test_default_batches_hold_about_four_views_on_a_cpu_and_64_images_on_a_gpu() -> None:
    assert lucent_preset().resolved_batch_size("cpu") == 4
    assert lucent_preset().resolved_batch_size("cuda") == 64
    assert maco_preset().resolved_batch_size("cpu") == 1  # 6 crops per image are 6 views
    assert maco_preset(maco_crops=2).resolved_batch_size("cpu") == 2
    assert maco_preset(batch_size=3).resolved_batch_size("cpu") == 3


def test_a_render_pins_the_thread_count_it_is_given_and_restores_the_process_setting(
    tiny_network,
) -> None:
    previous, seen = torch.get_num_threads(), []

    def record(fraction: float, message: str) -> None:
        seen.append(torch.get_num_threads())

    try:
        torch.set_num_threads(2)
        pinned, unpinned = small_config(max_steps=2), small_config(cpu_threads=None, max_steps=2)
        assert pinned.cpu_threads == 1  # the default
        visualize(tiny_network, LAYER, ChannelObjective(), [0], pinned, progress=record)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        visualize(tiny_network, LAYER, ChannelObjective(), [0], unpinned, progress=record)
        assert seen and set(seen) == {2}
        with pytest.raises(ValueError, match="cpu_threads"):
            visualize(tiny_network, LAYER, ChannelObjective(), [0], small_config(cpu_threads=0))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
