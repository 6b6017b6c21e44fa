"""Imported trial data in the admin: the upload page (the twin of `import_trials`) and imported
datasets shown beside a study on its results dashboard."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from backend.analysis import services, statistics
from backend.analysis.dashboard import DASHBOARD_RESAMPLES
from backend.analysis.models import ImportedDataset, ImportedResponse
from backend.analysis.rows import imported_rows
from backend.analysis.tidy import analysed_rows
from backend.participation.models import Session
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db
UPLOAD_URL = "/admin/analysis/importeddataset/upload/"
MAPPING = {"participant": "subject", "unit": "unit_id", "correct": "ok", "condition": "cond"}
TRIALS = (
    "subject,unit_id,ok,cond\n"
    "p1,u1,1,natural\np1,u2,0,natural\np1,u1,1,synthetic\n"
    "p2,u1,1,natural\np2,u2,1,natural\np2,u2,0,synthetic\n"
)


def upload(client: Client, text: str, name: str = "imi-2023") -> object:
    csv_file = SimpleUploadedFile("trials.csv", text.encode(), content_type="text/csv")
    return client.post(UPLOAD_URL, {"file": csv_file, "name": name, "mapping": json.dumps(MAPPING)})


def test_a_researcher_uploads_trial_data_through_the_admin(client: Client, owner: User) -> None:
    client.force_login(owner)
    listing = client.get("/admin/analysis/importeddataset/").content.decode()
    assert 'id="import-trials-link"' in listing

    response = upload(client, TRIALS)

    dataset = ImportedDataset.objects.get(name="imi-2023")
    assert response.status_code == 302 and response["Location"].endswith(f"/{dataset.pk}/change/")
    assert dataset.rows == 6 and dataset.imported_by == owner
    assert dataset.column_mapping == MAPPING and dataset.source_file == "trials.csv"
    rows = list(imported_rows(dataset))
    assert [(row.participant, row.unit, row.correct) for row in rows][:2] == [
        ("p1", "u1", True),
        ("p1", "u2", False),
    ]


def test_an_upload_with_a_bad_line_names_it_and_stores_nothing(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = upload(client, TRIALS + "p3,u1,maybe,natural\n")
    assert response.status_code == 400
    assert "line 8, column &#x27;ok&#x27;" in response.content.decode()
    assert not ImportedDataset.objects.exists() and not ImportedResponse.objects.exists()


def test_the_upload_page_is_404_to_a_non_staff_user(
    client: Client, django_user_model: type[User]
) -> None:
    client.force_login(django_user_model.objects.create_user("participant-like"))
    assert upload(client, TRIALS).status_code in (302, 404)  # the admin sends it to log in
    assert not ImportedDataset.objects.exists()


def test_the_dashboard_shows_an_imported_dataset_beside_the_study(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01")
    dataset = services.do_import_trial_file("imi-2023", io.BytesIO(TRIALS.encode()), MAPPING)
    client.force_login(owner)

    url = f"/admin/studies/study/{fixture.study.pk}/results/"
    page = client.get(url, {"with": [dataset.pk, "999999", "x"]})

    rows = analysed_rows(imported_rows(dataset))
    counts = statistics.accuracy_by(rows, statistics.by_condition)
    intervals = statistics.accuracy_ci_by(
        rows, statistics.by_condition, statistics.by_unit, resamples=DASHBOARD_RESAMPLES
    )
    [compared] = page.context["compared"]
    assert compared.name == "imi-2023"
    assert {cell.label: cell.accuracy for cell in compared.by_condition} == {
        label: accuracy.accuracy for label, accuracy in counts.items()
    }
    assert {cell.label: (cell.low, cell.high) for cell in compared.by_condition} == {
        label: (ci.low, ci.high) for label, ci in intervals.items()
    }
    html = page.content.decode()
    natural = counts["natural"]
    assert f"<td>imi-2023 (imported)</td><td>natural</td><td>{natural.n}</td>" in html
    assert f"<td>{natural.accuracy:.3f}</td>" in html
    assert f"&amp;with={dataset.pk}" in html  # the condition figure draws it too
    figure = client.get(url + "figure/condition.svg", {"with": dataset.pk})
    assert b"imi-2023: natural" in figure.content
    assert "(imported)" not in client.get(url).content.decode()
    api = f"/api/v1/researcher/studies/{fixture.study.slug}/results"
    [listed] = client.get(api, {"with": dataset.pk}).json()["compared"]
    assert listed["by_condition"] == [dataclasses.asdict(cell) for cell in compared.by_condition]


LAYERED_MAPPING = {**MAPPING, "layer": "layer", "basis": "basis", "network": "net"}
LAYERED_TRIALS = (
    "subject,unit_id,ok,cond,layer,basis,net\n"
    "p1,u1,1,natural,mixed4a,channels,googlenet\np1,u2,0,natural,mixed4a,channels,googlenet\n"
    "p1,u7,0,natural,mixed5b,sae,googlenet\np2,u1,1,natural,mixed4a,channels,googlenet\n"
    "p2,u7,1,natural,mixed5b,sae,googlenet\np2,u7,0,natural,mixed5b,sae,googlenet\n"
)


def test_the_dashboard_compares_a_dataset_by_layer_basis_and_unit(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01")
    dataset = services.do_import_trial_file(
        "zimmermann-2021", io.BytesIO(LAYERED_TRIALS.encode()), LAYERED_MAPPING
    )
    client.force_login(owner)

    url = f"/admin/studies/study/{fixture.study.pk}/results/"
    html = client.get(url, {"with": dataset.pk}).content.decode()

    def table(name: str) -> str:
        start = html.index(f'id="{name}"')
        return html[start : html.index("</table>", start)]

    source = "<td>zimmermann-2021 (imported)</td>"
    assert f"{source}<td>googlenet mixed4a</td><td>3</td>" in table("by-layer")
    assert f"{source}<td>googlenet mixed5b</td><td>3</td>" in table("by-layer")
    assert f"{source}<td>channels</td><td>3</td>\n    <td>0.667</td>" in table("by-basis")
    assert f"{source}<td>sae</td><td>3</td>\n    <td>0.333</td>" in table("by-basis")
    units = table("units")
    assert f"{source}<td></td><td>u7</td><td>sae</td>" in units
    assert units.count('class="psylens-imported"') == 3  # u1, u2 and u7, natural each
    assert source in table("by-condition")
    assert f"<td>{fixture.study.slug}</td>" in table("by-layer")  # the study's own lines stay

    for name, label in (("layer", b"zimmermann-2021: googlenet mixed5b"), ("basis", b": sae")):
        figure = client.get(f"{url}figure/{name}.svg", {"with": dataset.pk}).content
        assert label in figure
        assert label not in client.get(f"{url}figure/{name}.svg").content
    api = f"/api/v1/researcher/studies/{fixture.study.slug}/results"
    [listed] = client.get(api, {"with": dataset.pk}).json()["compared"]
    assert {cell["label"]: cell["n"] for cell in listed["by_basis"]} == {"channels": 3, "sae": 3}
    assert sorted(line["unit"] for line in listed["units"]) == ["u1", "u2", "u7"]
    assert "(imported)" not in client.get(url).content.decode()
