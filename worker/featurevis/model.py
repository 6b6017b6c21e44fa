"""The network side of feature visualization: normalise, truncate, autocast, compile.

`LayerModel` turns RGB views in [0, 1] into the target layer's activation, running the network
only up to that layer (worker.pipelines.networks.TruncatedNetwork), in channels_last memory
order (faster on CPUs too: oneDNN's convolutions, the depthwise ones above all), with bf16
autocast on CUDA and optional torch.compile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from worker.featurevis.config import FeatureVisConfig
from worker.featurevis.fuse import fuse_conv_activations, fusion_available
from worker.pipelines.fold import fold_batchnorms, same_activations
from worker.pipelines.networks import Network, TruncatedNetwork

log = logging.getLogger(__name__)


@dataclass
class LayerModel:
    """views: [batch, 3, H, W] RGB in [0, 1] → acts: [batch, C, h, w] (float32)."""

    forward_normalised: Callable[[torch.Tensor], torch.Tensor]
    mean: torch.Tensor  # [1, 3, 1, 1]
    std: torch.Tensor  # [1, 3, 1, 1]
    device: torch.device
    mixed_precision: bool
    channels_last: bool
    module: torch.nn.Module  # the network that runs: a folded (and fused) copy, or the original

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        return self.on_inputs((views - self.mean) / self.std)

    @property
    def normalisation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each [1, 3, 1, 1]: inputs = (views - mean) / std."""
        return self.mean, self.std

    def on_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: views already normalised (transforms.warp's `normalise`) → acts."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            acts = self.forward_normalised(inputs)
        return acts.float()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.mixed_precision:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


# A worker process renders shard after shard on the same network and layer: keep the folded,
# fused (and compiled) truncated network instead of rebuilding and re-checking it each time.
_CACHE: dict[tuple[object, ...], LayerModel] = {}
_CACHE_SIZE = 8


def cached_layer_model(network: Network, layer: str, config: FeatureVisConfig) -> LayerModel:
    """`layer_model`, kept per process for the network object, the layer and the settings that
    shape it (the network's weights are never changed in place here)."""
    key = (
        id(network.module), layer, str(network.device), config.fold_batchnorm,
        config.fuse_activations, config.compile, config.channels_last, config.mixed_precision,
        config.network_size,
    )  # fmt: skip
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = layer_model(network, layer, config)
    return _CACHE[key]


def layer_model(network: Network, layer: str, config: FeatureVisConfig) -> LayerModel:
    """The truncated network for `layer`; CUDA speed-ups switch on only when on CUDA."""
    truncated = TruncatedNetwork(network, [layer])
    if config.fold_batchnorm and not network.is_torchscript:
        truncated = _folded_if_equal(network, truncated, config)
    key = truncated.taps[0].key

    def eager(inputs: torch.Tensor) -> torch.Tensor:
        return truncated(inputs)[key]

    forward: Callable[[torch.Tensor], torch.Tensor] = eager
    on_cuda = network.device.type == "cuda"
    if config.compile and on_cuda:
        forward = _compiled(eager)
    mean = torch.tensor(network.preprocess.mean, device=network.device).view(1, 3, 1, 1)
    std = torch.tensor(network.preprocess.std, device=network.device).view(1, 3, 1, 1)
    return LayerModel(
        forward,
        mean,
        std,
        network.device,
        mixed_precision=config.mixed_precision and on_cuda,
        channels_last=config.channels_last,
        module=truncated.network.module,
    )


def _folded_if_equal(
    network: Network, truncated: TruncatedNetwork, config: FeatureVisConfig
) -> TruncatedNetwork:
    """The network with BatchNorms folded (and on CPUs each conv fused with its ReLU/ReLU6),
    if it gives the same activation on a test image."""
    module, changes = fold_batchnorms(network.module)  # a copy
    if config.fuse_activations and fusion_available(network.device):
        changes += fuse_conv_activations(module)
    if changes == 0:
        return truncated
    key = truncated.taps[0].key
    folded = TruncatedNetwork(dataclasses.replace(network, module=module), truncated.taps)
    if same_activations(truncated, folded, config.network_size, network.device):
        return folded
    log.warning("folding or fusing changed %s's activation; using the original network", key)
    return truncated


def _compiled(
    forward: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch.compile, falling back to eager where compilation fails (it is only a speed-up)."""
    compiled = torch.compile(forward, dynamic=False)
    state = {"broken": False}

    def forward_or_eager(inputs: torch.Tensor) -> torch.Tensor:
        if not state["broken"]:
            try:
                return compiled(inputs)
            except Exception as error:  # noqa: BLE001 - any compiler failure means "run eager"
                log.warning("torch.compile failed (%s); running eager", error)
                state["broken"] = True
        return forward(inputs)

    return forward_or_eager
