"""The results page before there is anything to show and around excluded sessions (issue #21):
"no valid sessions yet" instead of empty figures, a toggle to see the excluded sessions' data,
and no "Exclude" button on a session the rules excluded already."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.participation.models import Session
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import StudyFixture, make_study

pytestmark = pytest.mark.django_db
TakePart = Callable[..., Session]


def results_url(fixture: StudyFixture, page: str = "") -> str:
    return f"/admin/studies/study/{fixture.study.pk}/results/{page}"


def session_row(html: str, session: Session) -> str:
    match = re.search(rf"<tr>\s*<td>s-{session.pk}\b.*?</tr>", html, re.S)
    assert match, f"no row for s-{session.pk}"
    return match.group(0)


def test_a_study_without_valid_sessions_says_so_instead_of_drawing_empty_figures(
    client: Client, owner: User, take_part: TakePart
) -> None:
    fixture = make_study(owner, exclusion_rules=SMALL_RULES)
    take_part(fixture, catch_correct=False)  # completed, and excluded by the catch rule
    client.force_login(owner)

    html = client.get(results_url(fixture)).content.decode()

    assert "No valid sessions yet." in html
    assert "/figure/" not in html and 'id="by-condition"' not in html
    for name in ("condition", "rt", "confidence"):
        figure = client.get(results_url(fixture, f"figure/{name}.svg")).content.decode()
        assert "No valid sessions yet" in figure, name
        assert "accuracy" not in figure and "responses" not in figure, name  # no bare axes


def test_the_excluded_sessions_data_can_be_shown_beside_the_valid_ones(
    client: Client, owner: User, take_part: TakePart
) -> None:
    fixture = make_study(owner, n_lists=2, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01")
    take_part(fixture, "excludedparticip02", catch_correct=False)
    client.force_login(owner)

    valid = client.get(results_url(fixture)).content.decode()
    everyone = client.get(results_url(fixture) + "?excluded=1").content.decode()

    assert "Accuracy (6 main trials of valid sessions" in valid
    assert "Include the excluded sessions' data" in valid
    assert "Accuracy (12 main trials of all completed sessions, excluded ones included" in everyone
    assert "Show valid sessions only" in everyone
    assert "excluded=1" in re.search(r'<img src="[^"]*figure/condition\.svg[^"]*"', everyone)[0]
    drawn = client.get(results_url(fixture, "figure/condition.svg") + "?excluded=1")
    assert drawn.status_code == 200 and b"<svg" in drawn.content


def test_only_a_valid_session_is_offered_exclude_and_a_manual_one_undo(
    client: Client, owner: User, take_part: TakePart
) -> None:
    fixture = make_study(owner, n_lists=3, exclusion_rules=SMALL_RULES)
    valid = take_part(fixture, "validparticipant01")
    by_rules = take_part(fixture, "excludedparticip02", catch_correct=False)
    by_hand = take_part(fixture, "excludedbyhand003")
    client.force_login(owner)
    client.post(results_url(fixture, "exclude/"), {"session": by_hand.pk, "reason": "a bot"})

    html = client.get(results_url(fixture)).content.decode()

    assert ">Exclude</button>" in session_row(html, valid)
    rules_row = session_row(html, by_rules)
    assert "Exclude</button>" not in rules_row and "excluded by the rules" in rules_row
    assert "Undo manual exclusion" in session_row(html, by_hand)
