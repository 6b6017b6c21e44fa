"""Ablations (worker/analyses/ablation.py): a channel ablation of a tiny network equals a
hand-zeroed run, direction removal for PCA, NMF and SAE equals the formula, ablating every unit
gives the fully ablated output, and a layer inside a skip connection is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.worker.factories import TINY_PREPROCESS, image_refs, tiny_network
from worker.analyses.ablation import (
    AblationError,
    ablated_logits,
    ablation_pass,
    remover_for,
)
from worker.pipelines.loading import image_batches
from worker.pipelines.networks import wrap_module
from worker.pipelines.units import (
    ChannelProjector,
    LinearProjector,
    NMFProjector,
    SAEProjector,
    UnitSetSpec,
)

CHANNELS = ChannelProjector(UnitSetSpec("channels", "act2"), 16)


def pixels(count: int = 6) -> torch.Tensor:
    return next(iter(image_batches(image_refs(count), TINY_PREPROCESS, count))).pixels


def hand_ablated(net: nn.Module, x: torch.Tensor, edit) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        acts = net.act2(net.block(net.act1(net.stem(x))))
        return net.head(net.pool(edit(acts)).flatten(1))


def test_a_channel_ablation_equals_a_hand_zeroed_run() -> None:
    network, x = tiny_network(), pixels()
    logits = ablated_logits(network, CHANNELS, remover_for(CHANNELS), [[3], [0, 5]], x)

    def zero(channels: list[int]):  # type: ignore[no-untyped-def]
        def edit(acts: torch.Tensor) -> torch.Tensor:
            acts = acts.clone()
            acts[:, channels] = 0
            return acts

        return edit

    torch.testing.assert_close(logits[0], network.module(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        logits[1], hand_ablated(network.module, x, zero([3])), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        logits[2], hand_ablated(network.module, x, zero([0, 5])), rtol=1e-4, atol=1e-5
    )


def test_mean_ablation_sets_the_channel_to_its_given_mean() -> None:
    network, x = tiny_network(), pixels()
    means = torch.arange(16, dtype=torch.float32)
    logits = ablated_logits(network, CHANNELS, remover_for(CHANNELS, "mean", means), [[2]], x)

    def edit(acts: torch.Tensor) -> torch.Tensor:
        acts = acts.clone()
        acts[:, 2] = 2.0
        return acts

    torch.testing.assert_close(
        logits[1], hand_ablated(network.module, x, edit), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(AblationError, match="compute the measures first"):
        remover_for(CHANNELS, "mean", None)


def test_pca_direction_removal_is_the_projection_formula() -> None:
    weight = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))[0][:4]
    projector = LinearProjector(UnitSetSpec("pca", "act2", n_units=4), weight, torch.zeros(4))
    acts = torch.randn(2, 16, 3, 3)
    removed = remover_for(projector).remove(acts, [[1], [0, 2]])
    vectors = acts.flatten(2).transpose(1, 2)  # [B, P, C]
    expected = vectors - (vectors @ weight[1])[..., None] * weight[1]
    torch.testing.assert_close(removed[0].flatten(2).transpose(1, 2), expected)
    pair = weight[[0, 2]]
    expected_pair = vectors - (vectors @ pair.T) @ pair
    torch.testing.assert_close(
        removed[1].flatten(2).transpose(1, 2), expected_pair, atol=1e-5, rtol=1e-5
    )


def test_sae_removal_subtracts_code_times_decoder_atom() -> None:
    gen = torch.Generator().manual_seed(1)
    encoder, decoder = torch.randn(6, 16, generator=gen), torch.randn(6, 16, generator=gen)
    projector = SAEProjector(
        UnitSetSpec("dictionary", "act2", n_units=6, method="sae"), encoder_weight=encoder,
        encoder_bias=torch.zeros(6), input_mean=torch.zeros(16), input_scale=torch.tensor(2.0),
        top_k=3, decoder=decoder,
    )  # fmt: skip
    acts = torch.randn(2, 16, 2, 2)
    removed = remover_for(projector).remove(acts, [[4]])[0]
    vectors = acts.flatten(2).transpose(1, 2).reshape(-1, 16)
    codes = projector.encode(vectors)
    expected = vectors - 2.0 * codes[:, 4:5] * decoder[4]
    torch.testing.assert_close(removed.flatten(2).transpose(1, 2).reshape(-1, 16), expected)
    projector.decoder = None
    with pytest.raises(AblationError, match="without its decoder"):
        remover_for(projector)


def test_nmf_removal_subtracts_code_times_atom() -> None:
    atoms = torch.rand(3, 16, generator=torch.Generator().manual_seed(2))
    projector = NMFProjector(UnitSetSpec("dictionary", "act2", n_units=3, method="nmf"), atoms)
    acts = torch.rand(1, 16, 2, 2)
    removed = remover_for(projector).remove(acts, [[1]])[0]
    vectors = acts.flatten(2).transpose(1, 2).reshape(-1, 16)
    from worker.pipelines.units import nnls_codes

    expected = vectors - nnls_codes(vectors, atoms)[:, 1:2] * atoms[1]
    torch.testing.assert_close(removed.flatten(2).transpose(1, 2).reshape(-1, 16), expected)


def test_ablating_every_unit_gives_the_fully_ablated_output() -> None:
    network, x = tiny_network(), pixels()
    logits = ablated_logits(network, CHANNELS, remover_for(CHANNELS), [list(range(16))], x)
    with torch.no_grad():
        only_bias = network.module.head(torch.zeros(len(x), 16))
    torch.testing.assert_close(logits[1], only_bias)


def test_the_pass_sums_drop_kl_and_logit_change_against_the_unablated_run() -> None:
    network = tiny_network()
    batches = image_batches(image_refs(10), TINY_PREPROCESS, batch_size=4)
    groups = [[0], [1], list(range(16))]
    state = ablation_pass(network, CHANNELS, remover_for(CHANNELS), groups, batches)
    result = state.finish()
    x = pixels(10)
    logits = ablated_logits(network, CHANNELS, remover_for(CHANNELS), groups, x)
    top = logits[0].argmax(1)
    agreement = (logits[1:].argmax(2) == top).double().mean(1).numpy()
    np.testing.assert_allclose(result["accuracy_drop"], 1.0 - agreement, atol=1e-9)
    p = torch.softmax(logits[0], 1)
    kl = (p * (torch.log_softmax(logits[0], 1) - torch.log_softmax(logits[3], 1))).sum(1).mean()
    assert result["kl"][2] == pytest.approx(float(kl), rel=1e-4, abs=1e-6)
    change = (logits[1:, torch.arange(10), top] - logits[0, torch.arange(10), top]).mean(1)
    np.testing.assert_allclose(result["logit_change"], change.numpy(), rtol=1e-4, atol=1e-5)
    assert result["class_drop"].shape == (3, 10)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x + self.conv(x)).mean(dim=(2, 3)))


def test_a_layer_inside_a_skip_connection_is_refused() -> None:
    network = wrap_module(Residual(), TINY_PREPROCESS, "test:residual", "cpu")
    projector = ChannelProjector(UnitSetSpec("channels", "conv"), 3)
    with pytest.raises(AblationError, match="inside a skip connection"):
        ablated_logits(network, projector, remover_for(projector), [[0]], pixels(2))


def test_a_population_is_ablated_by_removing_all_its_members() -> None:
    from worker.pipelines.units import PopulationProjector

    network, x = tiny_network(), pixels()
    population = PopulationProjector(CHANNELS, [[1, 4, 9], [0]])
    assert torch.allclose(
        population(torch.ones(2, 16, 3, 3) * torch.arange(16.0)[None, :, None, None]),
        torch.tensor([[14 / 3, 0.0]] * 2),
    )
    by_population = ablated_logits(network, population, remover_for(population), [[0]], x)
    by_members = ablated_logits(network, CHANNELS, remover_for(CHANNELS), [[1, 4, 9]], x)
    torch.testing.assert_close(by_population, by_members)
