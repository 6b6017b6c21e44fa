"""How a trial's images loaded, as the page records it in the raw data (issue #21), in the tidy
export (`image_load_ms`, `image_retries`) and in the exclusion rule that can use it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.analysis.exports import iter_csv, iter_parquet, write_parquet
from backend.analysis.models import SessionExclusion
from backend.analysis.rows import study_rows
from backend.participation.models import Response, Session
from tests.analysis.conftest import SMALL_RULES
from tests.participation.conftest import Api
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db
TakePart = Callable[..., Session]


def loaded(session: Session, index: int, load_ms: Any, retries: Any) -> None:
    """What the page recorded for one of the session's trials."""
    response = Response.objects.get(session=session, trial_index=index)
    response.raw = {**response.raw, "load_ms": load_ms, "image_retries": retries}
    response.save(update_fields=["raw"])


def test_the_export_says_how_long_each_trial_waited_for_its_images(
    owner: User, take_part: TakePart, tmp_path: Path
) -> None:
    fixture = make_study(owner)
    session = take_part(fixture)
    loaded(session, 0, 2350.5, 3)
    loaded(session, 1, 12, 0)
    loaded(session, 2, "soon", True)  # not what the page writes: read as missing

    rows = {row.trial_index: row for row in study_rows(fixture.study)}

    assert (rows[0].image_load_ms, rows[0].image_retries) == (2350.5, 3)
    assert (rows[1].image_load_ms, rows[1].image_retries) == (12.0, 0)
    assert (rows[2].image_load_ms, rows[2].image_retries) == (None, None)
    assert (rows[3].image_load_ms, rows[3].image_retries) == (None, None)  # an older page
    lines = list(csv.DictReader(io.StringIO("".join(iter_csv(rows.values())))))
    assert (lines[0]["image_load_ms"], lines[0]["image_retries"]) == ("2350.5", "3")
    assert (lines[3]["image_load_ms"], lines[3]["image_retries"]) == ("", "")
    path = tmp_path / "export.parquet"
    write_parquet(rows.values(), str(path))
    assert list(iter_parquet(str(path))) == list(rows.values())


def test_a_session_that_waited_too_long_for_images_can_be_excluded(
    owner: User, take_part: TakePart, api: Api
) -> None:
    fixture = make_study(
        owner, n_lists=2, exclusion_rules={**SMALL_RULES, "max_image_wait_seconds": 60}
    )
    patient = take_part(fixture, "waitedlong0001", complete=False)
    quick = take_part(fixture, "waitedlittle002", complete=False)
    for session, wait_ms in ((patient, 10_000), (quick, 150)):  # per trial, 7 trials each
        for index in range(session.n_trials):
            loaded(session, index, wait_ms, 0)
        assert api.complete(session.token).status_code == 200

    excluded = SessionExclusion.objects.get(session=patient)
    assert excluded.excluded and excluded.codes == ["image_wait_long"]
    assert excluded.measurements["image_wait_seconds"] == 70.0
    assert not SessionExclusion.objects.get(session=quick).excluded
