"""A whole study in Debian's Chromium against the live server: a Prolific participant from the URL
to the redirect, a reload mid-study (Prolific and plain link), an offline spell, an API answering
503, a second tab, and no answer key anywhere the browser can see.

Needs the built frontend (`cd frontend && npm run build`).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from backend.participation.models import Response, Session
from backend.stimuli.models import Image
from backend.studies.models import Trial
from tests.participation.factories import StudyFixture, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PID = "5f0c2a9e8b1d4c3a2b1e0f9d"
N_TRIALS = 7  # 6 main + 1 catch
PROLIFIC = "https://app.prolific.com/"
HASHED_MEDIA = re.compile(r"^/media/img/[0-9a-f]{2}/[0-9a-f]{64}\.(png|jpg|jpeg|webp)$")
CURRENT_QUERY = ".pl-trial:not(.pl-loading) .pl-query[data-query='0'] img"


@pytest.fixture(autouse=True)
def own_rate_limit_counts(settings: Any) -> None:
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"e2e-{secrets.token_hex(6)}"
    settings.CACHES = caches


@pytest.fixture
def study(owner: User) -> StudyFixture:
    if not (settings.FRONTEND_DIST / "index.html").exists():
        pytest.fail("the frontend is not built: cd frontend && npm run build")
    return make_study(owner, n_main=6, n_catch=1)


@pytest.fixture
def prolific_landing(page: Any) -> Iterator[Any]:
    """Prolific's completion page, answered locally (nothing outside loopback is reached)."""
    page.context.route(
        f"{PROLIFIC}**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>"),
    )
    yield page


def study_url(live_server: Any, fixture: StudyFixture, pid: str = PID) -> str:
    query = f"PROLIFIC_PID={pid}&STUDY_ID=S1&SESSION_ID=X1"
    return f"{live_server.url}/s/{fixture.study.slug}/?{query}"


def begin(page: Any) -> None:
    """Consent, then the instructions (no fullscreen, no practice in these studies)."""
    page.locator("#pl-consent-box").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="I have read the instructions").click()


def answer_trials(page: Any, count: int, choice: int = 0) -> list[str]:
    """Answers `count` trials on screen; returns the top query URL of each."""
    shown = []
    for _ in range(count):
        src = page.locator(CURRENT_QUERY).get_attribute("src")
        shown.append(src)
        button = f".pl-btn[data-choice='{choice}'][data-confidence='3']:enabled"
        page.locator(button).click()
        page.wait_for_function(
            "([selector, old]) => { const img = document.querySelector(selector);"
            " return !img || img.getAttribute('src') !== old; }",
            arg=[CURRENT_QUERY, src],
        )
    return shown


def wait_for_preloaded(page: Any) -> None:
    """Until the page's preloader has every image it asked for (`data-pl-preloading` on <body>
    is 0): going offline sooner, a participant could not see the trials whose images are still
    on their way, by design."""
    page.wait_for_function("() => document.body.dataset.plPreloading === '0'")


def wait_for_responses(session: Session, count: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while Response.objects.filter(session=session).count() < count:
        assert time.monotonic() < deadline, "the answers did not reach the server"
        time.sleep(0.1)


def assert_every_answer_stored_once(session: Session) -> None:
    indices = list(Response.objects.filter(session=session).values_list("trial_index", flat=True))
    assert sorted(indices) == list(range(N_TRIALS))
    session.refresh_from_db()
    assert session.completed and session.n_answered == N_TRIALS


def query_url(trial: Trial, position: int) -> str:
    return Image.objects.get(pk=trial.queries[position]).url


def test_a_prolific_participant_goes_from_the_link_to_prolific_and_sees_no_answer_key(
    live_server: Any, prolific_landing: Any, study: StudyFixture
) -> None:
    page = prolific_landing
    seen: list[tuple[str, str]] = []
    page.on("response", lambda r: seen.append((r.url, r.text())) if "/api/" in r.url else None)
    html = page.goto(study_url(live_server, study)).text()
    begin(page)
    answer_trials(page, N_TRIALS)
    page.wait_for_url(f"{PROLIFIC}submissions/complete?cc=C0FFEE12")
    session = Session.objects.get(participant__platform_id=PID)
    assert_every_answer_stored_once(session)

    bundle = "".join(
        page.request.get(f"{live_server.url}{src}").text()
        for src in re.findall(r'src="([^"]+\.js)"', html)
    )
    assert_no_answer_key(study, html, bundle, seen)


def assert_no_answer_key(
    study: StudyFixture, html: str, bundle: str, seen: list[tuple[str, str]]
) -> None:
    """No key field, no key-bearing words, image URLs only content hashes, and the correct
    query never marked: it is never among the references of a main trial."""
    payloads = [body for url, body in seen if body]
    start = json.loads(next(body for url, body in seen if url.endswith("/sessions")))
    for text in [html, bundle, *payloads]:
        for word in ("correct_query", "query_source", "is_catch", "answer_key"):
            assert word not in text
    for body in payloads:
        assert '"correct"' not in body  # this study gives no feedback
    urls = [u for t in start["trials"] for u in [*t["queries"], *sum(t["references"].values(), [])]]
    assert urls and all(HASHED_MEDIA.match(url) for url in urls)
    for trial in Trial.objects.filter(task_list=study.task_lists[0], is_catch=False):
        served = start["trials"][trial.index]
        correct_url = query_url(trial, trial.correct_query)
        assert served["queries"] == [query_url(trial, 0), query_url(trial, 1)]
        assert correct_url not in served["references"]["left"] + served["references"]["right"]


def test_a_reload_mid_study_resumes_at_the_next_trial(
    live_server: Any, prolific_landing: Any, study: StudyFixture
) -> None:
    page = prolific_landing
    page.goto(study_url(live_server, study))
    begin(page)
    answer_trials(page, 3)
    session = Session.objects.get(participant__platform_id=PID)
    wait_for_responses(session, 3)
    page.reload()
    page.get_by_role("button", name="Continue").click()  # "Welcome back"
    fourth = Trial.objects.get(task_list=study.task_lists[0], index=3)
    page.wait_for_selector(CURRENT_QUERY)
    assert page.locator(CURRENT_QUERY).get_attribute("src") == query_url(fourth, 0)
    answer_trials(page, N_TRIALS - 3)
    page.wait_for_url(f"{PROLIFIC}**")
    assert_every_answer_stored_once(session)


def test_answers_given_offline_arrive_once_when_the_network_returns(
    live_server: Any, prolific_landing: Any, study: StudyFixture
) -> None:
    page = prolific_landing
    page.goto(study_url(live_server, study))
    begin(page)
    answer_trials(page, 2)
    session = Session.objects.get(participant__platform_id=PID)
    wait_for_responses(session, 2)
    wait_for_preloaded(page)  # the next preload_ahead (3) trials' images are in the cache
    page.context.set_offline(True)
    answer_trials(page, 3)
    time.sleep(1)
    assert Response.objects.filter(session=session).count() == 2
    page.context.set_offline(False)
    wait_for_responses(session, 5)
    answer_trials(page, N_TRIALS - 5)
    page.wait_for_url(f"{PROLIFIC}**")
    assert_every_answer_stored_once(session)


def test_answers_survive_the_api_answering_503_for_a_while(
    live_server: Any, prolific_landing: Any, study: StudyFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outage is made by the server itself: the browser sends answers with
    # fetch(keepalive), which DevTools request interception does not always catch.
    from django.http import JsonResponse

    from backend.participation import api

    page = prolific_landing
    refused: list[str] = []

    def unavailable(view: Any, request: Any, *args: Any, **kwargs: Any) -> JsonResponse:
        refused.append(request.path)
        return JsonResponse({"error": "down", "message": "Try again."}, status=503)

    page.goto(study_url(live_server, study))
    begin(page)
    with monkeypatch.context() as outage:
        outage.setattr(api.ResponseView, "dispatch", unavailable)
        answer_trials(page, 3)
        time.sleep(2)
    session = Session.objects.get(participant__platform_id=PID)
    assert refused and Response.objects.filter(session=session).count() == 0
    answer_trials(page, N_TRIALS - 3)
    page.wait_for_url(f"{PROLIFIC}**", timeout=40_000)
    assert_every_answer_stored_once(session)


def test_a_second_tab_with_the_same_prolific_id_gets_the_same_session(
    live_server: Any, browser: Any, study: StudyFixture
) -> None:
    tokens = []
    for _ in range(2):  # two separate browser contexts: no shared storage at all
        context = browser.new_context()
        tab = context.new_page()
        with tab.expect_response(lambda r: r.url.endswith("/sessions")) as started:
            tab.goto(study_url(live_server, study))
        tokens.append(started.value.json()["token"])
        context.close()
    assert tokens[0] == tokens[1]
    assert Session.objects.filter(study=study.study).count() == 1


def test_a_plain_link_participant_who_reloads_resumes_the_same_session(
    live_server: Any, page: Any, owner: User
) -> None:
    fixture = make_study(owner, platform="link", n_main=6, n_catch=1)
    url = f"{live_server.url}/s/{fixture.study.slug}/"
    with page.expect_response(lambda r: r.url.endswith("/sessions")) as first:
        page.goto(url)
    token = first.value.json()["token"]
    begin(page)
    answer_trials(page, 2)
    session = Session.objects.get(token=token)
    wait_for_responses(session, 2)
    with page.expect_response(lambda r: r.url.endswith("/sessions")) as again:
        page.reload()
    assert json.loads(again.value.request.post_data)["token"] == token
    assert again.value.status == 200 and again.value.json()["token"] == token
    page.get_by_role("button", name="Continue").click()  # "Welcome back"
    third = Trial.objects.get(task_list=session.task_list, index=2)
    page.wait_for_selector(CURRENT_QUERY)
    assert page.locator(CURRENT_QUERY).get_attribute("src") == query_url(third, 0)
    answer_trials(page, 1)
    wait_for_responses(session, 3)
    assert Session.objects.filter(study=fixture.study).count() == 1
    assert sorted(
        Response.objects.filter(session=session).values_list("trial_index", flat=True)
    ) == [
        0,
        1,
        2,
    ]


def test_a_practice_block_between_main_blocks_comes_where_the_schedule_puts_it(
    live_server: Any, prolific_landing: Any, owner: User
) -> None:
    """Borowski et al. 2021's layout: a condition's practice just before its first block, and
    the block's score after it. Here practice trial 0 before main block 0 (trials 0–2), the
    score, then practice trials 1 and 2 before main block 1 (trials 3–6)."""
    fixture = make_study(
        owner, n_main=6, n_catch=1, n_practice=3, feedback_duration_ms=200, block_feedback=True
    )
    practice = list(fixture.study.practice_trials.order_by("index").values_list("pk", flat=True))
    task_list = fixture.task_lists[0]
    task_list.trials.filter(index__gte=3).update(block=1)
    right = list(task_list.trials.filter(index__lt=3, correct_query=0).values_list("pk"))
    task_list.practice_blocks = [
        {"before": 0, "condition": "natural", "trials": practice[:1]},
        {"before": 3, "condition": "natural", "trials": practice[1:]},
    ]
    task_list.save()
    page = prolific_landing
    page.goto(study_url(live_server, fixture))
    begin(page)
    page.get_by_role("button", name="Start practice").click()
    answer_trials(page, 1, choice=0)  # practice 0's key is 0
    page.get_by_role("button", name="Continue").click()
    answer_trials(page, 3)  # choice 0 each time: right where the key is 0
    page.get_by_text(f"You got {len(right)} out of 3 trials correct.").wait_for()
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("Before the next part, 2 practice trials").wait_for()
    page.get_by_role("button", name="Start practice").click()
    answer_trials(page, 1, choice=1)  # keys 1, then 0: all correct
    answer_trials(page, 1, choice=0)
    page.get_by_text("All practice answers were right").wait_for()
    page.get_by_role("button", name="Continue").click()
    answer_trials(page, N_TRIALS - 3)
    page.wait_for_url(f"{PROLIFIC}**")

    session = Session.objects.get(participant__platform_id=PID)
    assert_every_answer_stored_once(session)
    assert session.practice_passed and session.practice_attempts == 1
    answered = sorted(
        [(r.client_answered_at, f"main {r.trial_index}") for r in session.responses.all()]
        + [
            (p.client_answered_at, f"practice {p.practice_index}")
            for p in session.practice_responses.all()
        ]
    )
    assert [what for _, what in answered] == [
        "practice 0", "main 0", "main 1", "main 2", "practice 1", "practice 2",
        "main 3", "main 4", "main 5", "main 6",
    ]  # fmt: skip
