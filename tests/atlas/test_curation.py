"""Curated retraining sets (backend/atlas/curation.py, docs/midrange.md §4): a selection by rule
(the target class's images in a band of a unit's values, balanced against an attribute) or by
ticked ids, exported as an ImageFolder ZIP that round-trips through the image-set import (same
images, labels and attributes) and as a CSV with band and value; bad input a 400."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from backend.atlas import confounds, curation
from backend.atlas.models import ConfoundReport
from backend.stimuli import attributes, services
from backend.stimuli.models import ImageSet, Unit, UnitSet
from tests.atlas.test_retrain_jobs import toy_set
from worker.analyses import midrange
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


# --- The rule over a stored confound report (its values and its own bands) ---------------------


def stored_report(image_set: ImageSet, n_bands: int = 3) -> ConfoundReport:
    """A confound report over `image_set` whose value of each image is its position (ranks 0…11,
    so band b of 3 holds positions 4b … 4b + 3), computed by the report's own analysis."""
    network = services.do_create_network("lite0", "builtin:efficientnet_lite0")
    unit_set = services.do_save_unit_set(UnitSet(
        name="logits", layer=network.layers.get(name="output"), kind=UnitSet.Kind.CHANNELS,
        image_set=image_set,
    ))  # fmt: skip
    unit, _ = Unit.objects.get_or_create(unit_set=unit_set, index=3)
    members = list(image_set.members.order_by("position"))
    ids, values = [m.image_id for m in members], [float(m.position) for m in members]
    found = midrange.confound_report(
        np.array(values), ids, attributes.image_attributes(image_set.pk), n_bands=n_bands
    )
    return ConfoundReport.objects.create(
        unit=unit, image_set=image_set, n_bands=n_bands, n_images=found.n_images,
        bands=found.bands, tests=found.tests, candidates=found.candidates,
        values={"image_ids": ids, "values": values},
    )  # fmt: skip


def test_the_rule_reads_a_stored_confound_reports_values_and_bands(
    owner: User, labelled: ImageSet
) -> None:
    report = stored_report(labelled)
    members = list(labelled.members.order_by("position"))  # class 0: 3 blue, 5 red; then class 1
    assert [confounds.image_bands(report)[m.image_id] for m in members] == [0] * 4 + [1] * 4 + [
        2
    ] * 4
    # Band 0 holds positions 0…3 (3 blue, 1 red of class 0): balanced, one of each.
    first = curation.select_from_report(report, "0", [0], attribute="colour", seed=2)
    assert len(first) == 2 and set(first) <= {m.image_id for m in members[:4]}
    assert {labelled.members.get(image_id=i).attributes["colour"] for i in first} == {"red", "blue"}
    # Bands 0 and 1: all eight of class 0 (3 blue, 5 red) → 3 + 3.
    both = curation.select_from_report(report, "0", [0, 1], attribute="colour", seed=2)
    assert len(both) == 6 and both == curation.select_from_report(
        report, "0", [1, 0], attribute="colour", seed=2
    )
    # A quantile band over the report's values is the values-given rule's selection.
    values = {m.image_id: float(m.position) for m in members}
    assert curation.select_from_report(report, "0", band="0-40", attribute="colour", seed=1) == (
        curation.select_by_rule(labelled, values, "0", "0-40", "colour", seed=1)
    )

    # The API: the report stands for the values and the image set; the CSV's band column is the
    # report's own band of each image.
    body = {"format": "csv", "rule": {"report": report.pk, "label": "0", "report_bands": [0, 1],
                                      "attribute": "colour", "seed": 2}}  # fmt: skip
    answer = client_for(owner).post(URL, body, format="json")
    assert answer.status_code == 200, answer.content
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert len(rows) == 6 and {r["band"] for r in rows} <= {"0-33.33", "33.33-66.67"}
    by_name = {r["name"]: r for r in rows}
    for member in labelled.members.filter(image_id__in=both).select_related("image"):
        row = by_name[f"0/{member.original_name.split('/')[-1]}"]
        assert float(row["value"]) == member.position
        assert row["band"] == ("0-33.33" if member.position < 4 else "33.33-66.67")
    zipped = client_for(owner).post(URL, {**body, "format": "zip"}, format="json")
    assert zipped.status_code == 200 and zipped["Content-Type"] == "application/zip"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"label": "0", "report_bands": [3]}, "the report's bands are 0 … 2"),
        ({"label": "0", "report_bands": [True]}, "the report's bands are 0 … 2"),
        ({"label": "0", "report_bands": "0"}, "report_bands must be a list"),
        ({"label": "0"}, "choose the report's bands or a quantile band"),
        ({"label": "0", "report_bands": [0], "band": "0-40"}, "choose the report's bands"),
        ({"label": "0", "report_bands": [0], "values": {"1": 0.5}}, "values or its report"),
        ({"label": "1", "report_bands": [0]}, "no image labelled '1' has its value in band 0"),
        ({"label": "0", "report_bands": [1], "attribute": "colour"}, "nothing to balance"),
    ],
)
def test_bad_rules_over_a_report_are_a_400(
    owner: User, labelled: ImageSet, rule: dict[str, object], message: str
) -> None:
    report = stored_report(labelled)
    answer = client_for(owner).post(URL, {"rule": {"report": report.pk, **rule}}, format="json")
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["message"]


def test_a_report_over_another_set_or_hidden_or_unknown_is_refused(
    owner: User, labelled: ImageSet
) -> None:
    report = stored_report(labelled)
    other = toy_set("others", {(0, "red"): 2, (1, "red"): 2}, 3, "class")
    rule = {"report": report.pk, "label": "0", "report_bands": [0]}
    wrong = client_for(owner).post(URL, {"image_set": other.pk, "rule": rule}, format="json")
    assert wrong.status_code == 400 and "is over the image set" in wrong.json()["message"]
    for bad in ("1", True):
        answer = client_for(owner).post(URL, {"rule": {**rule, "report": bad}}, format="json")
        assert answer.status_code == 400 and "confound report's id" in answer.json()["message"]
    missing = client_for(owner).post(URL, {"rule": {**rule, "report": 999999}}, format="json")
    assert missing.status_code == 404
    outsider = User.objects.create_user("outsider", password="x" * 12, is_staff=True)
    labelled.owner = owner
    labelled.save()  # with its unit set (which shows its image set): the outsider sees neither
    UnitSet.objects.filter(pk=report.unit.unit_set_id).update(owner=owner)
    hidden = client_for(outsider).post(URL, {"rule": rule}, format="json")
    assert hidden.status_code == 404 and "confound report" in hidden.json()["message"]


def test_the_reports_curation_page_exports_by_rule_or_ticked_and_refuses_bad_input(
    client: Client, owner: User, labelled: ImageSet
) -> None:
    report = stored_report(labelled)
    labelled.owner = owner
    labelled.save()
    client.force_login(owner)
    url = f"/admin/atlas/confoundreport/{report.pk}/curate/"
    assert url.encode() in client.get(f"/admin/atlas/confoundreport/{report.pk}/change/").content
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('name="image_ids"') == 12  # every image of the three grids, tickable
    assert html.count('name="report_bands"') == 3 and "band 1 (33%–67%): 4 images" in html
    assert '<option value="colour">' in html and '<option value="0">' in html

    rule = {"selection": "rule", "label": "0", "report_bands": ["0", "1"], "attribute": "colour",
            "seed": "2", "format": "csv"}  # fmt: skip
    answer = client.post(url, rule)
    assert answer.status_code == 200 and answer["Content-Type"] == "text/csv"
    names = [r["name"] for r in csv.DictReader(io.StringIO(answer.content.decode()))]
    expected = curation.select_from_report(report, "0", [0, 1], attribute="colour", seed=2)
    members = {m.image_id: m for m in labelled.members.all()}
    assert sorted(names) == sorted(f"0/{members[i].original_name.split('/')[-1]}" for i in expected)

    ticked = [m.image_id for m in labelled.members.order_by("position")[:2]]
    zipped = client.post(url, {"selection": "ticked", "image_ids": ticked, "seed": "0",
                               "format": "zip"})  # fmt: skip
    assert zipped.status_code == 200 and zipped["Content-Type"] == "application/zip"
    back = ImageSet.objects.create(name="back", origin=ImageSet.Origin.ZIP)
    imported = imagesets.ImportReport()
    services.do_import_images(back, imagesets.scan_zip(io.BytesIO(zipped.content), imported),
                              imported)  # fmt: skip
    assert {m.image.sha256 for m in back.members.select_related("image")} == {
        members[i].image.sha256 for i in ticked
    }

    for bad, message in (
        ({**rule, "report_bands": []}, "tick at least one band"),
        ({**rule, "label": ""}, "choose the target class"),
        ({**rule, "report_bands": ["1"]}, "nothing to balance"),
        ({"selection": "ticked", "seed": "0", "format": "zip"}, "tick at least one image"),
        ({"selection": "ticked", "image_ids": ["999999"], "seed": "0", "format": "zip"},
         "Select a valid choice"),
    ):  # fmt: skip
        refused = client.post(url, bad)
        assert refused.status_code == 400 and message in refused.content.decode(), message
        assert refused.content.decode().count('name="image_ids"') == 12

    outsider = User.objects.create_user("outsider", password="x" * 12, is_staff=True)
    UnitSet.objects.filter(pk=report.unit.unit_set_id).update(owner=owner)
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get(f"/admin/atlas/confoundreport/{report.pk}/candidates.csv").status_code == 404
