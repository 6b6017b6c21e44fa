"""Validation of a study's settings, field by field, with a message a researcher can act on.

The exclusion rules are stored as JSON and checked against the results side's dataclass
(`backend.analysis.exclusion_rules.ExclusionRules`), so what is stored is what will be applied.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from backend.analysis.exclusion_rules import IMI_RULES, ExclusionRules
from backend.stimuli import bands

if TYPE_CHECKING:
    from backend.studies.models import Condition, Study

EXCLUSION_FIELDS = {field.name: field for field in dataclasses.fields(ExclusionRules)}
FRACTION_RULES = {"min_catch_accuracy"}
INTEGER_RULES = {"min_uses_per_answer_row", "answer_rows", "max_practice_attempts"}


def default_exclusion_rules() -> dict[str, Any]:
    return dataclasses.asdict(IMI_RULES)


def exclusion_rules_from_json(data: Any) -> ExclusionRules:
    """The dataclass for stored JSON; raises ValueError with the first problem found."""
    if not isinstance(data, dict):
        raise ValueError("Exclusion rules must be a JSON object.")
    unknown = sorted(set(data) - set(EXCLUSION_FIELDS))
    if unknown:
        known = ", ".join(EXCLUSION_FIELDS)
        raise ValueError(f"Unknown exclusion rule(s) {', '.join(unknown)}; known: {known}.")
    for name, value in data.items():
        _check_rule(name, value)
    rules = ExclusionRules(**data)
    low, high = rules.min_total_seconds, rules.max_total_seconds
    if low is not None and high is not None and low >= high:
        raise ValueError("min_total_seconds must be below max_total_seconds.")
    return rules


def _check_rule(name: str, value: Any) -> None:
    if value is None and name != "answer_rows":
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number or null (rule off), not {value!r}.")
    if name in INTEGER_RULES and not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, not {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must not be negative.")
    if name in FRACTION_RULES and value > 1:
        raise ValueError(f"{name} is a fraction between 0 and 1 (0.8 means 80 %), not {value}.")


def study_errors(study: Study) -> dict[str, str]:
    """Field → message for every setting that is out of range or inconsistent."""
    errors: dict[str, str] = {}
    try:
        exclusion_rules_from_json(study.exclusion_rules)
    except ValueError as err:
        errors["exclusion_rules"] = str(err)
    if study.feedback and study.feedback_duration_ms == 0:
        errors["feedback_duration_ms"] = "With feedback on, show it for more than 0 ms."
    if (
        study.max_participants is not None
        and study.target_participants is not None
        and study.max_participants < study.target_participants
    ):
        errors["max_participants"] = "The maximum must be at least the target number."
    if study.main_trials_per_list < 1:
        errors["main_trials_per_list"] = "A task list needs at least one main trial."
    if (
        study.unit_repeats == study.UnitRepeats.ONCE_PER_CONDITION
        and study.condition_design != study.ConditionDesign.WITHIN
    ):
        errors["unit_repeats"] = (
            "A unit can recur once per condition only within participants; between "
            "participants each task list has one condition."
        )
    schedule_error = block_schedule_error(study.block_schedule)
    if schedule_error:
        errors["block_schedule"] = schedule_error
    elif study.block_schedule and study.condition_design != study.ConditionDesign.WITHIN:
        errors["block_schedule"] = (
            "A block schedule orders the blocks of one task list: it needs conditions within "
            "participants (or leave it empty)."
        )
    if not study.completion_code.strip():
        errors["completion_code"] = "Set a completion code (Prolific checks it on return)."
    if study.min_window_width < 200 or study.min_window_height < 200:
        errors["min_window_width"] = "The minimum window must be at least 200 × 200 pixels."
    errors.update(catalogue_errors(study))
    return errors


def catalogue_errors(study: Study) -> dict[str, str]:
    """A study's image set must be one its owner may see (backend.stimuli.access); the unit
    sets and catch units are checked where they are set (`services.do_set_relations`)."""
    from django.core.exceptions import ValidationError

    from backend.stimuli import access

    if study.owner_id is None or study.image_set_id is None:
        return {}
    try:
        access.check_study_items(study.owner, image_set=study.image_set)
    except ValidationError as err:
        return {name: " ".join(messages) for name, messages in err.message_dict.items()}
    return {}


def block_schedule_error(schedule: Any) -> str | None:
    """What is wrong with the shape of a block schedule (condition names are checked by the
    builder, which knows the conditions); None when it is a list of lists of names."""
    example = 'e.g. [["practice:none", "none", "natural", "synthetic", "none"]]'
    if schedule in (None, []):
        return None
    if not isinstance(schedule, list) or not all(isinstance(seq, list) for seq in schedule):
        return f"The block schedule is a list of block sequences, each a list of names, {example}."
    for number, sequence in enumerate(schedule, start=1):
        if not sequence:
            return f"Block sequence {number} is empty."
        for entry in sequence:
            name = entry.removeprefix("practice:") if isinstance(entry, str) else None
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                return (
                    f"Block sequence {number}: {entry!r} is neither a condition name nor "
                    f'"practice:" and a condition name, {example}.'
                )
    return None


def parse_block_entry(entry: str) -> tuple[str, bool]:
    """(condition name, is_practice) of one entry of a block sequence."""
    if entry.startswith("practice:"):
        return entry.removeprefix("practice:"), True
    return entry, False


def condition_errors(condition: Condition) -> dict[str, str]:
    explanation = condition.explanation
    errors: dict[str, str] = {}
    if explanation == "none" and condition.n_references:
        errors["n_references"] = "A condition without references shows 0 reference images."
    if explanation != "none" and condition.n_references == 0:
        errors["n_references"] = "Show at least one reference image, or choose 'none'."
    if explanation == "mixed" and condition.n_references != 9:
        errors["n_references"] = "The mixed condition shows 9 references (5 natural + 4 synthetic)."
    errors.update(band_errors(condition))
    if condition.exclusion_rules is not None:
        try:
            exclusion_rules_from_json(condition.exclusion_rules)
        except ValueError as err:
            errors["exclusion_rules"] = str(err)
    return errors


def band_errors(condition: Condition) -> dict[str, str]:
    """The condition's activation bands parse; references from a band are natural ones; a
    query band has a right answer."""
    errors: dict[str, str] = {}
    try:
        reference = bands.parse_sides(condition.reference_band)
        if reference.bands() and condition.explanation not in ("natural", "mixed"):
            errors["reference_band"] = (
                "References from an activation band are natural exemplars: choose the natural "
                "or mixed explanation, or leave the band empty."
            )
        if reference.min is not None and condition.sides == "max_only":
            errors["reference_band"] = (
                "The condition shows maximally activating references only: give the max side's "
                "band alone (e.g. 40-60)."
            )
    except bands.BandError as err:
        errors["reference_band"] = str(err)
    try:
        query_error = bands.query_band_error(bands.parse_sides(condition.query_band))
        if query_error:
            errors["query_band"] = query_error
    except bands.BandError as err:
        errors["query_band"] = str(err)
    return errors
