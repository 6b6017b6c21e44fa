"""Mid-range explanations: conditions whose references or queries come from a chosen activation
band (O'Mahony et al. 2025), the preset comparing extremal with mid-range references, and the
builder's refusal of a band too small for the design, with how many images it needs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from backend.stimuli.models import ExemplarSet, Image, ImageSetMember, Job, UnitSet
from backend.studies import services
from backend.studies.models import Trial
from tests.studies import factories

pytestmark = pytest.mark.django_db


def add_band(units: UnitSet, name: str, size: int, offset: int = 3000) -> dict[int, set[int]]:
    """Give every unit's exemplar set a band `name` of `size` images of their own."""
    pool = factories.image_pool(Image.Kind.NATURAL, offset)
    held = {}
    for exemplar_set in ExemplarSet.objects.filter(unit__unit_set=units):
        start = exemplar_set.unit.index % 10
        images = (pool[start:] + pool[:start])[:size]
        exemplar_set.bands[name] = {"low": 0.4, "high": 0.6, "quantiles": [0.4, 0.6],
                                    "images": factories.entries(images)}  # fmt: skip
        exemplar_set.save()
        held[exemplar_set.unit_id] = set(images)
    return held


def test_the_midrange_preset_draws_one_conditions_references_from_the_40_60_band(
    owner: User,
) -> None:
    units = factories.stimulated_unit_set(44)
    band = add_band(units, "p40_60", 20)
    study = factories.study(owner, "omahony2025-extremal-vs-midrange", units)
    assert [(c.name, c.reference_band, c.sides) for c in study.conditions.all()] == [
        ("extremal", "", "max_only"),
        ("midrange", "40-60", "max_only"),
    ]
    services.do_build_task_lists(study)
    main = Trial.objects.filter(task_list__study=study, is_catch=False).select_related("condition")
    assert {t.condition.name for t in main} == {"extremal", "midrange"}
    for trial in main:
        top = {e["image"] for e in ExemplarSet.objects.get(unit=trial.unit).top}
        assert len(trial.references_max) == 9 and trial.references_min == []
        assert trial.queries[trial.correct_query] in top  # IMI's query in both conditions
        shown = set(trial.references_max)
        if trial.condition.name == "midrange":
            assert shown <= band[trial.unit_id]
            assert not shown & set(trial.queries)
        else:
            assert shown <= top


def test_a_band_with_too_few_images_is_refused_saying_how_many_it_needs(owner: User) -> None:
    units = factories.stimulated_unit_set(44)
    add_band(units, "p40_60", 5)
    study = factories.study(owner, "omahony2025-extremal-vs-midrange", units)
    with pytest.raises(services.BuildRefused) as refused:
        services.do_build_task_lists(study)
    message = refused.value.message
    assert "44 unit(s) have too few images in the conditions' activation bands" in message
    assert "Condition 'midrange' needs 11 images in the band 40–60 %" in message
    assert "has 5" in message
    assert len(refused.value.missing["band_too_small"]) == 44
    study.refresh_from_db()
    assert study.task_lists.count() == 0 and study.built_at is None


def test_a_band_the_exemplars_lack_queues_the_exemplar_pass_with_it(owner: User) -> None:
    # The test's transaction never commits, so the shards' tasks are never sent.
    units = factories.stimulated_unit_set(44)
    image_set = factories.natural_image_set()
    ImageSetMember.objects.bulk_create(
        [ImageSetMember(image_set=image_set, image=image, position=i)
         for i, image in enumerate(Image.objects.filter(kind=Image.Kind.NATURAL))]
    )  # fmt: skip
    units.image_set = image_set
    units.save()
    study = factories.study(owner, "omahony2025-extremal-vs-midrange", units)
    with pytest.raises(services.BuildRefused) as refused:
        services.do_build_task_lists(study)
    assert "no exemplars in the conditions' activation bands" in refused.value.message
    services.do_queue_missing_stimuli(study, refused.value.missing, owner)
    job = Job.objects.get()
    assert job.kind == Job.Kind.COMPUTE_EXEMPLARS
    assert job.params["bands"] == [[40.0, 60.0]] and job.params["band_size"] == 20


def test_queries_can_come_from_bands_on_each_side(owner: User) -> None:
    units = factories.stimulated_unit_set(44)
    low = add_band(units, "p40_60", 12, offset=3000)
    high = add_band(units, "p90_100", 12, offset=4000)
    study = factories.study(owner, "imi2023", units)
    services.do_replace_conditions(study, [{**factories_natural(), "query_band": "40-60/90-100"}])
    services.do_build_task_lists(study)
    for trial in Trial.objects.filter(task_list__study=study, is_catch=False)[:60]:
        assert trial.queries[trial.correct_query] in high[trial.unit_id]
        assert trial.queries[1 - trial.correct_query] in low[trial.unit_id]
        assert trial.query_source["query_band"] == "40-60/90-100"


def factories_natural() -> dict[str, object]:
    return {"name": "natural", "explanation": "natural", "n_references": 9, "sides": "min_max"}


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"reference_band": "60-40"}, "reference_band", "0 <= LOW < HIGH <= 100"),
        ({"reference_band": "forty"}, "reference_band", "not a band"),
        ({"reference_band": "40-60", "explanation": "synthetic"}, "reference_band", "natural"),
        ({"reference_band": "0-10/40-60", "sides": "max_only"}, "reference_band", "max side"),
        ({"query_band": "40-60/50-100"}, "query_band", "do not overlap"),
    ],
)
def test_bad_bands_are_refused_with_a_message_and_the_conditions_stay(
    owner: User, fields: dict[str, str], field: str, says: str
) -> None:
    study = factories.study(owner, "imi2023")
    with pytest.raises(ValidationError) as refused:
        services.do_replace_conditions(study, [{**factories_natural(), **fields}])
    assert says in " ".join(refused.value.message_dict[field])
    assert [c.name for c in study.conditions.all()] == ["natural"]
    assert study.conditions.get().reference_band == ""


def test_the_exemplar_job_draws_its_chosen_bands_beside_the_defaults(owner: User) -> None:
    from backend.stimuli import services as stimuli_services
    from backend.stimuli.work import exemplar_config

    units = factories.stimulated_unit_set(2)
    image_set = factories.natural_image_set()
    ImageSetMember.objects.bulk_create(
        [ImageSetMember(image_set=image_set, image=image, position=i)
         for i, image in enumerate(Image.objects.filter(kind=Image.Kind.NATURAL))]
    )  # fmt: skip
    job = Job(params={"image_set": image_set.pk, "unit_sets": [units.pk],
                      "bands": [[40, 60], [2.5, 7.5]], "band_size": 30})  # fmt: skip
    config = exemplar_config(job, image_set)
    chosen = {band.name: (band.lower_q, band.upper_q) for band in config.bands}
    assert chosen["p40_60"] == (0.4, 0.6) and chosen["p2.5_7.5"] == (0.025, 0.075)
    assert "q45_55" in chosen and config.band_size == 30
    with pytest.raises(ValidationError, match="0 <= LOW < HIGH <= 100"):
        stimuli_services.do_queue_job(
            Job.Kind.COMPUTE_EXEMPLARS,
            {"image_set": image_set.pk, "unit_sets": [units.pk], "bands": [[60, 40]]},
            owner,
        )
    assert not Job.objects.exists()
