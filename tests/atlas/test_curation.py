"""Curated retraining sets (backend/atlas/curation.py, docs/midrange.md §4): a selection by rule
(the target class's images in a band of a unit's values, balanced against an attribute) or by
ticked ids, exported as an ImageFolder ZIP that round-trips through the image-set import (same
images, labels and attributes) and as a CSV with band and value; bad input a 400."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from backend.atlas import curation
from backend.stimuli import services
from backend.stimuli.models import ImageSet
from tests.atlas.test_retrain_jobs import toy_set
from worker.pipelines import imagesets

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/researcher/atlas/curated-export/"


@pytest.fixture
def labelled() -> ImageSet:
    image_set = toy_set("toys", {(0, "red"): 5, (0, "blue"): 3, (1, "red"): 2, (1, "blue"): 2},
                        21, "class")  # fmt: skip
    for i, member in enumerate(image_set.members.order_by("position")):
        member.attributes = {**member.attributes, "size": str(i % 3)}
        member.save(update_fields=["attributes"])
    return image_set


def as_seen(image_set: ImageSet) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    return {(m.image.sha256, m.label, tuple(sorted(m.attributes.items())))
            for m in image_set.members.select_related("image")}  # fmt: skip


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_ticked_selection_round_trips_through_the_image_set_import(
    owner: User, labelled: ImageSet
) -> None:
    members = list(labelled.members.order_by("position"))
    ticked = [m.image_id for m in members[::2]]  # both classes, both colours
    answer = client_for(owner).post(URL, {"image_set": labelled.pk, "image_ids": ticked},
                                    format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"] == "application/zip"
    back = ImageSet.objects.create(name="back", origin=ImageSet.Origin.ZIP)
    report = imagesets.ImportReport()
    services.do_import_images(back, imagesets.scan_zip(io.BytesIO(answer.content), report), report)
    assert report.accepted == len(ticked) and not report.skipped
    expected = {row for row in as_seen(labelled)
                if row[0] in {m.image.sha256 for m in members[::2]}}  # fmt: skip
    assert as_seen(back) == expected
    assert {m.label for m in back.members.all()} == {"0", "1"}


def test_a_selection_of_one_class_keeps_its_label(owner: User, labelled: ImageSet) -> None:
    ones = [m.image_id for m in labelled.members.filter(label="1")]
    answer = client_for(owner).post(URL, {"image_set": labelled.pk, "image_ids": ones},
                                    format="json")  # fmt: skip
    back = ImageSet.objects.create(name="back", origin=ImageSet.Origin.ZIP)
    report = imagesets.ImportReport()
    services.do_import_images(back, imagesets.scan_zip(io.BytesIO(answer.content), report), report)
    assert {m.label for m in back.members.all()} == {"1"} and back.members.count() == 4


def test_the_rule_takes_the_target_class_in_the_band_balanced_by_the_attribute(
    labelled: ImageSet, owner: User
) -> None:
    members = list(labelled.members.order_by("position"))  # class 0: 3 blue, then 5 red
    values = {m.image_id: float(i) for i, m in enumerate(members)}  # ranks 0…11 of 11
    chosen = curation.select_by_rule(labelled, values, "0", "0-50", "colour", seed=1)
    # band 0–50 %: ranks 0…5 (5/11 ≤ 0.5 < 6/11): 3 blue and 3 red of class 0 → 3 and 3
    inside = members[:6]
    assert set(chosen) <= {m.image_id for m in inside} and len(chosen) == 6
    by_colour = [labelled.members.get(image_id=i).attributes["colour"] for i in chosen]
    assert by_colour.count("red") == by_colour.count("blue") == 3
    narrower = curation.select_by_rule(labelled, values, "0", "0-40", "colour", seed=1)
    assert len(narrower) == 4  # ranks 0…4: 3 blue, 2 red → 2 + 2
    assert narrower == curation.select_by_rule(labelled, values, "0", "0-40", "colour", seed=1)

    body = {"image_set": labelled.pk, "format": "csv", "rule": {
        "values": {str(k): v for k, v in values.items()}, "label": "0", "band": "0-40",
        "attribute": "colour", "seed": 1}}  # fmt: skip
    answer = client_for(owner).post(URL, body, format="json")
    assert answer.status_code == 200, answer.content
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert list(rows[0]) == ["name", "label", "colour", "size", "band", "value"]
    assert len(rows) == 4 and {r["band"] for r in rows} == {"0-40"}
    assert all(r["label"] == "0" and r["name"].startswith("0/") for r in rows)
    assert sorted(float(r["value"]) for r in rows) == sorted(values[i] for i in narrower)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"image_ids": []}, "image_ids must be a non-empty list"),
        ({"image_ids": [999999]}, "are not in the image set"),
        ({"image_ids": [1], "format": "tar"}, "format must be zip or csv"),
        ({"rule": {"values": {}, "label": "0", "band": "0-50"}}, "values must be an object"),
        ({"rule": {"values": {"1": 0.5}, "label": "0", "band": "50"}}, "is not a band"),
    ],
)
def test_bad_selections_are_a_400(
    owner: User, labelled: ImageSet, body: dict[str, object], message: str
) -> None:
    answer = client_for(owner).post(URL, {"image_set": labelled.pk, **body}, format="json")
    assert answer.status_code == 400 and message in answer.json()["message"]


def test_an_image_set_the_caller_may_not_see_is_a_404(owner: User, labelled: ImageSet) -> None:
    labelled.owner = User.objects.create_user("other", password="x" * 12, is_staff=True)
    labelled.save()
    ids = [m.image_id for m in labelled.members.all()]
    answer = client_for(owner).post(URL, {"image_set": labelled.pk, "image_ids": ids},
                                    format="json")  # fmt: skip
    assert answer.status_code == 404


def test_the_admin_page_exports_ticked_ids_and_refuses_bad_ones(
    client: Client, superuser: User, labelled: ImageSet
) -> None:
    client.force_login(superuser)
    url = "/admin/atlas/retrainednetwork/curated-export/"
    assert client.get(url).status_code == 200
    ids = " ".join(str(m.image_id) for m in labelled.members.all()[:3])
    answer = client.post(url, {"image_set": labelled.pk, "image_ids": ids, "format": "csv"})
    assert answer.status_code == 200 and answer["Content-Type"] == "text/csv"
    assert len(list(csv.DictReader(io.StringIO(answer.content.decode())))) == 3
    refused = client.post(url, {"image_set": labelled.pk, "image_ids": "1 x", "format": "zip"})
    assert refused.status_code == 400 and b"whole numbers" in refused.content
