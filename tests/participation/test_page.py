"""The participant page route: the built index.html, a 404 page, a clear 503 without a build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db


def test_the_page_is_the_built_index_as_it_is(
    client: Client, owner: User, settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    settings.FRONTEND_DIST = tmp_path
    fixture = make_study(owner)
    response = client.get(f"/s/{fixture.study.slug}/?PROLIFIC_PID=abc")
    assert response.status_code == 200
    assert response.content == b"<!doctype html><div id=app></div>"
    assert response["Cache-Control"] == "no-store"


def test_an_unknown_study_page_is_a_404(client: Client) -> None:
    assert client.get("/s/no-such-study/").status_code == 404


def test_a_missing_build_is_a_clear_503(
    client: Client, owner: User, settings: Any, tmp_path: Path
) -> None:
    settings.FRONTEND_DIST = tmp_path / "nothing"
    fixture = make_study(owner)
    response = client.get(f"/s/{fixture.study.slug}/")
    assert response.status_code == 503
    assert response.content == b"frontend not built: run make"


def test_only_mturk_may_frame_the_participant_page_and_nobody_the_admin(
    client: Client, owner: User, settings: Any, tmp_path: Path
) -> None:
    """MTurk shows an ExternalQuestion in an iframe on its worker and sandbox sites."""
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    settings.FRONTEND_DIST = tmp_path
    fixture = make_study(owner, platform="mturk")
    page = client.get(f"/s/{fixture.study.slug}/?assignmentId=A&workerId=W&hitId=H")
    assert "X-Frame-Options" not in page
    assert page["Content-Security-Policy"] == (
        "frame-ancestors 'self' https://www.mturk.com https://workersandbox.mturk.com"
    )
    for path in ("/admin/login/", "/api/docs/"):
        assert client.get(path)["X-Frame-Options"] == "DENY", path
