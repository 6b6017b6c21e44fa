"""Populations as a Job: clustering by activity (streamed over shards of images) or by the
stored ablation profiles, written as Population rows covering every unit once."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from backend.atlas import services
from backend.atlas.models import Population
from backend.stimuli.models import Job
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def test_populations_by_activity_cover_every_unit_once(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    job = services.do_queue_populations_job(channels, image_set, send=False, images_per_shard=15)
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    rows = list(Population.objects.filter(unit_set=channels, basis="activity"))
    members = sorted(u for row in rows for u in row.members)
    assert members == list(range(24)) and len(rows) == job.result["n_populations"] >= 2
    assert rows[0].details["rule"] == "best silhouette"
    assert len(job.result["linkage"]) == 23  # scipy's linkage: units - 1 merges
    sizes = [len(row.members) for row in rows]
    assert sizes == sorted(sizes, reverse=True)


def test_a_threshold_of_two_leaves_one_population(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    run_job_here(services.do_queue_populations_job(channels, image_set, send=False, threshold=2))
    (row,) = Population.objects.filter(unit_set=channels)
    assert len(row.members) == 24 and row.details["rule"] == "distance threshold 2.0"


def test_bad_population_parameters_queue_nothing(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    cases = [
        ({"basis": "astrology"}, "basis must be one of activity, ablation"),
        ({"threshold": 5}, "threshold must be a distance"),
        ({"basis": "ablation"}, "compute ablations first"),
        ({"max_populations": 0}, "max_populations must be a whole number"),
    ]
    for params, message in cases:
        with pytest.raises(ValidationError) as caught:
            services.do_queue_populations_job(channels, image_set, send=False, **params)
        assert message in " ".join(caught.value.messages), params
    assert not Job.objects.exists()


def test_populations_by_ablation_profiles_use_the_stored_ablations(
    stimuli: dict[str, Any], few_images: Any
) -> None:
    channels = stimuli["channels"]
    run_job_here(services.do_queue_ablation_job(channels, few_images, send=False))
    job = run_job_here(
        services.do_queue_populations_job(channels, few_images, "ablation", send=False)
    )
    assert job.state == Job.State.SUCCEEDED, job.error
    rows = Population.objects.filter(unit_set=channels, basis="ablation")
    assert sorted(u for row in rows for u in row.members) == list(range(24))


def test_a_population_unit_set_measures_the_mean_of_its_members(stimuli: dict[str, Any]) -> None:
    from backend.atlas.models import Measure

    channels, image_set = stimuli["channels"], stimuli["image_set"]
    run_job_here(services.do_queue_populations_job(channels, image_set, send=False))
    populations = services.do_create_population_unit_set(channels, image_set)
    assert populations.kind == "population" and populations.is_ready
    job = services.do_queue_activity_job(
        [channels, populations], image_set, send=False, measures=["mean"]
    )
    assert run_job_here(job).state == Job.State.SUCCEEDED
    means = dict(
        Measure.objects.filter(unit__unit_set=channels, name="mean").values_list(
            "unit__index", "value"
        )
    )
    for row in Population.objects.filter(unit_set=channels).order_by("index"):
        measured = Measure.objects.get(unit__unit_set=populations, unit__index=row.index)
        expected = sum(means[u] for u in row.members) / len(row.members)
        assert measured.value == pytest.approx(expected, rel=1e-5, abs=1e-7)
    with pytest.raises(ValidationError, match="has no ablation populations"):
        services.do_create_population_unit_set(channels, image_set, "ablation")
