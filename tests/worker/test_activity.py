"""Activation measures (worker/analyses/activity.py) against numpy/scipy on known activations,
exact merging across shards, and the pass over a tiny network with labels or its own top-1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tests.worker.factories import image_refs, tiny_network
from worker.analyses.activity import (
    ActivityError,
    ActivityState,
    ClassSource,
    activity_states,
    class_names,
    class_selectivity,
)
from worker.pipelines.loading import image_batches
from worker.pipelines.units import ChannelProjector, UnitSetSpec


def known_acts(seed: int = 0, n: int = 200, units: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.gamma(2.0, 1.0, size=(n, units)) - 1.0, 0.0)


def test_moments_sparsity_and_kurtosis_match_numpy_and_scipy() -> None:
    acts = known_acts()
    state = ActivityState(5, 0)
    state.add(torch.from_numpy(acts))
    measures = state.finish()
    n = len(acts)
    np.testing.assert_allclose(measures["mean"], acts.mean(0))
    np.testing.assert_allclose(measures["sd"], acts.std(0))
    np.testing.assert_allclose(measures["max"], acts.max(0))
    np.testing.assert_allclose(measures["fraction_active"], (acts > 0).mean(0))
    np.testing.assert_allclose(measures["kurtosis"], stats.kurtosis(acts, axis=0), rtol=1e-9)
    treves_rolls = acts.mean(0) ** 2 / (acts**2).mean(0)
    np.testing.assert_allclose(measures["lifetime_sparsity"], (1 - treves_rolls) / (1 - 1 / n))


def test_lifetime_sparsity_is_zero_for_a_flat_unit_and_one_for_a_single_image_unit() -> None:
    acts = np.zeros((10, 2))
    acts[:, 0] = 3.0
    acts[4, 1] = 7.0
    state = ActivityState(2, 0)
    state.add(torch.from_numpy(acts))
    np.testing.assert_allclose(state.finish()["lifetime_sparsity"], [0.0, 1.0], atol=1e-12)


def test_class_selectivity_is_morcos_formula_over_class_means() -> None:
    acts = known_acts(1, n=90, units=3)
    classes = np.repeat([0, 1, 2], 30)
    acts[classes == 2, 1] += 5.0  # unit 1 prefers class 2
    state = ActivityState(3, 4)  # class 3 never occurs: it takes no part
    state.add(torch.from_numpy(acts), torch.from_numpy(classes))
    means = np.stack([acts[classes == c].mean(0) for c in range(3)])
    top = means.max(0)
    rest = (means.sum(0) - top) / 2
    np.testing.assert_allclose(state.finish()["csi"], (top - rest) / (top + rest))
    assert state.selectivity()[1][1] == 2


def test_class_selectivity_is_undefined_with_one_class() -> None:
    csi, preferred = class_selectivity(np.ones((1, 3)))
    assert np.isnan(csi).all() and (preferred == -1).all()


def test_sharded_states_merge_to_the_one_pass_numbers() -> None:
    acts = known_acts(2, n=301)
    classes = torch.from_numpy(np.arange(301) % 3)
    whole = ActivityState(5, 3)
    whole.add(torch.from_numpy(acts), classes)
    parts = [ActivityState(5, 3) for _ in range(3)]
    for part, (start, stop) in zip(parts, [(0, 7), (7, 150), (150, 301)], strict=True):
        part.add(torch.from_numpy(acts[start:stop]), classes[start:stop])
    merged = ActivityState.from_state_dict(parts[0].state_dict())
    merged.merge(ActivityState.from_state_dict(parts[1].state_dict())).merge(parts[2])
    for name, value in whole.finish().items():
        np.testing.assert_allclose(merged.finish()[name], value, rtol=1e-9, err_msg=name)


def test_merging_states_of_different_unit_sets_is_refused() -> None:
    with pytest.raises(ActivityError, match="different unit sets"):
        ActivityState(3, 0).merge(ActivityState(4, 0))


def tiny_pass(classes: ClassSource) -> ActivityState:
    network = tiny_network()
    refs = image_refs(12)
    projector = ChannelProjector(UnitSetSpec("channels", "act2"), 16)
    batches = image_batches(refs, network.preprocess, batch_size=5)
    return activity_states(network, {"ch": projector}, batches, classes, total_images=12)["ch"]


def test_the_pass_over_a_network_equals_measures_of_its_recorded_activations() -> None:
    network = tiny_network()
    state = tiny_pass(ClassSource({i: i % 2 for i in range(12)}, 2))
    batch = next(iter(image_batches(image_refs(12), network.preprocess, batch_size=12)))
    with torch.no_grad():
        acts = network.module.act2(network.module.block(network.module.act1(
            network.module.stem(batch.pixels)))).mean(dim=(2, 3)).double().numpy()  # fmt: skip
    assert state.count == 12
    np.testing.assert_allclose(state.finish()["mean"], acts.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.class_count.numpy(), [6, 6])


def test_without_labels_the_classes_are_the_networks_top1() -> None:
    network = tiny_network()
    state = tiny_pass(ClassSource())
    batch = next(iter(image_batches(image_refs(12), network.preprocess, batch_size=12)))
    with torch.no_grad():
        top1 = network.module(batch.pixels).argmax(1)
    assert state.n_classes == 10
    np.testing.assert_array_equal(state.class_count.numpy(), np.bincount(top1, minlength=10))


def test_a_thousand_way_classifier_is_named_with_imagenet_classes() -> None:
    names = class_names(1000)
    assert names is not None and len(names) == 1000 and names[0] and len(set(names)) > 990
    assert class_names(10) is None
