"""What a study still lacks before participants may see it: a consent text, instructions, and the
practice trials its design loops on. The build reports these (it still builds, so the study can
be piloted) and launching refuses until each is filled or explicitly waived on the study
(`consent_waived`, `instructions_waived`, `practice_waived`, while it is a draft or a pilot).

Each item names the field of the study page that fills it, so the admin can link to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backend.studies.builder import Refused
from backend.studies.models import Study
from backend.studies.validation import exclusion_rules_from_json

# The admin anchors of the fields (the change page's ids).
FIELD_ANCHORS = {
    "consent_markdown": "id_consent_markdown",
    "instructions_markdown": "id_instructions_markdown",
    "practice_trials": "practice_trials-group",
    "exclusion_rules": "id_exclusion_rules",
}


@dataclass(frozen=True)
class Missing:
    """One thing to fill before launch: a stable code, a sentence, the field that fills it."""

    code: str
    message: str
    field: str
    waivable: bool

    @property
    def anchor(self) -> str:
        return FIELD_ANCHORS[self.field]

    def payload(self) -> dict[str, Any]:
        return asdict(self)


class LaunchRefused(Refused):
    """The study cannot launch yet; `missing` says what to fill (or waive) and where."""

    def __init__(self, missing: list[Missing]) -> None:
        super().__init__(
            "The study cannot launch yet. " + " ".join(item.message for item in missing)
        )
        self.missing = missing


def check_launch(study: Study) -> None:
    """Raises LaunchRefused while anything is missing."""
    missing = missing_for_launch(study)
    if missing:
        raise LaunchRefused(missing)


def missing_for_launch(study: Study) -> list[Missing]:
    """Everything that keeps the study from launching, in the order of the study page."""
    missing = []
    if not study.consent_markdown.strip() and not study.consent_waived:
        missing.append(Missing(
            "consent", "The consent text is empty: participants would see an empty consent page. "
            "Write it, or waive it (consent collected elsewhere) to show no consent page.",
            "consent_markdown", waivable=True,
        ))  # fmt: skip
    if not study.instructions_markdown.strip() and not study.instructions_waived:
        missing.append(Missing(
            "instructions", "The instructions are empty: participants would see an empty "
            "instruction page. Write them, or waive them to show no instruction page.",
            "instructions_markdown", waivable=True,
        ))  # fmt: skip
    if _needs_practice(study):
        missing.append(Missing(
            "practice", "The design loops practice until every answer is right, but the study "
            "has no practice trials: add some (Practice trials, below the form), or waive them.",
            "practice_trials", waivable=True,
        ))  # fmt: skip
    if _instruction_rule_cannot_pass(study):
        missing.append(Missing(
            "instruction_time_rule", "Without instructions no reading time is recorded, but "
            "the exclusion rules ask for one (min_instruction_seconds): every session would be "
            "excluded. Write the instructions, or switch that rule off (null).",
            "exclusion_rules", waivable=False,
        ))  # fmt: skip
    return missing


def _needs_practice(study: Study) -> bool:
    if not study.practice_until_correct or study.practice_waived or study.pk is None:
        return False
    return not study.practice_trials.exists()


def _instruction_rule_cannot_pass(study: Study) -> bool:
    """Waived instructions record no reading time, which a reading-time rule then lacks."""
    if study.instructions_markdown.strip() or not study.instructions_waived:
        return False
    rule_sets = [study.exclusion_rules or {}]
    if study.pk is not None:
        rule_sets += [rules for rules in study.conditions.values_list("exclusion_rules", flat=True)
                      if rules is not None]  # fmt: skip
    try:
        return any(
            exclusion_rules_from_json(rules).min_instruction_seconds is not None
            for rules in rule_sets
        )
    except ValueError:  # malformed rules are the form's to refuse
        return False
