"""MTurk shows the study in an iframe (ExternalQuestion): in Debian's Chromium, a worker on
www.mturk.com does the whole study inside the frame and submits the HIT through the
externalSubmit form; the HIT preview shows the page's own message; the admin refuses any frame.

mturk.com is answered locally (Playwright routes), so nothing outside loopback is reached. Its
pages are "public" to Chromium and the test server is on loopback, which Chromium's Local
Network Access would block for any public page: the context grants mturk.com that permission,
as a real deployment (public server) never needs it, so that what is tested is the server's own
framing headers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from django.contrib.auth.models import User

from backend.participation.models import Session
from tests.e2e.test_participant_study import (
    N_TRIALS,
    answer_trials,
    assert_every_answer_stored_once,
    begin,
    own_rate_limit_counts,  # noqa: F401  (autouse fixture)
)
from tests.participation.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MTURK = "https://www.mturk.com"
HIT_PAGE = f"{MTURK}/mturk/preview"
SUBMIT = f"{MTURK}/mturk/externalSubmit"


def mturk_site(page: Any, framed_url: str, submitted: list[str]) -> None:
    """mturk.com: the HIT page frames `framed_url`; the externalSubmit POST is recorded."""

    def answer(route: Any) -> None:
        request = route.request
        if request.url.startswith(SUBMIT):
            submitted.append(request.post_data or "")
            route.fulfill(status=200, content_type="text/html", body="<p>HIT submitted</p>")
        else:
            body = f'<h1>HIT</h1><iframe id="hit" src="{framed_url}" width=1200 height=800>'
            route.fulfill(status=200, content_type="text/html", body=body + "</iframe>")

    page.context.grant_permissions(["local-network-access"], origin=MTURK)
    page.context.route(f"{MTURK}/**", answer)


def page_framing(target: str) -> Any:
    """A route handler answering with a page that frames `target`."""
    body = f'<iframe id="hit" src="{target}"></iframe>'
    return lambda route: route.fulfill(status=200, content_type="text/html", body=body)


def framed(page: Any, url: str) -> Any:
    """The frame `#hit` of the page at `url`, once loaded (or refused)."""
    page.goto(url)
    frame = page.locator("#hit").element_handle().content_frame()
    assert frame is not None
    return frame


def worker_url(live_server: Any, slug: str, assignment: str = "ASSIGN1") -> str:
    query = f"assignmentId={assignment}&hitId=HIT1&workerId=WORKER1"
    return f"{live_server.url}/s/{slug}/?{query}&turkSubmitTo={quote(MTURK, safe='')}"


@pytest.fixture
def big_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_worker_does_the_study_in_mturks_frame_and_submits_the_hit(
    live_server: Any, big_page: Any, owner: User
) -> None:
    fixture = make_study(owner, platform="mturk", n_main=6, n_catch=1)
    submitted: list[str] = []
    mturk_site(big_page, worker_url(live_server, fixture.study.slug), submitted)

    frame = framed(big_page, HIT_PAGE)
    begin(frame)
    with big_page.expect_request(lambda r: r.url.startswith(SUBMIT), timeout=30_000) as posted:
        answer_trials(frame, N_TRIALS)
    assert posted.value.method == "POST"
    frame = big_page.locator("#hit").element_handle().content_frame()
    frame.get_by_text("HIT submitted").wait_for()

    assert len(submitted) == 1
    fields = parse_qs(submitted[0])
    assert fields["assignmentId"] == ["ASSIGN1"]
    assert fields["completion_code"] == [fixture.study.completion_code]
    session = Session.objects.get(participant__platform_id="WORKER1")
    assert session.participant.platform == "mturk"
    assert_every_answer_stored_once(session)


def test_the_hit_preview_shows_the_pages_own_message_in_the_frame(
    live_server: Any, big_page: Any, owner: User
) -> None:
    fixture = make_study(owner, platform="mturk")
    url = worker_url(live_server, fixture.study.slug, "ASSIGNMENT_ID_NOT_AVAILABLE")
    mturk_site(big_page, url, [])

    frame = framed(big_page, HIT_PAGE)
    frame.get_by_text("Please accept the HIT to begin the study.").wait_for()
    assert not Session.objects.exists()


def test_the_admin_and_other_sites_cannot_frame_psylens(
    live_server: Any, big_page: Any, owner: User
) -> None:
    fixture = make_study(owner, platform="mturk")
    for target, parent in (
        (f"{live_server.url}/admin/login/", MTURK),
        (worker_url(live_server, fixture.study.slug), "https://phishing.example"),
    ):
        big_page.context.grant_permissions(["local-network-access"], origin=parent)
        big_page.context.route(f"{parent}/**", page_framing(target))
        frame = framed(big_page, f"{parent}/page")
        assert frame.url.startswith("chrome-error://"), target
        assert frame.locator("#id_username, .pl-page").count() == 0, target
