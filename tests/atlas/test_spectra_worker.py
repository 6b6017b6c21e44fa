"""Spectra on a real worker process through the real Redis: the demo's step queues one Job for
the layers, the worker runs its shard and merge and writes a row per layer; a second run of the
step queues nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from backend.atlas import spectra_demo
from backend.atlas.models import Spectrum
from backend.stimuli import demo
from backend.stimuli.models import Job
from tests.stimuli.conftest import stimuli  # noqa: F401 - the fixture `tiny` uses

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tiny(stimuli: dict[str, Any]) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """The built-in network (named as the demo's), 30 tiny images."""
    return stimuli


@pytest.mark.slow
def test_the_demo_step_computes_spectra_on_the_worker_once(
    celery_worker: Any, tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 30 images fill the fit range of the two first blocks only (pooled: rank ≤ 29).
    monkeypatch.setattr(spectra_demo, "BLOCKS", ["blocks.0", "blocks.1"])
    monkeypatch.setattr(spectra_demo, "PATH", {"kind": "circle", "steps": 8, "directions": 4})
    monkeypatch.setattr(demo, "IMAGE_SET", tiny["image_set"].name)
    command = BaseCommand(stdout=io.StringIO())
    spectra_demo.seed_spectra(command)
    job = Job.objects.get(kind="compute_spectra")
    assert job.state == Job.State.SUCCEEDED and job.progress == 1.0, job.error
    rows = Spectrum.objects.order_by("layer__position")
    assert [(r.layer.name, r.job_id, r.n_samples) for r in rows] == [
        ("blocks.0", job.pk, 30), ("blocks.1", job.pk, 30)
    ]  # fmt: skip
    assert all(r.alpha is not None and r.energy is not None for r in rows)
    spectra_demo.seed_spectra(command)
    assert Job.objects.filter(kind="compute_spectra").count() == 1
