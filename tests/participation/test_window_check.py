"""The window check before a session (issue #21): the page reads the study's requirements
without taking a task list, and a session the page cannot run ends as `ended`
(window_too_small), giving its list back at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from backend.analysis.progress import study_counts
from backend.participation.models import Session
from backend.studies.models import TaskList
from tests.participation.conftest import Api
from tests.participation.factories import answer, make_study, prolific

pytestmark = pytest.mark.django_db


def end(api: Api, token: str, reason: str = "window_too_small") -> Any:
    return api.post(f"/api/v1/sessions/{token}/end", {"reason": reason})


def test_the_requirements_come_without_a_session_or_a_task_list(api: Api, owner: User) -> None:
    fixture = make_study(owner, min_window_width=800, min_window_height=600, platform="mturk")
    response = api.client.get(f"/api/v1/studies/{fixture.study.slug}/requirements")
    assert response.status_code == 200
    assert response.json() == {
        "slug": fixture.study.slug,
        "title": "Which image?",
        "platform": "mturk",
        "min_window": {"width": 800, "height": 600},
        "fullscreen": False,
    }
    assert not Session.objects.exists()
    assert TaskList.objects.get().sessions_started == 0


def test_the_requirements_of_an_unknown_study_are_a_404(api: Api) -> None:
    response = api.client.get("/api/v1/studies/no-such-study/requirements")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_session_that_never_answered_frees_its_list_at_once_when_it_ends(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    assert TaskList.objects.get().sessions_started == 1

    response = end(api, token)

    assert response.status_code == 200
    assert response.json() == {"state": "ended", "end_reason": "window_too_small"}
    session = Session.objects.get(token=token)
    assert session.state == Session.State.ENDED and session.ended_at is not None
    assert TaskList.objects.get().sessions_started == 0
    assert end(api, token).status_code == 200
    assert TaskList.objects.get().sessions_started == 0  # counted once
    counts = study_counts(fixture.study)
    assert (counts.ended, counts.active, counts.abandoned) == (1, 0, 0)


def test_an_ended_list_goes_to_the_next_participant(api: Api, owner: User) -> None:
    fixture = make_study(owner, n_lists=2)
    first = api.start(fixture.study.slug, prolific("phone01")).json()
    end(api, first["token"])
    ended_list = Session.objects.get(token=first["token"]).task_list_id
    second = api.start(fixture.study.slug, prolific("desktop02")).json()
    assert Session.objects.get(token=second["token"]).task_list_id == ended_list


def test_an_ended_participant_back_on_a_larger_screen_resumes_if_nobody_took_the_list(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    end(api, token)
    again = api.start(fixture.study.slug, prolific())
    assert again.status_code == 200 and again.json()["token"] == token
    session = Session.objects.get(token=token)
    assert session.state == Session.State.ACTIVE and session.end_reason == ""
    assert TaskList.objects.get().sessions_started == 1


def test_an_ended_participant_whose_list_went_to_someone_else_has_expired(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific("phone01")).json()["token"]
    end(api, token)
    assert api.start(fixture.study.slug, prolific("desktop02")).status_code == 201
    again = api.start(fixture.study.slug, prolific("phone01"))
    assert again.status_code == 403 and again.json()["error"] == "session_expired"


def test_a_late_answer_to_an_ended_session_is_kept(api: Api, owner: User) -> None:
    """An answer still in the outbox when the session ended (a reload on a smaller screen)
    is stored, not lost."""
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    end(api, token)
    assert api.answer(token, 0, answer()).status_code == 201
    assert Session.objects.get(token=token).n_answered == 1


def test_a_completed_session_stays_completed(api: Api, owner: User) -> None:
    fixture = make_study(owner, n_main=1, n_catch=0)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    api.answer(token, 0, answer())
    assert api.complete(token).status_code == 200
    assert end(api, token).json()["state"] == "completed"
    assert TaskList.objects.get().sessions_started == 1


def test_an_abandoned_session_that_ends_is_not_freed_twice(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    Session.objects.filter(token=token).update(last_activity_at=timezone.now() - timedelta(hours=2))
    api.start(fixture.study.slug, prolific("other0003"))  # releases the lapsed lease
    assert Session.objects.get(token=token).state == Session.State.ABANDONED
    end(api, token)
    assert Session.objects.get(token=token).state == Session.State.ENDED
    assert TaskList.objects.get().sessions_started == 1  # the other participant's
    again = api.start(fixture.study.slug, prolific())  # its list went to someone else
    assert again.status_code == 403 and again.json()["error"] == "session_expired"


def test_an_unknown_reason_or_token_changes_nothing(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    refused = end(api, token, "bored")
    assert refused.status_code == 400 and "reason" in refused.json()["message"]
    assert Session.objects.get(token=token).state == Session.State.ACTIVE
    assert end(api, "x" * 32).status_code == 404
    assert TaskList.objects.get().sessions_started == 1
