"""Shared pieces of the stimuli management commands: running a queued Job in the foreground
(`--now`) or waiting for a worker to finish it (`--wait`), with progress on the terminal."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.stimuli.models import Job


def add_run_arguments(parser: CommandParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--now", action="store_true", help="run here instead of on a worker")
    group.add_argument("--wait", action="store_true", help="queue, then wait for the worker")


def follow(command: BaseCommand, job: Job, options: dict[str, Any]) -> Job:
    """Run or wait for the job as asked; raise CommandError if it failed."""
    if options.get("now"):
        from worker.tasks import run_job_here

        run_job_here(job)
    elif options.get("wait"):
        wait(command, job)
    else:
        command.stdout.write(f"Queued job #{job.pk}; follow it in the admin under Jobs.")
        return job
    job.refresh_from_db()
    if job.state == Job.State.FAILED:
        raise CommandError(f"job #{job.pk} failed: {job.error.splitlines()[0]}")
    command.stdout.write(f"Job #{job.pk} {job.state}: {job.result}")
    return job


def wait(command: BaseCommand, job: Job, poll_seconds: float = 1.0) -> None:
    shown = ""
    while not job.is_finished:
        time.sleep(poll_seconds)
        job.refresh_from_db()
        line = f"  {job.progress * 100:5.1f} %  {job.message}"
        if line != shown:
            command.stdout.write(line)
            shown = line
