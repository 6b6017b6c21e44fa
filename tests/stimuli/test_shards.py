"""Jobs cut into shards, run in this process: sharded and unsharded runs store the same rows; a
shard delivered twice writes once; a failing shard is retried, then fails its job by name; a
lost shard shows as stalled and the reaper queues it again; bad parameters queue nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import torch
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from backend.stimuli import jobs, services
from backend.stimuli.models import (
    ExemplarSet,
    ImageSet,
    Job,
    OcclusionMap,
    Shard,
    Unit,
    UnitSet,
    Visualization,
)
from tests.stimuli.test_visualization_jobs import QUICK
from worker import tasks
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def run(kind: str, params: dict[str, Any]) -> Job:
    job = run_job_here(services.do_queue_job(kind, params, send=False))
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def exemplar_params(stimuli: dict[str, Any], **extra: Any) -> dict[str, Any]:
    unit_sets = [stimuli["channels"].pk]
    return {"image_set": stimuli["image_set"].pk, "unit_sets": unit_sets, "k": 12, **extra}


def exemplar_rows() -> list[tuple[Any, ...]]:
    rows = ExemplarSet.objects.order_by("unit__index")
    return list(rows.values_list("unit__index", "top", "bottom", "bands", "imi_batches"))


def test_a_sharded_exemplar_pass_stores_exactly_what_one_pass_stores(
    stimuli: dict[str, Any],
) -> None:
    whole = run(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli))
    assert whole.shards.filter(role=Shard.Role.WORK).count() == 1
    one_pass = exemplar_rows()
    stats = {u.index: u.stats for u in stimuli["channels"].units.all()}
    sharded = run(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli, images_per_shard=7))
    covers = [s.covers["positions"] for s in sharded.shards.filter(role=Shard.Role.WORK)]
    assert covers == [[0, 7], [7, 14], [14, 21], [21, 28], [28, 30]]
    assert exemplar_rows() == one_pass
    assert ExemplarSet.objects.count() == 24  # replaced, never duplicated
    for unit in stimuli["channels"].units.all():
        assert unit.stats == pytest.approx(stats[unit.index], rel=1e-6, abs=1e-7)
    assert sharded.result == {"unit_sets": [stimuli["channels"].pk], "images": 30, "k": 12,
                              "distinct_sources": False}  # fmt: skip
    assert all(not s.state_file or not services.default_storage.exists(s.state_file)
               for s in sharded.shards.all())  # fmt: skip


def test_a_sharded_dictionary_fit_equals_one_pass(stimuli: dict[str, Any]) -> None:
    layer, image_set = stimuli["channels"].layer, stimuli["image_set"]
    fitted = []
    for name, per_shard in (("pca-whole", 2048), ("pca-sharded", 4)):
        unit_set = services.do_save_unit_set(
            UnitSet(name=name, layer=layer, kind="pca", n_units=5, image_set=image_set,
                    params={"max_samples": 3000})
        )  # fmt: skip
        run(Job.Kind.FIT_UNIT_SET, {"unit_set": unit_set.pk, "images_per_shard": per_shard})
        fitted.append(UnitSet.objects.get(pk=unit_set.pk))
    # The fitted tensors are stored under their content hash: equal names, equal tensors.
    assert fitted[0].state_file.name == fitted[1].state_file.name
    assert fitted[0].reconstruction_error == fitted[1].reconstruction_error


def test_sharded_visualizations_are_the_same_images(stimuli: dict[str, Any]) -> None:
    units = list(stimuli["channels"].units.filter(index__in=[0, 3]))
    params = {"units": [u.pk for u in units], "preset": "lucent", "overrides": QUICK}
    whole = run(Job.Kind.RENDER_VISUALIZATIONS, params)
    assert whole.shards.filter(role=Shard.Role.WORK).count() == 2  # one per sign
    one_pass = set(Visualization.objects.values_list("unit_id", "sign", "image__sha256"))
    Visualization.objects.all().delete()
    sharded = run(Job.Kind.RENDER_VISUALIZATIONS, {**params, "images_per_shard": 1})
    assert sharded.shards.filter(role=Shard.Role.WORK).count() == 4
    assert set(Visualization.objects.values_list("unit_id", "sign", "image__sha256")) == one_pass
    assert len(one_pass) == 4 and sharded.result["visualizations"] == 4


def test_a_render_shard_gives_the_same_images_whatever_the_process_thread_count(
    stimuli: dict[str, Any],
) -> None:
    # 1 process x 2 threads and 2 processes x 1 thread must store the same images: the render
    # pins torch's intra-op threads (FeatureVisConfig.cpu_threads) and restores them after.
    # Unpinned ("cpu_threads": None), these 16 steps on blocks.2 differ between 1 and 2 threads.
    layer = stimuli["network"].layers.get(name="blocks.2")
    unit_set = services.do_save_unit_set(
        UnitSet(name="b2", layer=layer, kind=UnitSet.Kind.CHANNELS, image_set=stimuli["image_set"])
    )
    units = list(unit_set.units.filter(index__in=[0, 3]))
    overrides = {**QUICK, "max_steps": 16}
    params = {"units": [u.pk for u in units], "preset": "lucent", "overrides": overrides,
              "signs": [1]}  # fmt: skip
    stored, previous = {}, torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            Visualization.objects.all().delete()
            run(Job.Kind.RENDER_VISUALIZATIONS, params)
            assert torch.get_num_threads() == threads
            stored[threads] = set(Visualization.objects.values_list("unit_id", "image__sha256"))
    finally:
        torch.set_num_threads(previous)
    assert len(stored[1]) == 2
    assert stored[1] == stored[2]


def test_sharded_occlusion_maps_are_the_same_maps(stimuli: dict[str, Any]) -> None:
    run(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli))
    units = list(stimuli["channels"].units.filter(index__in=[1, 2]))
    params = {"units": [u.pk for u in units], "occluder_fraction": 0.5, "stride": 28,
              "n_base": 2}  # fmt: skip
    whole = run(Job.Kind.COMPUTE_OCCLUSION, params)
    assert whole.shards.filter(role=Shard.Role.WORK).count() == 1
    columns = ("unit_id", "base_image_id", "grid", "occluded_at_max_id", "blurred_id")
    one_pass = sorted(OcclusionMap.objects.values_list(*columns))
    OcclusionMap.objects.all().delete()
    sharded = run(Job.Kind.COMPUTE_OCCLUSION, {**params, "copies_per_shard": 1})
    assert sharded.shards.filter(role=Shard.Role.WORK).count() == 4  # a map per shard
    assert sorted(OcclusionMap.objects.values_list(*columns)) == one_pass
    assert sharded.result == {"maps": 4, "units": 2}


def test_a_shard_delivered_twice_writes_once(stimuli: dict[str, Any]) -> None:
    job = run(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli, images_per_shard=10))
    before = list(ExemplarSet.objects.order_by("pk").values_list("pk", "computed_at"))
    for shard in job.shards.all():  # every message of the job delivered again
        assert "skipped" in jobs.run_shard(shard.pk, tasks.WORK, send=False)
    assert list(ExemplarSet.objects.order_by("pk").values_list("pk", "computed_at")) == before
    assert set(job.shards.values_list("attempts", flat=True)) == {1}


def test_a_second_delivery_while_the_shard_runs_elsewhere_does_nothing(
    stimuli: dict[str, Any],
) -> None:
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli), send=False)
    first = jobs.claim(job.shards.get(index=0).pk)
    assert first is not None and first.state == Shard.State.RUNNING
    assert jobs.claim(first.pk) is None  # its heartbeat is fresh: the other worker keeps it
    assert "skipped" in jobs.run_shard(first.pk, tasks.WORK, send=False)
    # Its worker is presumed dead: another takes over, and the first one's late save is refused.
    Shard.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    second = jobs.claim(first.pk)
    assert second is not None and second.claim != first.claim and second.attempts == 2
    assert not jobs.finish(first, jobs.ShardOutput({"images": 30}), send=False)
    assert Shard.objects.get(pk=first.pk).state == Shard.State.RUNNING


def test_a_failing_shard_is_retried_then_fails_its_job_by_name(
    stimuli: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tasks.WORK[Job.Kind.COMPUTE_EXEMPLARS]
    calls: list[list[int]] = []

    def breaks_on_the_second_range(job: Job, shard: Shard, progress: Any) -> Any:
        calls.append(shard.covers["positions"])
        if shard.covers["positions"] == [10, 20]:
            raise RuntimeError("boom")
        return real.run(job, shard, progress)

    monkeypatch.setitem(tasks.WORK, Job.Kind.COMPUTE_EXEMPLARS,
                        jobs.KindWork(breaks_on_the_second_range, real.merge))  # fmt: skip
    job = services.do_queue_job(
        Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli, images_per_shard=10), send=False
    )
    job = run_job_here(job)
    assert job.state == Job.State.FAILED
    assert job.error.startswith(
        "shard 1 (images 10–19) failed: RuntimeError: boom (after 3 attempts)"
    )
    assert calls == [[0, 10], [10, 20], [10, 20], [10, 20]]
    states = dict(job.shards.values_list("index", "state"))
    assert states == {0: "succeeded", 1: "failed", 2: "cancelled", 3: "cancelled"}
    assert not ExemplarSet.objects.exists()


def test_a_lost_shard_shows_as_stalled_and_the_reaper_queues_it_again(
    client: Client, superuser: User, stimuli: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli), send=False)
    shard = jobs.claim(job.shards.get(index=0).pk)
    assert shard is not None
    Shard.objects.filter(pk=shard.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=90), worker_host="gpu-7"
    )
    client.force_login(superuser)
    progress = client.get(f"/admin/stimuli/job/progress.json?ids={job.pk}").json()["jobs"][0]
    assert progress["shards"]["stalled"] == 1 and progress["state"] == "running"
    page = client.get(f"/admin/stimuli/job/{job.pk}/change/").content.decode()
    assert "stalled</strong> (no heartbeat for 9" in page

    sent = record_sends(monkeypatch)
    assert jobs.reap() == {"requeued": 1, "failed": 0, "sent": 0}
    shard.refresh_from_db()
    assert shard.state == Shard.State.QUEUED and shard.claim == ""
    assert shard.message == "queued again: gpu-7 stopped responding"
    assert sent == [[shard.pk]]  # a new task for it, under a new task id

    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED and ExemplarSet.objects.count() == 24
    assert job.shards.get(index=0).attempts == 2


def record_sends(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """What would be sent to the broker, shard ids per group."""
    from backend.stimuli import jobkinds

    sent: list[list[int]] = []
    monkeypatch.setattr(jobkinds, "send_shards", lambda shards: sent.append([s.pk for s in shards]))
    return sent


def test_a_shard_lost_too_often_fails_its_job(stimuli: dict[str, Any]) -> None:
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli), send=False)
    shard = job.shards.get(index=0)
    Shard.objects.filter(pk=shard.pk).update(
        state=Shard.State.RUNNING, attempts=3, worker_host="gpu-7",
        heartbeat_at=timezone.now() - timedelta(minutes=2),
    )  # fmt: skip
    assert jobs.reap()["failed"] == 1
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.error == "gpu-7 stopped responding (3 attempts)"
    assert job.shards.get(role=Shard.Role.MERGE).state == Shard.State.CANCELLED


def test_shards_a_broker_outage_left_unsent_are_sent_by_the_reaper(
    stimuli: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli), send=False)
    a_minute_ago = timezone.now() - timedelta(minutes=1)
    job.shards.filter(role=Shard.Role.WORK).update(sent_at=None, queued_at=a_minute_ago)
    sent = record_sends(monkeypatch)
    assert jobs.reap()["sent"] == 1
    assert sent == [[job.shards.get(index=0).pk]]


def test_cancelling_a_queued_job_stops_its_shards(
    client: Client, superuser: User, stimuli: dict[str, Any]
) -> None:
    job = services.do_queue_job(
        Job.Kind.COMPUTE_EXEMPLARS, exemplar_params(stimuli, images_per_shard=10), send=False
    )
    client.force_login(superuser)
    response = client.post(f"/admin/stimuli/job/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED and job.message == "cancelled by root"
    assert set(job.shards.values_list("state", flat=True)) == {"cancelled"}
    assert "skipped" in jobs.run_shard(job.shards.get(index=0).pk, tasks.WORK, send=False)
    again = client.post(f"/admin/stimuli/job/{job.pk}/cancel/", follow=True)
    assert "has already cancelled" in again.content.decode()
    assert client.get(f"/admin/stimuli/job/{job.pk}/cancel/").status_code == 405
    assert not ExemplarSet.objects.exists()


def test_bad_parameters_are_refused_and_queue_nothing(stimuli: dict[str, Any]) -> None:
    empty = ImageSet.objects.create(name="empty", origin=ImageSet.Origin.DEMO)
    no_images = {"image_set": empty.pk, "unit_sets": [stimuli["channels"].pk]}
    refused = {
        "has no images": (Job.Kind.COMPUTE_EXEMPLARS, no_images),
        "images_per_shard must be": (Job.Kind.COMPUTE_EXEMPLARS,
                                     exemplar_params(stimuli, images_per_shard=0)),
        "name existing unit sets": (Job.Kind.COMPUTE_EXEMPLARS,
                                    {"image_set": empty.pk, "unit_sets": [999]}),
        "no exemplars: compute them first": (Job.Kind.COMPUTE_OCCLUSION,
                                             {"units": [Unit.objects.first().pk]}),  # type: ignore[union-attr]
        "signs must be": (Job.Kind.RENDER_VISUALIZATIONS,
                          {"units": [Unit.objects.first().pk], "signs": [2]}),  # type: ignore[union-attr]
        "unknown job kind": ("translate", {}),
    }  # fmt: skip
    for message, (kind, params) in refused.items():
        with pytest.raises(ValidationError, match=message):
            services.do_queue_job(kind, params)
    assert not Job.objects.exists() and not Shard.objects.exists()


def test_each_pool_process_sees_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import billiard.process

    class Process:
        index = 1

    monkeypatch.setattr(tasks.memory, "keep_freed_memory", lambda: None)  # not in this process
    monkeypatch.setenv("WORKER_GPUS", "3,5")
    monkeypatch.setattr(billiard.process, "current_process", lambda: Process())
    tasks._prepare_process()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
