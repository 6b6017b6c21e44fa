"""A study cannot launch with an empty consent, empty instructions or without the practice its
design loops on (issue #21): the build reports them, with the field that fills each, and launch
refuses until they are filled or explicitly waived (while the study is a draft or a pilot)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.studies import readiness, services
from backend.studies.models import PracticeTrial, Study
from tests.studies import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def colin(owner: User) -> Study:
    """What a new researcher makes from the Colin et al. 2024 preset: units, no texts yet."""
    units = factories.stimulated_unit_set(44)
    return factories.study(owner, "colin2024", units, slug="colin-study")


def api_as(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def codes(items: list[Any]) -> list[str]:
    return [item["code"] if isinstance(item, dict) else item.code for item in items]


def test_the_build_reports_empty_texts_and_missing_practice_with_their_fields(
    colin: Study,
) -> None:
    report = services.do_build_task_lists(colin)

    assert report["task_lists"] > 0  # it builds: the study can be piloted
    assert [(m["code"], m["field"]) for m in report["missing"]] == [
        ("consent", "consent_markdown"),
        ("instructions", "instructions_markdown"),
        ("practice", "practice_trials"),
    ]
    colin.refresh_from_db()
    assert colin.build_report["missing"] == report["missing"]


def test_launch_refuses_until_texts_and_practice_are_filled(owner: User, colin: Study) -> None:
    client = api_as(owner)
    assert client.post(f"/api/v1/researcher/studies/{colin.slug}/build").status_code == 200
    refused = client.post(
        f"/api/v1/researcher/studies/{colin.slug}/state", {"action": "launch"}, format="json"
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "launch_refused"
    assert codes(refused.json()["missing"]) == ["consent", "instructions", "practice"]
    assert "consent text is empty" in refused.json()["message"]
    colin.refresh_from_db()
    assert colin.state == Study.State.DRAFT and colin.launched_at is None

    factories.ready_to_launch(colin)
    services.do_change_state(colin, "launch")
    colin.refresh_from_db()
    assert colin.state == Study.State.LIVE


def test_a_pilot_may_waive_them_explicitly(owner: User, colin: Study) -> None:
    client = api_as(owner)
    client.post(f"/api/v1/researcher/studies/{colin.slug}/build")
    services.do_change_state(colin, "pilot")
    waived = client.patch(
        f"/api/v1/researcher/studies/{colin.slug}/",
        {"consent_waived": True, "instructions_waived": True, "practice_waived": True},
        format="json",
    )
    assert waived.status_code == 200, waived.json()
    colin.refresh_from_db()
    # No instructions: no reading time, which the IMI rules ask for; it cannot be waived.
    with pytest.raises(readiness.LaunchRefused) as refused:
        services.do_change_state(colin, "launch")
    assert codes(refused.value.missing) == ["instruction_time_rule"]
    assert not refused.value.missing[0].waivable

    colin.exclusion_rules = {**colin.exclusion_rules, "min_instruction_seconds": None}
    services.do_save_study(colin)
    services.do_change_state(colin, "launch")
    colin.refresh_from_db()
    assert colin.state == Study.State.LIVE


def test_practice_is_asked_for_only_where_the_design_loops_on_it(colin: Study) -> None:
    factories.ready_to_launch(colin)
    PracticeTrial.objects.filter(study=colin).delete()
    assert codes(readiness.missing_for_launch(colin)) == ["practice"]
    colin.practice_until_correct = False
    assert readiness.missing_for_launch(colin) == []


def test_a_paused_study_resumes_without_the_check(colin: Study) -> None:
    factories.ready_to_launch(colin)
    services.do_build_task_lists(colin)
    services.do_change_state(colin, "launch")
    services.do_change_state(colin, "pause")
    Study.objects.filter(pk=colin.pk).update(consent_markdown="")  # e.g. an older study
    services.do_change_state(colin, "launch")
    colin.refresh_from_db()
    assert colin.state == Study.State.LIVE


def test_the_admin_links_each_missing_item_to_its_field_and_refuses_launch(
    client: Client, owner: User, colin: Study
) -> None:
    client.force_login(owner)
    built = client.post(f"/admin/studies/study/{colin.pk}/build/", follow=True)
    html = built.content.decode()
    assert "It can be piloted; to launch it, fill these first." in html
    for anchor in ("id_consent_markdown", "id_instructions_markdown", "practice_trials-group"):
        assert f"href='#{anchor}'" in html or f'href="#{anchor}"' in html, anchor
        assert f'id="{anchor}"' in html, anchor  # the link lands on the field

    launched = client.post(f"/admin/studies/study/{colin.pk}/launch/", follow=True)
    assert "The study cannot launch yet." in launched.content.decode()
    colin.refresh_from_db()
    assert colin.state == Study.State.DRAFT

    factories.ready_to_launch(colin)
    page = client.get(f"/admin/studies/study/{colin.pk}/change/").content.decode()
    assert "Ready to launch." in page
