"""Human against machine on the results page: per study, Spearman's ρ of human accuracy per
unit with each measure of the units (with its bootstrap CI), as scipy computes it from the
per-unit export; the export (CSV and Parquet) carries every measure as a column and each
unit's top description."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import User
from django.test import Client
from scipy import stats

from backend.atlas import services
from backend.atlas.compare import spearman_with_ci
from backend.atlas.models import Description
from backend.participation.models import Session
from backend.stimuli.models import ImageSet
from backend.studies.models import Trial, Unit
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import StudyFixture, make_study

pytestmark = pytest.mark.django_db
N_UNITS = 6
MEAN = [0.3, 1.2, 0.7, 2.5, 0.1, 1.9]
CSI = [0.9, 0.1, 0.5, 0.3, 0.8, 0.2]


def study_with_measured_units(owner: User, take_part: Callable[..., Session]) -> StudyFixture:
    """Main trials cycle through six units of one unit set; three participants; the units
    have a `mean` and a `csi`, unit 0 two descriptions."""
    fixture = make_study(owner, n_lists=3, exclusion_rules=SMALL_RULES)
    first = Trial.objects.filter(task_list__study=fixture.study).first()
    assert first is not None and first.unit is not None
    unit_set = first.unit.unit_set
    units = [first.unit] + [
        Unit.objects.create(unit_set=unit_set, index=i) for i in range(10, 10 + N_UNITS - 1)
    ]
    for trial in Trial.objects.filter(task_list__study=fixture.study, is_catch=False):
        Trial.objects.filter(pk=trial.pk).update(unit=units[trial.index % N_UNITS])
    for pid in ("firstparticipant01", "secondparticipant2", "thirdparticipant03"):
        take_part(fixture, pid)
    probe = ImageSet.objects.create(name="probe", origin=ImageSet.Origin.DEMO)
    by_index = {u.index: i for i, u in enumerate(units)}
    services.do_save_measures(
        unit_set, probe,
        {"mean": {u.index: MEAN[by_index[u.index]] for u in units},
         "csi": {u.index: CSI[by_index[u.index]] for u in units}},
        {}, None,
    )  # fmt: skip
    for source, text, score in (("a", "dog", 0.2), ("b", "wheel", 0.6)):
        Description.objects.create(unit=units[0], image_set=probe, source=source, text=text,
                                   concepts=[{"concept": text, "score": score}])  # fmt: skip
    return fixture


def export_csv(client: Client, fixture: StudyFixture) -> list[dict[str, str]]:
    response = client.get(f"/admin/studies/study/{fixture.study.pk}/results/units.csv")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_dashboard_correlates_accuracy_with_each_measure_as_scipy_does(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = study_with_measured_units(owner, take_part)
    client.force_login(owner)
    rows = export_csv(client, fixture)
    assert len(rows) == N_UNITS
    accuracy = [float(r["accuracy"]) for r in rows]
    assert len(set(accuracy)) > 1
    page = client.get(f"/admin/studies/study/{fixture.study.pk}/results/").content.decode()
    table = re.search(r'<table id="human-machine">.*?</table>', page, re.S)
    assert table is not None, page[-4000:]
    for measure in ("mean", "csi"):
        values = [float(r[measure]) for r in rows]
        expected = stats.spearmanr(values, accuracy).statistic
        ours = spearman_with_ci(values, accuracy)  # type: ignore[arg-type]
        assert ours.statistic == pytest.approx(expected)
        line = re.search(rf"<tr><td>{measure}</td><td>natural</td>(.*?)</tr>", table.group(0), re.S)
        assert line is not None
        cells = re.findall(r"<td>(.*?)</td>", line.group(1), re.S)
        assert cells[0] == str(N_UNITS)
        assert float(cells[1]) == pytest.approx(expected, abs=5e-4)
        assert ours.low is not None and ours.high is not None
        assert cells[2].strip() == f"{ours.low:.3f} – {ours.high:.3f}"
    assert len(re.findall(r'class="human-machine-figure" data-measure="[a-z]+"><svg', page)) == 2


def test_the_per_unit_export_carries_every_measure_and_the_top_description(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = study_with_measured_units(owner, take_part)
    client.force_login(owner)
    rows = export_csv(client, fixture)
    assert {"mean", "csi", "description", "description_score", "accuracy", "n"} <= set(rows[0])
    by_unit = {r["unit"]: r for r in rows}
    assert float(by_unit["3"]["mean"]) == MEAN[0] and float(by_unit["10"]["csi"]) == CSI[1]
    assert by_unit["3"]["description"] == "wheel"  # the higher-scoring of its two
    assert by_unit["10"]["description"] == ""
    response = client.get(f"/admin/studies/study/{fixture.study.pk}/results/units.parquet")
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(response.content)).to_pylist()
    parquet = {r["unit"]: r for r in table}
    assert parquet["3"]["mean"] == MEAN[0] and parquet["3"]["description"] == "wheel"
    assert parquet["10"]["description"] is None
    assert [r["accuracy"] for r in table] == [float(r["accuracy"]) for r in rows]


def test_a_study_without_measures_says_how_to_get_them(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    take_part(fixture, "firstparticipant01")
    client.force_login(owner)
    page = client.get(f"/admin/studies/study/{fixture.study.pk}/results/").content.decode()
    assert 'id="no-human-machine"' in page and "Atlas: queue" in page


def test_outsiders_get_no_per_unit_export(
    client: Client, owner: User, outsider: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    client.force_login(outsider)
    response = client.get(f"/admin/studies/study/{fixture.study.pk}/results/units.csv")
    assert response.status_code == 404
