"""The exclusion engine in the database: a session is decided when it completes, re-decided when
the study's rules change or a researcher excludes it by hand, and its task list's counters follow
(adaptive recruitment: an excluded session's list is served again)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.analysis import services
from backend.analysis.models import SessionExclusion
from backend.participation.models import Session
from backend.studies import services as study_services
from backend.studies.models import Study
from tests.analysis.conftest import SMALL_RULES
from tests.participation.conftest import Api
from tests.participation.factories import make_study, prolific

pytestmark = pytest.mark.django_db
TakePart = Callable[..., Session]


def small_study(owner: User, **fields: Any) -> Any:
    fields.setdefault("exclusion_rules", SMALL_RULES)
    return make_study(owner, **fields)


def test_a_session_that_passes_every_rule_counts_and_retires_its_list(
    owner: User, take_part: TakePart
) -> None:
    fixture = small_study(owner, n_practice=1)
    session = take_part(fixture, practice_attempts=2)
    exclusion = SessionExclusion.objects.get(session=session)
    assert not exclusion.excluded and exclusion.reasons == []
    assert exclusion.measurements["practice_attempts"] == 2
    assert sorted(exclusion.measurements["answer_row_uses"]) == [1, 1, 1, 1, 1, 2]
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert task_list.valid_results == 1 and task_list.retired


@pytest.mark.parametrize(
    ("options", "rules", "code"),
    [
        ({"catch_correct": False}, {}, "catch_accuracy_low"),
        ({}, {"min_uses_per_answer_row": 2}, "answer_row_underused"),
        ({"instruction_seconds": 4.5}, {}, "instruction_time_short"),
        ({"instruction_seconds": None}, {}, "instruction_time_missing"),
        ({"seconds": 60}, {}, "total_time_short"),
        ({"seconds": 3000}, {}, "total_time_long"),
        ({"practice_attempts": 4}, {}, "practice_attempts_many"),
    ],
)
def test_a_crafted_session_is_excluded_with_the_rule_it_breaks_when_it_completes(
    owner: User, take_part: TakePart, options: dict[str, Any], rules: dict[str, Any], code: str
) -> None:
    fixture = small_study(owner, n_practice=1, exclusion_rules={**SMALL_RULES, **rules})
    session = take_part(fixture, **options)
    exclusion = SessionExclusion.objects.get(session=session)
    assert exclusion.excluded and exclusion.codes == [code]
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert task_list.valid_results == 0 and not task_list.retired
    assert task_list.sessions_completed == 1


def test_an_excluded_sessions_task_list_is_served_to_the_next_participant(
    api: Api, owner: User, take_part: TakePart
) -> None:
    fixture = small_study(owner, n_lists=1)
    first = take_part(fixture, "first0participant", catch_correct=False)
    assert first.exclusion.excluded

    second = take_part(fixture, "second0participant")
    assert second.task_list_id == first.task_list_id
    assert not second.exclusion.excluded

    refused = api.start(fixture.study.slug, prolific("third0participant"))
    assert refused.status_code == 403 and refused.json()["error"] == "study_full"
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert (task_list.valid_results, task_list.retired, task_list.sessions_completed) == (
        1,
        True,
        2,
    )


def test_changing_the_rules_re_decides_every_completed_session(
    owner: User, take_part: TakePart
) -> None:
    fixture = small_study(owner)
    session = take_part(fixture, instruction_seconds=3.0)
    assert session.exclusion.excluded

    rules = {**SMALL_RULES, "min_instruction_seconds": None}
    study_services.do_update_study(fixture.study, {"exclusion_rules": rules})

    session.exclusion.refresh_from_db()
    assert not session.exclusion.excluded
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert task_list.valid_results == 1 and task_list.retired


def test_a_manual_exclusion_reopens_the_list_and_can_be_undone(
    owner: User, take_part: TakePart
) -> None:
    fixture = small_study(owner)
    session = take_part(fixture)

    services.do_exclude_manually(session, "  answered while on the phone ", owner)

    exclusion = SessionExclusion.objects.get(session=session)
    assert exclusion.excluded and exclusion.codes == ["manual"]
    assert exclusion.reasons[0]["message"] == "answered while on the phone"
    assert exclusion.manual_by == owner
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert task_list.valid_results == 0 and not task_list.retired

    services.do_clear_manual_exclusion(session)
    exclusion.refresh_from_db()
    task_list.refresh_from_db()
    assert not exclusion.excluded and task_list.retired


def test_an_unfinished_session_cannot_be_excluded_by_hand(owner: User, take_part: TakePart) -> None:
    fixture = small_study(owner)
    session = take_part(fixture, complete=False)
    with pytest.raises(services.Refused):
        services.do_exclude_manually(session, "too slow", owner)
    assert not SessionExclusion.objects.filter(session=session).exists()


def test_a_pilot_session_is_decided_but_never_counted(api: Api, owner: User) -> None:
    fixture = small_study(owner, state=Study.State.PILOT)
    started = api.start(fixture.study.slug, {"pilot": fixture.study.pilot_token})
    token = started.json()["token"]
    session = Session.objects.get(token=token)
    for index in range(session.n_trials):
        api.answer(token, index, {"choice": 0, "confidence": 1, "rt_ms": 500.0})
    assert api.complete(token).status_code == 200
    assert SessionExclusion.objects.filter(session=session).exists()
    task_list = fixture.task_lists[0]
    task_list.refresh_from_db()
    assert task_list.valid_results == 0 and not task_list.retired


def test_a_condition_with_rules_of_its_own_decides_its_participants_by_them(
    owner: User, take_part: TakePart
) -> None:
    """Between participants, a condition may have its own rules (Zimmermann et al. 2021's none
    condition: laxer thresholds); its sessions are decided by them, now and on re-decision."""
    fixture = small_study(owner, n_lists=2, condition_design="between")
    condition = fixture.study.conditions.get()
    condition.exclusion_rules = {**SMALL_RULES, "min_instruction_seconds": 2.0}
    condition.save()
    own, other = fixture.task_lists
    own.condition_order = [condition.name]
    own.save()  # the other list's order names no condition with rules: the study's apply
    first = take_part(fixture, "first0participant", instruction_seconds=3.0)
    second = take_part(fixture, "second0participant", instruction_seconds=3.0)
    by_list = {first.task_list_id: first, second.task_list_id: second}
    assert not by_list[own.pk].exclusion.excluded
    assert by_list[other.pk].exclusion.codes == ["instruction_time_short"]

    rules = {**SMALL_RULES, "min_instruction_seconds": 1.0}
    study_services.do_update_study(fixture.study, {"exclusion_rules": rules})
    condition.exclusion_rules = {**SMALL_RULES, "min_instruction_seconds": 10.0}
    condition.save()
    services.do_recompute_exclusions(fixture.study)
    for session in (first, second):
        session.exclusion.refresh_from_db()
    assert by_list[own.pk].exclusion.codes == ["instruction_time_short"]
    assert not by_list[other.pk].exclusion.excluded
