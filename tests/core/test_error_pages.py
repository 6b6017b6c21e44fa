"""With DEBUG off (production), every error a participant or researcher can reach (400, 404,
405, 413, 500) is JSON with a message on the API and a plain page elsewhere, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.participation import api as participant_api
from backend.participation import page as participant_page
from tests.participation.factories import make_study, prolific

pytestmark = pytest.mark.django_db
DEBUG_MARKERS = ("Traceback", "DEBUG = True", "technical_500", "Request Method:", 'File "')


@pytest.fixture
def production(settings: Any) -> Client:
    settings.DEBUG = False
    return Client(raise_request_exception=False)


def assert_json_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["error"] and body["message"], body
    assert not any(marker in response.content.decode() for marker in DEBUG_MARKERS)


def assert_plain_page(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    assert not any(marker in response.content.decode() for marker in DEBUG_MARKERS)


def boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("secret internals /srv/psylens/settings.py")


def test_api_errors_are_json_without_a_traceback(
    production: Client, owner: User, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    slug = make_study(owner).study.slug
    assert_json_error(production.get("/api/v1/no/such/endpoint"), 404)
    assert_json_error(production.get("/api/v1/sessions/" + "x" * 32), 404)
    assert_json_error(production.put(f"/api/v1/studies/{slug}/sessions"), 405)
    big = json.dumps({"platform": prolific(), "browser": {"pad": "x" * 70_000}})
    assert_json_error(production.post(f"/api/v1/studies/{slug}/sessions", big,
                                      content_type="application/json"), 413)  # fmt: skip
    assert_json_error(production.post(f"/api/v1/studies/{slug}/sessions", "{not json",
                                      content_type="application/json"), 400)  # fmt: skip
    token = production.post(f"/api/v1/studies/{slug}/sessions", json.dumps(
        {"platform": prolific()}), content_type="application/json").json()["token"]  # fmt: skip
    monkeypatch.setattr(participant_api.payloads, "state_payload", boom)
    response = production.get(f"/api/v1/sessions/{token}")
    assert_json_error(response, 500)
    assert b"secret internals" not in response.content


def test_pages_errors_are_plain_pages_without_a_traceback(
    production: Client, owner: User, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    slug = make_study(owner).study.slug
    assert_plain_page(production.get("/no/such/page/"), 404)
    assert_plain_page(production.get("/s/no-such-study/"), 404)
    assert production.post(f"/s/{slug}/").status_code == 405
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    assert_plain_page(production.post("/admin/login/", {"username": "x" * 5_000}), 400)
    monkeypatch.setattr(participant_page, "frame_ancestors", boom)
    response = production.get(f"/s/{slug}/")
    assert_plain_page(response, 500)
    assert b"secret internals" not in response.content
