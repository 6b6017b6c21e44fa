"""Fitting unit sets and computing exemplars as Jobs: launched in the admin, run by a real worker
through the real Redis, stored as rows and content-hash files; safe to run twice; the batch is
halved after an out-of-memory error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from backend.stimuli import services
from backend.stimuli.models import ExemplarSet, Job, Network, Unit, UnitSet
from tests.stimuli.conftest import LAYER
from tests.stimuli.test_image_sets import wait_for_job
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def admin_action(client: Client, action: str, unit_sets: list[UnitSet]) -> None:
    response = client.post(
        "/admin/stimuli/unitset/",
        {"action": action, "_selected_action": [u.pk for u in unit_sets]},
    )
    assert response.status_code == 302


def test_fit_then_exemplars_through_the_admin_and_a_real_worker(
    celery_worker: Any, client: Client, superuser: User, stimuli: dict[str, Any]
) -> None:
    client.force_login(superuser)
    admin_action(client, "fit", [stimuli["nmf"]])
    fit_job = wait_for_job(Job.objects.get(kind=Job.Kind.FIT_UNIT_SET), seconds=300)
    assert fit_job.state == Job.State.SUCCEEDED, fit_job.error
    nmf = UnitSet.objects.get(pk=stimuli["nmf"].pk)
    assert nmf.units.count() == 4 and nmf.reconstruction_error is not None
    assert (Path(settings.MEDIA_ROOT) / nmf.state_file.name).exists()

    admin_action(client, "compute_exemplars", [stimuli["channels"], nmf])
    job = wait_for_job(Job.objects.get(kind=Job.Kind.COMPUTE_EXEMPLARS), seconds=300)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert ExemplarSet.objects.filter(unit__unit_set=nmf).count() == 4
    assert ExemplarSet.objects.filter(unit__unit_set=stimuli["channels"]).count() == 24
    unit = Unit.objects.get(unit_set=stimuli["channels"], index=5)
    exemplar_set = unit.exemplar_sets.get()
    values = [entry["value"] for entry in exemplar_set.top]
    assert values == sorted(values, reverse=True) and len(values) == 30
    assert recomputed_channel_mean(exemplar_set.top[0]["image"], 5) == pytest.approx(
        values[0], rel=1e-4, abs=1e-5
    )
    page = client.get(f"/admin/stimuli/unit/{unit.pk}/change/")
    assert page.status_code == 200 and b"Top 18 of 30" in page.content


def recomputed_channel_mean(image_id: int, channel: int) -> float:
    from PIL import Image as PILImage

    from worker.pipelines import networks

    network = networks.load_network("builtin:efficientnet_lite0", device="cpu")
    image = services.Image.objects.get(pk=image_id)
    pixels = networks.preprocess_image(
        PILImage.open(Path(settings.MEDIA_ROOT) / image.file.name).convert("RGB"),
        network.preprocess,
    )
    with torch.no_grad():
        acts = networks.truncated_forward(network, pixels[None], [LAYER])[LAYER]
    return float(acts[0, channel].mean())


def test_running_an_exemplar_job_twice_writes_no_duplicates(stimuli: dict[str, Any]) -> None:
    job = services.do_queue_exemplar_jobs([stimuli["channels"]], k=10, send=False)[0]
    run_job_here(job)
    first = list(ExemplarSet.objects.order_by("pk").values_list("pk", "top"))
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)  # as if redelivered
    run_job_here(job)
    assert list(ExemplarSet.objects.order_by("pk").values_list("pk", "top")) == first
    assert ExemplarSet.objects.count() == 24


def test_an_out_of_memory_error_halves_the_batch(
    stimuli: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.pipelines import exemplars

    real = exemplars.exemplar_states
    seen: list[int] = []

    def fails_above_eight(network: Any, unit_sets: Any, batches: Any, *args: Any) -> Any:
        batches = list(batches)
        seen.append(len(batches[0]))
        if len(batches[0]) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(network, unit_sets, iter(batches), *args)

    monkeypatch.setattr(exemplars, "exemplar_states", fails_above_eight)
    job = services.do_queue_exemplar_jobs([stimuli["channels"]], k=10, send=False)[0]
    Job.objects.filter(pk=job.pk).update(params={**job.params, "batch_size": 32})
    run_job_here(job)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert seen == [30, 16, 8]
    assert ExemplarSet.objects.count() == 24


def test_an_unfitted_dictionary_is_refused_before_queueing(
    client: Client, superuser: User, stimuli: dict[str, Any]
) -> None:
    client.force_login(superuser)
    response = client.post(
        "/admin/stimuli/unitset/",
        {"action": "compute_exemplars", "_selected_action": [stimuli["nmf"].pk]},
        follow=True,
    )
    assert "fit it first" in response.content.decode()
    assert not Job.objects.filter(kind=Job.Kind.COMPUTE_EXEMPLARS).exists()
    assert Network.objects.count() == 1
