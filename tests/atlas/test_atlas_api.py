"""The atlas's researcher API: queue a job (202, follow it at jobs/<id>/), bad parameters a
400 that queues nothing, measures as JSON rows and as a CSV (measures.csv) with every measure
a column."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.atlas import services
from backend.stimuli.models import Job
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_researcher_queues_an_activity_job_and_reads_its_measures(
    owner: User, stimuli: dict[str, Any]
) -> None:
    client = api_client(owner)
    params = {"unit_sets": [stimuli["channels"].pk], "image_set": stimuli["image_set"].pk,
              "measures": ["mean", "csi"]}  # fmt: skip
    answer = client.post(
        "/api/v1/researcher/atlas/jobs/", {"kind": "compute_activity", "params": params},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 202, answer.content
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.kind == "compute_activity" and job.created_by == owner
    run_job_here(job)
    url = f"/api/v1/researcher/atlas/unit-sets/{stimuli['channels'].pk}/measures/"
    body = client.get(url).json()
    assert body["measures"] == ["csi", "mean"] and len(body["units"]) == 24
    assert body["units"][3]["index"] == 3 and isinstance(body["units"][3]["mean"], float)
    download = client.get(url.rstrip("/") + ".csv")
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert download["Content-Type"] == "text/csv" and len(rows) == 24
    assert set(rows[0]) == {"unit_set", "index", "csi", "mean"}
    assert float(rows[3]["mean"]) == pytest.approx(body["units"][3]["mean"])


def test_bad_requests_are_clear_400s_that_queue_nothing(
    owner: User, stimuli: dict[str, Any]
) -> None:
    client = api_client(owner)
    unknown = client.post(
        "/api/v1/researcher/atlas/jobs/", {"kind": "compute_vibes", "params": {}}, format="json"
    )
    assert unknown.status_code == 400 and "kind must be one of" in unknown.json()["message"]
    params = {"unit_sets": [stimuli["channels"].pk], "image_set": stimuli["image_set"].pk,
              "measures": ["loudness"]}  # fmt: skip
    bad = client.post(
        "/api/v1/researcher/atlas/jobs/", {"kind": "compute_activity", "params": params},
        format="json",
    )  # fmt: skip
    assert bad.status_code == 400 and "unknown measure(s) 'loudness'" in bad.json()["message"]
    curves = client.post(
        "/api/v1/researcher/atlas/jobs/",
        {"kind": "compute_ablation_curves", "params": {
            "unit_set": stimuli["channels"].pk, "image_set": stimuli["image_set"].pk,
            "rank_by": ["mean"], "ks": [1, 99]}},
        format="json",
    )  # fmt: skip
    assert curves.status_code == 400 and "ks must be whole numbers" in curves.json()["message"]
    assert not Job.objects.exists()
    missing = client.get("/api/v1/researcher/atlas/unit-sets/99999/measures/")
    assert missing.status_code == 404


def test_populations_and_curves_are_served(owner: User, stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    run_job_here(services.do_queue_populations_job(channels, image_set, send=False))
    client = api_client(owner)
    body = client.get(f"/api/v1/researcher/atlas/unit-sets/{channels.pk}/populations/").json()
    assert sorted(u for p in body["populations"] for u in p["members"]) == list(range(24))
    curves = client.get(f"/api/v1/researcher/atlas/unit-sets/{channels.pk}/ablation-curves/")
    assert curves.status_code == 200 and curves.json()["curves"] == []


def test_participants_and_anonymous_callers_are_refused(stimuli: dict[str, Any]) -> None:
    answer = APIClient().get(
        f"/api/v1/researcher/atlas/unit-sets/{stimuli['channels'].pk}/measures/"
    )
    assert answer.status_code in (401, 403)
