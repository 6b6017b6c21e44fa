"""Exclusion rules: decide from a session's summary whether its responses count.

Pure: a `SessionSummary` (what the session did) and an `ExclusionRules` config (what a study
demands) go in, an `ExclusionDecision` (excluded, reasons) comes out. The defaults are the
criteria of the IMI study (Zimmermann, Klein & Brendel, 2023); every rule can be switched off by
setting its threshold to None. A rule that is on but whose measurement is missing (e.g. no catch
trial answered) excludes the session: a publishable result must not count unchecked data.

The reason codes go into the export's `exclusion_reasons` column (see docs/data-dictionary.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

ANSWER_ROWS = 6  # 2 query images × 3 confidence levels


@dataclass(frozen=True)
class SessionSummary:
    """What one session did, as far as the exclusion rules care."""

    session: str
    catch_accuracy: float | None  # fraction of catch trials answered correctly
    answer_row_uses: tuple[int, ...]  # how often each of the answer rows/buttons was used
    instruction_seconds: float | None
    total_seconds: float | None
    practice_attempts: int  # rounds of practice needed to pass (1 = passed at once)
    manually_excluded: bool = False
    manual_reason: str = ""
    # Seconds the main trials waited for their images in all (None: the page recorded none).
    image_wait_seconds: float | None = None


@dataclass(frozen=True)
class ExclusionRules:
    """Thresholds of a study's exclusion criteria; None switches a rule off.

    `min_uses_per_answer_row` follows IMI's wording, "each answer row used at least 5 times":
    a participant who leaves any of the answer rows (nearly) unused, for instance by pressing
    one row for almost everything, is excluded.
    """

    min_catch_accuracy: float | None = 0.8
    min_uses_per_answer_row: int | None = 5
    answer_rows: int = ANSWER_ROWS
    min_instruction_seconds: float | None = 15.0
    min_total_seconds: float | None = 135.0
    max_total_seconds: float | None = 2500.0
    max_practice_attempts: int | None = 3
    # Not an IMI criterion, off by default: a session whose trials waited longer than this for
    # their images in all (a bad connection; the page shows no trial before its images).
    max_image_wait_seconds: float | None = None


IMI_RULES = ExclusionRules()
NO_RULES = ExclusionRules(
    min_catch_accuracy=None,
    min_uses_per_answer_row=None,
    min_instruction_seconds=None,
    min_total_seconds=None,
    max_total_seconds=None,
    max_practice_attempts=None,
)


class ExclusionReason(NamedTuple):
    code: str  # stable, machine-readable; goes into the export
    message: str  # for researchers, in the admin


class ExclusionDecision(NamedTuple):
    excluded: bool
    reasons: tuple[ExclusionReason, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)


Rule = Callable[[SessionSummary, ExclusionRules], ExclusionReason | None]


def check_catch_accuracy(session: SessionSummary, rules: ExclusionRules) -> ExclusionReason | None:
    threshold = rules.min_catch_accuracy
    if threshold is None:
        return None
    if session.catch_accuracy is None:
        return ExclusionReason("catch_accuracy_missing", "no catch trial was answered")
    if session.catch_accuracy < threshold:
        return ExclusionReason(
            "catch_accuracy_low",
            f"catch-trial accuracy {session.catch_accuracy:.0%} is below {threshold:.0%}",
        )
    return None


def check_answer_row_uses(session: SessionSummary, rules: ExclusionRules) -> ExclusionReason | None:
    minimum = rules.min_uses_per_answer_row
    if minimum is None:
        return None
    if len(session.answer_row_uses) != rules.answer_rows:
        raise ValueError(
            f"session {session.session}: {len(session.answer_row_uses)} answer-row counts, "
            f"expected {rules.answer_rows}"
        )
    underused = [row for row, uses in enumerate(session.answer_row_uses, 1) if uses < minimum]
    if underused:
        rows = ", ".join(str(row) for row in underused)
        return ExclusionReason(
            "answer_row_underused", f"answer row(s) {rows} used fewer than {minimum} times"
        )
    return None


def check_instruction_time(
    session: SessionSummary, rules: ExclusionRules
) -> ExclusionReason | None:
    minimum = rules.min_instruction_seconds
    if minimum is None:
        return None
    if session.instruction_seconds is None:
        return ExclusionReason("instruction_time_missing", "instruction time was not recorded")
    if session.instruction_seconds < minimum:
        return ExclusionReason(
            "instruction_time_short",
            f"instructions read in {session.instruction_seconds:.1f} s, under {minimum:g} s",
        )
    return None


def check_total_time(session: SessionSummary, rules: ExclusionRules) -> ExclusionReason | None:
    shortest, longest = rules.min_total_seconds, rules.max_total_seconds
    if shortest is None and longest is None:
        return None
    seconds = session.total_seconds
    if seconds is None:
        return ExclusionReason("total_time_missing", "total time was not recorded")
    if shortest is not None and seconds < shortest:
        return ExclusionReason(
            "total_time_short", f"study finished in {seconds:.0f} s, under {shortest:g} s"
        )
    if longest is not None and seconds > longest:
        return ExclusionReason("total_time_long", f"study took {seconds:.0f} s, over {longest:g} s")
    return None


def check_practice_attempts(
    session: SessionSummary, rules: ExclusionRules
) -> ExclusionReason | None:
    maximum = rules.max_practice_attempts
    if maximum is None or session.practice_attempts <= maximum:
        return None
    return ExclusionReason(
        "practice_attempts_many",
        f"practice needed {session.practice_attempts} attempts, more than {maximum}",
    )


def check_image_wait(session: SessionSummary, rules: ExclusionRules) -> ExclusionReason | None:
    maximum = rules.max_image_wait_seconds
    if maximum is None:
        return None
    if session.image_wait_seconds is None:
        return ExclusionReason("image_wait_missing", "image loading times were not recorded")
    waited = session.image_wait_seconds
    if waited > maximum:
        message = f"trials waited {waited:.0f} s for their images, over {maximum:g} s"
        return ExclusionReason("image_wait_long", message)
    return None


def check_manual_exclusion(
    session: SessionSummary, rules: ExclusionRules
) -> ExclusionReason | None:
    if not session.manually_excluded:
        return None
    return ExclusionReason("manual", session.manual_reason or "excluded by a researcher")


RULES: tuple[Rule, ...] = (
    check_catch_accuracy,
    check_answer_row_uses,
    check_instruction_time,
    check_total_time,
    check_practice_attempts,
    check_image_wait,
    check_manual_exclusion,
)


def decide_exclusion(
    session: SessionSummary, rules: ExclusionRules = IMI_RULES
) -> ExclusionDecision:
    """Apply every rule; the session is excluded when any rule gives a reason."""
    reasons = tuple(reason for check in RULES if (reason := check(session, rules)) is not None)
    return ExclusionDecision(bool(reasons), reasons)


def decide_exclusions(
    sessions: Iterable[SessionSummary], rules: ExclusionRules = IMI_RULES
) -> dict[str, ExclusionDecision]:
    """{session: decision} for many sessions under one study's rules."""
    return {session.session: decide_exclusion(session, rules) for session in sessions}
