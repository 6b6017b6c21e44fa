"""LWTA networks (worker/analyses/lwta.py): competition, gradients, sparsity, conversion,
distillation with resumable checkpoints, and the `lwta:` network source."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from tests.worker.factories import TINY_PREPROCESS, TinyConvNet
from worker.analyses.lwta import (
    LWTA,
    FineTuneConfig,
    LWTAConfig,
    LWTAError,
    convert_to_lwta,
    fine_tune,
    lwta_modules,
    lwta_report,
)
from worker.pipelines.networks import NetworkError, load_network, truncated_forward, wrap_module

U = 4


def test_in_evaluation_exactly_one_winner_per_block() -> None:
    block = LWTA(U).eval()
    h = torch.randn(3, 12, 5, 5)
    out = block(h)
    winners = (out != 0).reshape(3, 12 // U, U, 5, 5).sum(dim=2)
    assert bool((winners == 1).all())
    # the winner passes its raw linear value, and it is the block's largest
    kept = out.reshape(3, 3, U, 5, 5).sum(dim=2)
    assert torch.equal(kept, h.reshape(3, 3, U, 5, 5).max(dim=2).values)


def test_evaluation_repeats_and_the_stochastic_mode_does_not() -> None:
    h = torch.randn(2, 24, 6, 6)
    assert torch.equal(LWTA(U).eval()(h), LWTA(U).eval()(h))
    stochastic = LWTA(U, stochastic_inference=True).eval()
    assert not torch.equal(stochastic(h), stochastic(h))


def test_a_short_last_block_competes_among_its_own_channels() -> None:
    out = LWTA(U).eval()(torch.randn(2, 10))  # blocks of 4, 4, 2 (tokens: last dim)
    assert (out != 0).reshape(2, 10)[:, 8:].sum(dim=1).tolist() == [1, 1]
    assert int((out != 0).sum()) == 2 * 3


def test_gradients_reach_every_unit_through_the_straight_through_estimator() -> None:
    block = LWTA(U).train()
    h = torch.randn(2, 8, 3, 3, requires_grad=True)
    (block(h) * torch.randn(2, 8, 3, 3)).sum().backward()
    assert h.grad is not None and bool((h.grad != 0).all())
    # and so every weight of a converted network learns, losers' channels included
    student, _ = convert_to_lwta(TinyConvNet(channels=8), LWTAConfig(block_size=U))
    student.train()
    student(torch.randn(4, 3, 32, 32)).logsumexp(dim=1).sum().backward()
    for name, parameter in student.named_parameters():
        assert parameter.grad is not None and bool((parameter.grad != 0).all()), name


def test_sparsity_equals_one_over_u() -> None:
    teacher = TinyConvNet(channels=8)
    student, names = convert_to_lwta(teacher, LWTAConfig(block_size=U))
    assert names == ["act1", "act2"]
    report = lwta_report(student, teacher, torch.randn(6, 3, 32, 32))
    assert report.active_fraction == {"act1": 1 / U, "act2": 1 / U}


def test_before_the_first_replaced_module_the_activations_are_the_originals() -> None:
    teacher = TinyConvNet(channels=8)
    student, names = convert_to_lwta(teacher, LWTAConfig(block_size=U, modules=("act2",)))
    assert names == ["act2"]
    images = torch.randn(3, 3, 32, 32)
    dense = wrap_module(teacher, TINY_PREPROCESS, device="cpu")
    sparse = wrap_module(student, TINY_PREPROCESS, device="cpu")
    taps = ["stem", "act1", "block"]
    before, after = truncated_forward(dense, images, taps), truncated_forward(sparse, images, taps)
    for tap in taps:
        assert torch.equal(before[tap], after[tap]), tap
    assert not torch.equal(teacher(images), student(images))  # the replaced one changed things


def test_a_network_without_the_named_activations_is_refused() -> None:
    with pytest.raises(LWTAError, match="no ReLU or ReLU6 or GELU module under head to replace"):
        convert_to_lwta(TinyConvNet(), LWTAConfig(block_size=U, modules=("head",)))
    with pytest.raises(LWTAError, match="at least 2"):
        LWTAConfig(block_size=1)


def _images(count: int = 64) -> torch.Tensor:
    return torch.randn(count, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_fine_tuning_a_tiny_network_raises_its_agreement_with_the_teacher() -> None:
    teacher = TinyConvNet(seed=3, channels=8)
    student, _ = convert_to_lwta(teacher, LWTAConfig(block_size=U))
    images = _images()
    before = lwta_report(student, teacher, images).agreement
    config = FineTuneConfig(steps=30, batch_size=32, learning_rate=1e-2)
    result = fine_tune(student, teacher, images, config)
    after = lwta_report(student, teacher, images)
    assert after.agreement > before + 0.1, (before, after.agreement)
    assert len(result.curve) == 30 and result.curve[-1]["loss"] < result.curve[0]["loss"]
    assert after.active_fraction == {"act1": 1 / U, "act2": 1 / U}


def test_cross_entropy_joins_the_loss_where_images_have_labels() -> None:
    teacher = TinyConvNet(channels=8)
    student, _ = convert_to_lwta(teacher, LWTAConfig(block_size=U))
    labels = torch.full((8,), -1)
    labels[:4] = torch.arange(4)
    config = FineTuneConfig(steps=2, batch_size=8)
    result = fine_tune(student, teacher, _images(8), config, labels=labels)
    assert all(point["ce"] is not None for point in result.curve)
    report = lwta_report(student, teacher, _images(8), labels)
    assert report.labelled_images == 4 and report.accuracy is not None


class _Killed(Exception):
    pass


def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path: object) -> None:
    teacher = TinyConvNet(seed=2, channels=8)
    images = _images(32)
    config = FineTuneConfig(steps=12, batch_size=8, learning_rate=1e-3, checkpoint_every=5)
    uninterrupted, _ = convert_to_lwta(teacher, LWTAConfig(block_size=U))
    fine_tune(uninterrupted, teacher, images, config)

    path = os.path.join(str(tmp_path), "run.pt")
    student, _ = convert_to_lwta(teacher, LWTAConfig(block_size=U))

    def kill_at_step_8(step: int, steps: int, loss: float) -> None:
        if step == 8:
            raise _Killed

    with pytest.raises(_Killed):
        fine_tune(student, teacher, images, config, checkpoint_path=path, progress=kill_at_step_8)
    assert torch.load(path, weights_only=True)["step"] == 5

    fresh, _ = convert_to_lwta(teacher, LWTAConfig(block_size=U))  # a new worker process
    result = fine_tune(fresh, teacher, images, config, checkpoint_path=path)
    assert result.resumed_from == 5 and result.steps_done == 12
    assert [point["step"] for point in result.curve] == list(range(1, 13))
    for (name, a), b in zip(
        fresh.state_dict().items(), uninterrupted.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    assert isinstance(fresh.act1, LWTA) and not isinstance(fresh.act1, nn.ReLU)


def test_an_lwta_networks_source_string_loads_the_same_weights_again(tmp_path: object) -> None:
    import timm

    weights = os.path.join(str(tmp_path), "resnet.pt")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), weights)
    base = load_network(f"timm:test_resnet@{weights}", device="cpu")
    student, _ = convert_to_lwta(base.module, LWTAConfig(block_size=U, modules=("layer2",)))
    checkpoint = os.path.join(str(tmp_path), "lwta.pt")
    images = torch.randn(4, 3, 48, 48)
    config = FineTuneConfig(steps=2, batch_size=4, learning_rate=1e-2)
    fine_tune(student, base.module, images, config, checkpoint_path=checkpoint)

    loaded = load_network(f"lwta:timm:test_resnet@{weights}@{checkpoint}", device="cpu")
    assert loaded.source == f"lwta:timm:test_resnet@{weights}@{checkpoint}"
    assert loaded.preprocess == base.preprocess
    assert [name for name, _ in lwta_modules(loaded.module)] == [
        name for name, _ in lwta_modules(student)
    ]
    for (name, a), b in zip(
        loaded.module.state_dict().items(), student.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not torch.equal(student.state_dict()["fc.weight"], base.module.state_dict()["fc.weight"])
    assert torch.equal(loaded.module(images), student.eval()(images))


def test_an_lwta_source_with_a_missing_checkpoint_says_so(tmp_path: object) -> None:
    with pytest.raises(NetworkError, match="LWTA checkpoint not found"):
        load_network(f"lwta:builtin:efficientnet_lite0@{tmp_path}/none.pt", device="cpu")
    with pytest.raises(NetworkError, match="lwta source must look like"):
        load_network("lwta:builtin:efficientnet_lite0", device="cpu")
