"""A researcher, in the real browser: creates a study from a preset, builds its task lists and
previews it as a participant (pilot mode)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.stimuli.models import UnitSet
from backend.studies.models import Study
from tests.studies import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page: Any, live_server: Any, owner: User, password: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/studies/study/add/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def add_study_from_preset(page: Any, slug: str, preset: str, units: UnitSet) -> None:
    """On the add page: slug, title, preset, the unit set and the demo image set; saved."""
    factories.natural_image_set()
    page.fill("#id_slug", slug)
    page.fill("#id_title", f"{slug} made in the browser")
    page.select_option("#id_apply_preset", preset)
    page.select_option("#id_unit_sets_from", str(units.pk))
    page.click("#id_unit_sets_add")
    page.select_option("#id_image_set", label="demo")
    page.click("input[name=_continue]")
    assert f"Preset {preset} applied" in page.locator(".messagelist").inner_text()


def test_a_researcher_creates_a_study_from_a_preset_builds_and_previews_it(
    live_server: Any, page: Any, owner: User, admin_password: str
) -> None:
    units = factories.stimulated_unit_set(44)
    log_in(page, live_server, owner, admin_password)
    add_study_from_preset(page, "browser-study", "imi2023", units)

    page.click("#study-build")
    assert "Built 33 task lists of 45 trials" in page.locator(".messagelist").inner_text()
    study = Study.objects.get(slug="browser-study")
    assert study.owner == owner and study.task_lists.count() == 33
    assert study.lockout_ms == 1500

    href = page.locator("#study-preview").get_attribute("href")
    response = page.request.get(f"{live_server.url}{href}", max_redirects=0)
    assert response.status == 302
    assert response.headers["location"].endswith(
        f"/s/browser-study/?pilot={study.pilot_token}&PROLIFIC_PID=preview-{owner.pk}-1"
    )


def test_the_borowski_preset_asks_for_each_conditions_practice_and_builds_once_it_has_it(
    live_server: Any, page: Any, owner: User, admin_password: str
) -> None:
    """Borowski et al. 2021's block schedule puts each condition's practice before its first
    block: the build names what is missing; practice trials added in the inline fill it."""
    units = factories.stimulated_unit_set(45)
    log_in(page, live_server, owner, admin_password)
    add_study_from_preset(page, "borowski-browser", "borowski2021", units)

    page.click("#study-build")
    refused = page.locator(".messagelist").inner_text()
    assert "no practice trials of that condition" in refused and "practice:" in refused
    study = Study.objects.get(slug="borowski-browser")
    assert study.task_lists.count() == 0

    first_units = list(units.units.order_by("index").values_list("pk", flat=True))
    for row, name in enumerate(["natural", "synthetic", "none"]):
        page.click("#practice_trials-group .add-row a")
        page.fill(f"#id_practice_trials-{row}-index", str(row))
        page.fill(f"#id_practice_trials-{row}-unit", str(first_units[row]))
        page.select_option(f"#id_practice_trials-{row}-condition", label=name)
    page.click("input[name=_continue]")
    page.click("#study-build")
    assert "Built 10 task lists of 153 trials" in page.locator(".messagelist").inner_text()
    task_list = study.task_lists.get(index=0)
    assert [block["condition"] for block in task_list.practice_blocks] == [
        "none",
        "synthetic",
        "natural",
    ]


def test_the_study_page_fits_a_laptop_screen_conditions_included(
    live_server: Any, page: Any, owner: User, admin_password: str
) -> None:
    """The Conditions inline was about 2,400 px wide; the preset comes first on the page."""
    study = factories.study(owner, "zimmermann2021", factories.stimulated_unit_set(12))
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/studies/study/{study.pk}/change/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", admin_password)
    page.click("input[type=submit]")
    page.wait_for_selector("#conditions-group table")
    right = page.evaluate(
        "document.querySelector('#conditions-group table').getBoundingClientRect().right"
    )
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert right <= 1366 and page_width <= 1366, (right, page_width)
    assert page.locator("fieldset h2").first.inner_text() == "Preset and paradigm"
