"""Celery tasks: thin wrappers that run a Job (load rows, call a pure pipeline, save).

This is the only module of worker/ that touches Django. Task names starting with `gpu.` are
routed to queue `gpu`; the rest run on `default`. Every task is acknowledged late and is safe to
run twice; transient database/broker errors are retried with backoff.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from backend.celery import app
from backend.stimuli import jobs, work
from backend.stimuli.models import Job
from worker import memory


class JobTask(Task):  # type: ignore[misc]
    autoretry_for = jobs.TRANSIENT_ERRORS
    retry_backoff = True
    retry_backoff_max = 60
    max_retries = 5
    acks_late = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if args:
            jobs.mark_failed_after_retries(int(args[0]), exc)


@worker_process_init.connect
def _keep_freed_memory(**_: Any) -> None:
    """Each job reallocates the same large tensors batch after batch: keep freed memory."""
    memory.keep_freed_memory()


@app.task(name="default.ping")
def ping(payload: Any = None) -> dict[str, Any]:
    """Echo, with the worker's host and pid (and whether it keeps freed memory): used by health
    checks and the queue tests."""
    return {
        "payload": payload,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "keeps_freed_memory": memory.kept(),
    }


@app.task(name="default.import_images", base=JobTask)
def import_images(job_id: int) -> dict[str, Any]:
    return jobs.run_job(job_id, work.import_images)


@app.task(name="gpu.fit_unit_set", base=JobTask)
def fit_unit_set(job_id: int) -> dict[str, Any]:
    return jobs.run_job(job_id, work.fit_unit_set)


@app.task(name="gpu.compute_exemplars", base=JobTask)
def compute_exemplars(job_id: int) -> dict[str, Any]:
    return jobs.run_job(job_id, work.compute_exemplars)


@app.task(name="gpu.render_visualizations", base=JobTask)
def render_visualizations(job_id: int) -> dict[str, Any]:
    return jobs.run_job(job_id, work.render_visualizations)


@app.task(name="gpu.compute_occlusion", base=JobTask)
def compute_occlusion(job_id: int) -> dict[str, Any]:
    return jobs.run_job(job_id, work.compute_occlusion)


TASK_FOR_JOB: dict[str, Any] = {
    Job.Kind.IMPORT_IMAGES: import_images,
    Job.Kind.FIT_UNIT_SET: fit_unit_set,
    Job.Kind.COMPUTE_EXEMPLARS: compute_exemplars,
    Job.Kind.RENDER_VISUALIZATIONS: render_visualizations,
    Job.Kind.COMPUTE_OCCLUSION: compute_occlusion,
}
