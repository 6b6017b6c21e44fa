"""The mid-range pages in the real browser (Debian's Chromium, a laptop's 1366 × 768 screen):
a confound report's page, its curation page (the rule's band checkboxes, the ticked grid, the
downloads), the curated export form, the retraining form queueing a job, and the retrained
network's evaluation — no console error, every thumbnail loaded, nothing wider than the screen.
Screenshots go to the test's temporary folder (kept by pytest for the last runs)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.atlas import curation
from backend.atlas.models import RetrainedNetwork
from backend.stimuli.models import Job
from tests.atlas.test_atlas_pages_browser import sign_in, watch_console
from tests.atlas.test_curation import stored_report
from tests.atlas.test_retrain_jobs import confounded  # noqa: F401  (the fixture)
from worker.tasks import run_job_here

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1366, "height": 768}


def looks_right(page: Any, shots: Path, name: str) -> None:
    """Every image on the page loaded, the page no wider than the screen; a screenshot."""
    broken = page.evaluate(
        "Array.from(document.images).filter((i) => !i.complete || i.naturalWidth === 0)"
        ".map((i) => i.src)"
    )
    assert broken == [], broken
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= SCREEN["width"], (name, width)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_the_midrange_pages_work_in_the_browser(
    live_server: Any, page: Any, superuser: User, admin_password: str,
    confounded: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:  # fmt: skip
    train = confounded["train"]  # 28 images: class 0 mostly red, 1 mostly blue
    for member in train.members.all():  # a long attribute value, as real photos' names are
        scene = f"{'street' if member.label == '0' else 'beach'}_photograph_of_a_long_named_scene"
        member.attributes = {**member.attributes, "scene": scene}
        member.save(update_fields=["attributes"])
    report = stored_report(train)
    page.set_viewport_size(SCREEN)
    errors = watch_console(page)
    sign_in(page, live_server, superuser, admin_password)

    page.goto(f"{live_server.url}/admin/atlas/confoundreport/{report.pk}/change/")
    page.wait_for_selector(".psylens-band img")
    page.evaluate("Promise.all(Array.from(document.images).map((i) => i.decode()))")
    assert page.locator(".psylens-band").count() == 3
    assert report.candidates and page.locator(".psylens-confounds tbody tr").count() == len(
        report.candidates
    )
    holm = page.locator(".psylens-confounds th", has_text="Holm p").bounding_box()
    assert holm is not None and holm["x"] + holm["width"] <= SCREEN["width"], holm  # not cut off
    looks_right(page, tmp_path, "confound-report")

    page.click("#curate-report")
    page.wait_for_selector("#curate-form")
    page.evaluate("Promise.all(Array.from(document.images).map((i) => i.decode()))")
    assert page.locator("input[name=image_ids]").count() == 28  # 3 bands of 9–10, 12 shown at most
    looks_right(page, tmp_path, "curate")
    # The rule: class 0's images in the two lower bands, balanced against colour, as CSV.
    page.check("input[name=report_bands][value='0']")
    page.check("input[name=report_bands][value='1']")
    page.select_option("#id_label", "0")
    page.select_option("#id_attribute", "colour")
    page.select_option("#id_format", "csv")
    with page.expect_download() as download:
        page.click("#export-curated")
    table = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(table)))
    chosen = curation.select_from_report(report, "0", [0, 1], attribute="colour")
    assert len(rows) == len(chosen) > 0 and {r["label"] for r in rows} == {"0"}
    assert [r["colour"] for r in rows].count("red") == [r["colour"] for r in rows].count("blue")
    # Refused: no image ticked: a 400 on the page, the rule's choices kept.
    page.check("input[name=selection][value='ticked']")
    page.click("#export-curated")
    page.wait_for_selector("text=tick at least one image in the grids")
    assert page.is_checked("input[name=report_bands][value='1']")
    assert len(errors) == 1 and "status of 400" in errors[0], errors  # the refusal's own answer
    errors.clear()
    # Ticked: the first two thumbnails of the top band, as an ImageFolder ZIP.
    boxes = page.locator("input[name=image_ids]")
    ticked = [boxes.nth(i).get_attribute("value") for i in (0, 1)]
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.select_option("#id_format", "zip")
    with page.expect_download() as download:
        page.click("#export-curated")
    with zipfile.ZipFile(download.value.path()) as archive:
        images = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(images) == len(ticked) == 2 and "curated/images.csv" in archive.namelist()

    page.goto(f"{live_server.url}/admin/atlas/retrainednetwork/curated-export/")
    page.wait_for_selector("#export-curated")
    looks_right(page, tmp_path, "curated-export")

    page.goto(f"{live_server.url}/admin/atlas/retrainednetwork/retrain/")
    page.select_option("#id_base", str(confounded["base"].pk))
    page.select_option("#id_train_set", str(confounded["train"].pk))
    page.select_option("#id_eval_set", str(confounded["eval"].pk))
    page.fill("#id_name", "stripe-reader")
    page.fill("#id_attribute", "colour")
    looks_right(page, tmp_path, "retrain-form")
    page.click("#retrain-last-layer")
    page.wait_for_url("**/admin/stimuli/job/*/change/")
    job = run_job_here(Job.objects.get(kind="retrain_last_layer"))
    assert job.state == Job.State.SUCCEEDED, job.error
    made = RetrainedNetwork.objects.get(network__name="stripe-reader")
    page.goto(f"{live_server.url}/admin/atlas/retrainednetwork/")
    assert page.locator("#result_list", has_text="stripe-reader").is_visible()
    page.goto(f"{live_server.url}/admin/atlas/retrainednetwork/{made.pk}/change/")
    worst = page.locator(".retrain-report tr", has_text="worst group").inner_text()
    assert "%" in worst and worst.count("%") == 2
    looks_right(page, tmp_path, "retrained-network")
    assert errors == []
