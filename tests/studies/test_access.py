"""Who sees a study: the owner and collaborators do; an outsider gets 404 on every study URL of
the admin and the researcher API. The API creates, updates, builds and reports progress."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.studies import services
from backend.studies.models import Study
from tests.studies import factories

pytestmark = pytest.mark.django_db

ADMIN_PATHS = [
    "change",
    "history",
    "delete",
    "build",
    "preview",
    "launch",
    "clone",
    "queue_missing",
]
API_CALLS = [("get", "/"), ("patch", "/"), ("post", "/build"), ("post", "/state"),
             ("get", "/progress")]  # fmt: skip


@pytest.fixture
def shared_study(owner: User, collaborator: User) -> Study:
    study = factories.study(
        owner, "imi2023", factories.stimulated_unit_set(44), slug="shared-study-slug"
    )
    study.collaborators.add(collaborator)
    return factories.ready_to_launch(study)


def api_as(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_an_outsider_gets_404_on_every_admin_url_of_the_study(
    client: Client, outsider: User, shared_study: Study
) -> None:
    client.force_login(outsider)
    for name in ADMIN_PATHS:
        url = f"/admin/studies/study/{shared_study.pk}/{name}/"
        assert client.get(url).status_code == 404, url
        assert client.post(url).status_code == 404, url
    listing = client.get("/admin/studies/study/")
    assert listing.status_code == 200 and shared_study.slug.encode() not in listing.content
    shared_study.refresh_from_db()
    assert shared_study.state == Study.State.DRAFT and shared_study.task_lists.count() == 0


def test_an_outsider_gets_404_on_every_api_endpoint_of_the_study(
    outsider: User, shared_study: Study
) -> None:
    client = api_as(outsider)
    for method, path in API_CALLS:
        url = f"/api/v1/researcher/studies/{shared_study.slug}{path}"
        response = getattr(client, method)(url, {"action": "launch", "title": "x"}, format="json")
        assert response.status_code == 404 and response.json()["error"] == "not_found", url
    assert client.get("/api/v1/researcher/studies/").json() == []
    shared_study.refresh_from_db()
    assert shared_study.title == "A study" and shared_study.task_lists.count() == 0


def test_a_collaborator_builds_the_study_through_the_admin(
    client: Client, collaborator: User, shared_study: Study
) -> None:
    client.force_login(collaborator)
    response = client.post(f"/admin/studies/study/{shared_study.pk}/build/", follow=True)
    assert b"Built 33 task lists of 45 trials" in response.content
    shared_study.refresh_from_db()
    assert shared_study.task_lists.count() == 33


def test_the_change_page_shows_the_urls_to_paste(
    client: Client, owner: User, shared_study: Study, settings: Any
) -> None:
    settings.PSYLENS_BASE_URL = "https://psylens.example.org"
    client.force_login(owner)
    page = client.get(f"/admin/studies/study/{shared_study.pk}/change/").content.decode()
    assert (
        "https://psylens.example.org/s/shared-study-slug/?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;"
        "STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}" in page
    )
    assert (
        "&lt;ExternalURL&gt;https://psylens.example.org/s/shared-study-slug/&lt;/ExternalURL&gt;"
        in page
    )


def test_the_preview_opens_the_participant_page_in_pilot_mode(
    client: Client, owner: User, shared_study: Study
) -> None:
    services.do_build_task_lists(shared_study)
    client.force_login(owner)
    response = client.get(f"/admin/studies/study/{shared_study.pk}/preview/")
    assert response.status_code == 302
    assert response["Location"].endswith(
        f"/s/shared-study-slug/?pilot={shared_study.pilot_token}&PROLIFIC_PID=preview-{owner.pk}-1"
    )


def test_a_researcher_creates_a_study_from_json_with_a_preset(owner: User) -> None:
    units = factories.stimulated_unit_set(44)
    body = {"slug": "api-study", "title": "From a script", "apply_preset": "imi2023",
            "unit_sets": [units.pk]}  # fmt: skip
    response = api_as(owner).post("/api/v1/researcher/studies/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["main_trials_per_list"] == 40
    assert "PROLIFIC_PID" in response.json()["links"]["prolific"]
    study = Study.objects.get(slug="api-study")
    assert study.owner == owner and list(study.unit_sets.all()) == [units]
    assert [c.name for c in study.conditions.all()] == ["natural"]


def test_the_api_builds_launches_and_reports_progress(owner: User, shared_study: Study) -> None:
    client = api_as(owner)
    built = client.post(f"/api/v1/researcher/studies/{shared_study.slug}/build")
    assert built.status_code == 200 and built.json()["trials_per_list"] == 45
    launched = client.post(
        f"/api/v1/researcher/studies/{shared_study.slug}/state", {"action": "launch"}, format="json"
    )
    assert launched.status_code == 200 and launched.json()["state"] == "live"
    progress = client.get(f"/api/v1/researcher/studies/{shared_study.slug}/progress").json()
    assert progress["task_lists"] == 33 and progress["valid_results"] == 0
    frozen = client.patch(
        f"/api/v1/researcher/studies/{shared_study.slug}/",
        {"main_trials_per_list": 20},
        format="json",
    )
    assert frozen.status_code == 400 and "Clone it" in frozen.json()["message"]
    shared_study.refresh_from_db()
    assert shared_study.main_trials_per_list == 40 and shared_study.state == "live"


def test_bad_settings_are_refused_with_a_clear_message(owner: User, shared_study: Study) -> None:
    client = api_as(owner)
    url = f"/api/v1/researcher/studies/{shared_study.slug}/"
    response = client.patch(url, {"exclusion_rules": {"min_catch_accuracy": 80}}, format="json")
    assert response.status_code == 400
    assert "fraction between 0 and 1" in response.json()["message"]
    shared_study.refresh_from_db()
    assert shared_study.exclusion_rules["min_catch_accuracy"] == 0.8


def test_bad_block_schedules_and_condition_rules_are_refused_and_change_nothing(
    owner: User, shared_study: Study
) -> None:
    client = api_as(owner)
    url = f"/api/v1/researcher/studies/{shared_study.slug}/"
    bad_shape = client.patch(url, {"block_schedule": ["natural"]}, format="json")
    assert bad_shape.status_code == 400 and "list of block sequences" in bad_shape.json()["message"]
    bad_entry = client.patch(url, {"block_schedule": [["natural", 3]]}, format="json")
    assert bad_entry.status_code == 400 and "3 is neither" in bad_entry.json()["message"]
    between = client.patch(
        url, {"block_schedule": [["natural"]], "condition_design": "between"}, format="json"
    )
    assert between.status_code == 400 and "within" in between.json()["message"]
    within_rules = client.patch(
        url,
        {"condition_design": "within",
         "conditions": [{"name": "natural", "exclusion_rules": {"min_catch_accuracy": 0.5}}]},
        format="json",
    )  # fmt: skip
    assert within_rules.status_code == 400
    assert "between participants" in within_rules.json()["message"]
    shared_study.refresh_from_db()
    assert shared_study.block_schedule == [] and shared_study.condition_design == "between"
    assert shared_study.conditions.get().exclusion_rules is None

    unknown = client.patch(
        url, {"condition_design": "within", "unit_repeats": "condition",
              "block_schedule": [["practice:natural", "natural", "nature"]]}, format="json",
    )  # fmt: skip
    assert unknown.status_code == 200, unknown.json()
    refused = client.post(f"/api/v1/researcher/studies/{shared_study.slug}/build")
    assert refused.status_code == 409
    assert "names 'nature', which is not one of the study's conditions" in refused.json()["message"]
    assert shared_study.task_lists.count() == 0


def test_the_api_sets_hand_picked_catch_units(owner: User) -> None:
    units, easy = factories.unit_set(n_units=3), factories.unit_set("easy", 2, "easy-net")
    body = {"slug": "with-catch", "title": "Catch", "unit_sets": [units.pk],
            "catch_units": list(easy.units.values_list("pk", flat=True))}  # fmt: skip
    response = api_as(owner).post("/api/v1/researcher/studies/", body, format="json")
    assert response.status_code == 201, response.json()
    assert sorted(response.json()["catch_units"]) == sorted(body["catch_units"])
    study = Study.objects.get(slug="with-catch")
    assert set(study.catch_units.all()) == set(easy.units.all())


def test_units_once_per_condition_between_participants_is_refused(owner: User) -> None:
    body = {"slug": "crossed", "title": "Crossed", "condition_design": "between",
            "unit_repeats": "condition"}  # fmt: skip
    response = api_as(owner).post("/api/v1/researcher/studies/", body, format="json")
    assert response.status_code == 400
    assert "once per condition only within participants" in response.json()["message"]
    assert not Study.objects.filter(slug="crossed").exists()


def test_a_refused_build_answers_409_with_what_is_missing(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.unit_set(n_units=44))
    response = api_as(owner).post(f"/api/v1/researcher/studies/{study.slug}/build")
    assert response.status_code == 409
    assert (
        response.json()["error"] == "design_refused"
        and len(response.json()["missing"]["exemplars"]) == 44
    )


def test_the_researcher_api_is_in_the_openapi_schema(client: Client) -> None:
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/researcher/studies/{slug}/build" in schema


class _FormFields(HTMLParser):
    """The values a browser would submit from the admin's change form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and a.get("type") not in {"submit", "button"}:
            ticked = a.get("type") in {"checkbox", "radio"}
            if ticked and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value", "on" if ticked else ""))
        elif tag == "select":
            self.select = name
        elif tag == "option" and self.select and "selected" in a:
            self.data.setdefault(self.select, []).append(a.get("value", ""))
        elif tag == "textarea":
            self.textarea = name
            self.data.setdefault(name, []).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None
        if tag == "textarea":
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.data[self.textarea][-1] += data


def change_form(client: Client, study: Study) -> dict[str, list[str]]:
    parser = _FormFields()
    parser.feed(client.get(f"/admin/studies/study/{study.pk}/change/").content.decode())
    return parser.data


def test_a_live_studys_page_shows_its_design_read_only_and_saving_it_changes_no_unit(
    client: Client, owner: User, shared_study: Study
) -> None:
    services.do_build_task_lists(shared_study)
    services.do_change_state(shared_study, "launch")
    units = set(shared_study.unit_sets.values_list("pk", flat=True))
    other = factories.unit_set("other", 3, "other-net")
    easy = other.units.first()
    assert easy is not None
    client.force_login(owner)
    data = change_form(client, shared_study)
    for frozen in ("unit_sets", "catch_units", "main_trials_per_list", "block_schedule",
                   "apply_preset", "conditions-0-name"):  # fmt: skip
        assert frozen not in data, f"{frozen} is still editable on a live study"
    assert "title" in data and "exclusion_rules" in data and "max_participants" in data
    data.update({"title": ["Renamed while live"], "unit_sets": [str(other.pk)],
                 "catch_units": [str(easy.pk)], "conditions-0-name": ["changed"]})  # fmt: skip
    response = client.post(f"/admin/studies/study/{shared_study.pk}/change/", data)
    assert response.status_code == 302, re.findall(r"errorlist.{0,300}", response.content.decode())
    shared_study.refresh_from_db()
    assert shared_study.title == "Renamed while live"
    assert set(shared_study.unit_sets.values_list("pk", flat=True)) == units
    assert not shared_study.catch_units.exists()
    assert list(shared_study.conditions.values_list("name", flat=True)) == ["natural"]
