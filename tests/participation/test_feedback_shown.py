"""What the page showed after an answer (issue #21): the answer's raw data is sent before the
server's verdict exists, so the page reports the feedback it showed afterwards and the stored raw
data says so (`feedback_shown`, `correct`)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.participation.models import PracticeResponse, Response
from tests.participation.conftest import Api
from tests.participation.factories import answer, make_study, prolific

pytestmark = pytest.mark.django_db
AS_SENT = {"rt": 1234.5, "trial_type": "reference-choice"}


def shown(api: Api, token: str, index: int, body: dict[str, Any]) -> Any:
    return api.put(f"/api/v1/sessions/{token}/responses/{index}/shown", body)


def started(api: Api, owner: User, **fields: Any) -> tuple[str, dict[int, int]]:
    fixture = make_study(owner, feedback=True, feedback_duration_ms=1000, **fields)
    token = api.start(fixture.study.slug, prolific()).json()["token"]
    return token, fixture.answer_keys()[fixture.task_lists[0].pk]


def test_the_feedback_shown_after_an_answer_is_recorded_in_its_raw_data(
    api: Api, owner: User
) -> None:
    token, keys = started(api, owner)
    assert api.answer(token, 0, answer(1 - keys[0])).status_code == 201

    response = shown(api, token, 0, {"feedback_shown": True, "correct": False})

    assert response.status_code == 200
    assert response.json() == {"feedback_shown": True, "correct": False}
    stored = Response.objects.get(trial_index=0)
    assert stored.raw == {**AS_SENT, "feedback_shown": True, "correct": False,
                          "feedback_reported": True}  # fmt: skip
    assert stored.correct is False


def test_the_same_report_again_is_accepted_and_a_different_one_refused(
    api: Api, owner: User
) -> None:
    token, keys = started(api, owner)
    api.answer(token, 0, answer(keys[0]))
    body = {"feedback_shown": True, "correct": True}
    assert shown(api, token, 0, body).status_code == 200
    assert shown(api, token, 0, body).status_code == 200
    refused = shown(api, token, 0, {"feedback_shown": False, "correct": None})
    assert refused.status_code == 409 and refused.json()["error"] == "conflict"
    assert Response.objects.get(trial_index=0).raw["feedback_shown"] is True


def test_a_report_for_an_answer_not_stored_is_a_409_that_changes_nothing(
    api: Api, owner: User
) -> None:
    token, _ = started(api, owner)
    refused = shown(api, token, 3, {"feedback_shown": True, "correct": True})
    assert refused.status_code == 409 and refused.json()["error"] == "answer_missing"
    assert not Response.objects.exists()


def test_a_bad_report_is_a_400(api: Api, owner: User) -> None:
    token, keys = started(api, owner)
    api.answer(token, 0, answer(keys[0]))
    for body in ({}, {"feedback_shown": "maybe"}, [1]):
        response = shown(api, token, 0, body)  # type: ignore[arg-type]
        assert response.status_code == 400, body
    assert Response.objects.get(trial_index=0).raw == AS_SENT


def test_a_practice_answer_records_its_feedback_too(api: Api, owner: User) -> None:
    token, _ = started(api, owner, n_practice=2)
    api.put(f"/api/v1/sessions/{token}/practice/1/1", answer(1))
    url = f"/api/v1/sessions/{token}/practice/1/1/shown"
    assert api.put(url, {"feedback_shown": True, "correct": True}).status_code == 200
    stored = PracticeResponse.objects.get(attempt=1, practice_index=1)
    assert stored.raw["feedback_shown"] is True and stored.raw["correct"] is True
    missing = api.put(f"/api/v1/sessions/{token}/practice/2/1/shown", {"feedback_shown": True})
    assert missing.status_code == 409
