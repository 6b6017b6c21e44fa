"""A real Celery worker process killed with SIGKILL in the middle of a shard: another worker
takes the shard up (its reaper sees the heartbeat stop) and the job succeeds with exactly the
expected rows, none twice."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil
import pytest
from django.conf import settings

from backend.stimuli import services
from backend.stimuli.models import Job, Shard, Visualization
from tests.conftest import start_worker, stop_worker, wait_for_worker
from tests.stimuli.test_image_sets import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)

# Fast shard bookkeeping for the workers of this test; the defaults (10 s, 45 s, 15 s) give
# "taken up within about a minute".
FAST = {"SHARD_HEARTBEAT_SECONDS": "1", "SHARD_STALE_SECONDS": "3", "SHARD_REAP_SECONDS": "1"}
SLOW_ENOUGH = {"max_steps": 40, "image_size": 64, "batch_size": 8}  # a few seconds a shard


def kill_outright(process: Any) -> None:
    """SIGKILL the worker's main process and its pool: the host is gone, nothing cleans up."""
    family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]
    for pid in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    process.wait()


def test_a_killed_workers_shard_is_taken_up_by_another_worker(
    stimuli: dict[str, Any], tmp_path: Any
) -> None:
    from backend.celery import app

    app.control.purge()
    database = settings.DATABASES["default"]["NAME"]
    first = start_worker(database, tmp_path / "first.log", FAST)
    wait_for_worker(first, tmp_path / "first.log")
    units = list(stimuli["channels"].units.filter(index__in=[4, 9]))
    params = {"units": [u.pk for u in units], "preset": "lucent", "overrides": SLOW_ENOUGH,
              "images_per_shard": 1}  # fmt: skip
    job = services.do_queue_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    assert job.shards.filter(role=Shard.Role.WORK).count() == 4

    running = wait_for_running_shard(job)
    kill_outright(first)
    killed_at = time.monotonic()
    second = start_worker(database, tmp_path / "second.log", FAST)
    try:
        wait_for_worker(second, tmp_path / "second.log")
        second_ready_after = time.monotonic() - killed_at
        requeued_after = wait_for_requeue(running, killed_at)
        job = wait_for_job(job, seconds=180)
    finally:
        stop_worker(second)
    assert job.state == Job.State.SUCCEEDED, job.error
    rows = list(Visualization.objects.values_list("unit_id", "sign"))
    assert sorted(rows) == sorted((u.pk, s) for u in units for s in (1, -1))  # none twice
    running.refresh_from_db()
    assert running.state == Shard.State.SUCCEEDED and running.attempts == 2
    # Stale after 3 s, reaped every second by the second worker once it runs (its start, which
    # imports torch, takes 5–20 s on a loaded 2-core machine and is not the reaper's delay):
    # taken up within seconds of it, long before the broker's redelivery.
    reaped_after = requeued_after - second_ready_after
    assert reaped_after < 10, f"queued again {reaped_after:.1f} s after the second worker started"
    redelivery = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert requeued_after < redelivery / 10, (requeued_after, redelivery)
    assert set(job.shards.values_list("state", flat=True)) == {"succeeded"}


def wait_for_running_shard(job: Job, seconds: float = 90) -> Shard:
    """The first shard seen running with some progress: the kill lands mid-shard."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shard = job.shards.filter(state=Shard.State.RUNNING, progress__gt=0).first()
        if shard is not None:
            return shard
        time.sleep(0.05)
    raise AssertionError(f"no shard of job {job.pk} started within {seconds} s")


def wait_for_requeue(shard: Shard, since: float, seconds: float = 60) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shard.refresh_from_db()
        if shard.attempts > 1 or shard.state == Shard.State.QUEUED:
            return time.monotonic() - since
        time.sleep(0.1)
    raise AssertionError(f"{shard} was not queued again within {seconds} s")
