"""Sharded jobs on a real worker process through the real Redis: the progress of a multi-shard
job only grows and reaches 1.0; Cancel stops the running shard at its next batch and leaves
only whole shards' rows."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.stimuli import services
from backend.stimuli.models import ExemplarSet, Job, Shard, Visualization
from tests.stimuli.test_image_sets import wait_for_job
from tests.stimuli.test_shard_recovery import SLOW_ENOUGH, wait_for_running_shard

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_multi_shard_jobs_progress_only_grows_and_reaches_one(
    celery_worker: Any, stimuli: dict[str, Any]
) -> None:
    params = {"image_set": stimuli["image_set"].pk, "unit_sets": [stimuli["channels"].pk],
              "k": 10, "images_per_shard": 6, "batch_size": 2}  # fmt: skip
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, params)
    seen: list[float] = []
    deadline = time.monotonic() + 180
    while not job.is_finished and time.monotonic() < deadline:
        job.refresh_from_db()
        seen.append(job.progress)
        time.sleep(0.05)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert seen == sorted(seen), "progress went down"
    assert seen[-1] == 1.0 and len(set(seen)) > 3  # it moved in steps, not in one jump
    assert job.shards.filter(role=Shard.Role.WORK).count() == 5
    assert ExemplarSet.objects.count() == 24


def test_cancel_stops_the_running_shard_and_leaves_only_whole_shards_rows(
    celery_worker: Any, client: Client, superuser: User, stimuli: dict[str, Any]
) -> None:
    units = list(stimuli["channels"].units.filter(index__in=[2, 6, 11]))
    params = {"units": [u.pk for u in units], "preset": "lucent", "signs": [1],
              "overrides": {**SLOW_ENOUGH, "max_steps": 400}, "images_per_shard": 1}  # fmt: skip
    job = services.do_queue_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    running = wait_for_running_shard(job)
    client.force_login(superuser)
    assert client.post(f"/admin/stimuli/job/{job.pk}/cancel/").status_code == 302
    deadline = time.monotonic() + 30
    while job.shards.filter(state=Shard.State.RUNNING).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    job = wait_for_job(job)
    assert job.state == Job.State.CANCELLED
    running.refresh_from_db()
    assert running.state == Shard.State.CANCELLED, running.message
    done = job.shards.filter(role=Shard.Role.WORK, state=Shard.State.SUCCEEDED)
    whole = {unit for shard in done for unit in shard.covers["units"]}
    assert set(Visualization.objects.values_list("unit_id", flat=True)) == whole
    assert running.covers["units"][0] not in whole
    assert job.shards.get(role=Shard.Role.MERGE).state == Shard.State.CANCELLED
