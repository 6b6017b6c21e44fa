"""The atlas's job kinds on a real Celery worker through the real Redis, in the order a
researcher queues them: activation measures, single-unit ablations, group-ablation curves and
populations, each sent by the web side and run (shards, then merge) by the worker process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from backend.atlas import services
from backend.atlas.models import AblationCurve, Measure, Population
from backend.stimuli.models import ImageSet, Job

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WAIT_SECONDS = 420  # the shared 2-core machine runs other sessions' suites meanwhile


def finished(job: Job) -> Job:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job.pk} ({job.kind}) still {job.state} after {WAIT_SECONDS} s")


def test_the_worker_runs_measures_ablations_curves_and_populations(
    celery_worker: Any, stimuli: dict[str, Any], few_images: ImageSet
) -> None:
    channels = stimuli["channels"]
    activity = finished(services.do_queue_activity_job([channels], few_images, images_per_shard=2))
    assert activity.state == Job.State.SUCCEEDED, activity.error
    assert activity.shards.filter(state="succeeded").count() == 3  # two ranges and the merge
    means = Measure.objects.filter(unit__unit_set=channels, image_set=few_images, name="mean")
    assert means.count() == 24 and all(m.job_id == activity.pk for m in means)

    ablation = finished(services.do_queue_ablation_job(channels, few_images, units_per_shard=12))
    assert ablation.state == Job.State.SUCCEEDED, ablation.error
    kl = Measure.objects.filter(unit__unit_set=channels, image_set=few_images, name="ablation_kl")
    assert kl.count() == 24 and all(m.value is not None and m.value >= 0 for m in kl)

    curves = finished(services.do_queue_ablation_curves_job(
        channels, few_images, ["mean", "ablation_kl"], ks=[1, 24], repeats=1
    ))  # fmt: skip
    assert curves.state == Job.State.SUCCEEDED, curves.error
    stored = {c.ranked_by: c for c in AblationCurve.objects.filter(unit_set=channels)}
    assert set(stored) == {"mean", "ablation_kl"}
    # all 24 units removed: every ranking and the random groups reach the same output
    assert stored["mean"].ranked[-1] == pytest.approx(stored["mean"].random_mean[-1])

    populations = finished(services.do_queue_populations_job(channels, few_images, "activity"))
    assert populations.state == Job.State.SUCCEEDED, populations.error
    groups = Population.objects.filter(unit_set=channels, image_set=few_images)
    assert sorted(i for p in groups for i in p.members) == list(range(24))
    assert populations.result["linkage"] and populations.result["units"] == list(range(24))
