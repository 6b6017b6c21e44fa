"""The demo's observer step on a real worker: the built-in observer (lite0's pooled penultimate
features) scores every unit of a demo unit set, and a second run does nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from backend.atlas import demo, observers
from backend.atlas.models import Measure, ObserverEmbedding
from backend.stimuli import services
from backend.stimuli.demo import NETWORK, UNIT_SETS
from backend.stimuli.models import ImageSet, Job, UnitSet
from tests.stimuli.factories import png_bytes
from worker.pipelines import imagesets
from worker.tasks import run_job_here

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_demo_step_scores_every_unit_with_the_built_in_observer(celery_worker: Any) -> None:
    network = services.do_create_network(*NETWORK)
    image_set = ImageSet.objects.create(name="demo", origin=ImageSet.Origin.DEMO)
    candidates = [imagesets.ImageCandidate(f"{i}.png", None, png_bytes(i)) for i in range(40)]
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    spec = UNIT_SETS[0]  # channels of blocks.2
    unit_set = services.do_save_unit_set(
        UnitSet(name=spec["name"], layer=network.layers.get(name=spec["layer"]),
                kind=spec["kind"], image_set=image_set)
    )  # fmt: skip
    for job in services.do_queue_exemplar_jobs([unit_set], send=False):
        assert run_job_here(job).state == Job.State.SUCCEEDED
    command = BaseCommand(stdout=io.StringIO())
    demo.seed_observer(command)
    output = command.stdout.getvalue()  # type: ignore[attr-defined]
    assert "Scoring every demo unit with the machine observer lite0-pooled" in output
    measures = Measure.objects.filter(name="mis:lite0-pooled", unit__unit_set=unit_set)
    assert measures.count() == unit_set.units.count()
    assert all(m.value is not None and 0 < m.value < 1 for m in measures)
    assert ObserverEmbedding.objects.count() <= 40
    assert Job.objects.get(kind=observers.MIS_KIND).state == Job.State.SUCCEEDED

    again = BaseCommand(stdout=io.StringIO())
    demo.seed_observer(again)
    assert again.stdout.getvalue() == ""  # type: ignore[attr-defined]
    assert Job.objects.filter(kind=observers.MIS_KIND).count() == 1
