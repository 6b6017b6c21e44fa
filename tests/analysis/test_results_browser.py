"""The results dashboard in the real browser: the owner sees the counts and the accuracy
figure, sorts the per-unit table, and the page picks up a session completed meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.analysis import views
from backend.participation.models import Session
from backend.studies.models import Trial, Unit
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
UNIT_INDICES = (3, 12, 5)  # the study's unit is 3; main trials cycle through the three


def completed(page: Any) -> str:
    return str(page.locator("#counts tr:nth-child(2) td").first.inner_text())


def unit_column(page: Any) -> list[str]:
    return list(page.locator("#units tbody tr td:nth-child(3)").all_inner_texts())


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

    page.goto(
        f"{live_server.url}/admin/login/?next=/admin/studies/study/{fixture.study.pk}/results/"
    )
    page.fill("#id_username", owner.username)
    page.fill("#id_password", admin_password)
    page.click("input[type=submit]")

    assert completed(page) == "2"
    figure = page.locator("img[alt=condition]")
    figure.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const img = document.querySelector('img[alt=condition]');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    assert unit_column(page) == ["3", "5", "12"]
    page.wait_for_selector("#units[data-sortable=ready]")
    header = page.locator("#units th", has_text="unit").nth(1)  # "unit set" comes before "unit"
    header.click()
    assert unit_column(page) == ["3", "5", "12"]
    header.click()
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
