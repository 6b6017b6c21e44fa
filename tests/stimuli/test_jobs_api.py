"""The researcher API for Jobs: follow a job's progress and shards, cancel it; another
researcher's job is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.stimuli import services
from backend.stimuli.models import Job

pytestmark = pytest.mark.django_db


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_researcher_follows_and_cancels_their_job(owner: User, stimuli: dict[str, Any]) -> None:
    params = {"image_set": stimuli["image_set"].pk, "unit_sets": [stimuli["channels"].pk],
              "images_per_shard": 10}  # fmt: skip
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, params, owner, send=False)
    client = api_client(owner)
    body = client.get(f"/api/v1/researcher/jobs/{job.pk}/").json()
    assert body["state"] == "queued" and body["kind"] == "compute_exemplars"
    assert body["shards"]["queued"] == 3 and body["url"] == f"/api/v1/researcher/jobs/{job.pk}/"
    cancelled = client.post(f"/api/v1/researcher/jobs/{job.pk}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"/api/v1/researcher/jobs/{job.pk}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED


def test_another_researchers_job_is_not_found(
    owner: User, django_user_model: type[User], stimuli: dict[str, Any]
) -> None:
    params = {"image_set": stimuli["image_set"].pk, "unit_sets": [stimuli["channels"].pk]}
    job = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, params, owner, send=False)
    outsider = django_user_model.objects.create_user("outsider", password="x", is_staff=True)
    client = api_client(outsider)
    assert client.get(f"/api/v1/researcher/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/api/v1/researcher/jobs/{job.pk}/cancel").status_code == 404
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
