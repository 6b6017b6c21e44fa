"""Every write to the study tables, each in one transaction: create, update, apply a preset,
build the task lists, move through the states, clone, and queue the stimuli a design lacks.

Refusals raise `builder.Refused` (or its subclasses `BuildRefused` and
`readiness.LaunchRefused`) with a sentence a researcher can act on; the admin shows it as a
message and the API as a 4xx. Nothing is written then.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from backend.stimuli import bands
from backend.stimuli import services as stimuli_services
from backend.stimuli.models import Image, ImageSet, Job, UnitSet
from backend.studies import builder, content, presets, readiness
from backend.studies.builder import BuildRefused, Refused  # noqa: F401  (raised from here)
from backend.studies.models import Condition, PracticeTrial, Study, TaskList, Trial

State = Study.State

# action → (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "pilot": ({State.DRAFT}, State.PILOT),
    "edit": ({State.PILOT}, State.DRAFT),
    "launch": ({State.DRAFT, State.PILOT, State.PAUSED}, State.LIVE),
    "pause": ({State.LIVE}, State.PAUSED),
    "close": ({State.DRAFT, State.PILOT, State.LIVE, State.PAUSED}, State.CLOSED),
}
NEEDS_TASK_LISTS = {"pilot", "launch"}
TRIAL_BATCH = 2000


# --- create, update, presets ---------------------------------------------------------------


@transaction.atomic
@transaction.atomic
def do_save_study(study: Study) -> Study:
    """Validate every setting (and what may change once live) and save; changed exclusion
    rules are applied again to every completed session at once."""
    from backend.analysis import services as analysis_services

    study.full_clean()
    study.save()
    analysis_services.do_apply_changed_rules(study)
    return study


@transaction.atomic
def do_create_study(
    owner: User,
    fields: dict[str, Any],
    preset: str = "",
    conditions: list[dict[str, Any]] | None = None,
) -> Study:
    study = Study(owner=owner)
    if preset:
        presets.apply_fields(study, preset)
    _assign(study, fields)
    do_save_study(study)
    if preset:
        do_replace_conditions(study, presets.conditions_of(preset))
    if conditions is not None:
        do_replace_conditions(study, conditions)
    return study


@transaction.atomic
def do_update_study(
    study: Study, fields: dict[str, Any], conditions: list[dict[str, Any]] | None = None
) -> Study:
    _assign(study, fields)
    do_save_study(study)
    if conditions is not None:
        do_replace_conditions(study, conditions)
    return study


def _assign(study: Study, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name in {"unit_sets", "collaborators", "excluded_studies"}:
            continue
        setattr(study, name, value)


@transaction.atomic
def do_set_relations(study: Study, **relations: list[Any]) -> Study:
    """Set unit_sets, catch_units, collaborators or excluded_studies (the units not once the
    design is frozen)."""
    if {"unit_sets", "catch_units"} & set(relations) and study.is_design_frozen:
        raise Refused(f"The study is {study.state}: its units are fixed. Clone it to change them.")
    from backend.stimuli import access

    access.check_study_items(
        study.owner,
        unit_sets=_added(study, "unit_sets", relations),
        catch_units=_added(study, "catch_units", relations),
    )
    for name, values in relations.items():
        getattr(study, name).set(values)
    return study


def _added(study: Study, name: str, relations: dict[str, list[Any]]) -> list[Any]:
    """The items `relations` adds to one of the study's catalogue relations (those it already
    holds were allowed when they were set)."""
    if name not in relations:
        return []
    held = set(getattr(study, name).values_list("pk", flat=True))
    return [item for item in relations[name] if item.pk not in held]


@transaction.atomic
def do_replace_conditions(study: Study, conditions: list[dict[str, Any]]) -> list[Condition]:
    if study.is_design_frozen:
        raise Refused(f"The study is {study.state}: its conditions are fixed.")
    study.task_lists.all().delete()
    study.practice_trials.update(condition=None)
    study.conditions.all().delete()
    created = []
    for position, values in enumerate(conditions):
        condition = Condition(study=study, position=position, **values)
        condition.full_clean(exclude=["study"])
        condition.save()
        created.append(condition)
    names = [c.name for c in created]
    if len(set(names)) != len(names):
        raise ValidationError({"conditions": "Each condition needs its own name."})
    return created


@transaction.atomic
def do_apply_preset(study: Study, preset: str) -> Study:
    """Fill every parameter of a published study (texts the researcher wrote are kept)."""
    if study.is_design_frozen:
        raise Refused(f"The study is {study.state}: clone it to apply a preset.")
    presets.apply_fields(study, preset)
    do_save_study(study)
    do_replace_conditions(study, presets.conditions_of(preset))
    return study


# --- build ---------------------------------------------------------------------------------


@transaction.atomic
def do_build_task_lists(study: Study) -> dict[str, Any]:
    """Replace the study's task lists and trials (draft or pilot only); return a report."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.is_design_frozen:
        raise Refused(f"The study is {study.state}: its task lists are fixed.")
    built = builder.build(study)
    study.task_lists.all().delete()
    lists = TaskList.objects.bulk_create(
        [
            TaskList(
                study=study,
                index=b.index,
                seed=b.seed,
                condition_order=b.condition_order,
                practice_blocks=b.practice_blocks,
            )  # fmt: skip
            for b in built.task_lists
        ]
    )
    copies: dict[int, int] = {}
    trials = [
        _trial_row(row, trial, copies)
        for row, b in zip(lists, built.task_lists, strict=True)
        for trial in b.trials
    ]
    Trial.objects.bulk_create(trials, batch_size=TRIAL_BATCH)
    _store_practice(built.practice)
    study.built_at = timezone.now()
    study.build_report = _report(built, len(trials), readiness.missing_for_launch(study))
    study.save(update_fields=["built_at", "build_report", "updated_at"])
    return study.build_report


def _trial_row(task_list: TaskList, trial: builder.BuiltTrial, copies: dict[int, int]) -> Trial:
    c = _without_repeats(trial.content, copies)
    return Trial(
        task_list=task_list, index=trial.index, unit_id=trial.unit, condition=trial.condition,
        kind=c.kind, is_catch=trial.is_catch, block=trial.block,
        response_number=trial.response_number, references_min=c.references_min,
        references_max=c.references_max, base_image_id=c.base_image, queries=c.queries,
        correct_query=c.correct_query, query_source=c.query_source, description=c.description,
    )  # fmt: skip


def _without_repeats(c: content.TrialContent, copies: dict[int, int]) -> content.TrialContent:
    """The trial with each query that repeats one of its references (a catch trial's correct
    query) shown as a copy under other bytes and another URL (`store_trial_copy`): within a
    trial, no image can be matched with another by its URL or file. `copies`: image id → its
    copy's id, shared over a build."""
    shown = {*c.references_min, *c.references_max}
    if c.base_image is not None:
        shown.add(c.base_image)
    if not shown.intersection(c.queries):
        return c
    queries = [_copy_of(image, copies) if image in shown else image for image in c.queries]
    return dataclasses.replace(c, queries=queries)


def _copy_of(image_id: int, copies: dict[int, int]) -> int:
    if image_id not in copies:
        copies[image_id] = stimuli_services.store_trial_copy(Image.objects.get(pk=image_id)).pk
    return copies[image_id]


def _store_practice(practice: list[tuple[int, Any]]) -> None:
    for pk, c in practice:
        PracticeTrial.objects.filter(pk=pk).update(
            kind=c.kind, references_min=c.references_min, references_max=c.references_max,
            base_image_id=c.base_image, queries=c.queries, correct_query=c.correct_query,
            query_source=c.query_source, description=c.description,
        )  # fmt: skip


def _report(
    built: builder.Build, n_trials: int, missing: list[readiness.Missing]
) -> dict[str, Any]:
    """What was built, and what the study still lacks before launch (it may be piloted)."""
    n_lists = len(built.task_lists)
    per_list = len(built.task_lists[0].trials) if n_lists else 0
    catch = sum(t.is_catch for t in built.task_lists[0].trials) if n_lists else 0
    return {
        "task_lists": n_lists,
        "trials": n_trials,
        "trials_per_list": per_list,
        "catch_trials_per_list": catch,
        "units": len(built.units),
        "practice_trials": len(built.practice),
        "missing": [item.payload() for item in missing],
    }


# --- states --------------------------------------------------------------------------------


@transaction.atomic
def do_change_state(study: Study, action: str) -> Study:
    """pilot, edit (back to draft), launch (also resumes), pause, close."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if action not in TRANSITIONS:
        raise Refused(f"Unknown action {action!r}; use one of {', '.join(TRANSITIONS)}.")
    sources, target = TRANSITIONS[action]
    if study.state not in sources:
        raise Refused(f"A {study.state} study cannot {action}.")
    if action in NEEDS_TASK_LISTS and not study.task_lists.exists():
        raise Refused("Build the task lists first.")
    if action == "launch" and study.state != State.PAUSED:  # resuming launched it already
        readiness.check_launch(study)
    study.state = target
    if target == State.LIVE and study.launched_at is None:
        study.launched_at = timezone.now()
    study.save(update_fields=["state", "launched_at", "updated_at"])
    return study


# --- clone ---------------------------------------------------------------------------------


def free_slug(base: str) -> str:
    candidate, n = f"{base}-copy"[:80], 2
    while Study.objects.filter(slug=candidate).exists():
        candidate, n = f"{base}-copy-{n}"[:80], n + 1
    return candidate


@transaction.atomic
def do_clone_study(study: Study, user: User, slug: str = "") -> Study:
    """A draft copy of the design (texts, settings, units, conditions, practice), owned by
    `user`; no task lists, new pilot token and completion code."""
    copy = Study.objects.get(pk=study.pk)
    copy.pk = None
    copy.slug = slug or free_slug(study.slug)
    copy.title = f"{study.title} (copy)"
    copy.owner = user
    copy.state, copy.launched_at, copy.built_at, copy.build_report = State.DRAFT, None, None, {}
    copy.pilot_token = Study._meta.get_field("pilot_token").get_default()
    copy.completion_code = Study._meta.get_field("completion_code").get_default()
    copy.full_clean()
    copy.save()
    copy.unit_sets.set(study.unit_sets.all())
    copy.catch_units.set(study.catch_units.all())
    copy.collaborators.set(study.collaborators.all())
    copy.excluded_studies.set(study.excluded_studies.all())
    by_name = {}
    for condition in study.conditions.all():
        old_name = condition.name
        condition.pk, condition.study = None, copy
        condition.save()
        by_name[old_name] = condition
    for practice in study.practice_trials.all():
        practice.pk, practice.study = None, copy
        practice.condition = by_name.get(practice.condition.name) if practice.condition else None
        practice.save()
    return copy


# --- missing stimuli -----------------------------------------------------------------------


@transaction.atomic
def do_queue_missing_stimuli(
    study: Study, missing: dict[str, list[int]], user: User | None = None
) -> list[Job]:
    """Queue the jobs that compute what `BuildRefused.missing` lists."""
    jobs: list[Job] = []
    needs = ("exemplars", "imi_batches", "bands", "activation_bands", "band_too_small")
    if any(need in missing for need in needs):
        unit_ids = {unit for need in needs for unit in missing.get(need, [])}
        unit_sets = list(UnitSet.objects.filter(units__in=unit_ids).distinct())
        jobs += stimuli_services.do_queue_exemplar_jobs(unit_sets, user, **_exemplar_bands(study))
    for need, units in missing.items():
        if need.startswith("visualizations:"):
            preset = need.split(":", 1)[1] or "lucent"
            params = {"units": units, "preset": preset, "n_images": _n_visualizations(study)}
            jobs.append(stimuli_services.do_queue_job(Job.Kind.RENDER_VISUALIZATIONS, params, user))
    occlusion_units = sorted(
        set(missing.get("occlusion_maps", [])) | set(missing.get("blurred", []))
    )
    if occlusion_units:
        params = {"units": occlusion_units, "occluder_fraction": 0.4, "stride": 2}
        jobs.append(stimuli_services.do_queue_job(Job.Kind.COMPUTE_OCCLUSION, params, user))
    if missing.get("description"):
        jobs += _queue_descriptions(study, missing["description"], user)
    return jobs


def _queue_descriptions(study: Study, unit_ids: list[int], user: User | None) -> list[Job]:
    """The description jobs of the unit sets of `unit_ids`: over the study's image set (the
    description the builder takes first), else over each unit set's own."""
    from backend.atlas.descriptions import queue_descriptions

    by_image_set: dict[int, list[UnitSet]] = {}
    for unit_set in UnitSet.objects.filter(units__in=unit_ids).distinct().order_by("pk"):
        image_set = study.image_set_id or unit_set.image_set_id
        if image_set is not None:
            by_image_set.setdefault(image_set, []).append(unit_set)
    return [
        queue_descriptions(unit_sets, ImageSet.objects.get(pk=image_set), user)
        for image_set, unit_sets in sorted(by_image_set.items())
    ]


def _exemplar_bands(study: Study) -> dict[str, Any]:
    """The exemplar pass's extra bands for the study's conditions' bands, with enough images
    per band for the largest number of references (beside two queries)."""
    conditions = list(study.conditions.all())
    chosen = bands.exemplar_band_params(
        [c.reference_band for c in conditions] + [c.query_band for c in conditions]
    )
    if not chosen:
        return {}
    band_size = max([20] + [c.n_references + 2 for c in conditions])
    return {"bands": chosen, "band_size": band_size}


def _n_visualizations(study: Study) -> int:
    counts = [c.n_references for c in study.conditions.all()] or [9]
    return max(max(counts), 9)


def progress(study: Study) -> dict[str, int]:
    """Counters over the study's task lists (the participation side maintains them)."""
    lists = list(study.task_lists.all())
    return {
        "task_lists": len(lists),
        "retired_task_lists": sum(t.retired for t in lists),
        "sessions_started": sum(t.sessions_started for t in lists),
        "sessions_completed": sum(t.sessions_completed for t in lists),
        "valid_results": sum(t.valid_results for t in lists),
    }
