"""Well-formed JSON that the stack cannot store is a clear 400 that changes nothing (the page's
outbox retries a 5xx for ever, so a 4xx is what lets a session finish): lone surrogate escapes,
nesting a thousand levels deep, numbers out of range, on the participant and researcher APIs."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from backend.participation.models import Response, Session, SessionEvent
from tests.participation.factories import BROWSER, answer, make_study, prolific

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000
ANSWER = json.dumps(answer(0))


def answer_with(raw_text: str) -> str:
    """An answer body whose `raw` is the given JSON text (as it is, not re-encoded)."""
    return ANSWER.replace('{"rt": 1234.5, "trial_type": "reference-choice"}', raw_text)


BAD_ANSWERS = {
    "lone surrogate": answer_with('{"note": "\\ud800"}'),
    "lone surrogate key": answer_with('{"\\udfff": 1}'),
    "deep nesting": answer_with(DEEP),
    "huge float": answer_with('{"x": 1e400}'),
    "too many digits": answer_with('{"x": ' + "9" * 5000 + "}"),
    "NaN": answer_with('{"x": NaN}'),
}


def start_body(**browser: object) -> str:
    return json.dumps({"platform": prolific(), "browser": {**BROWSER, **browser}})


BAD_STARTS = {
    "huge float in an integer field": start_body().replace('"screen_w": 1920', '"screen_w": 1e400'),
    "lone surrogate": start_body(user_agent="\ud800"),
    "deep nesting": start_body().replace('"touch": false', f'"touch": {DEEP}'),
}


def send(client: Client, method: str, url: str, text: str) -> object:
    call = getattr(client, method)
    return call(url, text, content_type="application/json")


@pytest.mark.parametrize("case", sorted(BAD_STARTS))
def test_a_start_the_stack_cannot_store_is_a_400_and_starts_nothing(
    client: Client, owner: User, case: str
) -> None:
    fixture = make_study(owner)
    response = send(client, "post", f"/api/v1/studies/{fixture.study.slug}/sessions",
                    BAD_STARTS[case])  # fmt: skip
    assert response.status_code == 400, response.content  # type: ignore[attr-defined]
    assert response.json()["error"] == "parse_error"  # type: ignore[attr-defined]
    assert not Session.objects.exists()


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_an_answer_the_stack_cannot_store_is_a_400_and_stores_nothing(
    client: Client, owner: User, case: str
) -> None:
    fixture = make_study(owner)
    started = send(client, "post", f"/api/v1/studies/{fixture.study.slug}/sessions", start_body())
    token = started.json()["token"]  # type: ignore[attr-defined]
    for index in (0, 3):  # the fast path (the next trial) and DRF's (out of order)
        url = f"/api/v1/sessions/{token}/responses/{index}"
        response = send(client, "put", url, BAD_ANSWERS[case])
        assert response.status_code == 400, (index, response.content)  # type: ignore[attr-defined]
        assert "message" in response.json()  # type: ignore[attr-defined]
    assert not Response.objects.exists()
    assert send(client, "put", f"/api/v1/sessions/{token}/responses/0", ANSWER).status_code == 201  # type: ignore[attr-defined]


@pytest.mark.parametrize("detail", ['{"x": "\\ud800"}', DEEP, '{"seconds": 1e400}'])
def test_an_event_the_stack_cannot_store_is_a_400_and_stores_nothing(
    client: Client, owner: User, detail: str
) -> None:
    fixture = make_study(owner)
    started = send(client, "post", f"/api/v1/studies/{fixture.study.slug}/sessions", start_body())
    token = started.json()["token"]  # type: ignore[attr-defined]
    body = '{"events": [{"type": "instructions_read", "detail": ' + detail + "}]}"
    response = send(client, "post", f"/api/v1/sessions/{token}/events", body)
    assert response.status_code == 400, response.content  # type: ignore[attr-defined]
    assert not SessionEvent.objects.exists()


def test_the_researcher_api_refuses_a_lone_surrogate_and_changes_nothing(
    client: Client, owner: User
) -> None:
    fixture = make_study(owner)
    key = Token.objects.create(user=owner).key
    response = client.patch(
        f"/api/v1/researcher/studies/{fixture.study.slug}/",
        '{"title": "x\\ud800"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 400 and response.json()["error"] == "parse_error"
    fixture.study.refresh_from_db()
    assert fixture.study.title == "Which image?"
