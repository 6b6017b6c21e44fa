"""The description_choice paradigm (docs/descriptions.md): the builder makes trials from each
unit's stored Description (queries as in the reference trial: the max query is right), a
design whose units have no description is refused and nothing is built, and the participant
payload shows the words and two images and nothing that tells which is right."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.atlas.models import Description
from backend.stimuli.models import ExemplarSet, Image, ImageSet, ImageSetMember, Job, UnitSet
from backend.studies import services
from backend.studies.builder import BuildRefused
from backend.studies.models import Condition, Study, TaskList, Trial
from tests.studies import factories
from tests.studies.test_catch_leaks import shown_urls, timeline

pytestmark = pytest.mark.django_db

TRIAL_KEYS = {"index", "kind", "block", "references", "queries", "left_label", "right_label"}


def describe(units: UnitSet, image_set: ImageSet | None = None, word: str = "goldfish") -> None:
    image_set = image_set or factories.natural_image_set()
    for unit in units.units.all():
        concepts = [{"concept": f"{word} {unit.index}", "score": 2.5},
                    {"concept": "tench", "score": 1.0}]  # fmt: skip
        Description.objects.create(
            unit=unit, image_set=image_set, source="classifier: builtin:test",
            text=concepts[0]["concept"], concepts=concepts,
        )  # fmt: skip


def small(study: Study) -> Study:
    """The preset's design on 12 units: lists of 10 main and 2 catch trials, 2 answers a unit."""
    study.main_trials_per_list = 10
    study.catch_trials_per_list = 2
    study.target_valid_responses_per_unit = 2
    study.save()
    return study


@pytest.fixture
def units() -> UnitSet:
    return factories.stimulated_unit_set(12)


@pytest.fixture
def built(owner: User, units: UnitSet) -> Study:
    describe(units)
    study = small(factories.study(owner, "descriptions2023", units))
    services.do_build_task_lists(study)
    return study


def test_the_preset_has_description_description_natural_and_natural_conditions(
    owner: User,
) -> None:
    study = factories.study(owner, "descriptions2023")
    assert study.paradigm == "description_choice"
    rows = study.conditions.order_by("position").values_list(
        "name", "explanation", "shows_description"
    )
    assert list(rows) == [
        ("description", "none", True),
        ("description-natural", "natural", True),
        ("natural", "natural", False),
    ]


def test_description_trials_show_the_unit_s_words_and_the_max_query_is_right(built: Study) -> None:
    main = Trial.objects.filter(task_list__study=built, is_catch=False).select_related(
        "unit", "condition"
    )
    seen = set()
    for trial in main:
        seen.add(trial.condition.name)
        stored = Description.objects.get(unit=trial.unit)
        batches = ExemplarSet.objects.get(unit=trial.unit).imi_batches
        batch = batches["max"][trial.query_source["batch"]]
        assert trial.queries[trial.correct_query] == batch["query"]["image"]
        if trial.condition.name == "natural":
            assert (trial.kind, trial.description) == ("reference_choice", "")
            assert len(trial.references_max) == 9
            continue
        assert trial.kind == "description_choice"
        assert trial.description == stored.text == f"goldfish {trial.unit.index}"
        assert trial.query_source["description"] == stored.pk
        assert trial.query_source["description_source"] == "classifier: builtin:test"
        expected = 0 if trial.condition.name == "description" else 9
        assert len(trial.references_max) == len(trial.references_min) == expected
    assert seen == {"description", "description-natural", "natural"}


def test_a_catch_trial_of_a_description_condition_keeps_the_words(built: Study) -> None:
    catch = Trial.objects.filter(task_list__study=built, is_catch=True, kind="description_choice")
    assert catch.exists()
    for trial in catch:
        assert trial.description == Description.objects.get(unit=trial.unit).text
        assert trial.query_source["catch"] is True and trial.references_max


def test_a_design_whose_units_have_no_description_is_refused_and_nothing_is_built(
    owner: User, units: UnitSet
) -> None:
    describe(units)
    Description.objects.filter(unit__index__in=[3, 7]).delete()
    study = small(factories.study(owner, "descriptions2023", units))

    with pytest.raises(BuildRefused) as refused:
        services.do_build_task_lists(study)

    assert "2 unit(s) have no description to show" in refused.value.message
    assert "describe_units" in refused.value.message
    assert sorted(refused.value.missing["description"]) == sorted(
        units.units.filter(index__in=[3, 7]).values_list("pk", flat=True)
    )
    assert not TaskList.objects.filter(study=study).exists()

    # "Queue the missing jobs": one description job for the units' unit set, over the image set
    # the builder reads descriptions of first (the study's, else the unit set's).
    study.image_set = factories.natural_image_set()  # the exemplars' set, given its images
    study.save()
    for position, image in enumerate(Image.objects.filter(kind=Image.Kind.NATURAL)[:4]):
        ImageSetMember.objects.create(image_set=study.image_set, image=image, position=position)
    jobs = services.do_queue_missing_stimuli(study, refused.value.missing, owner)
    assert [job.kind for job in jobs] == ["describe_units"]
    assert jobs[0].params["unit_sets"] == [units.pk]
    assert jobs[0].params["image_set"] == study.image_set_id and jobs[0].created_by == owner


def test_queueing_the_missing_jobs_that_cannot_run_says_why_on_the_page(
    owner: User, units: UnitSet, admin_password: str, client: Client
) -> None:
    study = small(factories.study(owner, "descriptions2023", units))  # its image set is empty
    client.login(username=owner.username, password=admin_password)

    answer = client.post(f"/admin/studies/study/{study.pk}/queue_missing/", follow=True)

    assert answer.status_code == 200
    assert "Could not queue the jobs: image set demo has no images" in answer.content.decode()
    assert not Job.objects.exists()


def test_the_api_refuses_such_a_build_with_409_and_the_missing_units(
    owner: User, units: UnitSet, admin_password: str, client: Client
) -> None:
    study = small(factories.study(owner, "descriptions2023", units))
    client.login(username=owner.username, password=admin_password)

    response = client.post(f"/api/v1/researcher/studies/{study.slug}/build")

    assert response.status_code == 409, response.content
    assert "no description to show" in response.json()["message"]
    assert not TaskList.objects.filter(study=study).exists()


def test_showing_the_description_needs_the_description_paradigm(
    owner: User, units: UnitSet
) -> None:
    describe(units)
    study = small(factories.study(owner, "descriptions2023", units))
    study.paradigm = "reference_choice"
    study.save()

    with pytest.raises(BuildRefused, match="only the description_choice paradigm"):
        services.do_build_task_lists(study)
    assert not TaskList.objects.filter(study=study).exists()


def test_the_description_on_the_study_s_image_set_is_preferred(owner: User, units: UnitSet) -> None:
    describe(units, word="goldfish")
    other = ImageSet.objects.create(name="probe", origin="upload")
    describe(units, other, word="tabby cat")  # newer, on another image set
    study = small(factories.study(owner, "descriptions2023", units))
    services.do_build_task_lists(study)
    words = set(
        Trial.objects.filter(task_list__study=study, kind="description_choice").values_list(
            "description", flat=True
        )
    )
    assert words and all(word.startswith("goldfish") for word in words)
    study.image_set = None  # no image set: the latest description
    study.save()
    services.do_build_task_lists(study)
    words = set(
        Trial.objects.filter(task_list__study=study, kind="description_choice").values_list(
            "description", flat=True
        )
    )
    assert words and all(word.startswith("tabby cat") for word in words)


def test_the_payload_shows_the_words_and_two_images_and_no_answer(
    client: Client, built: Study
) -> None:
    trials = timeline(client, built)
    by_index = {
        t.index: t
        for t in Trial.objects.filter(task_list__study=built, task_list__sessions__isnull=False)
    }
    described = [t for t in trials if t["kind"] == "description_choice"]
    assert described
    for shown in trials:
        stored = by_index[shown["index"]]
        if shown["kind"] == "description_choice":
            assert set(shown) - {"left_label", "right_label"} == TRIAL_KEYS - {
                "left_label",
                "right_label",
            } | {"description"}
            assert shown["description"] == stored.description != ""
        else:
            assert "description" not in shown
        assert set(shown) <= TRIAL_KEYS | {"description"}
        assert len(shown["queries"]) == 2
        urls = shown_urls(shown)
        assert len(set(urls)) == len(urls)
        text = json.dumps(shown).lower()
        for word in ("max", "min", "correct", "catch", "unit", "source"):
            assert word not in text.replace("maximally activating", "").replace(
                "minimally activating", ""
            ).replace(shown.get("description", "").lower(), ""), (word, shown)


def test_between_participants_each_list_has_one_condition(built: Study) -> None:
    orders: list[Any] = list(built.task_lists.values_list("condition_order", flat=True))
    assert {tuple(order) for order in orders} == {
        ("description",),
        ("description-natural",),
        ("natural",),
    }
    assert Condition.objects.filter(study=built, shows_description=True).count() == 2


def test_practice_trials_of_a_description_condition_show_the_words_to_the_participant(
    client: Client, owner: User, units: UnitSet
) -> None:
    describe(units)
    study = small(factories.study(owner, "descriptions2023", units))
    factories.practice_per_condition(study, units, 1)
    services.do_build_task_lists(study)
    practice = {p.condition.name: p for p in study.practice_trials.select_related("condition")}
    assert practice["description"].kind == "description_choice"
    assert practice["description"].description == "goldfish 0"
    assert practice["description"].references_max == []
    assert (practice["natural"].kind, practice["natural"].description) == ("reference_choice", "")
    body = {"platform": {"pilot": study.pilot_token}, "browser": {"user_agent": "pytest"}}
    started = client.post(f"/api/v1/studies/{study.slug}/sessions", json.dumps(body),
                          content_type="application/json")  # fmt: skip
    assert started.status_code == 201
    (shown,) = started.json()["practice"]  # between participants: the list's own condition's
    stored = next(p for p in practice.values() if p.kind == shown["kind"]
                  and len(p.references_max) == len(shown["references"]["right"]))  # fmt: skip
    assert shown.get("description", "") == stored.description
