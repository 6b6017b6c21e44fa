"""The trial builder: from a study's design and the stimuli in the database, the task lists and
their trials, without writing anything (`services.do_build_task_lists` stores the result).

Seeded and deterministic: the same design, stimuli and seed give the same rows. Designs the
stimuli cannot satisfy are refused with `BuildRefused`, whose message says what is missing for
which units and whose `missing` lists them so the admin can offer to queue the jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from backend.stimuli.models import Unit
from backend.studies import allocation, content
from backend.studies.models import Condition, Study

MISSING_TEXT = {
    "exemplars": "no exemplars{image_set}",
    "imi_batches": "no IMI batches in their exemplars (recompute the exemplars)",
    "bands": "no quantile bands for the query rule (recompute the exemplars)",
    "occlusion_maps": "no occlusion maps",
    "blurred": "too few blurred natural references (compute occlusion maps on the top images)",
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
    catch_units = list(study.catch_units.order_by("pk"))
    try:
        planned = allocation.plan_task_lists(design_for(study, units, conditions, catch_units))
    except allocation.DesignError as err:
        raise BuildRefused(str(err)) from None
    shown = list({unit.pk: unit for unit in units + catch_units}.values())
    stimuli = content.load_stimuli([unit.pk for unit in shown], study.image_set_id)
    _refuse_missing(study, conditions, stimuli, shown)
    task_lists = [
        _built_list(study, conditions, stimuli, plan, repeat_references=not catch_units)
        for plan in planned
    ]
    return Build(task_lists, _practice(study, conditions), [unit.pk for unit in units])


def _refuse_missing(
    study: Study,
    conditions: list[Condition],
    stimuli: dict[int, content.UnitStimuli],
    units: list[Unit],
) -> None:
    missing = content.missing_stimuli(study.paradigm, conditions, stimuli)
    if missing:
        raise BuildRefused(missing_message(study, missing, units), missing)


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
    return BuiltList(plan.index, plan.seed, order, trials)


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
