"""What a participant sees on a phone and on a bad connection, in Debian's Chromium (issue #21):
the window check comes before any session (a phone that cannot take part holds no task list, and
gets the study's own message, not a connection error), a trial appears only once its images are
decoded, and the stored raw data says what the page actually showed (feedback, image loading).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.participation.models import Response, Session
from backend.studies.models import TaskList, Trial
from tests.e2e.test_participant_study import (
    CURRENT_QUERY,
    N_TRIALS,
    PID,
    PROLIFIC,
    answer_trials,
    assert_every_answer_stored_once,
    begin,
    own_rate_limit_counts,  # noqa: F401  (autouse fixture)
    query_url,
    study_url,
    wait_for_responses,
)
from tests.participation.factories import StudyFixture, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}


@pytest.fixture
def desktop_study(owner: User) -> StudyFixture:
    return make_study(owner, n_main=6, n_catch=1, min_window_width=800, min_window_height=600)


def context_page(browser: Any, **options: Any) -> Iterator[Any]:
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    context.route(
        f"{PROLIFIC}**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>"),
    )
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    yield from context_page(browser, **PHONE)


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    yield from context_page(browser, viewport={"width": 1280, "height": 800})


def api_calls(page: Any) -> list[str]:
    calls: list[str] = []
    page.on("request", lambda r: calls.append(f"{r.method} {r.url}") if "/api/" in r.url else None)
    return calls


def test_a_phone_too_small_for_the_study_gets_its_message_and_holds_no_task_list(
    live_server: Any, phone: Any, desktop_study: StudyFixture
) -> None:
    calls = api_calls(phone)
    phone.goto(study_url(live_server, desktop_study))
    phone.get_by_role("heading", name="Your window is too small").wait_for()
    text = phone.locator("main").inner_text()
    assert "at least 800 × 600 pixels" in text and "Yours is now 390 × 844" in text
    assert "sideways" not in text  # 844 × 390 would not fit either
    assert not Session.objects.exists()

    phone.get_by_role("button", name="I cannot make the window larger").click()

    phone.get_by_role("heading", name="This study needs a larger screen").wait_for()
    assert "return the study on Prolific" in phone.locator("main").inner_text()
    assert phone.get_by_text("Connection problem").count() == 0
    assert not Session.objects.exists()
    assert TaskList.objects.get().sessions_started == 0
    assert all("/sessions" not in call and "/complete" not in call for call in calls), calls


def test_a_session_resumed_on_a_screen_too_small_ends_and_frees_its_list(
    live_server: Any, desktop: Any, desktop_study: StudyFixture
) -> None:
    desktop.goto(study_url(live_server, desktop_study))
    begin(desktop)
    answer_trials(desktop, 2)
    session = Session.objects.get(participant__platform_id=PID)
    wait_for_responses(session, 2)
    assert TaskList.objects.get().sessions_started == 1

    desktop.set_viewport_size({"width": 640, "height": 480})
    desktop.reload()
    desktop.get_by_role("button", name="I cannot make the window larger").click()
    desktop.get_by_role("heading", name="This study needs a larger screen").wait_for()

    deadline = time.monotonic() + 10
    while Session.objects.get(pk=session.pk).state != Session.State.ENDED:
        assert time.monotonic() < deadline, "the session did not end"
        time.sleep(0.1)
    session.refresh_from_db()
    assert session.end_reason == "window_too_small" and session.n_answered == 2
    assert TaskList.objects.get().sessions_started == 0


def test_turning_a_tablet_sideways_is_suggested_only_where_it_fits_and_then_starts(
    live_server: Any, browser: Any, desktop_study: StudyFixture
) -> None:
    for page in context_page(browser, viewport={"width": 700, "height": 900}, has_touch=True):
        page.goto(study_url(live_server, desktop_study))
        page.get_by_text("Turn your device sideways").wait_for()
        assert not Session.objects.exists()
        page.set_viewport_size({"width": 900, "height": 700})
        page.locator("#pl-consent-box").wait_for()
        assert Session.objects.count() == 1


def test_a_trial_appears_only_once_its_images_arrive_and_its_answer_records_what_was_shown(
    live_server: Any, desktop: Any, owner: User
) -> None:
    """An image of trial 3 fails to load: the trial stays hidden (no key, no button answers
    it), the page says it waits for the connection, and it appears once the image arrives.
    Feedback is on: every stored answer's raw data says it was shown, with its verdict."""
    fixture = make_study(
        owner, n_main=6, n_catch=1, feedback=True, feedback_delay_ms=1500,
        feedback_duration_ms=200,
    )  # fmt: skip
    blocked = query_url(Trial.objects.get(task_list=fixture.task_lists[0], index=3), 1)
    refused: list[str] = []

    def offline(route: Any) -> None:
        refused.append(route.request.url)
        route.abort("internetdisconnected")

    desktop.route(f"**{blocked}", offline)
    desktop.goto(study_url(live_server, fixture))
    begin(desktop)
    answer_trials(desktop, 3)
    session = Session.objects.get(participant__platform_id=PID)
    desktop.get_by_text("Waiting for the connection").wait_for()
    time.sleep(6)  # longer than the old page waited before showing a trial anyway
    desktop.keyboard.press("3")
    desktop.wait_for_timeout(500)
    assert refused and Response.objects.filter(session=session).count() == 3
    assert desktop.locator(CURRENT_QUERY).count() == 0

    desktop.unroute(f"**{blocked}")
    desktop.evaluate("() => window.dispatchEvent(new Event('online'))")
    desktop.locator(CURRENT_QUERY).wait_for()
    assert desktop.locator(".pl-waiting").is_hidden()
    answer_trials(desktop, N_TRIALS - 3)
    desktop.wait_for_url(f"{PROLIFIC}**")
    assert_every_answer_stored_once(session)

    waited = Response.objects.get(session=session, trial_index=3).raw
    assert waited["images_loaded"] is True and waited["images"] == 6
    assert waited["image_retries"] >= 1 and waited["load_ms"] >= 6000
    deadline = time.monotonic() + 10
    while Response.objects.filter(session=session, raw__feedback_reported=True).count() < 7:
        assert time.monotonic() < deadline, "the feedback reports did not all arrive"
        time.sleep(0.1)
    for response in Response.objects.filter(session=session):
        assert response.raw["feedback_shown"] is True, response.trial_index
        assert response.raw["correct"] is response.correct, response.trial_index
