"""The confound report as a Job (docs/midrange.md §3) on the built-in network and 30 tiny images:
an attribute planted in a unit's middle band is found and ranked first through the API, the
Job, the stored row and the CSV; a sharded report equals one pass (on a logit); bad parameters
are a 400 that queues nothing; the admin pages render and queue; another researcher's private
report is a 404 everywhere; the management command writes the candidate table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from backend.atlas import confounds
from backend.atlas.models import ConfoundReport
from backend.stimuli import attributes, services
from backend.stimuli.models import ImageSet, ImageSetMember, Job, UnitSet
from tests.stimuli.conftest import LAYER
from worker.analyses.midrange import decile_bands
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db
URL = "/api/v1/researcher/atlas/confounds/"


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def queue_and_run(client: APIClient, body: dict[str, Any]) -> Job:
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 202, answer.content
    job = run_job_here(Job.objects.get(pk=answer.json()["id"]))
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def band_members(values: dict[str, list[Any]], n_bands: int, band: int) -> set[int]:
    bands = decile_bands(np.array(values["values"]), n_bands)
    return {image for image, b in zip(values["image_ids"], bands, strict=True) if b == band}


def plant_water(image_set: ImageSet, middle: set[int]) -> None:
    """A 'water' background on 8 of the middle band's images and on 1 other image; 'grass'
    on the rest; and a 'camera' attribute alternating at random (no confound)."""
    members = list(image_set.members.order_by("position"))
    inside = [m for m in members if m.image_id in middle]
    outside = [m for m in members if m.image_id not in middle]
    water = {m.image_id for m in inside[:8]} | {outside[0].image_id}
    lines = ["name,background,camera"] + [
        f"{m.original_name},{'water' if m.image_id in water else 'grass'},{'ab'[m.position % 2]}"
        for m in members
    ]
    attributes.do_set_image_attributes(image_set, "\n".join(lines).encode())


def test_a_confound_planted_in_the_middle_band_is_found_and_ranked_first(
    owner: User, stimuli: dict[str, Any]
) -> None:
    client = api_client(owner)
    image_set = stimuli["image_set"]
    body = {"unit_set": stimuli["channels"].pk, "unit": 5, "image_set": image_set.pk,
            "n_bands": 3, "images_per_shard": 10}  # fmt: skip
    first = queue_and_run(client, body)
    assert first.kind == "confound_report" and first.shards.filter(role="work").count() == 3
    (listed,) = client.get(URL).json()["confound_reports"]
    assert listed["n_images"] == 30 and listed["n_candidates"] == 0  # nothing known yet
    values = client.get(f"{URL}{listed['id']}/").json()["values"]
    assert len(values["values"]) == 30

    plant_water(image_set, band_members(values, 3, 1))
    queue_and_run(client, body)
    row = ConfoundReport.objects.get()  # the rerun replaced the report
    assert row.pk == listed["id"] and row.n_bands == 3 and row.n_images == 30
    assert row.unit.index == 5 and row.unit.unit_set == stimuli["channels"]
    assert row.values == values  # the same unit on the same images
    detail = client.get(f"{URL}{row.pk}/").json()
    top = detail["candidates"][0]
    assert (top["attribute"], top["value"], top["band"]) == ("background", "water", 1)
    assert top["against"] == "base" and top["in_band"] == 8 and top["band_size"] == 10
    assert top["p_holm"] < 0.01 and top["odds_ratio"] > 10 and top["enrichment"] > 2
    assert not any(c["attribute"] == "camera" for c in detail["candidates"])
    assert [b["n_images"] for b in detail["bands"]] == [10, 10, 10]
    assert detail["bands"][1]["distribution"]["background"] == {"water": 8, "grass": 2}
    grid = detail["bands"][2]["images"]
    assert grid[0]["value"] == max(values["values"]) and len(grid) == 10
    assert all(t["p_holm"] >= t["p"] for t in detail["tests"])

    exported = client.get(f"{URL}{row.pk}/candidates.csv")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert len(lines) == len(detail["candidates"])
    assert (lines[0]["rank"], lines[0]["attribute"], lines[0]["value"]) == (
        "1", "background", "water",
    )  # fmt: skip


def logit_unit_set(network: Any) -> UnitSet:
    """The network's logits: a channels unit set on its output layer."""
    output = network.layers.get(name="output")
    return services.do_save_unit_set(UnitSet(name="logits", layer=output, kind="channels"))


def test_a_sharded_report_on_a_logit_equals_one_pass(owner: User, stimuli: dict[str, Any]) -> None:
    client = api_client(owner)
    logits = logit_unit_set(stimuli["network"])
    image_set = stimuli["image_set"]
    plant_water(image_set, set(image_set.members.values_list("image_id", flat=True)[:10]))
    body = {"unit_set": logits.pk, "unit": 207, "image_set": image_set.pk, "batch_size": 6}
    queue_and_run(client, {**body, "images_per_shard": 1000})
    one_pass = ConfoundReport.objects.get()
    sharded_job = queue_and_run(client, {**body, "images_per_shard": 6})
    assert sharded_job.shards.filter(role="work").count() == 5
    sharded = ConfoundReport.objects.get()
    assert sharded.job == sharded_job and sharded.n_bands == 10
    for field in ("values", "bands", "tests", "candidates", "n_images"):
        assert getattr(sharded, field) == getattr(one_pass, field), field
    bands = confounds.image_bands(sharded)  # the web side's banding is the merge's
    expected = decile_bands(np.array(sharded.values["values"]), 10)
    assert list(bands.values()) == expected.tolist()
    assert list(bands) == sharded.values["image_ids"]
    for band in sharded.bands:
        assert {bands[e["image"]] for e in band["images"]} == {band["band"]}
    summary = client.get(URL, {"unit_set": logits.pk, "unit": 207}).json()["confound_reports"]
    assert [r["unit_label"] for r in summary] == ["logit 207 of lite0"]
    assert client.get(URL, {"unit": 3}).json()["confound_reports"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unit": 24}, "unit must be a unit index of ch, from 0 to 23"),
        ({"unit": -1}, "unit must be a unit index of ch"),
        ({"unit": "3"}, "unit must be a unit index of ch"),
        ({"n_bands": 1}, "n_bands must be from 2 to 100"),
        ({"n_bands": 16}, "16 bands need at least 32 images (two per band); the image set has 30"),
        ({"n_bands": 2.5}, "n_bands must be a whole number"),
        ({"alpha": 1.5}, "alpha must be a number between 0 and 1"),
        ({"grid": 0}, "grid must be a whole number ≥ 1"),
        ({"images_per_shard": 0}, "images_per_shard must be a whole number ≥ 1"),
        ({"bands": 5}, "unknown parameter(s) bands"),
        ({"image_set": 99999}, "image set 99999 does not exist"),
        ({"unit_set": 99999}, "unit set 99999 does not exist"),
        ({"unit_set": None}, "unit_set must be a unit set's id"),
    ],
)
def test_bad_parameters_are_a_clear_400_that_queues_nothing(
    owner: User, stimuli: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    body = {"unit_set": stimuli["channels"].pk, "unit": 0, "image_set": stimuli["image_set"].pk,
            **change}  # fmt: skip
    answer = api_client(owner).post(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["message"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(owner: User) -> None:
    answer = api_client(owner).post(URL, [1, 2], format="json")
    assert answer.status_code == 400 and "JSON object" in answer.json()["message"]
    assert api_client(owner).get(URL, {"unit_set": "x"}).status_code == 400
    assert not Job.objects.exists()


def test_an_unfitted_unit_set_is_refused(owner: User, stimuli: dict[str, Any]) -> None:
    body = {"unit_set": stimuli["nmf"].pk, "unit": 0, "image_set": stimuli["image_set"].pk}
    answer = api_client(owner).post(URL, body, format="json")
    assert answer.status_code == 400 and "fit these unit sets first: nmf" in answer.content.decode()
    assert not Job.objects.exists()


def test_the_admin_pages_show_the_report_and_queue_one(
    client: Client, owner: User, superuser: User, stimuli: dict[str, Any]
) -> None:
    image_set = stimuli["image_set"]
    body = {"unit_set": stimuli["channels"].pk, "unit": 5, "image_set": image_set.pk,
            "n_bands": 3}  # fmt: skip
    values = ConfoundReport.objects.get(job=queue_and_run(api_client(owner), body)).values
    plant_water(image_set, band_members(values, 3, 1))
    row = ConfoundReport.objects.get(job=queue_and_run(api_client(owner), body))
    client.force_login(owner)

    listing = client.get("/admin/atlas/confoundreport/")
    assert listing.status_code == 200
    assert b"unit 5 of ch" in listing.content and b"background = water in band 1" in listing.content
    assert b"/admin/atlas/confoundreport/compute/" in listing.content
    page = client.get(f"/admin/atlas/confoundreport/{row.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<img ") == 30  # every image of the three bands' grids (12 shown at most)
    assert "psylens-confounds" in html and "<td>water</td>" in html
    assert "Band 1 (33%–67%): 10 images" in html and html.count("psylens-distribution") == 6
    assert f"/admin/atlas/confoundreport/{row.pk}/candidates.csv" in html
    exported = client.get(f"/admin/atlas/confoundreport/{row.pk}/candidates.csv")
    assert exported.status_code == 200 and b"background,water" in exported.content

    admin_client = Client()
    admin_client.force_login(superuser)  # the unit pages are the admin's (model permissions)
    unit_page = admin_client.get(f"/admin/stimuli/unit/{row.unit.pk}/change/").content.decode()
    assert f"/admin/atlas/confoundreport/{row.pk}/change/" in unit_page
    assert "first background = water in band 1" in unit_page
    assert f"compute/?unit_set={row.unit.unit_set_id}&amp;unit=5" in unit_page

    form = client.get("/admin/atlas/confoundreport/compute/", {"unit": 7})
    assert form.status_code == 200 and b"compute-confound-report" in form.content
    assert b'name="unit" value="7"' in form.content
    jobs = Job.objects.count()
    fields = {"unit_set": stimuli["channels"].pk, "image_set": image_set.pk, "unit": 0,
              "n_bands": 3, "alpha": 0.05, "grid": 12}  # fmt: skip
    refused = client.post("/admin/atlas/confoundreport/compute/", {**fields, "n_bands": 20})
    assert (
        refused.status_code == 400
        and "20 bands need at least 40 images" in refused.content.decode()
    )
    assert Job.objects.count() == jobs
    queued = client.post("/admin/atlas/confoundreport/compute/", fields)
    job = Job.objects.latest("pk")
    assert queued.status_code == 302 and queued["Location"].endswith(
        f"/stimuli/job/{job.pk}/change/"
    )
    assert job.kind == "confound_report" and job.params["unit"] == 0 and job.created_by == owner


def test_another_researchers_private_report_is_a_404(
    client: Client, owner: User, stimuli: dict[str, Any], django_user_model: type[User]
) -> None:
    private_set = ImageSet.objects.create(name="mine", origin=ImageSet.Origin.DEMO, owner=owner)
    for member in stimuli["image_set"].members.all():
        ImageSetMember.objects.create(image_set=private_set, image=member.image,
                                      position=member.position)  # fmt: skip
    layer = stimuli["network"].layers.get(name=LAYER)
    private_units = services.do_save_unit_set(
        UnitSet(name="my-ch", layer=layer, kind="channels", owner=owner)
    )
    body = {"unit_set": private_units.pk, "unit": 1, "image_set": private_set.pk, "n_bands": 3}
    row = ConfoundReport.objects.get(job=queue_and_run(api_client(owner), body))
    outsider = django_user_model.objects.create_user("outsider", password="x" * 12, is_staff=True)
    theirs = api_client(outsider)
    assert theirs.get(f"{URL}{row.pk}/").status_code == 404
    assert theirs.get(f"{URL}{row.pk}/candidates.csv").status_code == 404
    assert theirs.get(URL).json()["confound_reports"] == []
    refused = theirs.post(URL, body, format="json")  # names the owner's private sets
    assert refused.status_code == 400 and "does not exist" in refused.json()["message"]
    shared = {**body, "image_set": stimuli["image_set"].pk}
    refused = theirs.post(URL, shared, format="json")
    assert refused.json()["message"] == f"unit set {private_units.pk} does not exist"
    assert Job.objects.count() == 1
    client.force_login(outsider)
    assert client.get(f"/admin/atlas/confoundreport/{row.pk}/change/").status_code == 404
    assert client.get(f"/admin/atlas/confoundreport/{row.pk}/candidates.csv").status_code == 404
    assert b"my-ch" not in client.get("/admin/atlas/confoundreport/").content
    assert api_client(owner).get(f"{URL}{row.pk}/").status_code == 200


def test_the_management_command_runs_the_report_and_writes_its_candidates(
    stimuli: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "candidates.csv"
    call_command("confound_report", "ch", "2", "tiny", "--bands", "3", "--now", "--csv",
                 str(target), stdout=io.StringIO())  # fmt: skip
    row = ConfoundReport.objects.get()
    assert row.unit.index == 2 and row.n_bands == 3 and row.job.state == Job.State.SUCCEEDED
    assert target.read_text().startswith("rank,attribute,value,band,")


@pytest.mark.parametrize(
    ("url", "name"),
    [(URL, "unit_set"), (URL, "image_set"), ("/api/v1/researcher/atlas/spectra/", "network"),
     ("/api/v1/researcher/atlas/spectra.csv", "image_set")],
)  # fmt: skip
def test_a_filter_that_is_not_an_id_is_a_400(owner: User, url: str, name: str) -> None:
    answer = api_client(owner).get(url, {name: "3x"})
    assert answer.status_code == 400
    assert answer.json()["message"] == f"{name} must be an id (a whole number), got '3x'"
