"""Atlas fixtures: the stimuli's (the built-in network, a tiny image set, unit sets on a small
layer) plus a labelled image set."""

from __future__ import annotations

from typing import Any

import pytest

from backend.stimuli import services
from backend.stimuli.models import ImageSet
from tests.stimuli.conftest import LAYER, stimuli  # noqa: F401 - the shared fixture
from tests.stimuli.factories import png_bytes
from worker.pipelines import imagesets

__all__ = ["LAYER", "few_images", "labelled_set"]


@pytest.fixture
def labelled_set(db: Any) -> ImageSet:
    """12 images in two classes, `dog` and `cat`, alternating."""
    image_set = ImageSet.objects.create(name="labelled", origin=ImageSet.Origin.DEMO)
    candidates = [
        imagesets.ImageCandidate(f"{i}.png", ["dog", "cat"][i % 2], png_bytes(100 + i))
        for i in range(12)
    ]
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    return image_set


@pytest.fixture
def few_images(db: Any) -> ImageSet:
    """4 images: enough for an ablation pass over 24 units in seconds."""
    image_set = ImageSet.objects.create(name="few", origin=ImageSet.Origin.DEMO)
    candidates = [imagesets.ImageCandidate(f"{i}.png", None, png_bytes(50 + i)) for i in range(4)]
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    return image_set


# LWTA networks (#19): the tiny base network and its images.
from tests.atlas.lwta_fixtures import base_and_images  # noqa: E402, F401
