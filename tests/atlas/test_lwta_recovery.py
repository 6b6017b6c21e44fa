"""A real Celery worker process fine-tuning an LWTA network is killed with SIGKILL mid-training;
another worker takes the shard up, resumes from the job's last checkpoint (the steps before it
are not done again) and the job succeeds with the whole training curve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from backend.atlas.lwta import checkpoint_path, do_queue_lwta
from backend.atlas.models import LWTANetwork
from backend.stimuli.models import ImageSet, Job, Network, Shard
from tests.conftest import start_worker, stop_worker, wait_for_worker
from tests.stimuli.test_image_sets import wait_for_job
from tests.stimuli.test_shard_recovery import FAST, kill_outright, wait_for_requeue
from worker.analyses import lwta

pytestmark = pytest.mark.django_db(transaction=True)
STEPS = 60
OPTIONS = {"block_size": 4, "steps": STEPS, "batch_size": 4, "checkpoint_every": 5,
           "learning_rate": 1e-2, "modules": ["layer2"]}  # fmt: skip


def wait_for_checkpoint(path: Path, at_least: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and lwta.load_checkpoint(str(path))["step"] >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of step ≥ {at_least} at {path} within {seconds} s")


def test_a_killed_workers_fine_tune_resumes_from_its_last_checkpoint(
    base_and_images: tuple[Network, ImageSet], tmp_path: Any
) -> None:
    from backend.celery import app

    base, image_set = base_and_images
    app.control.purge()
    database = settings.DATABASES["default"]["NAME"]
    first = start_worker(database, tmp_path / "first.log", FAST)
    wait_for_worker(first, tmp_path / "first.log")
    job = do_queue_lwta(base, image_set, "survivor", **OPTIONS)
    path = checkpoint_path(job)
    wait_for_checkpoint(path, at_least=10)
    kill_outright(first)
    killed_at = time.monotonic()
    left = lwta.load_checkpoint(str(path))  # what the killed worker saved last
    assert 10 <= left["step"] < STEPS, "the kill must land mid-training"
    assert left["step"] % OPTIONS["checkpoint_every"] == 0
    second = start_worker(database, tmp_path / "second.log", FAST)
    try:
        wait_for_worker(second, tmp_path / "second.log")
        wait_for_requeue(job.shards.get(role=Shard.Role.WORK), killed_at)
        job = wait_for_job(job, seconds=300)
    finally:
        stop_worker(second)
    assert job.state == Job.State.SUCCEEDED, job.error
    made = LWTANetwork.objects.get(network__name="survivor")
    assert made.fine_tune["resumed_from"] == left["step"]
    # the second worker computed only the steps after the checkpoint
    assert made.fine_tune["steps_run"] == STEPS - left["step"]
    assert [point["step"] for point in made.curve] == list(range(1, STEPS + 1))
    assert made.curve[: left["step"]] == left["curve"]  # the killed worker's steps, as it left them
    assert lwta.load_checkpoint(made.checkpoint)["step"] == STEPS
    work = job.shards.get(role=Shard.Role.WORK)
    assert work.state == Shard.State.SUCCEEDED and work.attempts == 2
