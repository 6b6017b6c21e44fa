"""A description_choice study (docs/descriptions.md) in Debian's Chromium against the live
server, built by the real trial builder from stored Descriptions: the participant reads each
unit's words (alone, or beside the natural exemplars), answers every trial once, resumes after
a reload, answers offline, and no answer key reaches the browser.

Needs the built frontend (`cd frontend && npm run build`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from backend.atlas.models import Description
from backend.participation.models import Response, Session
from backend.studies import services
from backend.studies.models import Study, TaskList, Trial
from tests.e2e import test_participant_study as reference
from tests.e2e.test_participant_study import (
    CURRENT_QUERY,
    HASHED_MEDIA,
    PID,
    PROLIFIC,
    begin,
    query_url,
    wait_for_responses,
)
from tests.participation.factories import StudyFixture
from tests.studies import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

N_TRIALS = 7  # 6 main + 1 catch

# The reference paradigm's fixtures: own rate-limit counts, Prolific's landing page answered here.
own_rate_limit_counts = reference.own_rate_limit_counts
prolific_landing = reference.prolific_landing
WORDS = ".pl-trial:not(.pl-loading) .pl-description-text"


def described_study(owner: User, condition: str) -> tuple[StudyFixture, TaskList]:
    """The descriptions2023 preset on 12 described units, built, live; every task list but one
    of `condition` retired, so the participant gets that one."""
    if not (settings.FRONTEND_DIST / "index.html").exists():
        pytest.fail("the frontend is not built: cd frontend && npm run build")
    units = factories.stimulated_unit_set(12)
    for unit in units.units.all():
        Description.objects.create(
            unit=unit, image_set=factories.natural_image_set(), source="classifier: builtin:test",
            text=f"goldfish {unit.index}", concepts=[{"concept": f"goldfish {unit.index}",
                                                       "score": 1.0}],
        )  # fmt: skip
    study = factories.study(owner, "descriptions2023", units, slug="words")
    Study.objects.filter(pk=study.pk).update(
        main_trials_per_list=6, catch_trials_per_list=1, target_valid_responses_per_unit=1,
        lockout_ms=0, feedback=False, show_counter=False, min_instruction_seconds=0,
        fullscreen=False, min_window_width=300, min_window_height=200,
        consent_markdown="You agree **to take part**.", instructions_markdown="Read the words.",
        platform=Study.Platform.PROLIFIC, completion_code="C0FFEE12",
    )  # fmt: skip
    study.refresh_from_db()
    services.do_build_task_lists(study)
    Study.objects.filter(pk=study.pk).update(state=Study.State.LIVE)
    study.refresh_from_db()
    chosen = study.task_lists.filter(condition_order=[condition]).order_by("index").first()
    assert chosen is not None
    study.task_lists.exclude(pk=chosen.pk).update(retired=True)
    assert chosen.trials.count() == N_TRIALS
    return StudyFixture(study, [chosen], []), chosen


def study_url(live_server: Any, study: Study) -> str:
    return f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={PID}&STUDY_ID=S1&SESSION_ID=X1"


def answer_described_trials(page: Any, task_list: TaskList, first: int, count: int) -> None:
    """Answers trials first … first + count − 1, checking each shows its own words and queries."""
    for index in range(first, first + count):
        trial = Trial.objects.get(task_list=task_list, index=index)
        page.wait_for_selector(CURRENT_QUERY)
        src = page.locator(CURRENT_QUERY).get_attribute("src")
        assert src == query_url(trial, 0)
        assert page.locator(WORDS).text_content() == trial.description != ""
        page.locator(".pl-btn[data-choice='0'][data-confidence='3']:enabled").click()
        page.wait_for_function(
            "([selector, old]) => { const img = document.querySelector(selector);"
            " return !img || img.getAttribute('src') !== old; }",
            arg=[CURRENT_QUERY, src],
        )


def assert_every_answer_stored_once(session: Session, task_list: TaskList) -> None:
    responses = list(Response.objects.filter(session=session).order_by("trial_index"))
    assert [r.trial_index for r in responses] == list(range(N_TRIALS))
    words = dict(task_list.trials.values_list("index", "description"))
    for response in responses:
        assert response.raw["description"] == words[response.trial_index]
        assert response.choice == 0 and response.confidence == 3
    session.refresh_from_db()
    assert session.completed and session.n_answered == N_TRIALS


def test_a_participant_reads_the_words_beside_the_exemplars_and_sees_no_answer_key(
    live_server: Any, prolific_landing: Any, owner: User
) -> None:
    fixture, task_list = described_study(owner, "description-natural")
    page = prolific_landing
    seen: list[tuple[str, str]] = []
    page.on("response", lambda r: seen.append((r.url, r.text())) if "/api/" in r.url else None)
    page.goto(study_url(live_server, fixture.study))
    begin(page)
    page.wait_for_selector(".pl-trial:not(.pl-loading) .pl-refs-right img")
    answer_described_trials(page, task_list, 0, N_TRIALS)
    page.wait_for_url(f"{PROLIFIC}submissions/complete?cc=C0FFEE12")

    session = Session.objects.get(participant__platform_id=PID)
    assert_every_answer_stored_once(session, task_list)
    start = json.loads(next(body for url, body in seen if url.endswith("/sessions")))
    for url, body in seen:
        for word in ("correct_query", "query_source", "is_catch", "description_source"):
            assert word not in body, (word, url)
    for shown in start["trials"]:
        trial = Trial.objects.get(task_list=task_list, index=shown["index"])
        assert shown["kind"] == "description_choice"
        assert shown["description"] == trial.description
        assert shown["queries"] == [query_url(trial, 0), query_url(trial, 1)]
        assert all(HASHED_MEDIA.match(url) for url in shown["queries"])


def test_a_reload_mid_study_resumes_at_the_next_description_trial(
    live_server: Any, prolific_landing: Any, owner: User
) -> None:
    fixture, task_list = described_study(owner, "description")
    page = prolific_landing
    page.goto(study_url(live_server, fixture.study))
    begin(page)
    answer_described_trials(page, task_list, 0, 3)
    session = Session.objects.get(participant__platform_id=PID)
    wait_for_responses(session, 3)
    page.reload()
    page.get_by_role("button", name="Continue").click()  # "Welcome back"
    answer_described_trials(page, task_list, 3, N_TRIALS - 3)
    page.wait_for_url(f"{PROLIFIC}**")
    assert_every_answer_stored_once(session, task_list)


def test_description_answers_given_offline_arrive_once_when_the_network_returns(
    live_server: Any, prolific_landing: Any, owner: User
) -> None:
    fixture, task_list = described_study(owner, "description")
    page = prolific_landing
    page.goto(study_url(live_server, fixture.study))
    begin(page)
    answer_described_trials(page, task_list, 0, 2)
    session = Session.objects.get(participant__platform_id=PID)
    wait_for_responses(session, 2)
    reference.wait_for_preloaded(page)  # the next trials' images are in the cache
    page.context.set_offline(True)
    answer_described_trials(page, task_list, 2, 3)
    time.sleep(1)
    assert Response.objects.filter(session=session).count() == 2
    page.context.set_offline(False)
    wait_for_responses(session, 5)
    answer_described_trials(page, task_list, 5, N_TRIALS - 5)
    page.wait_for_url(f"{PROLIFIC}**")
    assert_every_answer_stored_once(session, task_list)
