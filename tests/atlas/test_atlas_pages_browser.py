"""Every atlas page in the real browser (Debian's Chromium), with no console error: a unit's
page, a unit set's atlas page (channels and dictionary), the queue form with a refusal, the
unit set's change page, and the results page's human-against-machine section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.atlas import services
from backend.participation.models import Session
from backend.stimuli.models import Unit
from backend.studies.models import Trial
from tests.analysis.conftest import SMALL_RULES, api, own_rate_limit_counts, take_part  # noqa: F401
from tests.atlas.pages import make_atlas
from tests.participation.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch_console(page: Any) -> list[str]:
    """Console errors and uncaught exceptions of the page, as they happen (the browser's own
    favicon request aside: the admin links none)."""
    errors: list[str] = []

    def seen(message: Any) -> None:
        where = (message.location or {}).get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            errors.append(f"{message.text} at {where}")

    page.on("console", seen)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def sign_in(page: Any, live_server: Any, user: User, password: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def figures_drawn(page: Any, selector: str) -> int:
    """How many inline SVG figures under `selector` have a visible size."""
    return int(page.evaluate(
        "(s) => Array.from(document.querySelectorAll(s + ' svg'))"
        ".filter((svg) => svg.getBoundingClientRect().width > 50).length",
        selector,
    ))  # fmt: skip


def test_every_atlas_page_renders_without_console_errors(
    live_server: Any, page: Any, superuser: User, admin_password: str,
    take_part: Callable[..., Session],  # noqa: F811
) -> None:  # fmt: skip
    fixture = make_study(superuser, n_lists=2, exclusion_rules=SMALL_RULES)
    trial = Trial.objects.filter(task_list__study=fixture.study, is_catch=False).first()
    assert trial is not None and trial.unit is not None
    # the study's unit set (unit 3 shown) gets 8 units with measures, populations and curves
    for index in range(8):
        Unit.objects.get_or_create(unit_set=trial.unit.unit_set, index=index)
    atlas = make_atlas(layer=trial.unit.unit_set.layer, channels=trial.unit.unit_set)
    take_part(fixture, "firstparticipant01")
    take_part(fixture, "secondparticipant2")
    services.do_save_measures(atlas.channels, atlas.image_set, {"mean": {3: 9.0}}, {}, None)
    errors = watch_console(page)
    sign_in(page, live_server, superuser, admin_password)

    unit = Unit.objects.get(unit_set=atlas.channels, index=3)
    page.goto(f"{live_server.url}/admin/stimuli/unit/{unit.pk}/change/")
    assert page.locator("#unit-measures tr", has_text="mean").first.is_visible()
    assert "1 of" in page.locator("#unit-measures tr", has_text="mean").first.inner_text()
    assert page.locator("#unit-human td", has_text="natural").is_visible()
    page.click("#unit-set-atlas")

    page.wait_for_selector("#spearman-matrix")
    assert figures_drawn(page, "#spearman-figure") == 1
    assert figures_drawn(page, "#curves-figure") == 1
    assert figures_drawn(page, ".dendrogram") == 1
    assert figures_drawn(page, ".basis-figure") == 1
    page.click("#queue-atlas")

    page.wait_for_selector("#queue-form")
    page.select_option("#id_kind", "compute_ablation_curves")
    page.select_option("#id_image_set", str(atlas.image_set.pk))
    page.fill("#id_rank_by", "mean")
    page.fill("#id_ks", "1,2,999")
    page.click("#queue-submit")
    assert "Nothing was queued" in page.locator("#queue-error").inner_text()
    refusal = errors.pop()  # the refusal is a 400, which Chromium reports; nothing else
    assert "status of 400" in refusal and "/admin/atlas/unit-set/queue/" in refusal

    page.goto(f"{live_server.url}/admin/atlas/unit-set/{atlas.nmf.pk}/")
    assert figures_drawn(page, ".basis-figure") == 1
    page.goto(f"{live_server.url}/admin/stimuli/unitset/{atlas.channels.pk}/change/")
    page.click("#atlas-link")
    page.wait_for_selector("#spearman-matrix")

    page.goto(f"{live_server.url}/admin/studies/study/{fixture.study.pk}/results/")
    page.wait_for_selector("#human-machine")
    assert figures_drawn(page, "#human-machine-figures") >= 1
    assert errors == []
