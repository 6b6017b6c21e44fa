"""Running a Job's shards on a worker: claim, heartbeat, throttled progress, the save in one
transaction with the shard's end, the last shard's step that queues the merge, retries, failure
with the shard named, cancellation at the next batch, and the reaper that queues again the
shards whose worker died.

A shard runs only under a claim: `claim` turns a queued shard (or a running one whose heartbeat
went stale) into a running one with a fresh token, in one locked update. A second delivery of a
shard that is done, or running elsewhere with a live heartbeat, finds nothing to claim and does
nothing. The shard's outputs are saved in the same transaction that ends it, and only while its
claim is still the shard's, so a shard delivered twice writes once and a cancelled or lost one
writes nothing. When the last work shard ends, the job's merge step is queued (a counted
last-shard step: the job row's lock serialises the shards' ends).

The work itself (load rows → pure pipeline → save) lives in `backend/stimuli/work.py`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from backend.stimuli import jobkinds
from backend.stimuli.models import Job, Shard

log = logging.getLogger(__name__)

# Errors worth retrying: the database or the broker was briefly out of reach.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)


class JobFailed(Exception):
    """A permanent failure with a message for the researcher (shown on the Job page)."""


class ShardStopped(Exception):
    """The job was cancelled or failed elsewhere, or another worker holds the shard now: stop
    at once and save nothing."""


@dataclass
class ShardOutput:
    """What a shard's work returns: a JSON summary, the mergeable state to keep (tensors, saved
    to media storage before the shard ends) and the rows to write (`save`, called inside the
    transaction that ends the shard)."""

    result: dict[str, Any]
    state: dict[str, Any] | None = None
    save: Callable[[], None] = field(default=lambda: None)


ShardWork = Callable[[Job, Shard, "ProgressReporter"], ShardOutput]
MergeWork = Callable[[Job, list[Shard], "ProgressReporter"], ShardOutput]


@dataclass(frozen=True)
class KindWork:
    """A job kind's work on a worker: one slice (`run`) and the merge of all slices."""

    run: ShardWork
    merge: MergeWork


# --- Progress -----------------------------------------------------------------------------------


class ProgressReporter:
    """Writes a shard's progress (and the job's: the weighted sum over its shards) at most every
    `interval` seconds, and raises ShardStopped once the job stopped or the claim was lost."""

    def __init__(self, shard: Shard, interval: float = 1.0) -> None:
        self.shard = shard
        self.interval = interval
        self._last = 0.0
        self.fraction = 0.0

    def __call__(self, fraction: float | None, message: str = "") -> None:
        if fraction is not None:
            self.fraction = max(0.0, min(1.0, fraction))
        now = time.monotonic()
        if now - self._last < self.interval and self.fraction < 1.0:
            return
        self._last = now
        shard = self.shard
        mine = Shard.objects.filter(pk=shard.pk, claim=shard.claim, state=Shard.State.RUNNING)
        if not mine.update(progress=self.fraction, message=message[:500], heartbeat_at=tz_now()):
            raise ShardStopped(f"{shard.label} is no longer this worker's")
        label = f"{shard.label}: {message}" if shard.job.work_shard_count > 1 else message
        if not update_job_progress(shard.job_id, label):
            raise ShardStopped(f"job #{shard.job_id} was stopped")


def update_job_progress(job_id: int, message: str) -> bool:
    """Set the job's progress to its work shards' weighted progress; False if it is not running."""
    totals = Shard.objects.filter(job_id=job_id, role=Shard.Role.WORK).aggregate(
        total_weight=Sum("weight"), done_weight=Sum(F("weight") * F("progress"))
    )
    total, done = totals["total_weight"], totals["done_weight"] or 0.0
    progress = done / total if total else 0.0
    return bool(
        Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
            progress=min(progress, 1.0), message=message[:500], updated_at=tz_now()
        )
    )


def tz_now() -> Any:
    return timezone.now()


# --- Heartbeat ----------------------------------------------------------------------------------


class Heartbeat:
    """Beats the shard's `heartbeat_at` from a thread while its work runs (a long batch, a
    compile, a fit without progress reports), so only a dead worker's shard goes stale."""

    def __init__(self, shard: Shard, interval: float | None = None) -> None:
        self.shard = shard
        self.interval = interval or settings.SHARD_HEARTBEAT_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="shard-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    Shard.objects.filter(pk=self.shard.pk, claim=self.shard.claim).update(
                        heartbeat_at=tz_now()
                    )
                except TRANSIENT_ERRORS:  # the database is away for a moment: beat again later
                    log.warning("heartbeat of %s failed", self.shard, exc_info=True)
        finally:
            connection.close()


# --- Claiming and ending a shard ------------------------------------------------------------------


def stale_before() -> Any:
    return tz_now() - timedelta(seconds=settings.SHARD_STALE_SECONDS)


def claim(shard_id: int) -> Shard | None:
    """Take the shard for this worker, or None: it is done, running elsewhere, or its job ended."""
    with transaction.atomic():
        shard = Shard.objects.select_for_update().select_related("job").filter(pk=shard_id).first()
        if shard is None or shard.job.is_finished:
            return None
        lost = shard.state == Shard.State.RUNNING and (
            shard.heartbeat_at is None or shard.heartbeat_at < stale_before()
        )
        if shard.state != Shard.State.QUEUED and not lost:
            return None
        now = tz_now()
        shard.state, shard.claim, shard.attempts = (
            Shard.State.RUNNING,
            jobkinds.new_task_id(),
            F("attempts") + 1,
        )
        shard.worker_host, shard.worker_pid = socket.gethostname(), os.getpid()
        shard.heartbeat_at = shard.started_at = now
        shard.finished_at, shard.progress, shard.error = None, 0.0, ""
        shard.save()
        shard.refresh_from_db()
        Job.objects.filter(pk=shard.job_id, state=Job.State.QUEUED).update(
            state=Job.State.RUNNING, started_at=now
        )
        Job.objects.filter(pk=shard.job_id).update(
            worker_host=shard.worker_host,
            attempts=F("attempts") + int(shard.role == Shard.Role.WORK),
        )
    shard.job.refresh_from_db()
    return shard


def finish(shard: Shard, output: ShardOutput, send: bool = True) -> bool:
    """Save the shard's outputs and end it, in one transaction, if the claim is still ours and
    the job still runs; then the last work shard queues the merge. False if nothing was saved."""
    state_file = _save_state(shard, output.state) if output.state is not None else ""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=shard.job_id)
        current = Shard.objects.select_for_update().get(pk=shard.pk)
        if current.claim != shard.claim or current.state != Shard.State.RUNNING:
            return False
        if job.is_finished:
            _end(current, Shard.State.CANCELLED, f"not saved: the job was {job.state}")
            return False
        output.save()
        current.state_file = state_file or current.state_file
        current.result = output.result
        _end(current, Shard.State.SUCCEEDED, "done", progress=1.0)
        if shard.role == Shard.Role.MERGE:
            _succeed_job(job, output.result)
        else:
            _queue_merge_if_last(job, send)
    return True


def _save_state(shard: Shard, state: dict[str, Any]) -> str:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    name = f"shards/job-{shard.job_id}/{shard.index}-{shard.claim}.pt"
    return str(default_storage.save(name, ContentFile(buffer.getvalue())))


def load_state(shard: Shard) -> dict[str, Any]:
    """A finished shard's mergeable state, as its work saved it (tensors only: safe to load)."""
    import torch

    with default_storage.open(shard.state_file, "rb") as handle:
        return dict(torch.load(io.BytesIO(handle.read()), weights_only=True))


def _end(shard: Shard, state: str, message: str, progress: float | None = None) -> None:
    shard.state, shard.message, shard.finished_at = state, message[:500], tz_now()
    if progress is not None:
        shard.progress = progress
    shard.save()


def _queue_merge_if_last(job: Job, send: bool) -> None:
    if job.shards.filter(role=Shard.Role.WORK).exclude(state=Shard.State.SUCCEEDED).exists():
        update_job_progress(job.pk, f"{job.shards.filter(state='succeeded').count()} shards done")
        return
    merge = job.shards.filter(role=Shard.Role.MERGE, state=Shard.State.WAITING).first()
    if merge is None:
        return
    merge.state, merge.queued_at = Shard.State.QUEUED, tz_now()
    merge.sent_at = None if send else merge.queued_at
    merge.save(update_fields=["state", "queued_at", "sent_at"])
    update_job_progress(job.pk, "every shard done: merging")
    if send:
        jobkinds.send_on_commit([merge])


def _succeed_job(job: Job, result: dict[str, Any]) -> None:
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.SUCCEEDED, progress=1.0, result=result, message="done",
        finished_at=tz_now(), error="",
    )  # fmt: skip
    files = [f for f in job.shards.values_list("state_file", flat=True) if f]
    transaction.on_commit(lambda: _delete_files(files))


def _delete_files(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):  # already gone: nothing to free
            default_storage.delete(name)


# --- Failing, retrying, cancelling --------------------------------------------------------------


def fail_job(shard: Shard, message: str, details: str = "") -> None:
    """Fail the shard and its job (the message names the shard), and stop the other shards."""
    where = f"{shard.label} ({jobkinds.describe_covers(shard.covers)})"
    text = f"{where} failed: {message}" if shard.job.work_shard_count > 1 else message
    with transaction.atomic():
        Shard.objects.filter(pk=shard.pk).update(
            state=Shard.State.FAILED, error=(message + "\n\n" + details[-4000:]).strip(),
            message=message[:500], finished_at=tz_now(),
        )  # fmt: skip
        error = text if not details else f"{text}\n\n{details[-4000:]}"
        Job.objects.filter(pk=shard.job_id).exclude(state__in=Job.FINISHED).update(
            state=Job.State.FAILED, error=error, message=text[:500], finished_at=tz_now()
        )
        stop_pending_shards(shard.job_id, f"stopped: {where} failed")


def stop_pending_shards(job_id: int, message: str) -> None:
    """Cancel the job's shards that have not started, and revoke their messages."""
    pending = Shard.objects.filter(
        job_id=job_id, state__in=[Shard.State.QUEUED, Shard.State.WAITING]
    )
    task_ids = [t for t in pending.values_list("task_id", flat=True) if t]
    pending.update(state=Shard.State.CANCELLED, message=message[:500], finished_at=tz_now())
    if task_ids:
        transaction.on_commit(lambda: _revoke(task_ids))


def _revoke(task_ids: list[str]) -> None:
    from backend.celery import app

    try:
        app.control.revoke(task_ids)
    except TRANSIENT_ERRORS + (OSError,):  # the claim refuses them anyway
        log.warning("could not revoke %d tasks", len(task_ids), exc_info=True)


def requeue(shard: Shard, message: str, send: bool = True) -> None:
    """Queue the shard again under a new task id (its next attempt starts from scratch)."""
    with transaction.atomic():
        updated = Shard.objects.filter(pk=shard.pk).exclude(state=Shard.State.SUCCEEDED)
        task_id = jobkinds.new_task_id()
        # Not for the queue (`run_job_here`): marked sent, so no reaper sends it as well.
        updated.update(
            state=Shard.State.QUEUED, claim="", task_id=task_id, progress=0.0,
            message=message[:500], queued_at=tz_now(), sent_at=None if send else tz_now(),
        )  # fmt: skip
        if send:
            jobkinds.send_on_commit(list(Shard.objects.filter(pk=shard.pk, task_id=task_id)))


def retry_or_fail(shard: Shard, err: BaseException, details: str, send: bool = True) -> None:
    message = f"{type(err).__name__}: {err}"
    if shard.attempts < settings.SHARD_MAX_ATTEMPTS:
        log.warning("%s failed (attempt %d), retrying: %s", shard, shard.attempts, message)
        requeue(shard, f"attempt {shard.attempts} failed ({message}); trying again", send)
    else:
        fail_job(shard, f"{message} (after {shard.attempts} attempts)", details)


def release(shard: Shard) -> None:
    """Give the shard back (a transient error: Celery retries the same task id)."""
    # Still away? Then the reaper queues it again once its heartbeat goes stale.
    with contextlib.suppress(*TRANSIENT_ERRORS):
        Shard.objects.filter(pk=shard.pk, claim=shard.claim).update(
            state=Shard.State.QUEUED, claim="", message="waiting to retry after a brief outage"
        )


# --- Running a shard ------------------------------------------------------------------------------


def run_shard(
    shard_id: int, works: Mapping[str, KindWork], send: bool = True, heartbeat: bool = True
) -> dict[str, Any]:
    """Claim the shard, run its work (or the job's merge), save and end it. `send=False` runs
    the follow-ups (merge, retries) here instead of on the queue (`run_job_here`)."""
    shard = claim(shard_id)
    if shard is None:
        return {"skipped": "done already, running elsewhere, or its job ended"}
    work = works[shard.job.kind]
    reporter = ProgressReporter(shard)
    try:
        with Heartbeat(shard) if heartbeat else _no_heartbeat():
            if shard.role == Shard.Role.MERGE:
                shards = list(shard.job.shards.filter(role=Shard.Role.WORK).order_by("index"))
                output = work.merge(shard.job, shards, reporter)
            else:
                output = work.run(shard.job, shard, reporter)
        finish(shard, output, send)
    except ShardStopped as err:
        Shard.objects.filter(pk=shard.pk, claim=shard.claim).update(
            state=Shard.State.CANCELLED, message=str(err)[:500], finished_at=tz_now()
        )
        return {"stopped": str(err)}
    except TRANSIENT_ERRORS:
        release(shard)
        raise  # Celery retries with backoff
    except JobFailed as err:
        fail_job(shard, str(err))
        return {"error": str(err)}
    except Exception as err:  # noqa: BLE001 - any other failure is retried, then reported
        retry_or_fail(shard, err, traceback.format_exc(), send)
        return {"error": str(err)}
    return {"shard": shard.pk, "job": shard.job_id}


class _no_heartbeat:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def run_job_here(job_id: int, works: Mapping[str, KindWork]) -> Job:
    """Run every shard of the job, then its merge, in this process (`--now`, tests, benches)."""
    while True:
        job = Job.objects.get(pk=job_id)
        pending = job.shards.filter(state=Shard.State.QUEUED).order_by("index").first()
        if job.is_finished or pending is None:
            return job
        run_shard(pending.pk, works, send=False, heartbeat=False)


def mark_failed_after_retries(shard_id: int, exc: BaseException) -> None:
    shard = Shard.objects.select_related("job").filter(pk=shard_id).first()
    if shard is not None:
        fail_job(shard, f"gave up after retries: {type(exc).__name__}: {exc}")


# --- The reaper -----------------------------------------------------------------------------------


def reap() -> dict[str, int]:
    """Queue again the shards whose worker stopped beating (dead process, lost host), and send
    those a broker outage left unsent. Every worker runs this every SHARD_REAP_SECONDS; row
    locks (`skip_locked`) keep two workers from taking the same shard."""
    counts = {"requeued": 0, "failed": 0, "sent": 0}
    with transaction.atomic():
        lost = (
            Shard.objects.select_for_update(skip_locked=True)
            .select_related("job")
            .filter(state=Shard.State.RUNNING)
            .filter(Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True))
        )
        for shard in lost:
            host = shard.worker_host or "its worker"
            if shard.job.is_finished:
                _end(shard, Shard.State.CANCELLED, f"{host} stopped; the job had ended")
            elif shard.attempts >= settings.SHARD_MAX_ATTEMPTS:
                fail_job(shard, f"{host} stopped responding ({shard.attempts} attempts)")
                counts["failed"] += 1
            else:
                requeue(shard, f"queued again: {host} stopped responding")
                counts["requeued"] += 1
    unsent = list(
        Shard.objects.select_related("job").filter(
            state=Shard.State.QUEUED, sent_at__isnull=True,
            queued_at__lt=tz_now() - timedelta(seconds=settings.SHARD_REAP_SECONDS),
        )
    )  # fmt: skip
    if unsent:
        jobkinds.send_shards(unsent)
        counts["sent"] = len(unsent)
    return counts
