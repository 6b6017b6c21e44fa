"""Resuming a session is bound to what only its participant has: the session's token (kept by
the page) or the platform's id of the submission that started it (Prolific's SESSION_ID, MTurk's
assignmentId). Someone who knows only the PROLIFIC_PID or workerId gets a 403 that says how to
resume, and changes nothing; pilot sessions stay exempt."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.participation.models import Session
from backend.studies.models import Study
from tests.participation.conftest import Api
from tests.participation.factories import make_study, prolific

pytestmark = pytest.mark.django_db
PID = "5f0c2a9e8b1d4c3a2b1e0f9d"


def test_the_same_submission_resumes_its_session(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    first = api.start(fixture.study.slug, prolific(PID))
    again = api.start(fixture.study.slug, prolific(PID))
    assert again.status_code == 200 and again.json()["token"] == first.json()["token"]


def test_a_known_prolific_id_with_another_submission_cannot_take_the_session_over(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    first = api.start(fixture.study.slug, prolific(PID)).json()["token"]
    for platform in ({**prolific(PID), "SESSION_ID": "ATTACKER"},
                     {"PROLIFIC_PID": PID, "STUDY_ID": "S1"}):  # fmt: skip
        response = api.start(fixture.study.slug, platform)
        assert response.status_code == 403, response.content
        body = response.json()
        assert body["error"] == "resume_refused" and "token" not in body
        assert first not in response.content.decode()
        assert "same Prolific submission" in body["message"]
    session = Session.objects.get()
    assert session.platform_params["SESSION_ID"] == "X1" and session.token == first


def test_the_page_s_stored_token_resumes_without_the_submission_id(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific(PID)).json()["token"]
    again = api.start(fixture.study.slug, {"PROLIFIC_PID": PID}, token=token)
    assert again.status_code == 200 and again.json()["token"] == token
    wrong = api.start(fixture.study.slug, {"PROLIFIC_PID": PID}, token="x" * 32)
    assert wrong.status_code == 403


def test_a_known_worker_id_with_another_assignment_cannot_take_the_session_over(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, platform=Study.Platform.MTURK)
    mturk = {"workerId": "A1WORKER", "assignmentId": "ASSIGN-1", "hitId": "H1"}
    token = api.start(fixture.study.slug, mturk).json()["token"]
    assert api.start(fixture.study.slug, mturk).json()["token"] == token
    other = api.start(fixture.study.slug, {**mturk, "assignmentId": "ASSIGN-EVIL"})
    assert other.status_code == 403 and other.json()["error"] == "resume_refused"
    assert "MTurk assignment" in other.json()["message"]


def test_a_pilot_with_a_prolific_id_and_no_session_id_still_resumes(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    pilot = {"pilot": fixture.study.pilot_token, "PROLIFIC_PID": "pilot-researcher"}
    first = api.start(fixture.study.slug, pilot)
    assert first.status_code == 201
    again = api.start(fixture.study.slug, pilot)
    assert again.status_code == 200 and again.json()["token"] == first.json()["token"]
