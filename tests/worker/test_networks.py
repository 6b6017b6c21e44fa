"""Loading networks from source strings, listing layers, truncated forward passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from skimage import data as skimage_data
from torch import nn

from tests.worker.factories import TINY_PREPROCESS, TinyConvNet, tiny_network
from worker.pipelines.networks import (
    LayerTap,
    NetworkError,
    Preprocess,
    TruncatedNetwork,
    autocast_context,
    inference_network,
    list_layers,
    load_network,
    pick_device,
    prepare_batch,
    preprocess_image,
    truncated_forward,
    wrap_module,
)


def _predict(network, array) -> torch.Tensor:  # type: ignore[no-untyped-def]
    pixels = preprocess_image(Image.fromarray(array), network.preprocess)[None]
    with torch.no_grad():
        return network.module(pixels)[0].softmax(-1)


@pytest.mark.slow
def test_builtin_lite0_recognizes_the_coffee_cup(lite0) -> None:  # type: ignore[no-untyped-def]
    probabilities = _predict(lite0, skimage_data.coffee())
    assert int(probabilities.argmax()) == 967  # espresso
    assert float(probabilities.max()) > 0.5


@pytest.mark.slow
def test_builtin_lite0_sees_a_cat_in_chelsea(lite0) -> None:  # type: ignore[no-untyped-def]
    assert 281 <= int(_predict(lite0, skimage_data.chelsea()).argmax()) <= 285


@pytest.mark.slow
def test_builtin_lite0_is_frozen_and_in_eval_mode(lite0) -> None:  # type: ignore[no-untyped-def]
    assert not lite0.module.training
    assert not any(p.requires_grad for p in lite0.module.parameters())
    assert lite0.preprocess == Preprocess(256, 224, (0.5,) * 3, (0.5,) * 3, "bicubic")


@pytest.mark.slow
def test_list_layers_gives_shapes_without_batch(lite0) -> None:  # type: ignore[no-untyped-def]
    layers = {layer.name: layer.shape for layer in list_layers(lite0)}
    assert layers["blocks.4"] == (112, 14, 14)
    assert layers["conv_stem"] == (32, 112, 112)
    assert layers["output"] == (1000,)


def test_truncated_forward_stops_after_the_deepest_requested_layer() -> None:
    network = tiny_network()
    ran: list[str] = []
    for name in ("stem", "block", "head"):
        getattr(network.module, name).register_forward_hook(lambda m, i, o, n=name: ran.append(n))
    acts = truncated_forward(network, torch.randn(2, 3, 32, 32), ["stem"])
    assert acts["stem"].shape == (2, 8, 16, 16)
    assert ran == ["stem"]


def test_truncated_forward_matches_the_full_forward_pass() -> None:
    network = tiny_network()
    images = torch.randn(3, 3, 32, 32)
    module = network.module
    assert isinstance(module, TinyConvNet)
    with torch.no_grad():
        expected_block = module.block(module.act1(module.stem(images)))
        expected_logits = module(images)
    acts = truncated_forward(network, images, ["act2:input", "output", "block"])
    assert list(acts) == ["act2:input", "output", "block"]
    torch.testing.assert_close(acts["act2:input"], expected_block)
    torch.testing.assert_close(acts["block"], expected_block)
    torch.testing.assert_close(acts["output"], expected_logits)


def test_an_input_tap_is_not_rewritten_by_an_in_place_activation() -> None:
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.Identity(), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 1)
    )
    network = wrap_module(module, TINY_PREPROCESS, "test:inplace", "cpu")
    images = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        pre_activation = module[0](images)
    acts = truncated_forward(network, images, ["2:input", "1", "3"])
    torch.testing.assert_close(acts["2:input"], pre_activation)
    torch.testing.assert_close(acts["1"], pre_activation)
    assert (acts["2:input"] < 0).any()


def test_truncated_forward_keeps_gradients_when_asked() -> None:
    network = tiny_network()
    images = torch.randn(1, 3, 32, 32, requires_grad=True)
    acts = truncated_forward(network, images, ["block"], grad=True)
    acts["block"][0, 0].mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_unknown_layer_lists_close_matches() -> None:
    with pytest.raises(NetworkError, match=r"unknown layer 'blok'.*did you mean block"):
        truncated_forward(tiny_network(), torch.randn(1, 3, 32, 32), ["blok"])


def test_layer_tap_parses_points() -> None:
    assert LayerTap.parse("blocks.4") == LayerTap("blocks.4", "output")
    assert LayerTap.parse("blocks.4:input").key == "blocks.4:input"
    with pytest.raises(NetworkError):
        LayerTap.parse("blocks.4:middle")


@pytest.mark.parametrize(
    "source",
    ["efficientnet_lite0", "builtin:", "timm:resnet18", "nonsense:thing", "torchvision:resnet18@"],
)
def test_bad_source_syntax_is_a_one_line_network_error(source: str) -> None:
    with pytest.raises(NetworkError) as raised:
        load_network(source, device="cpu")
    assert "\n" not in str(raised.value)


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="weights file not found"):
        load_network(f"timm:efficientnet_lite0@{tmp_path / 'absent.pth'}", device="cpu")


def test_unknown_architecture_suggests_names(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="unknown timm architecture 'efficientnet_lite00'"):
        load_network(f"timm:efficientnet_lite00@{tmp_path / 'w.pth'}", device="cpu")
    with pytest.raises(NetworkError, match="unknown torchvision architecture 'resnet181'"):
        load_network(f"torchvision:resnet181@{tmp_path / 'w.pth'}", device="cpu")


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pth"
    torch.save(timm.create_model("mobilenetv3_small_050").state_dict(), path)
    with pytest.raises(NetworkError, match="does not fit timm:efficientnet_lite0") as raised:
        load_network(f"timm:efficientnet_lite0@{path}", device="cpu")
    assert "\n" not in str(raised.value)


def test_a_file_that_is_not_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(b"these are not weights")
    with pytest.raises(NetworkError, match="not a readable weights file"):
        load_network(f"timm:efficientnet_lite0@{path}", device="cpu")


def test_timm_source_loads_local_weights_and_its_preprocessing(tmp_path: Path) -> None:
    reference = timm.create_model("mobilenetv3_small_050", num_classes=7).eval()
    path = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file(reference.state_dict(), str(path))
    network = load_network(f"timm:mobilenetv3_small_050@{path}", device="cpu")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.module(images), reference(images))
    assert network.preprocess.crop == 224


def test_torchvision_source_loads_local_weights(tmp_path: Path) -> None:
    import torchvision

    reference = torchvision.models.squeezenet1_1(weights=None, num_classes=5).eval()
    path = tmp_path / "squeeze.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    network = load_network(f"torchvision:squeezenet1_1@{path}", device="cpu")
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(network.module(images), reference(images))
    assert (network.preprocess.resize, network.preprocess.crop) == (256, 224)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_torchscript_source_exposes_only_its_output(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.jit.trace(TinyConvNet().eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    network = load_network(f"torchscript:{path}", device="cpu", preprocess=TINY_PREPROCESS)
    assert [layer.name for layer in list_layers(network)] == ["output"]
    assert truncated_forward(network, torch.randn(2, 3, 32, 32), ["output"])["output"].shape == (
        2,
        10,
    )
    with pytest.raises(NetworkError, match="TorchScript networks expose only"):
        truncated_forward(network, torch.randn(1, 3, 32, 32), ["stem"])


def test_a_corrupt_torchscript_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(NetworkError, match="is not a TorchScript file"):
        load_network(f"torchscript:{path}", device="cpu")


def test_preprocess_image_resizes_crops_and_normalizes() -> None:
    preprocess = Preprocess(resize=40, crop=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    white = Image.new("RGB", (120, 60), (255, 255, 255))
    pixels = preprocess_image(white, preprocess)
    assert pixels.shape == (3, 32, 32)
    torch.testing.assert_close(pixels, torch.ones(3, 32, 32))


def test_truncated_network_can_be_reused_and_leaves_no_hooks() -> None:
    network = tiny_network()
    truncated = TruncatedNetwork(network, ["stem", "block"])
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = truncated(images), truncated(images)
    torch.testing.assert_close(first["block"], second["block"])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in network.module.modules())


class ConvBatchNormNet(nn.Module):
    """conv -> BatchNorm (non-trivial running statistics) -> ReLU -> conv."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.out = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.bn(self.conv(x))))


def _batchnorms(module: nn.Module) -> int:
    return sum(isinstance(child, nn.BatchNorm2d) for child in module.modules())


def test_the_inference_network_runs_a_folded_channels_last_copy_with_the_same_activations() -> None:
    network = wrap_module(ConvBatchNormNet(), TINY_PREPROCESS, "test:conv-bn", "cpu")
    images = torch.rand(4, 3, 32, 32)
    fast = inference_network(network, ["act", "out"])
    assert _batchnorms(fast.network.module) == 0 and _batchnorms(network.module) == 1
    assert fast.network.module.out.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = TruncatedNetwork(network, ["act", "out"])(images)
        got = fast(prepare_batch(images, "cpu"))
    for key in ("act", "out"):
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5)
    assert inference_network(network, ["out"]).network.module is fast.network.module  # made once


def test_the_folded_copy_is_checked_once_per_network_and_taps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.pipelines import networks

    checks: list[int] = []
    real = networks.same_activations
    monkeypatch.setattr(networks, "same_activations", lambda *args: checks.append(1) or real(*args))
    network = wrap_module(ConvBatchNormNet(), TINY_PREPROCESS, "test:conv-bn", "cpu")
    for _ in range(3):  # shard after shard on one worker
        inference_network(network, ["act", "out"])
    inference_network(network, ["out"])
    assert len(checks) == 2


def test_a_network_without_batchnorms_keeps_no_second_copy() -> None:
    network = tiny_network()
    assert inference_network(network, ["block"]).network.module is network.module


def test_a_tap_on_a_convolution_whose_batchnorm_would_be_folded_reads_the_plain_network() -> None:
    # folding moves the BatchNorm into `conv`: its output would no longer be the conv's own
    network = wrap_module(ConvBatchNormNet(), TINY_PREPROCESS, "test:conv-bn", "cpu")
    images = torch.rand(4, 3, 32, 32)
    fast = inference_network(network, ["conv"])
    assert fast.network.module is network.module
    with torch.no_grad():
        expected = TruncatedNetwork(network, ["conv"])(images)["conv"]
        torch.testing.assert_close(fast(prepare_batch(images, "cpu"))["conv"], expected)


@pytest.mark.slow
def test_lite0s_inference_network_is_folded_and_gives_the_plain_activations(lite0) -> None:  # type: ignore[no-untyped-def]
    taps = ["blocks.4", "blocks.4.2.bn2", "blocks.2:input"]
    fast = inference_network(lite0, taps)
    assert _batchnorms(fast.network.module) == 0 and _batchnorms(lite0.module) > 0
    pixels = preprocess_image(Image.fromarray(skimage_data.astronaut()), lite0.preprocess)[None]
    with torch.no_grad():
        expected = TruncatedNetwork(lite0, taps)(pixels)
        got = fast(prepare_batch(pixels, "cpu"))
    for key, value in expected.items():
        scale = float(value.abs().max())
        torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5 * scale)


def test_cpu_runs_in_plain_fp32() -> None:
    with autocast_context("cpu"):
        product = torch.ones(2, 2) @ torch.ones(2, 2)
    assert product.dtype == torch.float32


def test_pick_device_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSYLENS_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(NetworkError):
            pick_device("cuda")


def test_wrap_module_freezes_parameters() -> None:
    network = wrap_module(nn.Linear(2, 2).train(), device="cpu")
    assert not network.module.training
    assert not any(p.requires_grad for p in network.module.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lite0_on_gpu_agrees_with_cpu_under_bf16_autocast() -> None:
    cpu = load_network("builtin:efficientnet_lite0", device="cpu")
    gpu = load_network("builtin:efficientnet_lite0", device="cuda")
    pixels = preprocess_image(Image.fromarray(skimage_data.coffee()), cpu.preprocess)[None]
    with torch.no_grad():
        expected = cpu.module(pixels)
        with autocast_context(gpu.device):
            got = truncated_forward(gpu, pixels.to("cuda"), ["output"])["output"].float().cpu()
    assert int(got.argmax()) == int(expected.argmax()) == 967
    torch.testing.assert_close(got.softmax(-1), expected.softmax(-1), atol=0.05, rtol=0)
