"""Exclusion rules: each IMI criterion just inside and just outside its threshold."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest

from backend.analysis.exclusion_rules import (
    IMI_RULES,
    NO_RULES,
    ExclusionRules,
    SessionSummary,
    decide_exclusion,
    decide_exclusions,
)

GOOD_SESSION = SessionSummary(
    session="s-0001",
    catch_accuracy=1.0,
    answer_row_uses=(12, 9, 7, 8, 10, 14),
    instruction_seconds=62.0,
    total_seconds=900.0,
    practice_attempts=1,
)


def session(**changes: Any) -> SessionSummary:
    return replace(GOOD_SESSION, **changes)


def test_a_careful_session_is_not_excluded_under_the_imi_rules() -> None:
    excluded, reasons = decide_exclusion(GOOD_SESSION)
    assert excluded is False
    assert reasons == ()


def test_the_default_rules_are_the_imi_thresholds() -> None:
    assert asdict(IMI_RULES) == {
        "min_catch_accuracy": 0.8,
        "min_uses_per_answer_row": 5,
        "answer_rows": 6,
        "min_instruction_seconds": 15.0,
        "min_total_seconds": 135.0,
        "max_total_seconds": 2500.0,
        "max_practice_attempts": 3,
        "max_image_wait_seconds": None,  # not an IMI rule: off
    }
    assert ExclusionRules() == IMI_RULES


@pytest.mark.parametrize(
    ("changes", "excluded_with"),
    [
        ({"catch_accuracy": 0.8}, None),
        ({"catch_accuracy": 0.79}, "catch_accuracy_low"),
        ({"catch_accuracy": 4 / 5}, None),
        ({"catch_accuracy": 3 / 4}, "catch_accuracy_low"),
        ({"catch_accuracy": None}, "catch_accuracy_missing"),
        ({"answer_row_uses": (5, 5, 5, 5, 5, 5)}, None),
        ({"answer_row_uses": (5, 5, 4, 5, 5, 5)}, "answer_row_underused"),
        ({"answer_row_uses": (95, 1, 1, 1, 1, 1)}, "answer_row_underused"),
        ({"instruction_seconds": 15.0}, None),
        ({"instruction_seconds": 14.9}, "instruction_time_short"),
        ({"instruction_seconds": None}, "instruction_time_missing"),
        ({"total_seconds": 135.0}, None),
        ({"total_seconds": 134.9}, "total_time_short"),
        ({"total_seconds": 2500.0}, None),
        ({"total_seconds": 2500.1}, "total_time_long"),
        ({"total_seconds": None}, "total_time_missing"),
        ({"practice_attempts": 3}, None),
        ({"practice_attempts": 4}, "practice_attempts_many"),
    ],
)
def test_each_rule_excludes_just_outside_its_threshold_and_not_just_inside(
    changes: dict[str, Any], excluded_with: str | None
) -> None:
    decision = decide_exclusion(session(**changes))
    if excluded_with is None:
        assert decision == (False, ())
    else:
        assert decision.excluded is True
        assert decision.codes == (excluded_with,)


def test_the_reason_message_says_which_answer_rows_were_underused() -> None:
    decision = decide_exclusion(session(answer_row_uses=(20, 4, 20, 20, 0, 20)))
    assert decision.reasons[0].message == "answer row(s) 2, 5 used fewer than 5 times"


def test_the_reason_message_gives_the_measured_value_and_the_threshold() -> None:
    decision = decide_exclusion(session(catch_accuracy=0.6, total_seconds=100.0))
    assert [reason.message for reason in decision.reasons] == [
        "catch-trial accuracy 60% is below 80%",
        "study finished in 100 s, under 135 s",
    ]


@pytest.mark.parametrize(
    ("disabled", "changes"),
    [
        ({"min_catch_accuracy": None}, {"catch_accuracy": 0.0}),
        ({"min_catch_accuracy": None}, {"catch_accuracy": None}),
        ({"min_uses_per_answer_row": None}, {"answer_row_uses": (60, 0, 0, 0, 0, 0)}),
        ({"min_instruction_seconds": None}, {"instruction_seconds": 1.0}),
        ({"min_total_seconds": None}, {"total_seconds": 10.0}),
        ({"max_total_seconds": None}, {"total_seconds": 99_999.0}),
        ({"max_practice_attempts": None}, {"practice_attempts": 12}),
    ],
)
def test_a_disabled_rule_never_excludes(disabled: dict[str, Any], changes: dict[str, Any]) -> None:
    rules = replace(IMI_RULES, **disabled)
    assert decide_exclusion(session(**changes), rules) == (False, ())


def test_a_session_can_break_several_rules_and_gets_every_reason_in_rule_order() -> None:
    decision = decide_exclusion(
        session(
            catch_accuracy=0.5,
            answer_row_uses=(60, 0, 0, 0, 0, 0),
            instruction_seconds=3.0,
            total_seconds=4000.0,
            practice_attempts=5,
            manually_excluded=True,
            manual_reason="reported a broken display",
        )
    )
    assert decision.codes == (
        "catch_accuracy_low",
        "answer_row_underused",
        "instruction_time_short",
        "total_time_long",
        "practice_attempts_many",
        "manual",
    )
    assert decision.reasons[-1].message == "reported a broken display"


def test_manual_exclusion_applies_even_when_every_rule_is_off() -> None:
    manual = session(manually_excluded=True)
    decision = decide_exclusion(manual, NO_RULES)
    assert decision.codes == ("manual",)
    assert decision.reasons[0].message == "excluded by a researcher"
    assert decide_exclusion(session(catch_accuracy=0.0, total_seconds=1.0), NO_RULES) == (
        False,
        (),
    )


def test_answer_row_counts_must_cover_every_answer_row() -> None:
    with pytest.raises(ValueError, match="5 answer-row counts, expected 6"):
        decide_exclusion(session(answer_row_uses=(9, 9, 9, 9, 9)))


def test_a_study_with_another_scale_sets_the_number_of_answer_rows() -> None:
    two_buttons = replace(IMI_RULES, answer_rows=2)
    assert decide_exclusion(session(answer_row_uses=(30, 30)), two_buttons) == (False, ())


def test_decide_exclusions_gives_one_decision_per_session() -> None:
    sessions = [GOOD_SESSION, session(session="s-0002", practice_attempts=9)]
    decisions = decide_exclusions(sessions)
    assert decisions["s-0001"].excluded is False
    assert decisions["s-0002"].codes == ("practice_attempts_many",)


@pytest.mark.parametrize(
    ("waited", "excluded_with"),
    [(None, "image_wait_missing"), (120.0, None), (120.5, "image_wait_long"), (0.0, None)],
)
def test_a_study_can_exclude_sessions_that_waited_long_for_their_images(
    waited: float | None, excluded_with: str | None
) -> None:
    rules = replace(IMI_RULES, max_image_wait_seconds=120.0)
    decision = decide_exclusion(session(image_wait_seconds=waited), rules)
    assert decision.codes == (() if excluded_with is None else (excluded_with,))
    assert decide_exclusion(session(image_wait_seconds=waited)).codes == ()  # off by default
