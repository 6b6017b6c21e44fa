"""Fixtures for the worker pipeline tests (pure PyTorch: no database, no Celery)."""

from __future__ import annotations

import pytest

from worker.pipelines.imagesets import demo_images
from worker.pipelines.loading import ImageRef
from worker.pipelines.networks import Network, load_network


@pytest.fixture(scope="session")
def lite0() -> Network:
    """The built-in EfficientNet-Lite0 with its shipped ImageNet weights, on CPU."""
    return load_network("builtin:efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def demo_refs() -> list[ImageRef]:
    """The built-in demo set as image refs (ids 0, 1, … in generation order)."""
    return [ImageRef(i, data=image.data) for i, image in enumerate(demo_images())]
