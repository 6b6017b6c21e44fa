"""Configuration of a feature-visualization run, and the named presets ("lucent", "imi", "maco").

One frozen dataclass (`FeatureVisConfig`) travels through the engine; `preset(name)` builds the
published recipes, and `dataclasses.replace` (or keyword overrides) adjusts them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CUDA_BATCH_SIZE = 64
# On a 2-core CPU, 4 views per batch were measured fastest per image (bench_featurevis.py),
# once freed activations are kept for reuse (worker.memory): at 224 px a batch of 4 keeps every
# activation under glibc's 32 MB mmap ceiling; batch 1 pays per-op overheads.
CPU_BATCH_SIZE = 4


@dataclass(frozen=True)
class TransformConfig:
    """Random augmentations applied, freshly drawn per batch element, before every step.

    Order as in Lucid/Lucent: pad → jitter → scale → rotate → jitter (→ crop, when set).
    """

    pad: int = 12  # pixels of grey (0.5) around the image
    jitter: int = 8  # first random translation, up to this many pixels
    scale_range: tuple[float, float] = (0.90, 1.10)
    max_angle_degrees: float = 10.0
    jitter_after: int = 4  # second random translation, after scale and rotation
    crop_size: int | None = None  # fixed network-side crop at native resolution (IMI)


@dataclass(frozen=True)
class FeatureVisConfig:
    """Everything that determines the images of a run, apart from network, unit and seed."""

    method: str = "lucent"
    image_size: int = 128  # side of the optimised image
    network_size: int = 224  # side of the image the network sees
    transforms: TransformConfig = field(default_factory=TransformConfig)
    learning_rate: float = 0.05
    max_steps: int = 512
    min_steps: int | None = None  # plateau stopping is on when set
    plateau_window: int = 250  # steps between two looks at the gradient norm
    plateau_tolerance: float = 0.02  # relative change of the smoothed gradient norm
    decay_power: float = 1.0  # FFT parameterisation: 1/f^power frequency scaling
    init_sd: float = 0.01
    decorrelate: bool = True
    images_per_unit: int = 1  # >1 adds the diversity term across a unit's images
    diversity_weight: float = 0.0
    # IMI: the largest weight whose weakest image still beats the top natural exemplar wins.
    diversity_weight_candidates: tuple[float, ...] = ()
    cossim_power: float = 1.0  # direction objective: dot × cosine^power
    # Most images optimised at once; None: CUDA_BATCH_SIZE on a GPU, CPU_BATCH_SIZE on a CPU,
    # where larger batches are no faster per image (memory-bound) and only cost memory.
    batch_size: int | None = None
    mixed_precision: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # the network's input in channels_last order (CPU and CUDA)
    compile: bool = False  # torch.compile the truncated network
    # CPU only: torch's intra-op threads while rendering (restored afterwards). Fixed so that an
    # image is a function of its recipe, not of the worker's layout: a convolution on 2 threads
    # sums in another order than on 1, and gradient ascent carries that rounding into visible
    # pixels (85/255 after 64 steps). None: the process's own setting; images then depend on it.
    cpu_threads: int | None = 1
    fold_batchnorm: bool = True  # fold BatchNorms into convs (checked against the original)
    # with fold_batchnorm, on CPUs: each conv and its ReLU/ReLU6 in one oneDNN call (checked too)
    fuse_activations: bool = True
    # MACO (Fel et al. 2023)
    maco_crops: int = 6  # random crops per image per step
    maco_noise: float = 0.08
    maco_crop_range: tuple[float, float] = (0.25, 1.0)  # crop side as a fraction of the image
    maco_values_std: float = 1.0  # std of the pre-sigmoid image fixed by the magnitude

    def resolved_batch_size(self, device_type: str) -> int:
        if self.batch_size is not None:
            return self.batch_size
        if device_type == "cuda":
            return CUDA_BATCH_SIZE
        # The network sees maco_crops views of each MACO image: keep the views' batch near 4.
        views_per_image = self.maco_crops if self.method == "maco" else 1
        return max(1, CPU_BATCH_SIZE // views_per_image)

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (tuples become lists)."""
        return json_able(dataclasses.asdict(self))


def json_able(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: json_able(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_able(item) for item in value]
    return value


def lucent_preset(**overrides: Any) -> FeatureVisConfig:
    """Lucent's defaults: 128 px upsampled to 224, standard transforms, 512 steps."""
    return dataclasses.replace(FeatureVisConfig(method="lucent"), **overrides)


def imi_preset(**overrides: Any) -> FeatureVisConfig:
    """Borowski/Zimmermann et al.'s recipe: 256 px, 16 px padding, 224 crop, plateau stopping."""
    transforms = TransformConfig(
        pad=16,
        jitter=16,
        scale_range=(0.95, 1.05),
        max_angle_degrees=5.0,
        jitter_after=8,
        crop_size=224,
    )
    config = FeatureVisConfig(
        method="imi",
        image_size=256,
        network_size=224,
        transforms=transforms,
        max_steps=20_000,
        min_steps=2_500,
        images_per_unit=5,
        diversity_weight_candidates=(1e2, 3e1, 1e1, 3.0, 1.0, 0.0),
    )
    return dataclasses.replace(config, **overrides)


def maco_preset(**overrides: Any) -> FeatureVisConfig:
    """MACO: phase-only optimisation under a fixed magnitude spectrum, crops and noise."""
    config = FeatureVisConfig(
        method="maco", image_size=512, network_size=224, learning_rate=1.0, max_steps=256
    )
    return dataclasses.replace(config, **overrides)


PRESETS = {"lucent": lucent_preset, "imi": imi_preset, "maco": maco_preset}


def preset(name: str, **overrides: Any) -> FeatureVisConfig:
    """The named preset with overrides; unknown names raise ValueError."""
    if name not in PRESETS:
        raise ValueError(f"unknown feature-visualization preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name](**overrides)
