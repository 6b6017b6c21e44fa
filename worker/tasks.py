"""Celery tasks: thin wrappers that run a Job's shards (load rows, call a pure pipeline, save).

This is the only module of worker/ that touches Django. Task names starting with `gpu.` are
routed to queue `gpu`; the rest run on `default`. A job is a group of `<queue>.run_shard` tasks,
one per shard, sent by name from the web side (`backend/stimuli/jobkinds.py`); the last shard to
end queues the job's merge step, another `run_shard`. Every task is acknowledged late and is safe
to run twice (a shard runs only under its claim); transient database/broker errors are retried
with backoff. Each worker's main process runs the reaper, which queues again the shards whose
worker died (`backend.stimuli.jobs.reap`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import close_old_connections

from backend.atlas import work as atlas_work
from backend.celery import app
from backend.stimuli import jobkinds, jobs
from backend.stimuli import work as stimuli_work
from backend.stimuli.models import Job
from worker import memory

log = logging.getLogger(__name__)

# Every job kind's work, by kind name (the planners are in backend/stimuli/jobkinds.py).
WORK: dict[str, jobs.KindWork] = {**stimuli_work.WORK, **atlas_work.WORK}
_missing = set(jobkinds.KINDS) - set(WORK)
assert not _missing, f"job kinds without work: {sorted(_missing)}"


class ShardTask(Task):  # type: ignore[misc]
    autoretry_for = jobs.TRANSIENT_ERRORS
    retry_backoff = True
    retry_backoff_max = 60
    max_retries = 5
    acks_late = True
    ignore_result = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if args:
            jobs.mark_failed_after_retries(int(args[0]), exc)


@worker_process_init.connect
def _prepare_process(**_: Any) -> None:
    """Each job reallocates the same large tensors batch after batch: keep freed memory. With
    WORKER_GPUS (e.g. `0,1,2,3`), pool process i sees only GPU i (mod their number)."""
    memory.keep_freed_memory()
    gpus = [gpu.strip() for gpu in os.environ.get("WORKER_GPUS", "").split(",") if gpu.strip()]
    if gpus:
        from billiard.process import current_process

        index = int(getattr(current_process(), "index", 0) or 0)
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    threading.Thread(target=_reap_forever, name="shard-reaper", daemon=True).start()


def _reap_forever() -> None:
    while True:
        try:
            close_old_connections()
            counts = jobs.reap()
            if any(counts.values()):
                log.info("shard reaper: %s", counts)
        except Exception:  # noqa: BLE001 - the reaper must outlive a database outage
            log.warning("shard reaper failed; trying again", exc_info=True)
        time.sleep(settings.SHARD_REAP_SECONDS)


@app.task(name="default.ping")
def ping(payload: Any = None) -> dict[str, Any]:
    """Echo, with the worker's host and pid (and whether it keeps freed memory): used by health
    checks and the queue tests."""
    return {
        "payload": payload,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "keeps_freed_memory": memory.kept(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


@app.task(name="gpu.run_shard", base=ShardTask)
def run_gpu_shard(shard_id: int) -> dict[str, Any]:
    return jobs.run_shard(shard_id, WORK)


@app.task(name="default.run_shard", base=ShardTask)
def run_default_shard(shard_id: int) -> dict[str, Any]:
    return jobs.run_shard(shard_id, WORK)


def run_job_here(job: Job | int) -> Job:
    """Run every shard of a job and its merge in this process (`--now`, tests, benchmarks)."""
    return jobs.run_job_here(job if isinstance(job, int) else job.pk, WORK)
