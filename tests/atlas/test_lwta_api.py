"""Queueing an LWTA fine-tune through the researcher API and the admin's form: 202 (a redirect
to the job in the admin) and a job that makes the network; bad parameters a clear 400 that
queues nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from backend.stimuli.models import ImageSet, Job, Network
from tests.atlas.test_lwta_jobs import OPTIONS
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/researcher/atlas/lwta/"


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_researcher_queues_a_fine_tune_and_lists_the_network_it_made(
    owner: User, base_and_images: tuple[Network, ImageSet]
) -> None:
    base, image_set = base_and_images
    client = api_client(owner)
    body = {"base": base.pk, "image_set": image_set.pk, "name": "tiny-lwta", **OPTIONS,
            "module_types": ["ReLU"], "freeze_prefix": True, "max_images": 5}  # fmt: skip
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 202, answer.content
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.kind == "finetune_lwta" and job.created_by == owner
    assert job.params["module_types"] == ["ReLU"]
    assert run_job_here(job).state == Job.State.SUCCEEDED
    listed = client.get(URL).json()["lwta_networks"]
    assert [row["name"] for row in listed] == ["tiny-lwta"]
    made = listed[0]
    assert made["base"] == base.pk and made["block_size"] == OPTIONS["block_size"]
    assert made["fine_tune"]["steps_run"] == 4 and made["fine_tune"]["images"] == 5
    assert made["fine_tune"]["freeze_prefix"] is True
    assert made["fine_tune"]["trained_parameters"] > 0
    assert made["source"] == Network.objects.get(name="tiny-lwta").source
    assert Network.objects.get(name="tiny-lwta").owner == owner
    outsider = User.objects.create_user("outsider", password="x" * 12, is_staff=True)
    assert api_client(outsider).get(URL).json()["lwta_networks"] == []  # the owner's network


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"module_types": ["Tanh"]}, "module types must be some of ReLU, ReLU6, GELU"),
        ({"module_types": ["GELU"]}, "no GELU module under layer2 to replace"),
        ({"modules": ["layer9"]}, "no ReLU or ReLU6 or GELU module under layer9"),
        ({"block_size": 1}, "block_size (U) must be at least 2"),
        ({"steps": 0}, "steps must be a whole number ≥ 1"),
        ({"steps": -5}, "steps must be a whole number ≥ 1"),
        ({"learning_rate": "fast"}, "learning_rate must be a positive number"),
        ({"stepz": 10}, "unknown parameter(s) stepz"),
        ({"base": 99999}, "network 99999 does not exist"),
        ({"max_images": 0}, "max_images must be a whole number ≥ 1"),
    ],
)
def test_bad_parameters_are_a_clear_400_that_queues_nothing(
    owner: User, base_and_images: tuple[Network, ImageSet], change: dict[str, Any], message: str
) -> None:
    base, image_set = base_and_images
    body = {"base": base.pk, "image_set": image_set.pk, "name": "new", **OPTIONS, **change}
    answer = api_client(owner).post(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["message"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(owner: User) -> None:
    answer = api_client(owner).post(URL, [1, 2], format="json")
    assert answer.status_code == 400 and "JSON object" in answer.json()["message"]
    assert not Job.objects.exists()


def test_the_admin_form_queues_a_fine_tune_and_refuses_bad_parameters(
    client: Client, superuser: User, base_and_images: tuple[Network, ImageSet]
) -> None:
    base, image_set = base_and_images
    client.force_login(superuser)
    listing = client.get("/admin/atlas/lwtanetwork/")
    assert b"/admin/atlas/lwtanetwork/fine-tune/" in listing.content
    form = client.get(f"/admin/atlas/lwtanetwork/fine-tune/?base={base.pk}")
    assert form.status_code == 200
    assert f'<option value="{base.pk}" selected>'.encode() in form.content
    fields = {"base": base.pk, "image_set": image_set.pk, "name": "from-admin",
              "module_types": ["ReLU"], "modules": "layer2, layer3", "block_size": 4,
              "temperature": 1.67, "steps": 4, "batch_size": 4, "learning_rate": 0.01,
              "checkpoint_every": 2, "seed": 0}  # fmt: skip
    refused = client.post("/admin/atlas/lwtanetwork/fine-tune/", {**fields, "module_types": "GELU"})
    assert refused.status_code == 400
    assert b"no GELU module under layer2, layer3 to replace" in refused.content
    too_small = client.post("/admin/atlas/lwtanetwork/fine-tune/", {**fields, "block_size": 1})
    assert too_small.status_code == 400 and b"must be at least 2" in too_small.content
    assert not Job.objects.exists()
    queued = client.post("/admin/atlas/lwtanetwork/fine-tune/", fields)
    job = Job.objects.get()
    assert queued.status_code == 302 and queued["Location"].endswith(
        f"/stimuli/job/{job.pk}/change/"
    )
    assert job.kind == "finetune_lwta" and job.params["modules"] == ["layer2", "layer3"]
    assert job.params["module_types"] == ["ReLU"] and job.params["freeze_prefix"] is False
    assert job.created_by == superuser
