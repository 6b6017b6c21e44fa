"""Feature visualization in pure PyTorch: Lucid/Lucent's recipe, the IMI preset and MACO.

The entry point is `visualize`: a Network, a layer, an objective (channel, neuron, direction or
code) and unit indices in, one `Visualization` per image out. Many units share one batch; every
image is reproducible from (seed, unit, image index) alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch

from worker.featurevis.config import (
    FeatureVisConfig,
    TransformConfig,
    imi_preset,
    lucent_preset,
    maco_preset,
    preset,
)
from worker.featurevis.engine import Progress, Visualization, render_units
from worker.featurevis.model import LayerModel, cached_layer_model, layer_model
from worker.featurevis.objectives import (
    ChannelObjective,
    CodeObjective,
    DirectionObjective,
    NeuronObjective,
    Objective,
    diversity_penalty,
    linear_encoder,
)
from worker.featurevis.param import magnitude_spectrum
from worker.pipelines.networks import Network

__all__ = [
    "ChannelObjective",
    "CodeObjective",
    "DirectionObjective",
    "FeatureVisConfig",
    "LayerModel",
    "NeuronObjective",
    "Objective",
    "Progress",
    "TransformConfig",
    "Visualization",
    "diversity_penalty",
    "imi_preset",
    "intra_op_threads",
    "layer_model",
    "linear_encoder",
    "lucent_preset",
    "maco_preset",
    "magnitude_spectrum",
    "preset",
    "render_units",
    "visualize",
]


def visualize(
    network: Network,
    layer: str,
    objective: Objective,
    units: Sequence[int],
    config: FeatureVisConfig,
    *,
    seed: int = 0,
    top_natural_activations: Sequence[float] | None = None,
    natural_images: torch.Tensor | Iterable[torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> list[Visualization]:
    """Visualise `units` of `layer`; MACO needs `natural_images` ([N, 3, H, W] in [0, 1] or an
    iterable of them) for its magnitude spectrum, computed here, never downloaded."""
    magnitude = None
    if config.method == "maco":
        if natural_images is None:
            raise ValueError("MACO needs natural_images to compute its magnitude spectrum")
        magnitude = magnitude_spectrum(natural_images, config.image_size)
    threads = config.cpu_threads if network.device.type == "cpu" else None
    with intra_op_threads(threads):
        return render_units(
            cached_layer_model(network, layer, config),
            objective,
            units,
            config,
            seed=seed,
            top_natural_activations=top_natural_activations,
            magnitude=magnitude,
            progress=progress,
        )


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` (None: left alone), restored on exit."""
    if threads is not None and threads < 1:
        raise ValueError(f"cpu_threads must be at least 1 (or None), got {threads}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
