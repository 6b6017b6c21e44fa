"""Answers: stored and scored once, idempotent repeats, conflicts, feedback by design, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.participation.models import PracticeResponse, Response, Session, SessionEvent
from tests.participation.conftest import Api
from tests.participation.factories import StudyFixture, answer, make_study, prolific

pytestmark = pytest.mark.django_db


def started(api: Api, fixture: StudyFixture) -> str:
    return str(api.start(fixture.study.slug, prolific()).json()["token"])


def key_of(fixture: StudyFixture, index: int) -> int:
    return fixture.answer_keys()[fixture.task_lists[0].pk][index]


def test_an_answer_is_stored_scored_and_acknowledged_with_feedback(api: Api, owner: User) -> None:
    fixture = make_study(owner, feedback=True, show_counter=True)
    token = started(api, fixture)
    response = api.answer(token, 0, answer(key_of(fixture, 0)))
    assert response.status_code == 201
    assert response.json() == {
        "trial_index": 0,
        "next_trial_index": 1,
        "correct_count": 1,
        "feedback": {"correct": True},
    }
    stored = Response.objects.get()
    assert (stored.trial_index, stored.choice, stored.confidence, stored.rt_ms) == (
        0,
        key_of(fixture, 0),
        2,
        1234.5,
    )
    assert stored.correct and stored.raw["trial_type"] == "reference-choice"
    assert stored.client_answered_at is not None and stored.received_at is not None


def test_without_feedback_or_counter_the_acknowledgement_reveals_nothing(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, feedback=False, show_counter=False)
    token = started(api, fixture)
    response = api.answer(token, 0, answer(1 - key_of(fixture, 0)))
    assert response.json() == {"trial_index": 0, "next_trial_index": 1}
    assert api.state(token).json()["correct_count"] is None
    assert Response.objects.get().correct is False


def test_the_same_answer_again_gets_the_same_acknowledgement_and_no_second_row(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, feedback=True, show_counter=True)
    token = started(api, fixture)
    first = api.answer(token, 0, answer(0))
    again = api.answer(token, 0, answer(0, raw={"reordered": True}))
    assert again.status_code == 200 and again.json() == first.json()
    assert Response.objects.count() == 1
    assert Session.objects.get().n_answered == 1


def test_a_different_answer_to_a_stored_trial_is_a_conflict_and_changes_nothing(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    token = started(api, fixture)
    api.answer(token, 0, answer(0))
    response = api.answer(token, 0, answer(1))
    assert response.status_code == 409 and response.json()["error"] == "conflict"
    assert Response.objects.get().choice == 0
    assert Session.objects.get().correct_count == int(key_of(fixture, 0) == 0)


def test_answers_out_of_order_move_the_next_index_past_every_answered_trial(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner)
    token = started(api, fixture)
    for index in (0, 2, 3):
        api.answer(token, index, answer(0))
    assert api.state(token).json()["next_trial_index"] == 1
    assert api.answer(token, 1, answer(0)).json()["next_trial_index"] == 4


@pytest.mark.parametrize(
    ("index", "body", "error"),
    [
        (7, answer(0), "trial_out_of_range"),
        (-1, answer(0), "trial_out_of_range"),
        (0, answer(2), "choice_not_offered"),
        (0, answer(0, rt_ms=-5), "invalid"),
        (0, answer(0, confidence=4), "invalid"),
        (0, answer(0, client_started_at="yesterday"), "invalid"),
        (0, {"confidence": 2, "rt_ms": 1}, "invalid"),
        (0, answer(0, raw={"text": "a\u0000b"}), "invalid"),
    ],
)
def test_a_bad_answer_is_a_400_with_a_message_and_stores_nothing(
    api: Api, owner: User, index: int, body: dict, error: str
) -> None:
    fixture = make_study(owner)
    token = started(api, fixture)
    response = api.answer(token, index, body)
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["message"]
    assert not Response.objects.exists()
    assert Session.objects.get().n_answered == 0


def test_malformed_json_is_a_400(api: Api, owner: User) -> None:
    token = started(api, make_study(owner))
    response = api.client.put(
        f"/api/v1/sessions/{token}/responses/0", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"] == "parse_error"
    assert not Response.objects.exists()


def test_a_body_over_64_kib_is_a_413(api: Api, owner: User) -> None:
    token = started(api, make_study(owner))
    response = api.answer(token, 0, answer(0, raw={"blob": "x" * 70_000}))
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert not Response.objects.exists()


def test_an_unknown_token_is_a_404(api: Api, owner: User) -> None:
    make_study(owner)
    bogus = "A" * 32
    assert api.answer(bogus, 0, answer(0)).status_code == 404
    assert api.state(bogus).json()["error"] == "not_found"
    assert api.client.get("/api/v1/sessions/short").status_code == 404


def test_practice_answers_always_get_feedback_and_pass_when_a_round_is_all_correct(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, n_practice=2, feedback=False)
    token = started(api, fixture)
    url = f"/api/v1/sessions/{token}/practice"
    wrong = api.put(f"{url}/1/0", answer(1))  # practice 0's key is 0
    assert wrong.status_code == 201
    assert wrong.json() == {"feedback": {"correct": False}, "attempt": 1}
    api.put(f"{url}/1/1", answer(1))
    assert api.state(token).json()["practice_passed"] is False
    assert api.put(f"{url}/3/0", answer(0)).status_code == 400  # round 3 before round 2
    api.put(f"{url}/2/0", answer(0))
    assert api.put(f"{url}/2/1", answer(1)).json()["feedback"] == {"correct": True}
    state = api.state(token).json()
    assert state["practice_passed"] is True and state["practice_attempts"] == 2
    assert PracticeResponse.objects.count() == 4
    assert api.put(f"{url}/2/1", answer(0)).status_code == 409


def test_practice_blocks_between_main_blocks_loop_and_count_their_own_attempts(
    api: Api, owner: User
) -> None:
    """Two practice blocks (as a block schedule lays them out): trial 0 before the first main
    trial, trials 1–2 before main trial 3; each block's rounds are its own."""
    fixture = make_study(owner, n_practice=3)
    practice = list(fixture.study.practice_trials.order_by("index").values_list("pk", flat=True))
    fixture.task_lists[0].practice_blocks = [
        {"before": 0, "condition": "natural", "trials": practice[:1]},
        {"before": 3, "condition": "natural", "trials": practice[1:]},
    ]
    fixture.task_lists[0].save()
    started_session = api.start(fixture.study.slug, prolific()).json()
    token = started_session["token"]
    assert [t["block"] for t in started_session["practice"]] == [0, 1, 1]
    assert [t["index"] for t in started_session["practice"]] == [0, 1, 2]
    assert started_session["state"]["practice_blocks"] == [
        {"block": 0, "before": 0, "size": 1, "attempts": 0, "passed": False},
        {"block": 1, "before": 3, "size": 2, "attempts": 0, "passed": False},
    ]
    url = f"/api/v1/sessions/{token}/practice"
    assert api.put(f"{url}/1/0", answer(0)).json()["feedback"] == {"correct": True}
    state = api.state(token).json()
    assert [b["passed"] for b in state["practice_blocks"]] == [True, False]
    assert state["practice_passed"] is False and state["practice_attempts"] == 1
    assert api.put(f"{url}/2/1", answer(1)).status_code == 400  # block 1's round 2 before 1
    api.put(f"{url}/1/1", answer(0))  # practice 1's key is 1: wrong
    api.put(f"{url}/1/2", answer(0))
    api.put(f"{url}/2/1", answer(1))
    api.put(f"{url}/2/2", answer(0))
    state = api.state(token).json()
    assert state["practice_blocks"][1] == {
        "block": 1, "before": 3, "size": 2, "attempts": 2, "passed": True}  # fmt: skip
    assert state["practice_passed"] is True and state["practice_attempts"] == 2
    assert api.put(f"{url}/1/3", answer(0)).status_code == 400  # no practice trial 3
    assert PracticeResponse.objects.count() == 5
    session = Session.objects.get()
    assert (session.practice_passed, session.practice_attempts) == (True, 2)


def test_block_feedback_scores_each_answer_and_the_state_keeps_each_blocks_score(
    api: Api, owner: User
) -> None:
    """Borowski et al. 2021's score after each block: the page needs each answer's verdict
    (even without feedback after each trial) and, after a reload, the blocks' scores so far."""
    fixture = make_study(owner, feedback=False, block_feedback=True)
    fixture.task_lists[0].trials.filter(index__gte=3).update(block=1)
    token = started(api, fixture)
    first = api.answer(token, 0, answer(key_of(fixture, 0)))  # the one-statement path
    assert first.json()["feedback"] == {"correct": True}
    api.answer(token, 2, answer(key_of(fixture, 2)))  # out of order: the careful path
    wrong = api.answer(token, 1, answer(1 - key_of(fixture, 1)))
    assert wrong.json()["feedback"] == {"correct": False}
    api.answer(token, 3, answer(key_of(fixture, 3)))
    assert api.state(token).json()["block_scores"] == [
        {"block": 0, "answered": 3, "correct": 2},
        {"block": 1, "answered": 1, "correct": 1},
    ]
    plain = make_study(owner, feedback=False)
    other = str(api.start(plain.study.slug, prolific("other0participant")).json()["token"])
    assert "feedback" not in api.answer(other, 0, answer(0)).json()
    assert "block_scores" not in api.state(other).json()


def test_events_are_stored_and_bad_batches_refused(api: Api, owner: User) -> None:
    token = started(api, make_study(owner))
    url = f"/api/v1/sessions/{token}/events"
    events = [
        {"type": "blur", "t": "2026-11-22T10:00:00Z", "detail": {}},
        {"type": "resize", "t": "2026-11-22T10:00:01Z", "detail": {"w": 800, "h": 600}},
    ]
    assert api.post(url, {"events": events}).status_code == 204
    assert list(SessionEvent.objects.values_list("type", flat=True)) == ["blur", "resize"]
    too_many = {"events": [events[0]] * 101}
    assert api.post(url, too_many).status_code == 400
    assert api.post(url, {"events": [{"type": "dance"}]}).status_code == 400
    assert SessionEvent.objects.count() == 2


def test_completion_needs_every_trial_then_counts_once(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    token = started(api, fixture)
    for index in range(5):
        api.answer(token, index, answer(0))
    missing = api.complete(token)
    assert missing.status_code == 409
    assert missing.json()["error"] == "trials_missing" and missing.json()["missing"] == [5, 6]
    for index in (5, 6):
        api.answer(token, index, answer(0))
    done = api.complete(token)
    assert done.status_code == 200
    assert done.json() == {
        "completion_code": "C0FFEE12",
        "redirect_url": "https://app.prolific.com/submissions/complete?cc=C0FFEE12",
        "mturk_form": None,
        "message": done.json()["message"],
    }
    assert api.complete(token).json() == done.json()
    fixture.task_lists[0].refresh_from_db()
    assert fixture.task_lists[0].sessions_completed == 1
    state = api.state(token).json()
    assert state["completed"] is True and state["completion"] == done.json()
    again = api.start(fixture.study.slug, prolific()).json()
    assert again["state"]["completed"] is True and again["trials"] == []


def test_an_mturk_worker_completes_through_the_external_submit_form(api: Api, owner: User) -> None:
    fixture = make_study(owner, platform="mturk", n_main=1, n_catch=0)
    worker = {"assignmentId": "A9", "workerId": "W9", "turkSubmitTo": "https://www.mturk.com/"}
    token = api.start(fixture.study.slug, worker).json()["token"]
    api.answer(token, 0, answer(0))
    done = api.complete(token).json()
    assert done["redirect_url"] is None
    assert done["mturk_form"] == {
        "action": "https://www.mturk.com/mturk/externalSubmit",
        "fields": {"assignmentId": "A9", "completion_code": "C0FFEE12"},
    }


def test_a_plain_link_participant_gets_the_code_and_a_message(api: Api, owner: User) -> None:
    fixture = make_study(owner, platform="link", n_main=1, n_catch=0)
    token = api.start(fixture.study.slug, {}).json()["token"]
    api.answer(token, 0, answer(1))
    done = api.complete(token).json()
    assert (done["redirect_url"], done["mturk_form"]) == (None, None)
    assert "C0FFEE12" in done["message"]


def test_pilot_completions_do_not_count(api: Api, owner: User) -> None:
    fixture = make_study(owner, state="pilot", n_main=1, n_catch=0)
    token = api.start(fixture.study.slug, {"pilot": fixture.study.pilot_token}).json()["token"]
    api.answer(token, 0, answer(0))
    assert api.complete(token).json()["redirect_url"] is None
    fixture.task_lists[0].refresh_from_db()
    assert fixture.task_lists[0].sessions_completed == 0


def test_the_openapi_schema_lists_the_participant_api(api: Api) -> None:
    schema = api.client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/sessions/{token}/responses/{trial_index}" in paths
    assert "/api/v1/studies/{slug}/sessions" in paths


def test_an_answer_in_order_costs_one_statement(
    api: Api, owner: User, django_assert_num_queries: Any
) -> None:
    fixture = make_study(owner, feedback=True)
    token = started(api, fixture)
    api.answer(token, 0, answer(0))
    with django_assert_num_queries(1) as captured:  # lock, score, insert, advance: one round trip
        assert api.answer(token, 1, answer(0)).status_code == 201
    assert captured.captured_queries[0]["sql"].startswith("EXECUTE")
    assert Response.objects.filter(session__token=token).count() == 2
