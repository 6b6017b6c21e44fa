"""A description_choice study's results: the trial export carries each trial's paradigm and the
words it showed, and the dashboard compares the description conditions with the exemplar condition
per layer and per unit (backend/analysis/descriptions.py, docs/descriptions.md)."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.analysis import descriptions
from backend.analysis.trial_export import TRIAL_COLUMNS
from backend.participation.models import Response
from backend.studies import services
from backend.studies.models import Study, Trial
from tests.analysis.factories import make_row, synthetic_rows
from tests.participation.factories import StudyFixture, bulk_completed_sessions
from tests.studies import factories
from tests.studies.test_description_trials import describe, small

pytestmark = pytest.mark.django_db

KINDS = {"description": "description", "description-natural": "description + exemplars",
         "natural": "exemplars"}  # fmt: skip


@pytest.fixture
def answered(owner: User) -> Study:
    """The descriptions2023 preset on 12 described units, two sessions per task list; every
    answer right with exemplars alone, every other one right with words (by trial index),
    none right with words beside exemplars."""
    units = factories.stimulated_unit_set(12)
    describe(units)
    study = small(factories.study(owner, "descriptions2023", units))
    services.do_build_task_lists(study)
    lists = list(study.task_lists.order_by("index"))
    bulk_completed_sessions(StudyFixture(study, lists, []), 2 * len(lists))
    responses = Response.objects.filter(session__study=study)
    responses.filter(trial__condition__name="natural").update(correct=True)
    responses.filter(trial__condition__name="description-natural").update(correct=False)
    for response in responses.filter(trial__condition__name="description"):
        response.correct = response.trial_index % 2 == 0
        response.save(update_fields=["correct"])
    return study


def test_the_trial_export_carries_each_trial_s_paradigm_and_words(
    client: Client, owner: User, answered: Study
) -> None:
    client.force_login(owner)
    response = client.get(f"/admin/studies/study/{answered.pk}/results/trials.csv")
    assert response.status_code == 200 and response.streaming
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == TRIAL_COLUMNS
    trials = Trial.objects.filter(task_list__study=answered).select_related("task_list", "unit")
    assert len(rows) == trials.count()
    by_key = {(f"tl-{t.task_list.index}", t.index): t for t in trials}
    for row in rows:
        trial = by_key[(row["task_list"], int(row["trial_index"]))]
        assert (row["paradigm"], row["description"]) == (trial.kind, trial.description)
        assert row["unit"] == str(trial.unit.index) and row["condition"] == trial.condition.name
        if row["condition"] == "natural":
            assert (row["paradigm"], row["description"]) == ("reference_choice", "")
        else:
            assert row["paradigm"] == "description_choice"
            assert row["description"] == f"goldfish {row['unit']}"
    for word in ("correct_query", "query_source"):
        assert word not in text


def test_the_trial_export_joins_the_response_export_and_is_formula_safe(
    client: Client, owner: User, answered: Study
) -> None:
    Trial.objects.filter(task_list__study=answered, index=0).update(description="=HYPERLINK(1)")
    client.force_login(owner)
    base = f"/admin/studies/study/{answered.pk}/results/"
    trials = list(csv.DictReader(io.StringIO(
        b"".join(client.get(base + "trials.csv").streaming_content).decode())))  # fmt: skip
    responses = list(csv.DictReader(io.StringIO(
        b"".join(client.get(base + "export.csv").streaming_content).decode())))  # fmt: skip
    keys = {(row["task_list"], row["trial_index"]): row for row in trials}
    assert responses and all(
        keys[(row["task_list"], row["trial_index"])]["unit"] == row["unit"] for row in responses
    )
    first = [row for row in trials if row["trial_index"] == "0" and row["paradigm"]]
    described = [row for row in first if row["paradigm"] == "description_choice"]
    assert described and {row["description"] for row in described} == {"'=HYPERLINK(1)"}


def test_the_dashboard_compares_words_with_exemplars_per_layer_and_unit(
    client: Client, owner: User, answered: Study
) -> None:
    client.force_login(owner)
    page = client.get(f"/admin/studies/study/{answered.pk}/results/").content.decode()

    assert "Words against exemplars" in page
    layer = re.search(r'<table id="descriptions-by-layer">.*?</table>', page, re.S)
    assert layer is not None
    cells = dict(
        re.findall(r'data-kind="([^"]+)"><td>[^<]*</td><td>[^<]*</td><td>\d+</td><td>\d+</td>'
                   r"<td>([0-9.]+)</td>", layer.group(0))
    )  # fmt: skip
    assert cells["exemplars"] == "1.000" and cells["description + exemplars"] == "0.000"
    assert 0.3 < float(cells["description"]) < 0.7
    units = re.search(r'<table id="descriptions-by-unit">.*?</table>', page, re.S)
    assert units is not None and "goldfish 3" in units.group(0)


def test_the_comparison_is_the_per_unit_difference_averaged_over_units_seen_in_both() -> None:
    rows = []
    for unit, (words, exemplars) in enumerate([(1.0, 0.5), (0.0, 1.0), (0.5, 0.5)]):
        for i in range(4):
            rows.append(make_row(unit=str(unit), condition="description",
                                 correct=i < 4 * words))  # fmt: skip
            rows.append(make_row(unit=str(unit), condition="natural", correct=i < 4 * exemplars))
    rows.append(make_row(unit="9", condition="description", correct=True))  # no exemplar trials

    compared = descriptions.compare(rows, KINDS, {}, resamples=500)

    (layer,) = compared.layers
    assert layer.cells["description"].n == 13 and layer.cells["description"].units == 4
    assert layer.cells["exemplars"].accuracy == pytest.approx(8 / 12)
    difference = layer.differences["description"]
    assert difference.units == 3
    assert difference.mean == pytest.approx(np.mean([0.5, -1.0, 0.0]))
    assert difference.low <= difference.mean <= difference.high
    assert "description + exemplars" not in layer.differences
    by_unit = {u.unit: u for u in compared.units}
    assert by_unit["1"].differences == {"description": pytest.approx(-1.0)}
    assert by_unit["9"].differences == {}
    assert compared.conditions["description"] == ["description"]


def test_a_study_without_words_has_no_comparison(owner: User) -> None:
    study = factories.study(owner, "imi2023")
    assert descriptions.study_comparison(study, "v") is None
    assert descriptions.compare(list(synthetic_rows(20)), {}, {}).layers == []
