"""The machine observer as Jobs: an operator-supplied backbone (a small random TorchScript file)
scores every unit (MIS as Measures, each image embedded once and kept, the same seed the same
MIS), pilots a built study (exactly its task lists' trials, choices from the images alone) and is
calibrated against simulated people."""

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
from PIL import Image as PILImage
from rest_framework.test import APIClient

from backend.atlas import observers
from backend.atlas.models import Measure, Observer, ObserverAnswer, ObserverEmbedding
from backend.participation.models import Participant, Response, Session
from backend.stimuli import services as stimuli_services
from backend.stimuli.models import ExemplarSet, ImageSetMember, Job, Network, Unit
from backend.stimuli.services import store_image
from backend.studies import services as study_services
from backend.studies.models import Trial
from tests.studies import factories
from tests.worker.factories import TinyConvNet
from worker.analyses import observer as observer_analysis
from worker.tasks import run_job_here

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning"),
]


@pytest.fixture
def observer(tmp_path: Path) -> Observer:
    """An operator-supplied backbone: a randomly initialised network exported to TorchScript."""
    path = tmp_path / "backbone.pt"
    torch.jit.trace(TinyConvNet(seed=0).eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    network = stimuli_services.do_create_network("net", f"torchscript:{path}")
    return observers.do_create_observer("tiny", network, layer="output")


def with_members(unit_set: Any) -> None:
    """Put every exemplar image in the exemplar sets' image set (n = its size)."""
    image_set = factories.natural_image_set()
    ids = {e["image"] for x in ExemplarSet.objects.filter(unit__unit_set=unit_set)
           for e in x.top + x.bottom}  # fmt: skip
    members = [
        ImageSetMember(image_set=image_set, image_id=i, position=p)
        for p, i in enumerate(sorted(ids))
    ]
    ImageSetMember.objects.bulk_create(members, ignore_conflicts=True)


def test_mis_of_every_unit_is_a_measure_from_images_embedded_once(observer: Observer) -> None:
    units = factories.unit_set(n_units=4)
    factories.add_exemplars(units, factories.image_pool())
    with_members(units)
    n_images = factories.natural_image_set().members.count()
    pool = -(-n_images // 4)  # ⌈0.25 · n⌉
    job = run_job_here(observers.do_queue_mis(observer, [units], send=False, units_per_shard=3))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.shards.filter(role="work").count() == 2
    measures = Measure.objects.filter(name="mis:tiny", unit__unit_set=units)
    assert measures.count() == 4
    first = dict(measures.values_list("unit__index", "value"))
    assert all(0.0 < v < 1.0 for v in first.values())
    details = measures.first().details  # type: ignore[union-attr]
    assert details["pool"] == pool and details["k"] == 9 and len(details["probabilities"]) == 20
    pooled_images = {e["image"] for x in ExemplarSet.objects.filter(unit__unit_set=units)
                     for e in x.top[:pool] + x.bottom[:pool]}  # fmt: skip
    assert ObserverEmbedding.objects.filter(observer=observer).count() == len(pooled_images)
    assert job.result["embedded"] == len(pooled_images)

    again = run_job_here(observers.do_queue_mis(observer, [units], send=False))
    assert again.result["embedded"] == 0  # kept: the second pass is matrix products only
    assert dict(measures.values_list("unit__index", "value")) == first  # same seed, same MIS
    other = run_job_here(observers.do_queue_mis(observer, [units], send=False, seed=1))
    assert other.state == Job.State.SUCCEEDED
    assert dict(measures.values_list("unit__index", "value")) != first


def solid(color: tuple[int, int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.integers(-8, 9, size=(32, 32, 3)), 0, 255)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_unit_with_separable_exemplars_scores_near_1_and_a_shuffled_one_near_a_half(
    observer: Observer,
) -> None:
    Observer.objects.filter(pk=observer.pk).update(alpha=200.0)
    observer.refresh_from_db()
    units = factories.unit_set(name="made", n_units=2)
    red = [store_image(solid((220, 30, 30), s)).pk for s in range(40)]
    blue = [store_image(solid((30, 30, 220), 100 + s)).pk for s in range(40)]
    mixed = red + blue
    random.Random(0).shuffle(mixed)
    image_set = factories.natural_image_set()
    pools = [(red, blue), (mixed[:40], mixed[40:])]
    for unit, (top, bottom) in zip(units.units.order_by("index"), pools, strict=True):
        ExemplarSet.objects.create(
            unit=unit, image_set=image_set, k=40,
            top=factories.entries(top), bottom=factories.entries(bottom),
        )  # fmt: skip
    with_members(units)  # 80 images: pools of 20, tasks of K + 1 = 10
    job = run_job_here(observers.do_queue_mis(observer, [units], send=False, n_tasks=100))
    assert job.state == Job.State.SUCCEEDED, job.error
    mis = observers.observer_mis(observer, units)
    assert mis[0] is not None and mis[0] > 0.95
    assert mis[1] is not None and abs(mis[1] - 0.5) < 0.2


def test_too_few_exemplars_leave_the_measure_undefined_with_the_reason(observer: Observer) -> None:
    units = factories.unit_set(name="few", n_units=1)
    factories.add_exemplars(units, factories.image_pool())  # an image set without members: n = 0
    job = run_job_here(observers.do_queue_mis(observer, [units], send=False))
    assert job.state == Job.State.SUCCEEDED and job.result["undefined"] == 1
    measure = Measure.objects.get(name="mis:tiny", unit__unit_set=units)
    assert measure.value is None and "needs 10 images per side" in measure.details["undefined"]


def built_study(owner: Any) -> Any:
    units = factories.stimulated_unit_set(n_units=4)
    study = factories.study(owner, units=units)
    study.main_trials_per_list, study.target_valid_responses_per_unit = 4, 4
    study.catch_trials_per_list = 1
    study.save()
    study_services.do_build_task_lists(study)
    return study


def test_the_pilot_answers_exactly_the_task_lists_trials_from_the_images_alone(
    observer: Observer, owner: Any, superuser: Any
) -> None:
    study = built_study(owner)
    trials = Trial.objects.filter(task_list__study=study)
    assert trials.filter(is_catch=True).exists()
    job = run_job_here(
        observers.do_queue_pilot(observer, study, send=False, task_lists_per_shard=2)
    )
    assert job.state == Job.State.SUCCEEDED, job.error
    answers = ObserverAnswer.objects.filter(observer=observer)
    assert sorted(answers.values_list("trial_id", flat=True)) == sorted(
        trials.values_list("pk", flat=True)
    )
    assert job.result["trials"] == trials.count()
    assert set(job.result["condition"]) == set(trials.values_list("condition__name", flat=True))
    assert job.result["catch"]["trials"] == trials.filter(is_catch=True).count()

    trial = trials.filter(is_catch=False).first()
    assert trial is not None
    before = answers.select_related("trial").get(trial=trial)
    before_p_correct = before.p_correct
    Trial.objects.filter(pk=trial.pk).update(correct_query=1 - trial.correct_query)
    run_job_here(observers.do_queue_pilot(observer, study, send=False))
    after = ObserverAnswer.objects.get(observer=observer, trial=trial)
    assert (after.choice, after.p_first, after.gap) == (before.choice, before.p_first, before.gap)
    assert after.p_correct == pytest.approx(1 - before_p_correct)
    assert after.p_correct != pytest.approx(before_p_correct)

    client = APIClient()
    client.force_authenticate(owner)
    export = client.get(f"/api/v1/researcher/atlas/observers/{observer.pk}/pilot/{study.pk}.csv")
    assert export.status_code == 200 and export["Content-Type"] == "text/csv"
    table = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(table) == trials.count() and tuple(table[0]) == observers.PILOT_COLUMNS
    flipped = next(r for r in table if int(r["task_list"]) == trial.task_list.index
                   and int(r["trial_index"]) == trial.index)  # fmt: skip
    assert int(flipped["correct_query"]) == 1 - trial.correct_query
    assert float(flipped["p_correct"]) == pytest.approx(after.p_correct)

    page = Client()
    page.force_login(superuser)
    html = page.get(f"/admin/atlas/observer/{observer.pk}/change/").content.decode()
    assert "Machine pilots" in html and f"{study.slug}</b>: {trials.count()} trials" in html
    assert "catch trials" in html and f"{observer.pk}/pilot/{study.pk}.csv" in html


def test_calibration_recovers_alpha_from_simulated_people(observer: Observer, owner: Any) -> None:
    study = built_study(owner)
    run_job_here(observers.do_queue_pilot(observer, study, send=False))
    answers = {a.trial_id: a for a in ObserverAnswer.objects.filter(observer=observer)}
    lists = list(study.task_lists.prefetch_related("trials"))
    rng = random.Random(0)
    simulated: list[tuple[float, bool]] = []
    true_alpha = 1.0 / max(abs(a.gap) for a in answers.values())  # gaps of order 1 under α
    true_alpha *= 3
    for person in range(60):
        task_list = lists[person % len(lists)]
        participant = Participant.objects.create(platform="link", platform_id=f"p{person}")
        session = Session.objects.create(
            study=study, participant=participant, task_list=task_list,
            state=Session.State.COMPLETED, last_activity_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
        rows = []
        for trial in task_list.trials.all():
            gap = answers[trial.pk].gap * (1 if trial.correct_query == 0 else -1)
            correct = rng.random() < 1 / (1 + np.exp(-true_alpha * gap))
            if not trial.is_catch:  # calibration reads the main trials only
                simulated.append((gap, correct))
            choice = trial.correct_query if correct else 1 - trial.correct_query
            rows.append(
                Response(
                    session=session, trial=trial, trial_index=trial.index, choice=choice,
                    confidence=2, rt_ms=900.0, correct=correct,
                )
            )  # fmt: skip
        Response.objects.bulk_create(rows)
    job = run_job_here(observers.do_queue_calibration(observer, study, send=False))
    assert job.state == Job.State.SUCCEEDED, job.error
    result = job.result
    # The job fits exactly the people's answers against the pilot's gaps (how well a fit recovers
    # α from 4,000 simulated answers is the pure fit's test in tests/worker/test_observer.py).
    expected = observer_analysis.fit_alpha(*zip(*simulated, strict=True))
    assert result["alpha"] == pytest.approx(expected.alpha, rel=1e-9), result
    assert result["alpha_ci"] == pytest.approx([expected.ci_low, expected.ci_high], rel=1e-9)
    assert result["log_likelihood"] == pytest.approx(expected.log_likelihood, rel=1e-9)
    assert result["responses"] == Response.objects.filter(trial__is_catch=False).count()
    assert set(result["per_condition"]) <= set(
        Trial.objects.values_list("condition__name", flat=True)
    )
    observer.refresh_from_db()
    assert observer.calibrations[-1]["alpha"] == pytest.approx(result["alpha"])
    assert Unit.objects.exists() and Network.objects.filter(name="net").exists()


def test_pools_count_photos_where_the_exemplars_keep_one_image_per_photo(
    observer: Observer,
) -> None:
    units = factories.unit_set(name="photos", n_units=1)
    factories.add_exemplars(units, factories.image_pool())
    with_members(units)  # 60 crops of 12 photos: n = 12, a pool of 3 < K + 1
    image_set = factories.natural_image_set()
    for member in image_set.members.all():
        member.source = f"photo-{member.position % 12}"
        member.save()
    ExemplarSet.objects.filter(unit__unit_set=units).update(distinct_sources=True)
    run_job_here(observers.do_queue_mis(observer, [units], send=False))
    measure = Measure.objects.get(name="mis:tiny", unit__unit_set=units)
    assert measure.details["pool"] == 3 and measure.value is None
    ExemplarSet.objects.filter(unit__unit_set=units).update(distinct_sources=False)
    run_job_here(observers.do_queue_mis(observer, [units], send=False))
    measure.refresh_from_db()
    assert measure.details["pool"] == 15 and measure.value is not None
