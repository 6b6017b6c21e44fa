"""The trial builder: from a study's design and the stimuli in the database, the task lists and
their trials, without writing anything (`services.do_build_task_lists` stores the result).

Seeded and deterministic: the same design, stimuli and seed give the same rows. Designs the
stimuli cannot satisfy are refused with `BuildRefused`, whose message says what is missing for
which units and whose `missing` lists them so the admin can offer to queue the jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from backend.stimuli.models import Unit
from backend.studies import allocation, content, validation
from backend.studies.models import Condition, Paradigm, PracticeTrial, Study

MISSING_TEXT = {
    "exemplars": "no exemplars{image_set}",
    "imi_batches": "no IMI batches in their exemplars (recompute the exemplars)",
    "bands": "no quantile bands for the query rule (recompute the exemplars)",
    "occlusion_maps": "no occlusion maps",
    "blurred": "too few blurred natural references (compute occlusion maps on the top images)",
    "description": (
        "no description to show (describe their unit sets first: atlas, job describe_units; "
        "docs/descriptions.md)"
    ),
    "activation_bands": (
        "no exemplars in the conditions' activation bands (compute the exemplars with those bands)"
    ),
    "band_too_small": "too few images in the conditions' activation bands",
    "too_few_sources": (
        "too few distinct source photos among their exemplars for the references beside the "
        "queries' photos"
    ),
}


class Refused(Exception):
    """A study action that cannot be done now; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BuildRefused(Refused):
    """The design cannot be built; `missing` maps a kind of stimulus to the units lacking it."""

    def __init__(self, message: str, missing: dict[str, list[int]] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or {}


@dataclass(frozen=True)
class BuiltTrial:
    index: int
    unit: int
    condition: Condition
    response_number: int
    is_catch: bool
    block: int
    content: content.TrialContent


@dataclass(frozen=True)
class BuiltList:
    index: int
    seed: int
    condition_order: list[str]
    trials: list[BuiltTrial]
    # {"before": first main trial index after it, "condition": name or None, "trials": [ids]}
    practice_blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Build:
    task_lists: list[BuiltList]
    practice: list[tuple[int, content.TrialContent]] = field(default_factory=list)
    units: list[int] = field(default_factory=list)


def study_units(study: Study) -> list[Unit]:
    """The study's units: all units of its unit sets, or `units_per_set` of each, by the seed."""
    chosen: list[Unit] = []
    for unit_set in study.unit_sets.order_by("pk"):
        units = list(unit_set.units.order_by("index"))
        if study.units_per_set is not None and study.units_per_set < len(units):
            rng = random.Random(f"{study.seed}:units:{unit_set.pk}")
            units = sorted(rng.sample(units, study.units_per_set), key=lambda unit: unit.index)
        chosen += units
    return chosen


def block_schedule(
    study: Study, conditions: list[Condition]
) -> tuple[tuple[tuple[int, bool], ...], ...]:
    """The study's block schedule as (condition position, is_practice) per block."""
    if validation.block_schedule_error(study.block_schedule):
        raise BuildRefused(str(validation.block_schedule_error(study.block_schedule)))
    positions = {condition.name: i for i, condition in enumerate(conditions)}
    schedule = []
    for number, sequence in enumerate(study.block_schedule or [], start=1):
        blocks = []
        for entry in sequence:
            name, practice = validation.parse_block_entry(entry)
            if name not in positions:
                raise BuildRefused(
                    f"Block sequence {number} names {name!r}, which is not one of the study's "
                    f"conditions ({', '.join(positions)})."
                )
            blocks.append((positions[name], practice))
        schedule.append(tuple(blocks))
    return tuple(schedule)


def condition_units(
    study: Study, units: list[Unit], conditions: list[Condition]
) -> tuple[tuple[int, ...], ...]:
    """Per condition, the units of its group (`Condition.unit_group`): the study's units split
    at random, by the seed, into equal groups; () when no condition names a group."""
    groups = [condition.unit_group for condition in conditions]
    if all(group is None for group in groups):
        return ()
    if any(group is None for group in groups):
        raise BuildRefused(
            "Some conditions have a unit group and some do not: give every condition one, or none."
        )
    n_groups = max(group for group in groups if group is not None) + 1
    if len(units) % n_groups:
        raise BuildRefused(
            f"The conditions use {n_groups} unit groups, which need a number of units that splits "
            f"evenly; the study has {len(units)}."
        )
    ids = [unit.pk for unit in units]
    random.Random(f"{study.seed}:unit-groups").shuffle(ids)
    size = len(ids) // n_groups
    parts = [tuple(sorted(ids[g * size : (g + 1) * size])) for g in range(n_groups)]
    return tuple(parts[group] for group in groups if group is not None)


def design_for(
    study: Study, units: list[Unit], conditions: list[Condition], catch_units: list[Unit]
) -> allocation.Design:
    return allocation.Design(
        units=tuple(unit.pk for unit in units),
        n_conditions=len(conditions),
        responses_per_unit=study.target_valid_responses_per_unit,
        main_trials_per_list=study.main_trials_per_list,
        catch_trials_per_list=study.catch_trials_per_list,
        within=study.condition_design == Study.ConditionDesign.WITHIN,
        seed=study.seed,
        once_per_condition=study.unit_repeats == Study.UnitRepeats.ONCE_PER_CONDITION,
        catch_conditions=_catch_conditions(conditions),
        catch_units=tuple(unit.pk for unit in catch_units),
        schedule=block_schedule(study, conditions),
        condition_units=condition_units(study, units, conditions),
    )


def _catch_conditions(conditions: list[Condition]) -> tuple[int, ...] | None:
    """Where catch trials may go: the conditions that show references (None: anywhere)."""
    showing = tuple(i for i, condition in enumerate(conditions) if condition.shows_references)
    return showing or None


def build(study: Study) -> Build:
    """Lay out every task list of the study; raise BuildRefused when it cannot be done."""
    conditions = list(study.conditions.order_by("position", "pk"))
    units = study_units(study)
    if not units:
        raise BuildRefused("The study has no units: choose at least one unit set.")
    _refuse_misplaced_descriptions(study, conditions)
    catch_units = list(study.catch_units.order_by("pk"))
    try:
        planned = allocation.plan_task_lists(design_for(study, units, conditions, catch_units))
    except allocation.DesignError as err:
        raise BuildRefused(str(err)) from None
    shown = list({unit.pk: unit for unit in units + catch_units}.values())
    stimuli = content.load_stimuli([unit.pk for unit in shown], study.image_set_id)
    _refuse_missing(study, conditions, stimuli, shown)
    practice_trials = list(study.practice_trials.order_by("index", "pk"))
    task_lists = [
        _built_list(study, conditions, stimuli, plan, repeat_references=not catch_units)
        for plan in planned
    ]
    for task_list, plan in zip(task_lists, planned, strict=True):
        task_list.practice_blocks.extend(_practice_blocks(conditions, practice_trials, plan))
    return Build(task_lists, _practice(study, conditions), [unit.pk for unit in units])


def _refuse_misplaced_descriptions(study: Study, conditions: list[Condition]) -> None:
    """A condition that shows the description needs the paradigm whose trial shows it."""
    named = [c.name for c in conditions if c.shows_description]
    if named and study.paradigm != Paradigm.DESCRIPTION_CHOICE:
        raise BuildRefused(
            f"The condition(s) {', '.join(named)} show the unit's description, which only the "
            f"description_choice paradigm does: choose that paradigm, or untick 'shows "
            f"description'."
        )


def _practice_blocks(
    conditions: list[Condition], practice_trials: list[PracticeTrial], plan: allocation.PlannedList
) -> list[dict[str, Any]]:
    """The list's practice blocks. Without practice in a block schedule: one block first, of
    the practice trials without a condition and those of the list's conditions. With it: the
    practice trials without a condition first, then each condition's where the schedule puts
    its practice."""
    untagged = [p.pk for p in practice_trials if p.condition_id is None]
    by_condition = {
        i: [p.pk for p in practice_trials if p.condition_id == condition.pk]
        for i, condition in enumerate(conditions)
    }
    if not plan.practice:
        shown = {conditions[i].pk for i in plan.condition_order}
        trials = [p.pk for p in practice_trials if p.condition_id in shown | {None}]
        return [{"before": 0, "condition": None, "trials": trials}] if trials else []
    blocks: list[dict[str, Any]] = []
    if untagged:
        blocks.append({"before": 0, "condition": None, "trials": untagged})
    for condition, before in plan.practice:
        if not by_condition[condition]:
            name = conditions[condition].name
            raise BuildRefused(
                f"The block schedule has a practice block of {name!r}, but the study has no "
                f"practice trials of that condition: add some (Practice trials, condition "
                f"{name!r}) or take 'practice:{name}' out of the schedule."
            )
        blocks.append(
            {"before": before, "condition": conditions[condition].name,
             "trials": by_condition[condition]}
        )  # fmt: skip
    return blocks


def _refuse_missing(
    study: Study,
    conditions: list[Condition],
    stimuli: dict[int, content.UnitStimuli],
    units: list[Unit],
) -> None:
    missing = content.missing_stimuli(study.paradigm, conditions, stimuli)
    if missing:
        message = missing_message(study, missing, units)
        if "too_few_sources" in missing:
            message += " " + sources_message(study, conditions, stimuli, missing["too_few_sources"])
        if "band_too_small" in missing:
            message += " " + bands_message(study, conditions, stimuli, missing["band_too_small"])
        raise BuildRefused(message, missing)


def bands_message(
    study: Study,
    conditions: list[Condition],
    stimuli: dict[int, content.UnitStimuli],
    unit_ids: list[int],
) -> str:
    """Per too-small band: how many images it must hold and how many the first units' hold."""
    names = {u.pk: str(u) for u in Unit.objects.filter(pk__in=unit_ids).select_related("unit_set")}
    found: dict[tuple[str, str, str, int], list[str]] = {}
    for unit in unit_ids:
        for condition in conditions:
            for short in content.band_shortfalls(study.paradigm, condition, stimuli[unit]):
                if short.have is not None:
                    key = (condition.name, str(short.band), short.use, short.need)
                    found.setdefault(key, []).append(f"{names[unit]} has {short.have}")
    parts = []
    for (name, band, use, need), have in found.items():
        kind = "distinct photos" if study.image_set and study.image_set.has_sources else "images"
        why = "references beside the trial's queries" if use == "references" else "query"
        parts.append(
            f"Condition {name!r} needs {need} {kind} in the band {band} for its {why}: "
            f"{'; '.join(have[:5])}{' …' if len(have) > 5 else ''}."
        )
    return (
        " ".join(parts) + " Widen the band, show fewer references, import a larger image set, "
        "or compute the exemplars with more images per band (band_size)."
    )


def sources_message(
    study: Study,
    conditions: list[Condition],
    stimuli: dict[int, content.UnitStimuli],
    unit_ids: list[int],
) -> str:
    """How many distinct source photos the design needs and how many the short units have."""
    natural = [c for c in conditions if content.sources_needed(study.paradigm, c)]
    needed = max(content.sources_needed(study.paradigm, c) for c in natural)
    names = {u.pk: str(u) for u in Unit.objects.filter(pk__in=unit_ids).select_related("unit_set")}
    have = "; ".join(
        f"{names[unit]} has {min(content.available_sources(stimuli[unit], c) for c in natural)}"
        for unit in unit_ids[:5]
    )
    return (
        f"A unit needs {needed} distinct source photos in its top (and bottom) exemplars so "
        f"that no reference shows a query's photo: {have}. Import an image set with more "
        "distinct photos, or compute the exemplars with distinct sources (one image per photo)."
    )


def missing_message(study: Study, missing: dict[str, list[int]], units: list[Unit]) -> str:
    names = {unit.pk: str(unit) for unit in units}
    image_set = f" on image set {study.image_set}" if study.image_set_id else ""
    parts = []
    for need, unit_ids in missing.items():
        if need.startswith("visualizations:"):
            preset = need.split(":", 1)[1]
            text = f"too few feature visualizations{f' (preset {preset})' if preset else ''}"
        else:
            text = MISSING_TEXT[need].format(image_set=image_set)
        shown = ", ".join(names.get(unit, f"unit {unit}") for unit in unit_ids[:5])
        more = f" and {len(unit_ids) - 5} more" if len(unit_ids) > 5 else ""
        parts.append(f"{len(unit_ids)} unit(s) have {text}: {shown}{more}.")
    return "The stimuli cannot satisfy this design. " + " ".join(parts)


def _built_list(
    study: Study,
    conditions: list[Condition],
    stimuli: dict[int, content.UnitStimuli],
    plan: allocation.PlannedList,
    *,
    repeat_references: bool,
) -> BuiltList:
    """The list's trials. A catch trial of a hand-picked unit is that unit's ordinary trial where
    its condition shows references; otherwise (`repeat_references`, or a condition without
    references, whose ordinary trial could not be answered) its queries repeat references."""
    rng = random.Random(plan.seed)
    trials = []
    for index, slot in enumerate(plan.slots):
        condition = conditions[slot.condition]
        repeats = slot.is_catch and (repeat_references or not condition.shows_references)
        trial_content = content.trial_content(
            study.paradigm, condition, stimuli[slot.unit], slot.response_number, repeats, rng
        )
        trials.append(
            BuiltTrial(
                index,
                slot.unit,
                condition,
                slot.response_number,
                slot.is_catch,
                slot.block,
                trial_content,
            )  # fmt: skip
        )
    order = [conditions[position].name for position in plan.condition_order]
    return BuiltList(plan.index, plan.seed, order, trials, [])


def _practice(study: Study, conditions: list[Condition]) -> list[tuple[int, content.TrialContent]]:
    """(practice trial id, content) for every hand-picked practice trial of the study."""
    practice_trials = list(study.practice_trials.order_by("index", "pk"))
    if not practice_trials:
        return []
    stimuli = content.load_stimuli({p.unit_id for p in practice_trials}, study.image_set_id)
    fallback = next((c for c in conditions if c.shows_references), conditions[0])
    used = {p.condition_id: p.condition or fallback for p in practice_trials}
    missing = content.missing_stimuli(study.paradigm, list(used.values()), stimuli)
    if missing:
        raise BuildRefused(
            "Practice trials: "
            + missing_message(study, missing, [p.unit for p in practice_trials]),
            missing,
        )
    built = []
    for practice in practice_trials:
        condition = practice.condition or fallback
        rng = random.Random(f"{study.seed}:practice:{practice.index}:{practice.pk}")
        built.append(
            (
                practice.pk,
                content.trial_content(
                    study.paradigm, condition, stimuli[practice.unit_id], practice.index, False, rng
                ),
            )
        )
    return built
