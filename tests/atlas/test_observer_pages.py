"""The machine observer on the researcher's pages: "Run the machine observer" on the study page
(predictions per condition, layer, basis and unit; flags before launch), the results page's block
(the pilot beside the people, MIS against human accuracy per unit with Spearman's ρ and its
bootstrap CI), the human export with the observer's columns, and the calibration from an
imported dataset's trial-level data."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.test import Client

from backend.analysis import services as analysis_services
from backend.analysis.exports import iter_csv
from backend.analysis.rows import study_rows
from backend.analysis.tidy import COLUMNS
from backend.atlas import observer_pages, observers
from backend.atlas.compare import spearman_with_ci
from backend.atlas.models import Measure, Observer, ObserverAnswer
from backend.participation.models import Participant, Response, Session
from backend.stimuli import services as stimuli_services
from backend.stimuli.models import Job, Unit
from backend.studies import services as study_services
from backend.studies.models import Study, Trial
from tests.studies import factories
from tests.worker.factories import TinyConvNet
from worker.tasks import run_job_here

SAME = {column: column for column in COLUMNS}  # a PsyLens export read back as it is

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning"),
]


@pytest.fixture
def outsider(django_user_model: Any, admin_password: str) -> Any:
    """A researcher who neither owns nor collaborates on the study."""
    return django_user_model.objects.create_user("outsider", password=admin_password, is_staff=True)


@pytest.fixture
def observer(tmp_path: Path) -> Observer:
    path = tmp_path / "backbone.pt"
    torch.jit.trace(TinyConvNet(seed=0).eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    network = stimuli_services.do_create_network("net", f"torchscript:{path}")
    return observers.do_create_observer("tiny", network, layer="output")


def built_study(owner: Any) -> Study:
    units = factories.stimulated_unit_set(n_units=4)
    study = factories.study(owner, units=units)
    study.main_trials_per_list, study.target_valid_responses_per_unit = 4, 4
    study.catch_trials_per_list = 1
    study.save()
    study_services.do_build_task_lists(study)
    return study


def piloted(observer: Observer, study: Study) -> Job:
    job = run_job_here(observers.do_queue_pilot(observer, study, send=False))
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def simulate_people(study: Study, people: int = 24, seed: int = 0) -> None:
    """Completed sessions whose people are right more often on units with a higher index."""
    rng = random.Random(seed)
    lists = list(study.task_lists.prefetch_related("trials__unit"))
    for person in range(people):
        task_list = lists[person % len(lists)]
        participant = Participant.objects.create(platform="link", platform_id=f"p{person}")
        session = Session.objects.create(
            study=study, participant=participant, task_list=task_list,
            state=Session.State.COMPLETED, last_activity_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
        rows = []
        for trial in task_list.trials.all():
            correct = rng.random() < 0.5 + 0.1 * trial.unit.index
            choice = trial.correct_query if correct else 1 - trial.correct_query
            rows.append(
                Response(
                    session=session,
                    trial=trial,
                    trial_index=trial.index,
                    choice=choice,
                    confidence=2,
                    rt_ms=900.0,
                    correct=correct,
                )
            )
        Response.objects.bulk_create(rows)


def give_mis(observer: Observer, study: Study) -> dict[int, float]:
    """A MIS Measure for each unit of the study (made here: the MIS job has its own tests)."""
    units = Unit.objects.filter(pk__in=Trial.objects.filter(task_list__study=study).values("unit"))
    values = {}
    image_set = factories.natural_image_set()
    for unit in units:
        values[unit.pk] = 0.5 + 0.1 * unit.index + 0.01 * (unit.index % 2)
        Measure.objects.create(unit=unit, image_set=image_set,
                               name=observer.measure_name, value=values[unit.pk])  # fmt: skip
    return values


def study_page(client: Client, study: Study) -> str:
    response = client.get(f"/admin/studies/study/{study.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_study_page_runs_the_machine_observer_and_shows_its_predictions(
    observer: Observer, owner: Any, outsider: Any
) -> None:
    study = built_study(owner)
    client = Client()
    client.force_login(owner)
    html = study_page(client, study)
    assert "Run the machine observer" in html and f'value="{observer.pk}"' in html
    run_url = f"/admin/atlas/observer/pilot-study/{study.pk}/"

    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.post(run_url, {"observer": observer.pk}).status_code == 404
    assert client.post(run_url, {"observer": "x"}).status_code == 302
    assert client.get(run_url).status_code == 405
    assert not Job.objects.filter(kind=observers.PILOT_KIND).exists()

    response = client.post(run_url, {"observer": observer.pk})
    assert response.status_code == 302 and response["Location"].endswith(f"/{study.pk}/change/")
    job = Job.objects.get(kind=observers.PILOT_KIND)
    assert job.params == {"observer": observer.pk, "study": study.pk} and job.created_by == owner
    assert run_job_here(job).state == Job.State.SUCCEEDED

    html = study_page(client, study)
    summary = observers.pilot_summary(observer, study)
    trials = Trial.objects.filter(task_list__study=study)
    assert f"{trials.count()} trials answered" in html
    for grouping in observers.GROUPINGS:
        assert f'class="machine-observer-{grouping}"' in html
        for label, cell in summary[grouping].items():
            assert f"<td>{label}</td><td>{cell['trials']}</td>" in html
    assert summary["basis"] == {
        "channels": observers.accuracy(list(ObserverAnswer.objects.filter(trial__is_catch=False)))
    }
    assert f"Latest machine pilot: job {job.pk}, succeeded" in html


def test_a_design_the_observer_finds_trivial_is_flagged_on_the_study_page(
    observer: Observer, owner: Any
) -> None:
    study = built_study(owner)
    piloted(observer, study)
    main = ObserverAnswer.objects.filter(trial__is_catch=False).select_related("trial")
    condition = main.first().trial.condition.name  # type: ignore[union-attr]
    assert main.filter(trial__condition__name=condition).count() >= observers.FLAG_MIN_TRIALS
    for answer in main.filter(trial__condition__name=condition):
        answer.choice = answer.trial.correct_query  # every hard choice right: ≈ 100 %
        answer.save()
    client = Client()
    client.force_login(owner)
    html = study_page(client, study)
    assert f"Condition <b>{condition}</b> looks <b>trivial</b>" in html
    for answer in main.filter(trial__condition__name=condition):
        answer.choice = None  # every choice a tie: ≈ 50 %
        answer.save()
    assert f"Condition <b>{condition}</b> looks <b>impossible</b>" in study_page(client, study)


def test_the_results_page_shows_the_pilot_beside_people_and_mis_against_accuracy(
    observer: Observer, owner: Any
) -> None:
    study = built_study(owner)
    piloted(observer, study)
    simulate_people(study)
    mis = give_mis(observer, study)
    client = Client()
    client.force_login(owner)
    html = client.get(f"/admin/studies/study/{study.pk}/results/").content.decode()
    assert f"Machine observer {observer.name} (α = {observer.alpha}) beside the people" in html
    summary = observers.pilot_summary(observer, study)
    for name, cell in summary["condition"].items():
        assert f"<td>{name}</td>" in html and f"{cell['predicted_accuracy']:.3f}" in html

    human: dict[tuple[int, str], list[bool]] = {}
    for response in Response.objects.filter(trial__is_catch=False).select_related("trial"):
        key = (response.trial.unit_id, response.trial.condition.name)
        human.setdefault(key, []).append(response.correct)
    for condition in {c for _, c in human}:
        units = sorted(u for u, c in human if c == condition)
        accuracy = [sum(human[(u, condition)]) / len(human[(u, condition)]) for u in units]
        rho = spearman_with_ci([mis[u] for u in units], accuracy, n_boot=1000)  # type: ignore[arg-type]
        figure = html.split(f'data-condition="{condition}">', 1)[1].split("</figure>", 1)[0]
        assert figure.count("<circle") == len(units)
        assert f"{len(units)} units; Spearman ρ = {rho.statistic:.2f}" in figure
        assert f"95 % CI {rho.low:.2f} to {rho.high:.2f}" in figure
    assert f"/admin/atlas/observer/{observer.pk}/study/{study.pk}/responses.csv" in html


def test_the_human_export_carries_the_observers_columns(
    observer: Observer, owner: Any, outsider: Any
) -> None:
    study = built_study(owner)
    piloted(observer, study)
    simulate_people(study, people=4)
    mis = give_mis(observer, study)
    url = f"/admin/atlas/observer/{observer.pk}/study/{study.pk}/responses.csv"
    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.get(url).status_code == 404
    client = Client()
    client.force_login(owner)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    text = b"".join(response.streaming_content).decode()
    plain = "".join(iter_csv(study_rows(study))).splitlines()
    lines = text.splitlines()
    assert len(lines) == len(plain) and len(lines) > 1
    table = list(csv.reader(lines))
    assert tuple(table[0]) == (*COLUMNS, *observer_pages.OBSERVER_COLUMNS)
    assert [row[: len(COLUMNS)] for row in table] == list(csv.reader(plain))[0:1] + [
        row[: len(COLUMNS)] for row in list(csv.reader(plain))[1:]
    ]
    answers = {(a.trial.task_list.index, a.trial.index): a
               for a in ObserverAnswer.objects.select_related("trial__task_list")}  # fmt: skip
    mis_by_index = {Unit.objects.get(pk=pk).index: value for pk, value in mis.items()}
    checked = 0
    for row in csv.DictReader(io.StringIO(text)):
        assert row["observer"] == observer.name and float(row["observer_alpha"]) == observer.alpha
        assert float(row["unit_mis"]) == pytest.approx(mis_by_index[int(row["unit_index"])])
        if row["is_practice"] == "true":
            assert row["observer_p_first"] == ""
            continue
        answer = answers[(int(row["task_list"].removeprefix("tl-")), int(row["trial_index"]))]
        assert float(row["observer_p_first"]) == pytest.approx(answer.p_first)
        assert float(row["observer_p_correct"]) == pytest.approx(answer.p_correct)
        assert float(row["observer_gap"]) == pytest.approx(answer.gap)
        if answer.choice is not None:
            assert int(row["observer_choice"]) == answer.choice
            right = answer.choice == answer.trial.correct_query
            assert row["observer_correct"] == str(right).lower()
        checked += 1
    assert checked == Response.objects.count()


def test_calibration_from_an_imported_dataset_matches_the_studys_own(
    observer: Observer, owner: Any
) -> None:
    study = built_study(owner)
    pilot = piloted(observer, study)
    answers = {a.trial_id: a for a in ObserverAnswer.objects.select_related("trial")}
    # People answer by the observer's own gaps at a known α, so the fit has something to find.
    rng = np.random.default_rng(0)
    scale = 3.0 / max(abs(a.gap) for a in answers.values())
    lists = list(study.task_lists.prefetch_related("trials"))
    for person in range(40):
        task_list = lists[person % len(lists)]
        participant = Participant.objects.create(platform="link", platform_id=f"q{person}")
        session = Session.objects.create(
            study=study, participant=participant, task_list=task_list,
            state=Session.State.COMPLETED, last_activity_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
        rows = []
        for trial in task_list.trials.all():
            gap = answers[trial.pk].gap * (1 if trial.correct_query == 0 else -1)
            correct = bool(rng.random() < 1 / (1 + np.exp(-scale * gap)))
            choice = trial.correct_query if correct else 1 - trial.correct_query
            rows.append(
                Response(
                    session=session,
                    trial=trial,
                    trial_index=trial.index,
                    choice=choice,
                    confidence=2,
                    rt_ms=900.0,
                    correct=correct,
                )
            )
        Response.objects.bulk_create(rows)
    give_mis(observer, study)
    own = run_job_here(observers.do_queue_calibration(observer, study, send=False))
    assert own.state == Job.State.SUCCEEDED, own.error

    exported = "".join(iter_csv(study_rows(study)))
    dataset = analysis_services.do_import_trial_file("again", io.StringIO(exported), SAME)
    job = run_job_here(observers.do_queue_calibration(observer, send=False, dataset=dataset))
    assert job.state == Job.State.SUCCEEDED, job.error
    imported, mine = job.result, own.result
    assert imported["dataset"] == dataset.pk and imported["skipped"] == {}
    assert imported["responses"] == mine["responses"]
    assert imported["alpha"] == pytest.approx(mine["alpha"], rel=1e-6)
    assert imported["alpha_ci"] == pytest.approx(mine["alpha_ci"], rel=1e-6)
    assert set(imported["per_condition"]) == set(mine["per_condition"])
    for condition, cell in mine["per_condition"].items():
        assert imported["per_condition"][condition] == pytest.approx(cell)
    assert imported["mis_vs_human"]["units"] == mine["mis_vs_human"]["units"] == 4
    assert imported["mis_vs_human"]["spearman"] == pytest.approx(mine["mis_vs_human"]["spearman"])
    assert imported["embedded"] == 0  # the pilot (job pilot) had embedded every image already
    assert pilot.result["trials"] == Trial.objects.filter(task_list__study=study).count()
    observer.refresh_from_db()
    assert observer.calibrations[-1]["dataset"] == dataset.pk


def test_an_imported_row_the_observer_cannot_answer_is_left_out_and_counted(
    observer: Observer, owner: Any
) -> None:
    study = built_study(owner)
    piloted(observer, study)
    simulate_people(study, people=4)
    rows = list(csv.DictReader(io.StringIO("".join(iter_csv(study_rows(study))))))
    main = [r for r in rows if r["is_catch"] == "false" and r["is_practice"] == "false"]
    main.sort(key=lambda r: not r["reference_images"])  # rows with references first
    main[0]["query_images"] = "0" * 64 + ".png;" + main[0]["query_images"].split(";")[1]
    main[1]["reference_images"] = main[1]["reference_images"] + ";" + "f" * 64 + ".png"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    dataset = analysis_services.do_import_trial_file("edited", io.StringIO(buffer.getvalue()), SAME)
    job = run_job_here(observers.do_queue_calibration(observer, send=False, dataset=dataset))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["responses"] == len(main) - 2
    assert sum(job.result["skipped"].values()) == 2


def test_calibrating_on_an_unknown_dataset_is_a_clear_4xx_that_queues_nothing(
    observer: Observer, owner: Any
) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    url = f"/api/v1/researcher/atlas/observers/{observer.pk}/calibrate"
    assert client.post(url, {"dataset": 999}, format="json").status_code == 404
    assert client.post(url, {"dataset": "x"}, format="json").status_code == 404
    assert not Job.objects.filter(kind=observers.CALIBRATION_KIND).exists()


def test_calibrating_on_another_researchers_import_is_a_404(
    observer: Observer, owner: Any, outsider: Any
) -> None:
    """Imported datasets follow their importer (#22): another researcher's private upload is
    as unknown as a missing one; the shared ones (no importer) stay open to all."""
    from rest_framework.test import APIClient

    study = built_study(owner)
    simulate_people(study, people=2)
    exported = "".join(iter_csv(study_rows(study)))
    private = analysis_services.do_import_trial_file(
        "mine", io.StringIO(exported), SAME, user=owner
    )
    client = APIClient()
    client.force_authenticate(outsider)
    url = f"/api/v1/researcher/atlas/observers/{observer.pk}/calibrate"
    answer = client.post(url, {"dataset": private.pk}, format="json")
    assert answer.status_code == 404, answer.content
    assert not Job.objects.filter(kind=observers.CALIBRATION_KIND).exists()
    shared = analysis_services.do_import_trial_file("shared", io.StringIO(exported), SAME)
    assert client.post(url, {"dataset": shared.pk}, format="json").status_code == 202
    assert Job.objects.filter(kind=observers.CALIBRATION_KIND).count() == 1
