"""Stochastic local winner-takes-all (LWTA) networks built from any network (DISCOVER).

Panousis & Chatzis (2023), "DISCOVER: Making vision networks interpretable via competition and
dissection" (NeurIPS), replace a network's activations with LWTA blocks: the channels of a layer
are grouped in blocks of U consecutive channels and, at each spatial position, only one channel
of each block passes its raw linear value; the others output zero. About 1/U of the units are
active per input (4 % at U = 24).

The winner of block ``b`` at a position is drawn from a Gumbel-softmax over the block's linear
values ``h``:

    ξ = softmax((h + g) / τ),  g ~ Gumbel(0, 1),  τ = 1.67 while training,
    y_k = h_k · onehot(argmax ξ)_k            (forward),
    ∂y/∂h  through  onehot − sg(ξ) + ξ        (straight-through: every unit gets a gradient).

At inference the winner is the argmax of ``h`` (deterministic, so exemplar passes repeat); the
stochastic draw stays available (``stochastic_inference``).

:func:`convert_to_lwta` swaps ReLU, ReLU6 and GELU modules (all of them, or those under given
module names) for :class:`LWTA` modules and leaves every weight as it was. :func:`fine_tune`
distils the converted network from the original (KL to the teacher's softmax, plus
cross-entropy where labels exist) with AdamW, saving a checkpoint every ``checkpoint_every``
steps so a killed run resumes where its last checkpoint left it. :func:`lwta_report` measures
top-1 agreement with the teacher, accuracy on labelled images and the fraction of active units
per converted layer. Pure torch: no Django.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_TYPES",
    "activation_inventory",
    "FineTuneConfig",
    "FineTuneResult",
    "LWTA",
    "LWTAConfig",
    "LWTAError",
    "LWTAReport",
    "config_of",
    "convert_to_lwta",
    "fine_tune",
    "foolbox_labelled_images",
    "load_checkpoint",
    "lwta_from_checkpoint",
    "lwta_modules",
    "lwta_report",
    "parse_class_index",
    "replaceable_modules",
    "save_checkpoint",
    "select_modules",
    "teacher_logits",
]

#: The activation modules an LWTA block replaces, by the name a researcher gives them.
ACTIVATIONS: dict[str, type[nn.Module]] = {"ReLU": nn.ReLU, "ReLU6": nn.ReLU6, "GELU": nn.GELU}
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(ACTIVATIONS.values())


class LWTAError(ValueError):
    """A conversion or fine-tuning cannot run; the message is one line for a researcher."""


@dataclass(frozen=True)
class LWTAConfig:
    """How a network becomes an LWTA network.

    ``modules``: names of activation modules, or of modules containing them (a block of
    layers), to replace; empty means every activation of the network. ``types``: which kinds of
    activation module (names of :data:`ACTIVATIONS`) are replaced.
    """

    block_size: int = 24  # U
    temperature: float = 1.67  # τ of the Gumbel-softmax while training
    modules: tuple[str, ...] = ()
    stochastic_inference: bool = False
    types: tuple[str, ...] = tuple(ACTIVATIONS)

    def __post_init__(self) -> None:
        if self.block_size < 2:
            raise LWTAError(f"block size U must be at least 2, got {self.block_size}")
        if self.temperature <= 0:
            raise LWTAError(f"temperature must be positive, got {self.temperature}")
        object.__setattr__(self, "modules", tuple(self.modules))
        object.__setattr__(self, "types", tuple(self.types))
        unknown = [t for t in self.types if t not in ACTIVATIONS]
        if unknown or not self.types:
            raise LWTAError(
                f"module types must be some of {', '.join(ACTIVATIONS)}; got {list(self.types)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "modules": list(self.modules), "types": list(self.types)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LWTAConfig:
        types = tuple(data.get("types", ACTIVATIONS))  # checkpoints before `types`: all kinds
        return cls(**{**data, "modules": tuple(data.get("modules", ())), "types": types})


class LWTA(nn.Module):
    """One LWTA layer: blocks of ``block_size`` consecutive channels compete at each position.

    Channels are dim 1 of ``[batch, channels, H, W]`` maps and the last dim of ``[batch, ...,
    features]`` tokens. A last block with fewer than U channels competes among those it has.
    ``active_units``/``seen_units`` count non-zero outputs while ``tracking`` is on.
    """

    def __init__(
        self, block_size: int, temperature: float = 1.67, stochastic_inference: bool = False
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.temperature = temperature
        self.stochastic_inference = stochastic_inference
        self.tracking = False
        self.active_units = 0
        self.seen_units = 0

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, temperature={self.temperature}"

    def forward(self, h: Tensor) -> Tensor:
        channel_dim = 1 if h.ndim == 4 else h.ndim - 1
        moved = h.movedim(channel_dim, -1)  # [..., channels]
        mask = self.winner_mask(moved)
        out = (moved * mask).movedim(-1, channel_dim)
        if self.tracking:
            self.active_units += int((out != 0).sum())
            self.seen_units += out.numel()
        return out

    def winner_mask(self, h: Tensor) -> Tensor:
        """``h: [..., channels]`` -> the winners' mask (one-hot per block; straight-through
        soft gradient when stochastic)."""
        channels = h.shape[-1]
        blocks = -(-channels // self.block_size)
        padding = blocks * self.block_size - channels
        logits = F.pad(h, (0, padding), value=float("-inf")) if padding else h
        logits = logits.reshape(*h.shape[:-1], blocks, self.block_size)  # [..., blocks, U]
        if self.training or self.stochastic_inference:
            gumbel = -torch.empty_like(logits).exponential_().log()
            soft = torch.softmax((logits + gumbel) / self.temperature, dim=-1)
            hard = F.one_hot(soft.argmax(dim=-1), self.block_size).to(soft.dtype)
            mask = hard - soft.detach() + soft
        else:
            mask = F.one_hot(logits.argmax(dim=-1), self.block_size).to(h.dtype)
        mask = mask.reshape(*h.shape[:-1], blocks * self.block_size)
        return mask[..., :channels] if padding else mask


def _selected(name: str, wanted: tuple[str, ...]) -> bool:
    return not wanted or any(name == w or name.startswith(w + ".") for w in wanted)


def activation_inventory(module: nn.Module) -> list[tuple[str, str]]:
    """``(module name, activation type)`` of every ReLU, ReLU6 and GELU module, in definition
    order: what a conversion can choose from (small enough to keep per network)."""
    inventory = []
    for name, child in module.named_modules():
        kind = next((k for k, cls in ACTIVATIONS.items() if isinstance(child, cls)), None)
        if kind is not None:
            inventory.append((name, kind))
    return inventory


def select_modules(inventory: list[tuple[str, str]], config: LWTAConfig) -> list[str]:
    """The names of the activation modules ``config`` chooses from an
    :func:`activation_inventory`; raises LWTAError when there are none: the conversion would
    change nothing."""
    names = [
        name for name, kind in inventory if kind in config.types and _selected(name, config.modules)
    ]
    if not names:
        chosen = ", ".join(config.modules) or "the network"
        raise LWTAError(f"no {' or '.join(config.types)} module under {chosen} to replace")
    return names


def replaceable_modules(module: nn.Module, config: LWTAConfig) -> list[str]:
    """The names of the activation modules ``config`` chooses in ``module``."""
    return select_modules(activation_inventory(module), config)


def convert_to_lwta(module: nn.Module, config: LWTAConfig) -> tuple[nn.Module, list[str]]:
    """A copy of ``module`` with its chosen activations replaced by LWTA blocks, and the names of
    the replaced modules (in forward-definition order). Every weight is left unchanged."""
    converted = copy.deepcopy(module)
    names = replaceable_modules(converted, config)
    for name in names:
        parent_name, _, attribute = name.rpartition(".")
        parent = converted.get_submodule(parent_name) if parent_name else converted
        block = LWTA(config.block_size, config.temperature, config.stochastic_inference)
        setattr(parent, attribute, block)
    return converted, names


def lwta_from_checkpoint(base: nn.Module, checkpoint: dict[str, Any]) -> nn.Module:
    """The LWTA network a checkpoint holds: ``base`` converted with the checkpoint's config, then
    the checkpoint's weights loaded (strictly: they must be this architecture's)."""
    config = LWTAConfig.from_dict(dict(checkpoint["lwta"]))
    converted, _ = convert_to_lwta(base, config)
    try:
        converted.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise LWTAError(f"the checkpoint's weights do not fit the base network: {first}") from None
    return converted


def lwta_modules(module: nn.Module) -> Iterator[tuple[str, LWTA]]:
    for name, child in module.named_modules():
        if isinstance(child, LWTA):
            yield name, child


# --------------------------------------------------------------------------------------------
# Fine-tuning by distillation


@dataclass(frozen=True)
class FineTuneConfig:
    """Distillation: AdamW on ``kl_weight · KL(teacher ‖ student)`` (softmax at
    ``distill_temperature``, scaled by its square) ``+ ce_weight · cross-entropy`` on labelled
    images; ``batch_size`` images drawn without replacement per step from a generator seeded by
    ``seed`` and the step, so a resumed run draws the same batches. BatchNorm statistics stay
    frozen (the student runs in eval mode; only its LWTA blocks draw stochastic winners).
    ``freeze_prefix``: the weights of the modules that run before the first LWTA block stay as
    they are (those layers keep the original's activations exactly, and no gradient flows
    through them: much cheaper when only late layers are converted)."""

    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    distill_temperature: float = 1.0
    checkpoint_every: int = 50
    seed: int = 0
    freeze_prefix: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise LWTAError("steps, batch size and checkpoint interval must be at least 1")
        if self.learning_rate <= 0:
            raise LWTAError(f"learning rate must be positive, got {self.learning_rate}")


@dataclass
class FineTuneResult:
    """``curve`` (the training curve): one ``{"step", "loss", "kl", "ce"}`` per step done
    (``ce`` None in batches without labels). ``steps_run``: the steps this call computed
    (``steps_done - resumed_from``); ``trained_parameters``: how many weights it trained."""

    steps_done: int
    curve: list[dict[str, float | None]] = field(default_factory=list)
    resumed_from: int = 0
    steps_run: int = 0
    trained_parameters: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0


def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename): a kill never leaves half a checkpoint."""
    temporary = f"{path}.tmp"
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise LWTAError(f"LWTA checkpoint not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle and zip errors all mean "not a checkpoint"
        raise LWTAError(
            f"{path} is not a readable LWTA checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(loaded, dict) or "state_dict" not in loaded or "lwta" not in loaded:
        raise LWTAError(f"{path} is not an LWTA checkpoint (no state_dict and lwta config)")
    return loaded


def config_of(module: nn.Module) -> LWTAConfig:
    """The conversion an LWTA network went through: its blocks' U and τ, its replaced modules."""
    blocks = list(lwta_modules(module))
    if not blocks:
        raise LWTAError("the network has no LWTA blocks")
    first = blocks[0][1]
    return LWTAConfig(
        block_size=first.block_size,
        temperature=first.temperature,
        modules=tuple(name for name, _ in blocks),
        stochastic_inference=first.stochastic_inference,
    )


def _prefix_parameters(student: nn.Module, example: Tensor) -> set[int]:
    """ids of the weights of the modules that finish before the first LWTA block does, in one
    forward pass of ``example`` (execution order: definition order can differ)."""
    finished: list[nn.Module] = []
    handles = [
        child.register_forward_hook(lambda module, _i, _o: finished.append(module))
        for _, child in student.named_modules()
    ]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            student(example)
    finally:
        for handle in handles:
            handle.remove()
    first = next(i for i, module in enumerate(finished) if isinstance(module, LWTA))
    before = {id(m) for m in finished[:first]} - {id(m) for m in finished[first:]}
    return {
        id(p) for m in student.modules() if id(m) in before for p in m.parameters(recurse=False)
    }


def _trainable(student: nn.Module, example: Tensor, config: FineTuneConfig) -> list[nn.Parameter]:
    frozen = _prefix_parameters(student, example) if config.freeze_prefix else set()
    trainable = []
    for parameter in student.parameters():
        parameter.requires_grad_(id(parameter) not in frozen)
        if id(parameter) not in frozen:
            trainable.append(parameter)
    return trainable


@torch.no_grad()
def teacher_logits(teacher: nn.Module, images: Tensor, batch_size: int = 32) -> Tensor:
    """``[N, classes]``: the teacher's outputs on ``images: [N, 3, H, W]`` (eval mode), computed
    once for the whole run: the teacher never changes."""
    teacher.eval()
    return _logits(teacher, images, batch_size)


def _student_mode(student: nn.Module) -> None:
    student.eval()
    for _, block in lwta_modules(student):
        block.train()


def _batch_indices(count: int, config: FineTuneConfig, step: int) -> Tensor:
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    return torch.randperm(count, generator=generator)[: min(config.batch_size, count)]


def _loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None, config: FineTuneConfig
) -> tuple[Tensor, float, float | None]:
    t = config.distill_temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)
    loss = config.kl_weight * kl
    ce_value: float | None = None  # JSON has no NaN: None where the batch has no labels
    known = labels >= 0 if labels is not None else None
    if labels is not None and known is not None and bool(known.any()):
        ce = F.cross_entropy(student_logits[known], labels[known])
        loss = loss + config.ce_weight * ce
        ce_value = float(ce.detach())
    return loss, float(kl.detach()), ce_value


def fine_tune(
    student: nn.Module,
    teacher: nn.Module,
    images: Tensor,
    config: FineTuneConfig,
    labels: Tensor | None = None,
    checkpoint_path: str | None = None,
    extra: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    targets: Tensor | None = None,
) -> FineTuneResult:
    """Distil ``teacher`` into ``student`` (in place) on ``images: [N, 3, H, W]``.

    ``labels: [N]`` holds class indices, -1 where an image has none. With ``checkpoint_path``,
    a checkpoint there is resumed (weights, optimizer, step, curve) and a new one is saved every
    ``checkpoint_every`` steps and at the end; ``extra`` is stored in it as it is (e.g. the
    LWTA config and the base network's source). ``progress(step, steps, loss)`` after each step.
    ``targets: [N, classes]``: the teacher's outputs on ``images`` when already computed
    (:func:`teacher_logits`).
    """
    device = next(student.parameters()).device
    lwta_config = config_of(student)
    if targets is None:
        targets = teacher_logits(teacher, images)
    _student_mode(student)  # before the pass that finds the prefix: BatchNorm must not learn
    trainable = _trainable(student, images[:1].to(device), config)
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    result = FineTuneResult(steps_done=0, trained_parameters=sum(p.numel() for p in trainable))
    if checkpoint_path and os.path.isfile(checkpoint_path):
        state = load_checkpoint(checkpoint_path)
        student.load_state_dict(state["state_dict"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        result.steps_done = result.resumed_from = int(state.get("step", 0))
        result.curve = list(state.get("curve", []))

    def save() -> None:
        if checkpoint_path:
            payload = {
                **(extra or {}),
                "lwta": lwta_config.to_dict(),
                "state_dict": student.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": result.steps_done,
                "curve": result.curve,
                "fine_tune": asdict(config),
            }
            save_checkpoint(checkpoint_path, payload)

    started = time.perf_counter()
    seen = 0
    for step in range(result.steps_done, config.steps):
        indices = _batch_indices(images.shape[0], config, step)
        batch = images[indices].to(device)
        batch_labels = labels[indices].to(device) if labels is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed * 7_919 + step)  # the Gumbel draws repeat on resume
            student_logits = student(batch)
        loss, kl, ce = _loss(student_logits, targets[indices].to(device), batch_labels, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += batch.shape[0]
        result.steps_done = step + 1
        result.steps_run += 1
        result.curve.append({"step": step + 1, "loss": float(loss.detach()), "kl": kl, "ce": ce})
        if result.steps_done % config.checkpoint_every == 0 or result.steps_done == config.steps:
            save()
        if progress is not None:
            progress(result.steps_done, config.steps, float(loss.detach()))
    result.seconds = time.perf_counter() - started
    result.images_per_second = seen / result.seconds if result.seconds > 0 else 0.0
    student.eval()
    for parameter in student.parameters():
        parameter.requires_grad_(False)
    return result


# --------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class LWTAReport:
    """``agreement``: fraction of images whose top-1 class is the teacher's; ``accuracy`` and
    ``teacher_accuracy`` over the labelled images (None without labels); ``active_fraction``:
    per converted layer, the fraction of its outputs that are non-zero (≈ 1/U)."""

    images: int
    agreement: float
    accuracy: float | None
    teacher_accuracy: float | None
    labelled_images: int
    active_fraction: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logits(module: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    device = next(module.parameters()).device
    outputs = [
        module(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(outputs)


@torch.no_grad()
def lwta_report(
    student: nn.Module,
    teacher: nn.Module,
    images: Tensor,
    labels: Tensor | None = None,
    batch_size: int = 32,
    targets: Tensor | None = None,
) -> LWTAReport:
    """Compare ``student`` (an LWTA network, in eval mode: argmax winners) with ``teacher`` on
    ``images: [N, 3, H, W]``; ``labels: [N]`` class indices, -1 where unknown; ``targets``: the
    teacher's outputs on ``images`` when already computed."""
    student.eval()
    teacher.eval()
    blocks = dict(lwta_modules(student))
    for block in blocks.values():
        block.tracking, block.active_units, block.seen_units = True, 0, 0
    try:
        student_top = _logits(student, images, batch_size).argmax(dim=-1)
    finally:
        for block in blocks.values():
            block.tracking = False
    if targets is None:
        targets = teacher_logits(teacher, images, batch_size)
    teacher_top = targets.argmax(dim=-1)
    known = labels >= 0 if labels is not None else torch.zeros(len(images), dtype=torch.bool)
    labelled = int(known.sum())

    def accuracy(top: Tensor) -> float | None:
        if labels is None or not labelled:
            return None
        return float((top[known] == labels[known]).float().mean())

    return LWTAReport(
        images=int(images.shape[0]),
        agreement=float((student_top == teacher_top).float().mean()),
        accuracy=accuracy(student_top),
        teacher_accuracy=accuracy(teacher_top),
        labelled_images=labelled,
        active_fraction={
            name: block.active_units / block.seen_units if block.seen_units else 0.0
            for name, block in blocks.items()
        },
    )


def foolbox_labelled_images(preprocess: Any) -> tuple[Tensor, Tensor]:
    """The 20 labelled ImageNet validation photos that ship with the ``foolbox`` package
    (``imagenet_NN_CLASS.jpg``) as ``images: [20, 3, crop, crop]`` prepared by ``preprocess``
    (a :class:`worker.pipelines.networks.Preprocess`) and ``labels: [20]``; empty without
    foolbox."""
    from PIL import Image

    from worker.pipelines.imagesets import _foolbox_data
    from worker.pipelines.networks import preprocess_image

    paths = sorted(_foolbox_data().glob("imagenet_*.jpg"))
    if not paths:
        return torch.empty(0, 3, preprocess.crop, preprocess.crop), torch.empty(0, dtype=torch.long)
    images, labels = [], []
    for path in paths:
        with Image.open(path) as photo:
            images.append(preprocess_image(photo.convert("RGB"), preprocess))
        labels.append(int(path.stem.split("_")[-1]))
    return torch.stack(images), torch.tensor(labels)


def parse_class_index(label: str | None) -> int:
    """An image's class label as a class index (ImageFolder folders named ``0``…``999`` or
    ``n_NAME``), or -1: only such labels join the cross-entropy."""
    head = (label or "").split("_")[0]
    return int(head) if head.isdigit() else -1
