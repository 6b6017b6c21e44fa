"""The built-in EfficientNet-Lite0/1/2: shipped weights loaded into timm's architectures, each
with the preprocessing it was trained with, checked on foolbox's 20 labelled ImageNet photos
(figures recorded in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from worker.pipelines.accuracy import labelled_imagenet_photos, top1_accuracy
from worker.pipelines.networks import Preprocess, load_network

# (crop, resize): timm's tf_efficientnet_lite* configurations (crop_pct 0.875 / 0.882 / 0.890)
RESOLUTIONS = {"efficientnet_lite0": (224, 256), "efficientnet_lite1": (240, 272),
               "efficientnet_lite2": (260, 292)}  # fmt: skip


def test_foolbox_ships_twenty_labelled_photos() -> None:
    photos = labelled_imagenet_photos()
    assert len(photos) == 20 and all(0 <= label < 1000 for _, label in photos)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_builtin_lite1_and_lite2_load_with_their_own_preprocessing(name: str) -> None:
    network = load_network(f"builtin:{name}", device="cpu")
    crop, resize = RESOLUTIONS[name]
    assert network.preprocess == Preprocess(resize, crop, (0.5,) * 3, (0.5,) * 3, "bicubic")
    correct, total = top1_accuracy(network)
    # recorded on the 20 photos: lite0 14, lite1 17, lite2 19 (docs/benchmarks.md); a network
    # whose weights went to the wrong modules gets about none
    assert total == 20 and correct >= 15, f"{name}: {correct}/{total}"


def test_an_unknown_builtin_names_the_ones_there_are() -> None:
    from worker.pipelines.networks import NetworkError

    with pytest.raises(NetworkError, match="efficientnet_lite0, efficientnet_lite1"):
        load_network("builtin:efficientnet_lite9", device="cpu")
