"""The results dashboard in the real browser: the owner sees the counts and the accuracy
figure, sorts the per-unit table, and the page picks up a session completed meanwhile."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.analysis import plots, views
from backend.participation.models import Session
from backend.studies.models import Trial, Unit
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
UNIT_INDICES = (3, 12, 5)  # the study's unit is 3; main trials cycle through the three
FIGURE_URL = re.compile(r"/figure/[a-z]+\.svg")


def completed(page: Any) -> str:
    return str(page.locator("#counts tr:nth-child(2) td").first.inner_text())


def unit_column(page: Any) -> list[str]:
    return list(page.locator("#units tbody tr td:nth-child(3)").all_inner_texts())


def units_table_top(page: Any) -> float:
    return float(page.evaluate("document.getElementById('units').getBoundingClientRect().top"))


def hold_figures(page: Any) -> list[Any]:
    """Figure requests wait (as they do while a slow server draws them) until released."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route(FIGURE_URL, hold)
    return held


def release_when_all_requested(page: Any, held: list[Any], expected: int) -> None:
    deadline = time.monotonic() + 15
    while len(held) < expected:  # route handlers run while Playwright waits
        assert time.monotonic() < deadline, f"{len(held)} of {expected} figures requested"
        page.wait_for_timeout(50)
    for route in held:
        route.continue_()
    page.unroute(FIGURE_URL)


def test_the_owner_watches_results_arrive_and_sorts_the_units(
    live_server: Any,
    page: Any,
    owner: User,
    admin_password: str,
    take_part: Callable[..., Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "REFRESH_SECONDS", 0.5)
    fixture = make_study(owner, n_lists=3, exclusion_rules=SMALL_RULES)
    first = Trial.objects.filter(task_list__study=fixture.study).first()
    assert first is not None and first.unit is not None
    units = [first.unit] + [
        Unit.objects.create(unit_set=first.unit.unit_set, index=i) for i in UNIT_INDICES[1:]
    ]
    for trial in Trial.objects.filter(task_list__study=fixture.study, is_catch=False):
        Trial.objects.filter(pk=trial.pk).update(unit=units[trial.index % len(units)])
    take_part(fixture, "firstparticipant01")
    take_part(fixture, "secondparticipant2")

    held = hold_figures(page)
    page.goto(
        f"{live_server.url}/admin/login/?next=/admin/studies/study/{fixture.study.pk}/results/"
    )
    page.fill("#id_username", owner.username)
    page.fill("#id_password", admin_password)
    page.click("input[type=submit]", no_wait_after=True)

    assert completed(page) == "2"
    page.wait_for_selector("#units[data-sortable=ready]")
    # the figures above the table keep their place while they are drawn: nothing moves
    # under the researcher's pointer when they arrive
    top_while_drawing = units_table_top(page)
    release_when_all_requested(page, held, len(plots.FIGURES))
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.psylens-figures img'))"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert units_table_top(page) == top_while_drawing
    assert unit_column(page) == ["3", "5", "12"]
    header = page.locator("#units th", has_text="unit").nth(1)  # "unit set" comes before "unit"
    header.click()
    assert header.get_attribute("data-order") == "asc"
    assert unit_column(page) == ["3", "5", "12"]
    header.click()
    assert header.get_attribute("data-order") == "desc"
    assert unit_column(page) == ["12", "5", "3"]
    # the page reloads whenever results change: the sort survives it
    page.reload()
    page.wait_for_selector("#units[data-sortable=ready]")
    assert unit_column(page) == ["12", "5", "3"]

    take_part(fixture, "thirdparticipant03")
    page.wait_for_function(
        "() => document.querySelector('#counts tr:nth-child(2) td').textContent.trim() === '3'",
        timeout=15_000,
    )
    assert completed(page) == "3"
