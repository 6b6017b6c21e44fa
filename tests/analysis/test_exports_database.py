"""Exports read from Postgres: every stored response comes out once, and memory stays flat as
the study grows (the rows are read in chunks with a server-side cursor, never all at once)."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from backend.analysis.exports import iter_csv
from backend.analysis.rows import study_rows
from backend.participation.models import Response, Session
from tests.participation.factories import StudyFixture, bulk_completed_sessions, make_study

pytestmark = pytest.mark.django_db
TRIALS_PER_LIST = 20  # 18 main + 2 catch


def csv_export_peak(fixture: StudyFixture) -> tuple[int, int]:
    """(rows exported, peak of Python allocations while exporting them) of the study's CSV."""
    tracemalloc.start()
    try:
        lines = sum(chunk.count("\n") for chunk in iter_csv(study_rows(fixture.study)))
        return lines - 1, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def fixture(owner: User) -> StudyFixture:
    return make_study(owner, n_main=18, n_catch=2, n_lists=2)


def test_a_csv_export_from_the_database_has_every_response_once(fixture: StudyFixture) -> None:
    written = bulk_completed_sessions(fixture, 30)
    assert written == 30 * TRIALS_PER_LIST == Response.objects.count()

    text = "".join(iter_csv(study_rows(fixture.study)))

    keys = [(row["session"], row["trial_index"]) for row in csv.DictReader(io.StringIO(text))]
    stored = Response.objects.values_list("session_id", "trial_index")
    assert sorted(keys) == sorted((f"s-{session}", str(index)) for session, index in stored)


def test_database_export_memory_stays_flat_from_4k_to_40k_responses(
    fixture: StudyFixture,
) -> None:
    bulk_completed_sessions(fixture, 200)
    csv_export_peak(fixture)  # warm-up: imports and caches stay out of the measurement
    small_rows, small = csv_export_peak(fixture)
    bulk_completed_sessions(fixture, 1_800)
    large_rows, large = csv_export_peak(fixture)

    assert (small_rows, large_rows) == (200 * TRIALS_PER_LIST, 2_000 * TRIALS_PER_LIST)
    # Ten times the rows; only the per-session facts (pseudonym, decision) grow with the study.
    assert large < 1.5 * small + 1_000_000
    # One chunk of 2,000 rows (read and turned into tidy rows) costs about 8 MB here; holding
    # all 40,000 would take twenty times that.
    assert large < 16 * 2**20


def test_each_exported_trial_names_its_block_and_practice_trials_none(
    owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_main=6, n_catch=1, n_practice=1)
    fixture.task_lists[0].trials.filter(index__gte=3).update(block=1)
    take_part(fixture)

    rows = list(study_rows(fixture.study))

    main = sorted((row.trial_index, row.block) for row in rows if not row.is_practice)
    assert main == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1), (6, 1)]
    assert [row.block for row in rows if row.is_practice] == [None]
    exported = list(csv.DictReader(io.StringIO("".join(iter_csv(rows)))))
    assert [line["block"] for line in exported] == ["0", "0", "0", "1", "1", "1", "1", ""]
