"""The feature-visualization engine: many units in one batch, each with its own random draws.

`render_units` optimises, for every unit, `images_per_unit` images that maximise the unit's
activation (Lucid's recipe, or MACO's phase-only variant), batch after batch, and returns one
`Visualization` per image. Every element draws its initialisation and transforms from its own
stream keyed by (seed, unit, image index), so a unit's images do not depend on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from worker import memory
from worker.featurevis import rng, transforms
from worker.featurevis.batch import Element, cut_batches, plan_elements
from worker.featurevis.config import FeatureVisConfig
from worker.featurevis.model import LayerModel
from worker.featurevis.objectives import Objective, diversity_penalty
from worker.featurevis.optim import BatchAdam, PlateauStop
from worker.featurevis.param import FourierImage, PhaseImage

Progress = Callable[[float, str], None]
STREAMS_PER_STEP = 2  # per step: transforms, then MACO noise


@dataclass
class Visualization:
    """One synthetic image of a unit, with everything needed to store and reproduce it."""

    unit: int
    image_index: int
    method: str
    parameters: dict[str, object]
    seed: int
    steps: int  # optimisation steps actually run
    final_activation: float  # the unit's activation on the final image, untransformed
    image: np.ndarray  # uint8 [H, W, 3]
    exceeds_natural: bool | None = None  # beats the unit's top natural exemplar?
    attribution: np.ndarray | None = None  # MACO transparency map, float32 [H, W] in [0, 1]


@dataclass
class _Finished:
    element: Element
    steps: int
    activation: float
    image: np.ndarray
    attribution: np.ndarray | None


@dataclass
class _Batch:
    """The elements still being optimised, with their optimiser state."""

    elements: list[Element]
    units: torch.Tensor  # [batch] int64
    groups: torch.Tensor  # [batch] int64, on the CPU (read there; no device sync)
    weights: torch.Tensor  # [batch] diversity weights
    keys: torch.Tensor  # [batch] int64 rng keys
    image: FourierImage | PhaseImage
    adam: BatchAdam
    plateau: PlateauStop
    plateaued: torch.Tensor  # [batch] bool, latched
    attribution: torch.Tensor | None = None  # [batch, S, S] accumulated |grad × input|
    done: list[_Finished] = field(default_factory=list)

    def keep(self, index: torch.Tensor) -> None:
        index_cpu = index.cpu()
        self.elements = [self.elements[i] for i in index_cpu.tolist()]
        self.units, self.groups = self.units[index], self.groups[index_cpu]
        self.weights, self.keys = self.weights[index], self.keys[index]
        self.image.set_parameter(self.image.parameter()[index])
        self.adam.keep(index)
        self.plateau.keep(index_cpu)
        self.plateaued = self.plateaued[index_cpu]
        if self.attribution is not None:
            self.attribution = self.attribution[index]


def render_units(
    model: LayerModel,
    objective: Objective,
    units: Sequence[int],
    config: FeatureVisConfig,
    *,
    seed: int = 0,
    top_natural_activations: Sequence[float] | None = None,
    magnitude: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> list[Visualization]:
    """Visualise `units`; images unit-major, `config.images_per_unit` per unit.

    top_natural_activations[i] is unit i's most extreme natural exemplar activation: each image
    reports whether it beats it, and with `diversity_weight_candidates` the weight is searched.
    magnitude: [3, S, S//2+1] is required for MACO (see param.magnitude_spectrum).
    """
    if config.method == "maco" and magnitude is None:
        raise ValueError("MACO needs a magnitude spectrum computed from natural images")
    memory.keep_freed_memory()  # every step reallocates the same activations (worker.memory)
    search = bool(config.diversity_weight_candidates) and top_natural_activations is not None
    weights = config.diversity_weight_candidates if search else (config.diversity_weight,)
    elements = plan_elements(units, config.images_per_unit, weights)
    batches = cut_batches(elements, config.resolved_batch_size(model.device.type))
    finished: list[_Finished] = []
    for number, batch_elements in enumerate(batches):
        report = _batch_progress(progress, number, len(batches), config.max_steps)
        finished += _optimise(model, objective, batch_elements, config, seed, magnitude, report)
    natural: dict[int, float] = {}
    if top_natural_activations is not None:
        natural = dict(zip(units, top_natural_activations, strict=True))
    chosen = _choose_weights(finished, natural) if search else finished
    if progress is not None:
        progress(1.0, f"rendered {len(chosen)} images of {len(units)} units")
    return [_visualization(item, config, seed, natural) for item in chosen]


def _batch_progress(
    progress: Progress | None, number: int, total: int, max_steps: int
) -> Callable[[int], None]:
    def report(step: int) -> None:
        if progress is not None:
            fraction = (number + step / max_steps) / total
            progress(min(fraction, 1.0), f"batch {number + 1}/{total}, step {step}")

    return report


def _optimise(
    model: LayerModel,
    objective: Objective,
    elements: list[Element],
    config: FeatureVisConfig,
    seed: int,
    magnitude: torch.Tensor | None,
    report: Callable[[int], None],
) -> list[_Finished]:
    batch = _start_batch(elements, config, seed, magnitude, model.device)
    report_every = max(1, config.max_steps // 20)
    for step in range(1, config.max_steps + 1):
        grad_norm = _step(model, objective, batch, config, step)
        batch.plateaued |= batch.plateau.update(grad_norm, step)
        finished_groups = _finished_groups(batch, at_limit=step == config.max_steps)
        if finished_groups.any():
            _finish(model, objective, batch, config, finished_groups, step)
        if not batch.elements:
            break
        if step % report_every == 0:
            report(step)
    return sorted(batch.done, key=lambda item: elements.index(item.element))


def _start_batch(
    elements: list[Element],
    config: FeatureVisConfig,
    seed: int,
    magnitude: torch.Tensor | None,
    device: torch.device,
) -> _Batch:
    units = [element.unit for element in elements]
    keys = rng.element_keys(seed, units, [element.image_index for element in elements])
    if config.method == "maco":
        if magnitude is None:
            raise ValueError("MACO needs a magnitude spectrum computed from natural images")
        image: FourierImage | PhaseImage = PhaseImage(keys, magnitude, config.maco_values_std)
    else:
        image = FourierImage(
            keys, config.image_size, config.decay_power, config.init_sd, config.decorrelate
        )
    image.to(device)
    batch_size = len(elements)
    plateau = PlateauStop.for_batch(
        batch_size, config.min_steps, config.plateau_window, config.plateau_tolerance
    )
    return _Batch(
        elements=list(elements),
        units=torch.tensor(units, device=device),
        groups=torch.tensor([element.group for element in elements]),
        weights=torch.tensor([e.diversity_weight for e in elements], device=device),
        keys=keys.to(device),
        image=image,
        adam=BatchAdam.like(image.parameter(), config.learning_rate),
        plateau=plateau,
        plateaued=torch.zeros(batch_size, dtype=torch.bool),
        attribution=torch.zeros(batch_size, image.size, image.size, device=device)
        if config.method == "maco"
        else None,
    )


def _step(
    model: LayerModel, objective: Objective, batch: _Batch, config: FeatureVisConfig, step: int
) -> torch.Tensor:
    """One Adam step on every element; returns grad_norm: [batch]."""
    parameter = batch.image.parameter().detach().requires_grad_(True)
    batch.image.set_parameter(parameter)
    images = batch.image.images()  # [batch, 3, S, S]
    activation, penalty = _objective_terms(model, objective, batch, config, images, step)
    score = activation.sum() - (batch.weights * penalty).sum()
    if batch.attribution is None:
        (grad,) = torch.autograd.grad(-score, [parameter])
    else:
        grad, image_grad = torch.autograd.grad(-score, [parameter, images])
        centred = images.detach() - model.mean  # gradient × input, in the network's frame
        batch.attribution += (image_grad * centred).abs().sum(1)
    batch.image.set_parameter(batch.adam.step(parameter.detach(), grad))
    return grad.flatten(1).norm(dim=1)


def _objective_terms(
    model: LayerModel,
    objective: Objective,
    batch: _Batch,
    config: FeatureVisConfig,
    images: torch.Tensor,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """activation: [batch] (mean over MACO's crops) and diversity penalty: [batch]."""
    crops = config.maco_crops if config.method == "maco" else 1
    inputs = _random_views(model, batch, config, images, step)  # [batch * crops, 3, N, N]
    acts = model.on_inputs(inputs)
    units = batch.units.repeat_interleave(crops)
    activation = objective(acts, units).view(len(batch.elements), crops).mean(1)
    diverse = any(element.diversity_weight > 0 for element in batch.elements)
    if crops == 1 and config.images_per_unit > 1 and diverse:
        return activation, diversity_penalty(acts, _group_sizes(batch.elements))
    return activation, torch.zeros_like(activation)


def _group_sizes(elements: list[Element]) -> list[int]:
    """The sizes of the consecutive runs of one group (groups are never split or interleaved)."""
    sizes: list[int] = []
    for index, element in enumerate(elements):
        if index and element.group == elements[index - 1].group:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def _random_views(
    model: LayerModel, batch: _Batch, config: FeatureVisConfig, images: torch.Tensor, step: int
) -> torch.Tensor:
    """The network's inputs (normalised) for this step's random views of `images`."""
    stream = step * STREAMS_PER_STEP
    size, normalise = config.network_size, model.normalisation
    if config.method != "maco":
        theta = transforms.sample_affine(batch.keys, stream, images.shape[-1], config.transforms)
        return transforms.warp(images, theta.to(images.device), size, normalise)
    crops = config.maco_crops
    theta = transforms.sample_crops(batch.keys, stream, crops, config.maco_crop_range)
    inputs = transforms.warp(
        images.repeat_interleave(crops, 0), theta.to(images.device), size, normalise
    )
    noise = _element_noise(batch.keys, stream + 1, inputs.shape, crops)
    return inputs + config.maco_noise * noise / model.std  # noise on the views, in [0, 1] units


def _element_noise(keys: torch.Tensor, stream: int, shape: torch.Size, crops: int) -> torch.Tensor:
    """noise: `shape` standard normal, each element's crops from that element's own generator."""
    seeds = rng.uniform(keys, stream, 1)[:, 0] * float(2**53)
    per_element = (crops, *shape[1:])
    noise = []
    for element_seed in seeds.tolist():
        generator = torch.Generator(keys.device).manual_seed(int(element_seed))
        noise.append(torch.randn(per_element, generator=generator, device=keys.device))
    return torch.cat(noise)


def _finished_groups(batch: _Batch, at_limit: bool) -> torch.Tensor:
    """finished: [batch] bool; a group finishes when all its images have plateaued."""
    if at_limit:
        return torch.ones(len(batch.elements), dtype=torch.bool)
    groups = batch.groups
    unfinished = torch.zeros(int(groups.max()) + 1).index_add_(
        0, groups, (~batch.plateaued).float()
    )
    return unfinished[groups] == 0


@torch.no_grad()
def _finish(
    model: LayerModel,
    objective: Objective,
    batch: _Batch,
    config: FeatureVisConfig,
    finished: torch.Tensor,
    step: int,
) -> None:
    """Score the finished elements on their untransformed images and drop them from the batch."""
    index = finished.nonzero()[:, 0].to(batch.units.device)
    images = batch.image.images()[index]
    crop = config.transforms.crop_size if config.method != "maco" else None
    theta = transforms.identity_view(len(index), images.shape[-1], crop).to(images.device)
    inputs = transforms.warp(images, theta, config.network_size, model.normalisation)
    activation = objective(model.on_inputs(inputs), batch.units[index])
    stored = _centre_crop(images, crop)
    for row, i in enumerate(index.tolist()):
        attribution = None if batch.attribution is None else _normalised(batch.attribution[i])
        batch.done.append(
            _Finished(
                batch.elements[i], step, float(activation[row]), _to_uint8(stored[row]), attribution
            )
        )
    batch.keep((~finished).nonzero()[:, 0].to(batch.units.device))


def _centre_crop(images: torch.Tensor, crop: int | None) -> torch.Tensor:
    if crop is None or crop >= images.shape[-1]:
        return images
    start = (images.shape[-1] - crop) // 2
    return images[..., start : start + crop, start : start + crop]


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """image: [3, H, W] in [0, 1] → uint8 [H, W, 3]."""
    pixels = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def _normalised(attribution: torch.Tensor) -> np.ndarray:
    peak = float(attribution.max())
    scaled = attribution / peak if peak > 0 else attribution
    return scaled.float().cpu().numpy()


def _choose_weights(finished: list[_Finished], natural: dict[int, float]) -> list[_Finished]:
    """Per unit, the group with the largest diversity weight whose weakest image beats the top
    natural exemplar; where none does, the group whose weakest image is strongest."""
    by_unit: dict[int, dict[int, list[_Finished]]] = {}
    for item in finished:
        by_unit.setdefault(item.element.unit, {}).setdefault(item.element.group, []).append(item)
    chosen: list[_Finished] = []
    for unit, groups in by_unit.items():
        weakest = {group: min(i.activation for i in items) for group, items in groups.items()}
        passing = [g for g in groups if weakest[g] > natural[unit]]
        if passing:
            best = max(passing, key=lambda g: groups[g][0].element.diversity_weight)
        else:
            best = max(groups, key=lambda g: weakest[g])
        chosen += groups[best]
    return chosen


def _visualization(
    item: _Finished, config: FeatureVisConfig, seed: int, natural: dict[int, float]
) -> Visualization:
    parameters = config.to_json()
    parameters["diversity_weight"] = item.element.diversity_weight
    top = natural.get(item.element.unit)
    exceeds = None if top is None or math.isnan(top) else item.activation > top
    return Visualization(
        unit=item.element.unit,
        image_index=item.element.image_index,
        method=config.method,
        parameters=parameters,
        seed=seed,
        steps=item.steps,
        final_activation=item.activation,
        image=item.image,
        exceeds_natural=exceeds,
        attribution=item.attribution,
    )
