"""A built-in network's top-1 accuracy on the 20 labelled ImageNet validation photos that the
PyPI package `foolbox` ships (MIT; `imagenet_<nn>_<class index>.jpg`), each prepared with the
network's own preprocessing: the check that its weights were loaded right."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from worker.pipelines.imagesets import _foolbox_data
from worker.pipelines.networks import Network, preprocess_image

__all__ = ["labelled_imagenet_photos", "top1_accuracy"]


def labelled_imagenet_photos() -> list[tuple[Path, int]]:
    """(file, ImageNet class index) of foolbox's photos, in file-name order."""
    photos = sorted(_foolbox_data().glob("imagenet_*.jpg"))
    return [(path, int(path.stem.split("_")[2])) for path in photos]


def top1_accuracy(network: Network) -> tuple[int, int]:
    """(correct, total) top-1 answers of ``network`` on :func:`labelled_imagenet_photos`."""
    photos = labelled_imagenet_photos()
    if not photos:
        return 0, 0
    pixels = []
    for path, _ in photos:
        with Image.open(path) as image:
            pixels.append(preprocess_image(image.convert("RGB"), network.preprocess))
    with torch.no_grad():
        logits = network.module(torch.stack(pixels).to(network.device))
    predicted = logits.argmax(dim=1).tolist()
    return sum(int(p == c) for p, (_, c) in zip(predicted, photos, strict=True)), len(photos)
