"""The one-statement path of the response PUT and its hand-over to the careful path: repeats,
conflicts, races, lapsed leases, completed sessions, answers out of order."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from backend.participation.models import Response, Session
from backend.studies.models import TaskList
from tests.participation.conftest import Api
from tests.participation.factories import StudyFixture, answer, make_study, prolific

pytestmark = pytest.mark.django_db


def started(api: Api, fixture: StudyFixture, pid: str = "5f0c2a9e8b1d4c3a2b1e0f9d") -> str:
    return str(api.start(fixture.study.slug, prolific(pid)).json()["token"])


def key_of(fixture: StudyFixture, index: int) -> int:
    return fixture.answer_keys()[fixture.task_lists[0].pk][index]


def test_the_fast_path_scores_and_counts_like_the_careful_path(api: Api, owner: User) -> None:
    fixture = make_study(owner, feedback=True, show_counter=True)
    token = started(api, fixture)
    acks = [
        api.answer(token, i, answer(key_of(fixture, i) if i % 2 else 1 - key_of(fixture, i)))
        for i in range(4)
    ]
    assert [a.status_code for a in acks] == [201] * 4
    assert [a.json()["feedback"]["correct"] for a in acks] == [False, True, False, True]
    assert [a.json()["correct_count"] for a in acks] == [0, 1, 1, 2]
    assert [a.json()["next_trial_index"] for a in acks] == [1, 2, 3, 4]
    session = Session.objects.get(token=token)
    assert (session.n_answered, session.next_trial_index, session.correct_count) == (4, 4, 2)
    stored = Response.objects.order_by("trial_index")
    assert [r.correct for r in stored] == [False, True, False, True]
    assert [r.trial_id for r in stored] == list(
        fixture.task_lists[0].trials.order_by("index").values_list("pk", flat=True)[:4]
    )
    assert all(r.received_at is not None and r.raw for r in stored)


def test_a_repeat_of_a_fast_answer_gets_200_and_the_same_acknowledgement(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, feedback=True, show_counter=True)
    token = started(api, fixture)
    first = api.answer(token, 0, answer(key_of(fixture, 0)))
    again = api.answer(token, 0, answer(key_of(fixture, 0)))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    session = Session.objects.get(token=token)
    assert (session.n_answered, session.correct_count, Response.objects.count()) == (1, 1, 1)


def test_a_different_body_after_a_fast_answer_is_a_409_and_changes_nothing(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, show_counter=True)
    token = started(api, fixture)
    api.answer(token, 0, answer(0))
    for changed in (answer(1), answer(0, confidence=3), answer(0, rt_ms=99.0)):
        response = api.answer(token, 0, changed)
        assert response.status_code == 409 and response.json()["error"] == "conflict"
    stored = Response.objects.get()
    assert (stored.choice, stored.confidence, stored.rt_ms) == (0, 2, 1234.5)
    assert Session.objects.get(token=token).n_answered == 1


def test_a_choice_not_offered_is_refused_without_a_write(api: Api, owner: User) -> None:
    fixture = make_study(owner)
    token = started(api, fixture)
    for choice in (2, 40_000, 10**20):
        assert api.answer(token, 0, answer(choice)).json()["error"] == "choice_not_offered"
    assert not Response.objects.exists()
    assert api.answer(token, 0, answer(1)).status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"choice": 0, "confidence": 2, "rt_ms": 1, "raw": {"huge": 1e400}}', "parse_error"),
        ('{"choice": 0, "confidence": 2, "rt_ms": NaN}', "parse_error"),
        ('{"choice": 0, "confidence": 2, "rt_ms": 1e400}', "parse_error"),
        ('{"choice": 0, "confidence": 2, "rt_ms": 1', "parse_error"),
        ("[0, 2, 1]", "invalid"),
    ],
)
def test_bodies_that_are_not_storable_answers_are_a_400(
    api: Api, owner: User, body: str, error: str
) -> None:
    token = started(api, make_study(owner))
    response = api.client.put(
        f"/api/v1/sessions/{token}/responses/0", body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"] == error
    assert not Response.objects.exists()
    assert Session.objects.get(token=token).n_answered == 0


def test_a_put_without_a_json_content_type_goes_the_careful_way(api: Api, owner: User) -> None:
    token = started(api, make_study(owner))
    body = '{"choice": 0, "confidence": 2, "rt_ms": 1}'
    url = f"/api/v1/sessions/{token}/responses/0"
    assert api.client.put(url, body, content_type="text/plain").status_code == 415
    assert api.client.put(url, body, content_type="application/json").status_code == 201


def test_an_answer_after_a_lapsed_lease_renews_it_through_the_careful_path(
    api: Api, owner: User
) -> None:
    fixture = make_study(owner, time_limit_minutes=30)
    token = started(api, fixture)
    then = timezone.now() - timedelta(minutes=31)
    Session.objects.filter(token=token).update(last_activity_at=then)
    assert api.answer(token, 0, answer(0)).status_code == 201
    session = Session.objects.get(token=token)
    assert session.state == Session.State.ACTIVE and session.last_activity_at > then


def test_an_abandoned_session_whose_list_was_given_away_gets_404(api: Api, owner: User) -> None:
    fixture = make_study(owner, time_limit_minutes=30)
    token = started(api, fixture, "slow")
    Session.objects.filter(token=token).update(
        last_activity_at=timezone.now() - timedelta(minutes=31)
    )
    started(api, fixture, "next")  # abandons "slow" and hands its list on
    response = api.answer(token, 0, answer(0))
    assert response.status_code == 404 and response.json()["error"] == "session_expired"
    assert not Response.objects.filter(session__token=token).exists()
    assert TaskList.objects.get().sessions_started == 1


def test_a_completed_session_answers_repeats_and_refuses_changes(api: Api, owner: User) -> None:
    fixture = make_study(owner, n_main=1, n_catch=0)
    token = started(api, fixture)
    first = api.answer(token, 0, answer(0))
    assert api.complete(token).status_code == 200
    assert api.answer(token, 0, answer(0)).json() == first.json()
    assert api.answer(token, 0, answer(1)).status_code == 409
    assert Response.objects.count() == 1


def test_answers_out_of_order_then_in_order_keep_the_counters_exact(api: Api, owner: User) -> None:
    fixture = make_study(owner, show_counter=True)
    token = started(api, fixture)
    for index in (1, 0, 2, 4, 3, 5):
        assert api.answer(token, index, answer(key_of(fixture, index))).status_code == 201
    session = Session.objects.get(token=token)
    assert (session.n_answered, session.next_trial_index, session.correct_count) == (6, 6, 6)
    assert api.answer(token, 6, answer(0)).json()["next_trial_index"] == 7


def _race(token: str, bodies: list[dict[str, Any]], index: int) -> list[int]:
    """PUTs the bodies at once from one thread each; returns the statuses."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def put(body: dict[str, Any]) -> None:
        barrier.wait()
        try:
            statuses.append(Api(Client()).answer(token, index, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=put, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_puts_store_exactly_one_row(owner: User) -> None:
    fixture = make_study(owner, show_counter=True)
    token = started(Api(Client()), fixture)
    for index in range(4):
        assert _race(token, [answer(0), answer(0)], index) == [200, 201]
        assert Response.objects.filter(session__token=token, trial_index=index).count() == 1
    session = Session.objects.get(token=token)
    assert (session.n_answered, session.next_trial_index) == (4, 4)
    expected = sum(key_of(fixture, index) == 0 for index in range(4))
    assert session.correct_count == expected


@pytest.mark.django_db(transaction=True)
def test_concurrent_different_puts_keep_one_answer_and_refuse_the_other(owner: User) -> None:
    fixture = make_study(owner)
    token = started(Api(Client()), fixture)
    assert _race(token, [answer(0), answer(1)], 0) == [201, 409]
    assert Response.objects.filter(session__token=token).count() == 1
    assert Session.objects.get(token=token).n_answered == 1


def test_an_answer_updates_its_session_without_writing_index_entries(api: Api, owner: User) -> None:
    fixture = make_study(owner, n_main=6)
    token = started(api, fixture)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [Session._meta.db_table]
        )
        assert "fillfactor=80" in cursor.fetchone()[0]
    before = session_updates()

    for index in range(5):
        assert api.answer(token, index, answer(1)).status_code == 201

    updates, heap_only = (now - then for now, then in zip(session_updates(), before, strict=True))
    assert updates >= 5 and heap_only == updates  # every UPDATE stayed on its page


def session_updates() -> tuple[int, int]:
    """(updates, heap-only updates) of the session table in this test's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
            [Session._meta.db_table],
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
