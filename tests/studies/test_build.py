"""Building task lists from the stimuli: each preset reproduces its published structure, the
answer key points at the max query, catch trials repeat a reference, and designs the stimuli
cannot satisfy are refused with what is missing (and the jobs to compute it can be queued)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.stimuli.models import ExemplarSet, Job, OcclusionMap
from backend.studies import services
from backend.studies.builder import BuildRefused
from backend.studies.models import PracticeTrial, Study, TaskList, Trial
from tests.studies import factories
from tests.studies.test_catch_leaks import pixels

pytestmark = pytest.mark.django_db


def same_picture_as_one_of(image: int, references: list[int]) -> bool:
    return pixels(image) in {pixels(reference) for reference in references}


def test_the_imi_preset_gives_lists_of_45_trials_with_5_catch_trials_and_30_responses_per_unit(
    owner: User,
) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    report = services.do_build_task_lists(study)
    assert report["trials_per_list"] == 45 and report["catch_trials_per_list"] == 5
    study.refresh_from_db()
    assert (study.lockout_ms, study.feedback_delay_ms, study.feedback_duration_ms) == (
        1500,
        350,
        1150,
    )
    assert study.show_counter and study.practice_until_correct
    assert study.exclusion_rules["min_catch_accuracy"] == 0.8
    main = Trial.objects.filter(task_list__study=study, is_catch=False)
    per_unit = Counter(main.values_list("unit_id", flat=True))
    assert set(per_unit.values()) == {30} and len(per_unit) == 44
    for task_list in study.task_lists.all():
        units = list(task_list.trials.filter(is_catch=False).values_list("unit_id", flat=True))
        assert len(units) == len(set(units)) == 40
        assert task_list.trials.filter(is_catch=True).count() == 5


def test_the_answer_key_is_the_max_query_and_the_query_order_is_random(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    services.do_build_task_lists(study)
    trials = Trial.objects.filter(task_list__study=study, is_catch=False).select_related("unit")
    for trial in trials[:200]:
        batches = ExemplarSet.objects.get(unit=trial.unit).imi_batches
        batch = batches["max"][trial.query_source["batch"]]
        assert trial.queries[trial.correct_query] == batch["query"]["image"]
        assert trial.references_max == [e["image"] for e in batch["references"]]
        assert len(trial.references_min) == 9
    assert 0.35 < sum(t.correct_query for t in trials) / trials.count() < 0.65


def test_a_catch_trials_queries_are_references_shown_on_their_sides(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    services.do_build_task_lists(study)
    catch_trials = Trial.objects.filter(task_list__study=study, is_catch=True)
    assert catch_trials.exists()
    for trial in catch_trials:
        # Shown as copies under other bytes (test_catch_leaks.py): the same pictures.
        assert same_picture_as_one_of(trial.queries[trial.correct_query], trial.references_max)
        assert same_picture_as_one_of(trial.queries[1 - trial.correct_query], trial.references_min)


def test_hand_picked_catch_units_give_their_ordinary_trials_as_catch_trials(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    easy = factories.stimulated_unit_set(3, name="easy", network="easy-net")
    services.do_set_relations(study, catch_units=list(easy.units.all()))
    services.do_build_task_lists(study)

    catch_trials = Trial.objects.filter(task_list__study=study, is_catch=True)
    assert catch_trials.count() == 5 * study.task_lists.count()
    assert set(catch_trials.values_list("unit__unit_set__name", flat=True)) == {"easy"}
    for trial in catch_trials.select_related("unit"):
        batch = ExemplarSet.objects.get(unit=trial.unit).imi_batches["max"][
            trial.query_source["batch"]
        ]
        assert trial.queries[trial.correct_query] == batch["query"]["image"]  # its own query
        assert trial.queries[trial.correct_query] not in trial.references_max
        assert "catch" not in trial.query_source
    main_units = set(Trial.objects.filter(is_catch=False).values_list("unit_id", flat=True))
    assert not main_units & set(easy.units.values_list("pk", flat=True))
    copy = services.do_clone_study(study, owner)
    assert set(copy.catch_units.all()) == set(easy.units.all())


def test_a_catch_unit_in_a_condition_without_references_repeats_its_references(
    owner: User,
) -> None:
    study = factories.study(
        owner,
        "zimmermann2021",
        factories.stimulated_unit_set(20),
        target_valid_responses_per_unit=1,
    )
    easy = factories.stimulated_unit_set(3, name="easy", network="easy-net")
    services.do_set_relations(study, catch_units=list(easy.units.all()))
    services.do_build_task_lists(study)
    catch = Trial.objects.filter(task_list__study=study, is_catch=True)
    assert set(catch.values_list("unit__unit_set__name", flat=True)) == {"easy"}
    assert catch.filter(condition__name="none").count() == 6  # 2 lists of none, 3 each
    for trial in catch.filter(condition__name="none"):
        correct = trial.queries[trial.correct_query]
        assert trial.references_max and same_picture_as_one_of(correct, trial.references_max)
    for trial in catch.filter(condition__name="natural"):
        assert "catch" not in trial.query_source  # the easy unit's ordinary occlusion trial


def test_the_same_seed_builds_the_same_trials(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    services.do_build_task_lists(study)
    first = list(
        Trial.objects.filter(task_list__study=study).values_list(
            "unit_id", "queries", "correct_query"
        )
    )
    services.do_build_task_lists(study)
    again = list(
        Trial.objects.filter(task_list__study=study).values_list(
            "unit_id", "queries", "correct_query"
        )
    )
    assert first == again


def main_blocks(task_list: TaskList) -> list[tuple[str, int, int]]:
    """(condition, main trials, catch trials) per block of a task list, in order."""
    blocks: dict[int, list[Any]] = {}
    for block, name, is_catch in task_list.trials.order_by("index").values_list(
        "block", "condition__name", "is_catch"
    ):
        entry = blocks.setdefault(block, [name, 0, 0])
        assert entry[0] == name  # a block has one condition
        entry[2 if is_catch else 1] += 1
    return [tuple(entry) for _, entry in sorted(blocks.items())]


def test_the_borowski_preset_shows_each_of_45_units_once_in_each_condition_to_10_participants(
    owner: User,
) -> None:
    """Exp. I as in its code: none ×2, the reference conditions' practice, synthetic and natural
    alternating ×3 (15 + 3 catch), none ×2; odd and even participants swap the two; one none
    block of 12 rotating; each condition's practice just before its first block."""
    units = factories.stimulated_unit_set(45)
    study = factories.study(owner, "borowski2021", units)
    with pytest.raises(BuildRefused, match="no practice trials of that condition"):
        services.do_build_task_lists(study)
    factories.practice_per_condition(study, units, 5)
    report = services.do_build_task_lists(study)

    assert report["trials_per_list"] == 153 and report["catch_trials_per_list"] == 18
    study.refresh_from_db()
    assert (study.feedback_delay_ms, study.feedback_duration_ms, study.break_every) == (
        500,
        1500,
        0,
    )
    assert study.feedback and not study.practice_until_correct and study.lockout_ms == 0
    assert study.block_feedback  # "You got X out of N trials correct" after each block
    assert study.task_lists.count() == 10
    practice = dict(study.practice_trials.values_list("pk", "condition__name"))
    big_none_blocks = set()
    for task_list in study.task_lists.order_by("index"):
        main = task_list.trials.filter(is_catch=False)
        pairs = list(main.values_list("unit_id", "condition__name"))
        assert len(pairs) == len(set(pairs)) == 135
        assert Counter(name for _, name in pairs) == {"natural": 45, "synthetic": 45, "none": 45}
        first, second = ("synthetic", "natural") if task_list.index % 2 == 0 else (
            "natural", "synthetic")  # fmt: skip
        blocks = main_blocks(task_list)
        assert [name for name, _, _ in blocks] == ["none", "none", *[first, second] * 3,
                                                   "none", "none"]  # fmt: skip
        assert task_list.condition_order == [name for name, _, _ in blocks]
        assert [(n, c) for name, n, c in blocks if name != "none"] == [(15, 3)] * 6
        none_sizes = [n for name, n, c in blocks if name == "none"]
        assert sorted(none_sizes) == [11, 11, 11, 12]
        assert all(c == 0 for name, _, c in blocks if name == "none")
        big_none_blocks.add(none_sizes.index(12))
        first_reference = task_list.trials.filter(block=2).order_by("index").first()
        assert first_reference is not None
        at = first_reference.index
        assert [(b["condition"], b["before"]) for b in task_list.practice_blocks] == [
            ("none", 0), (first, at), (second, at)]  # fmt: skip
        for block in task_list.practice_blocks:
            assert {practice[pk] for pk in block["trials"]} == {block["condition"]}
            assert len(block["trials"]) == 5
    assert big_none_blocks == {0, 1, 2, 3}  # the 12-trial block rotates over participants
    catch = Trial.objects.filter(task_list__study=study, is_catch=True)
    assert set(catch.values_list("condition__name", flat=True)) <= {"natural", "synthetic"}
    main = Trial.objects.filter(task_list__study=study, is_catch=False)
    per_cell = Counter(main.values_list("unit_id", "condition__name"))
    assert len(per_cell) == 45 * 3 and set(per_cell.values()) == {10}
    trial = main.filter(condition__name="none").first()
    assert trial is not None and trial.references_max == [] and trial.references_min == []
    synthetic = main.filter(condition__name="synthetic").first()
    assert synthetic is not None and len(synthetic.references_max) == 9
    assert len(synthetic.references_min) == 9


def test_the_borowski_references_preset_crosses_1_vs_9_and_max_vs_min_max_with_both_kinds(
    owner: User,
) -> None:
    """Exp. II as in its code: each reference condition over its own 20 units, its practice
    then synthetic and natural blocks of 10 + 2 alternating twice; reference conditions in a
    balanced order over four groups of participants."""
    units = factories.stimulated_unit_set(80)
    study = factories.study(
        owner, "borowski2021-references", units, target_valid_responses_per_unit=4
    )
    factories.practice_per_condition(study, units, 3)
    report = services.do_build_task_lists(study)
    assert report["trials_per_list"] == 192 and report["catch_trials_per_list"] == 32
    names = set(study.conditions.values_list("name", flat=True))
    assert len(names) == 8 and {"natural-1-max-only", "synthetic-9-min-max"} <= names
    main = Trial.objects.filter(task_list__study=study, is_catch=False)
    groups = {
        name: set(main.filter(condition__name=name).values_list("unit_id", flat=True))
        for name in names
    }
    for reference in ("1-max-only", "1-min-max", "9-max-only", "9-min-max"):
        shown = groups[f"natural-{reference}"]
        assert len(shown) == 20 and groups[f"synthetic-{reference}"] == shown
    assert len(set().union(*groups.values())) == 80  # four disjoint groups of 20
    orders = set()
    for task_list in study.task_lists.all():
        blocks = main_blocks(task_list)
        assert [(n, c) for _, n, c in blocks] == [(10, 2)] * 16
        kinds = [name.split("-", 1) for name, _, _ in blocks]
        for start in range(0, 16, 4):  # a reference condition's four blocks, then the next
            assert [k for k, _ in kinds[start : start + 4]] == ["synthetic", "natural"] * 2
            assert len({ref for _, ref in kinds[start : start + 4]}) == 1
        orders.add(tuple(ref for _, ref in kinds[::4]))
        assert len(task_list.practice_blocks) == 8
        pairs = list(task_list.trials.filter(is_catch=False).values_list("unit_id", "condition"))
        assert len(pairs) == len(set(pairs))  # a unit once per condition
    assert len(orders) == 4  # the balanced Latin square's four orders
    one = main.filter(condition__name="natural-1-max-only").first()
    assert one is not None and len(one.references_max) == 1 and one.references_min == []


def test_the_zimmermann_preset_shows_a_base_image_and_two_occluded_copies(owner: User) -> None:
    """18 main + 3 catch trials per task, one condition per task, feedback in practice only."""
    study = factories.study(
        owner,
        "zimmermann2021",
        factories.stimulated_unit_set(20),
        target_valid_responses_per_unit=2,
    )
    report = services.do_build_task_lists(study)
    assert report["trials_per_list"] == 21 and report["catch_trials_per_list"] == 3
    study.refresh_from_db()
    assert not study.feedback and study.practice_until_correct and not study.show_counter
    rules = study.exclusion_rules
    assert (rules["min_catch_accuracy"], rules["min_instruction_seconds"]) == (0.6, 20.0)
    assert (rules["min_total_seconds"], rules["max_total_seconds"]) == (90.0, 900.0)
    assert rules["max_practice_attempts"] == 5 and rules["min_uses_per_answer_row"] is None
    own = dict(study.conditions.values_list("name", "exclusion_rules"))
    assert own["natural"] is None and own["none"]["min_instruction_seconds"] == 15.0
    assert (own["none"]["min_total_seconds"], own["none"]["max_total_seconds"]) == (40.0, 900.0)
    assert {tuple(t.condition_order) for t in study.task_lists.all()} == {
        ("none",),
        ("natural",),
        ("synthetic",),
        ("mixed",),
        ("blurred",),
    }
    trials = Trial.objects.filter(task_list__study=study, is_catch=False)
    assert {t.kind for t in trials} == {"occlusion_choice"}
    for trial in trials.filter(condition__name="natural")[:20]:
        occlusion_map = OcclusionMap.objects.get(pk=trial.query_source["occlusion_map"])
        assert trial.base_image_id == occlusion_map.base_image_id
        assert trial.queries[trial.correct_query] == occlusion_map.occluded_at_max_id
        assert len(trial.references_max) == 9 and trial.references_min == []
    mixed = trials.filter(condition__name="mixed").first()
    assert mixed is not None and len(mixed.references_max) == 9


def test_the_harder_imi_variant_takes_queries_from_the_bands(owner: User) -> None:
    study = factories.study(owner, "imi2023-q05-q95", factories.stimulated_unit_set(44))
    services.do_build_task_lists(study)
    trial = Trial.objects.filter(task_list__study=study, is_catch=False).first()
    assert trial is not None
    bands = ExemplarSet.objects.get(unit=trial.unit).bands
    assert trial.queries[trial.correct_query] in [e["image"] for e in bands["q95"]["images"]]
    assert trial.queries[1 - trial.correct_query] in [e["image"] for e in bands["q05"]["images"]]


def test_a_design_without_exemplars_is_refused_with_the_units_and_nothing_is_built(
    owner: User,
) -> None:
    units = factories.unit_set(n_units=44)
    study = factories.study(owner, "imi2023", units)
    with pytest.raises(services.BuildRefused, match="44 unit\\(s\\) have no exemplars") as refused:
        services.do_build_task_lists(study)
    assert len(refused.value.missing["exemplars"]) == 44
    study.refresh_from_db()
    assert study.task_lists.count() == 0 and study.built_at is None


def test_too_few_units_are_refused_with_the_numbers(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(12))
    with pytest.raises(services.Refused, match="need at least 40 units; the study has 12"):
        services.do_build_task_lists(study)


def test_missing_visualizations_can_be_queued_as_jobs(owner: User, monkeypatch: Any) -> None:
    # The test's transaction never commits, so the shards' tasks are never sent.
    units = factories.unit_set(n_units=44)
    factories.add_exemplars(units, factories.image_pool())
    study = factories.study(owner, "imi2023-synthetic", units)
    with pytest.raises(services.BuildRefused, match="too few feature visualizations") as refused:
        services.do_build_task_lists(study)
    jobs = services.do_queue_missing_stimuli(study, refused.value.missing, owner)
    assert [job.kind for job in jobs] == [Job.Kind.RENDER_VISUALIZATIONS]
    job = Job.objects.get()
    assert job.params["preset"] == "imi" and len(job.params["units"]) == 44


def test_a_live_study_keeps_its_design(owner: User) -> None:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    factories.ready_to_launch(study)
    services.do_build_task_lists(study)
    services.do_change_state(study, "launch")
    study.refresh_from_db()
    with pytest.raises(services.Refused, match="task lists are fixed"):
        services.do_build_task_lists(study)
    study.main_trials_per_list = 20
    with pytest.raises(Exception, match="Clone it to change the design"):
        services.do_save_study(study)
    study.refresh_from_db()
    assert study.main_trials_per_list == 40 and study.state == Study.State.LIVE
    copy = services.do_clone_study(study, owner)
    assert copy.state == Study.State.DRAFT and copy.conditions.count() == 1
    assert copy.pilot_token != study.pilot_token and copy.slug == "s1-copy"


def test_another_preset_replaces_a_block_schedule_and_unit_groups(owner: User) -> None:
    study = factories.study(owner, "borowski2021-references", factories.stimulated_unit_set(44))
    assert study.block_schedule and study.block_feedback
    services.do_apply_preset(study, "imi2023")
    study.refresh_from_db()
    assert study.block_schedule == [] and not study.block_feedback
    assert list(study.conditions.values_list("unit_group", "exclusion_rules")) == [(None, None)]
    assert services.do_build_task_lists(study)["trials_per_list"] == 45


def test_between_participants_a_list_shows_only_its_own_conditions_practice(owner: User) -> None:
    """Zimmermann et al. 2021's none condition had no practice: practice trials tagged with the
    other conditions are not shown to its lists; untagged ones are shown to every list."""
    units = factories.stimulated_unit_set(20)
    study = factories.study(owner, "zimmermann2021", units, target_valid_responses_per_unit=2)
    natural = study.conditions.get(name="natural")
    unit = units.units.first()
    tagged = PracticeTrial.objects.create(study=study, index=0, unit=unit, condition=natural)
    services.do_build_task_lists(study)
    by_condition = {
        task_list.condition_order[0]: task_list.practice_blocks
        for task_list in study.task_lists.all()
    }
    assert by_condition["none"] == [] and by_condition["mixed"] == []
    assert by_condition["natural"] == [{"before": 0, "condition": None, "trials": [tagged.pk]}]
    untagged = PracticeTrial.objects.create(study=study, index=1, unit=unit)
    services.do_build_task_lists(study)
    none_list = study.task_lists.filter(condition_order=["none"]).first()
    assert none_list is not None
    assert none_list.practice_blocks == [{"before": 0, "condition": None, "trials": [untagged.pk]}]
