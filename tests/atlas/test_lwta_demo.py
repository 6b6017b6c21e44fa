"""The demo's LWTA step on a real worker process through the real Redis: it fine-tunes
Lite0 with blocks.6 as LWTA (U = 24, layers before it frozen), stores the network with its
report and training curve, and prints the agreement; a second run queues nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from backend.atlas import lwta_demo
from backend.atlas.models import LWTANetwork
from backend.stimuli import demo
from backend.stimuli.models import Job, Network
from tests.stimuli.conftest import stimuli  # noqa: F401 - the fixture `tiny` uses

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tiny(stimuli: dict[str, Any]) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """The built-in network (named as the demo's), 30 tiny images."""
    return stimuli


@pytest.mark.slow
def test_the_demo_step_fine_tunes_the_lwta_network_on_the_worker_once(
    celery_worker: Any, tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's options, fewer steps and images: the same modules, U and frozen prefix.
    monkeypatch.setattr(lwta_demo, "OPTIONS", {**lwta_demo.OPTIONS, "steps": 2,
                                               "checkpoint_every": 1, "max_images": 8})  # fmt: skip
    monkeypatch.setattr(demo, "IMAGE_SET", tiny["image_set"].name)
    out = io.StringIO()
    command = BaseCommand(stdout=out)
    lwta_demo.seed_lwta(command)
    job = Job.objects.get(kind="finetune_lwta")
    assert job.state == Job.State.SUCCEEDED and job.progress == 1.0, job.error
    row = LWTANetwork.objects.get()
    assert row.network.name == lwta_demo.NAME and row.base == tiny["network"]
    assert row.block_size == 24 and row.job == job
    assert row.modules and all(name.startswith("blocks.6") for name in row.modules)
    assert row.fine_tune["steps_run"] == 2 and row.fine_tune["freeze_prefix"] is True
    assert len(row.curve) == 2 and row.report["agreement_before"] is not None
    assert "top-1 agreement with lite0" in out.getvalue()
    lwta_demo.seed_lwta(command)
    assert Job.objects.filter(kind="finetune_lwta").count() == 1
    assert Network.objects.filter(name=lwta_demo.NAME).count() == 1
