"""The LWTA tests' base network (timm's tiny `test_resnet`, random weights, ReLU activations)
and six generated images; conftest.py shares them with the atlas's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.stimuli import services
from backend.stimuli.models import ImageSet, Network
from tests.stimuli.factories import png_bytes
from worker.pipelines import imagesets


@pytest.fixture
def base_and_images(tmp_path: Path) -> tuple[Network, ImageSet]:
    import timm

    torch.manual_seed(0)
    weights = tmp_path / "resnet.pt"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), weights)
    network = services.do_create_network("tiny-resnet", f"timm:test_resnet@{weights}")
    image_set = ImageSet.objects.create(name="few", origin=ImageSet.Origin.DEMO)
    candidates = [imagesets.ImageCandidate(f"{i}.png", None, png_bytes(i)) for i in range(6)]
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    return network, image_set
