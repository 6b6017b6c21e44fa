"""Every write of the results side, each `do_*` in one transaction: exclusion decisions (when a
session completes, when a study's rules change, by hand), the task-list counters that adaptive
recruitment reads, and imports of other studies' trial data.

Adaptive recruitment: a task list's `valid_results` is the number of its completed, non-pilot,
non-excluded sessions, recounted under the list's row lock whenever one of its sessions is
decided; a list with `VALID_RESULTS_PER_TASK_LIST` valid results is `retired`, so the
participant side stops handing it out. Excluding a session recounts and un-retires its list,
which is then served to the next participant. (The trial builder gives each unit its target
number of responses across the lists, so one valid session per list reaches every unit's target.)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable
from typing import IO, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Max, Q

from backend.analysis.exclusion_rules import (
    ExclusionDecision,
    ExclusionRules,
    SessionSummary,
    decide_exclusion,
)
from backend.analysis.exports import read_trial_csv
from backend.analysis.models import (
    AppliedRules,
    ImportedDataset,
    ImportedResponse,
    SessionExclusion,
)
from backend.analysis.rows import imported_response
from backend.analysis.tidy import ResponseRow
from backend.participation.models import PracticeResponse, Response, Session, SessionEvent
from backend.studies.models import Study, TaskList
from backend.studies.validation import exclusion_rules_from_json

VALID_RESULTS_PER_TASK_LIST = 1
IMPORT_BATCH = 5_000


class Refused(Exception):
    """A results-side write that cannot be done; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- reading what a session did --------------------------------------------------------------


def study_rules(study: Study) -> ExclusionRules:
    """The study's stored rules (validated when saved) as the dataclass the engine applies."""
    return exclusion_rules_from_json(study.exclusion_rules or {})


def condition_rules(study: Study) -> dict[str, ExclusionRules]:
    """Condition name → its own rules, for the conditions that have some (between participants:
    Zimmermann et al. 2021's none condition had laxer thresholds)."""
    rows = study.conditions.filter(exclusion_rules__isnull=False)
    return {
        name: exclusion_rules_from_json(rules)
        for name, rules in rows.values_list("name", "exclusion_rules")
    }


def session_rules(
    session: Session, default: ExclusionRules, by_condition: dict[str, ExclusionRules]
) -> ExclusionRules:
    """The rules for one session: its condition's own where its task list has one condition
    that has them, else the study's."""
    conditions = set(session.task_list.condition_order)
    if len(conditions) == 1 and (name := conditions.pop()) in by_condition:
        return by_condition[name]
    return default


def session_summary(
    session: Session, rules: ExclusionRules, manual_reason: str = ""
) -> SessionSummary:
    """The measurements the rules look at, from what the session stored."""
    responses = Response.objects.filter(session=session)
    catch = responses.filter(trial__is_catch=True).aggregate(
        answered=Count("pk"), correct=Count("pk", filter=Q(correct=True))
    )
    attempts = PracticeResponse.objects.filter(session=session).aggregate(last=Max("attempt"))
    return SessionSummary(
        session=f"s-{session.pk}",
        catch_accuracy=catch["correct"] / catch["answered"] if catch["answered"] else None,
        answer_row_uses=_answer_row_uses(responses, rules.answer_rows),
        instruction_seconds=_instruction_seconds(session),
        total_seconds=_total_seconds(session),
        practice_attempts=attempts["last"] or 0,
        manually_excluded=bool(manual_reason),
        manual_reason=manual_reason,
        image_wait_seconds=_image_wait_seconds(responses),
    )


def _image_wait_seconds(responses: Any) -> float | None:
    """How long the session's trials waited for their images (raw `load_ms`), in all."""
    waits = [
        float(value)
        for value in responses.values_list("raw__load_ms", flat=True)
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return sum(waits) / 1000 if waits else None


def _answer_row_uses(responses: Any, answer_rows: int) -> tuple[int, ...]:
    """Uses of each (choice, confidence) button: row = choice × levels + confidence − 1."""
    levels = max(answer_rows // 2, 1)
    uses = [0] * answer_rows
    counts = responses.values_list("choice", "confidence").annotate(n=Count("pk")).order_by()
    for choice, confidence, n in counts:
        row = choice * levels + confidence - 1
        if 0 <= row < answer_rows and 1 <= confidence <= levels:
            uses[row] += n
    return tuple(uses)


def _instruction_seconds(session: Session) -> float | None:
    """The longest reading the page reported (a resent event must not add up)."""
    seconds = None
    events = SessionEvent.objects.filter(session=session, type=SessionEvent.Type.INSTRUCTIONS_READ)
    for detail in events.values_list("detail", flat=True):
        value = (detail or {}).get("seconds")
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = max(float(value), seconds or 0.0)
    return seconds


def _total_seconds(session: Session) -> float | None:
    if session.completed_at is None:
        return None
    return (session.completed_at - session.created_at).total_seconds()


# --- deciding ---------------------------------------------------------------------------------


def on_session_completed(session: Session) -> SessionExclusion:
    """The hook the participant side calls, in its transaction, when a session completes."""
    return do_decide_exclusion(session)


@transaction.atomic
def do_decide_exclusion(session: Session, rules: ExclusionRules | None = None) -> SessionExclusion:
    """(Re)decide one completed session under its study's (or its condition's) rules and
    recount its task list."""
    study = session.study
    rules = rules or session_rules(session, study_rules(study), condition_rules(study))
    exclusion = _decide(session, rules)
    recount_task_lists([session.task_list_id])
    return exclusion


def _decide(session: Session, rules: ExclusionRules) -> SessionExclusion:
    stored = SessionExclusion.objects.filter(session=session).first()
    manual_reason = stored.manual_reason if stored else ""
    summary = session_summary(session, rules, manual_reason)
    decision = decide_exclusion(summary, rules)
    exclusion = stored or SessionExclusion(session=session)
    exclusion.excluded = decision.excluded
    exclusion.reasons = _reasons(decision)
    exclusion.measurements = _measurements(summary)
    exclusion.save()
    return exclusion


def _reasons(decision: ExclusionDecision) -> list[dict[str, str]]:
    return [{"code": reason.code, "message": reason.message} for reason in decision.reasons]


def _measurements(summary: SessionSummary) -> dict[str, Any]:
    values = dataclasses.asdict(summary)
    values["answer_row_uses"] = list(summary.answer_row_uses)
    for name in ("session", "manually_excluded", "manual_reason"):
        values.pop(name)
    return values


def recount_task_lists(task_list_ids: Iterable[int]) -> None:
    """valid_results and retired of each list, recounted under its row lock (fixed order)."""
    for task_list_id in sorted(set(task_list_ids)):
        TaskList.objects.select_for_update().filter(pk=task_list_id).first()
        valid = Session.objects.filter(
            task_list_id=task_list_id,
            is_pilot=False,
            state=Session.State.COMPLETED,
            exclusion__excluded=False,
        ).count()
        TaskList.objects.filter(pk=task_list_id).update(
            valid_results=valid, retired=valid >= VALID_RESULTS_PER_TASK_LIST
        )


@transaction.atomic
def do_recompute_exclusions(study: Study) -> int:
    """Re-decide every completed session of the study (after its rules changed); returns how
    many sessions are excluded now. Every list's counters are recounted."""
    rules, by_condition = study_rules(study), condition_rules(study)
    sessions = Session.objects.filter(study=study, state=Session.State.COMPLETED)
    excluded = sum(
        _decide(session, session_rules(session, rules, by_condition)).excluded
        for session in sessions.select_related("study", "task_list")
    )
    recount_task_lists(study.task_lists.values_list("pk", flat=True))
    AppliedRules.objects.update_or_create(study=study, defaults={"rules": study.exclusion_rules})
    return excluded


def do_apply_changed_rules(study: Study) -> bool:
    """Recompute when the study's stored rules differ from those last applied; True if it did."""
    applied = AppliedRules.objects.filter(study=study).values_list("rules", flat=True).first()
    if applied == study.exclusion_rules:
        return False
    if applied is None and not Session.objects.filter(study=study).exists():
        AppliedRules.objects.create(study=study, rules=study.exclusion_rules)
        return False
    do_recompute_exclusions(study)
    return True


@transaction.atomic
def do_exclude_manually(session: Session, reason: str, user: User) -> SessionExclusion:
    """Exclude a completed session by hand, with the researcher's reason."""
    reason = reason.strip()
    if not reason:
        raise Refused("Give a reason for excluding the session.")
    session = _locked_completed(session)
    SessionExclusion.objects.update_or_create(
        session=session, defaults={"manual_reason": reason[:2000], "manual_by": user}
    )
    return do_decide_exclusion(session)


@transaction.atomic
def do_clear_manual_exclusion(session: Session) -> SessionExclusion:
    """Undo a manual exclusion; the study's rules decide again."""
    session = _locked_completed(session)
    SessionExclusion.objects.filter(session=session).update(manual_reason="", manual_by=None)
    return do_decide_exclusion(session)


def _locked_completed(session: Session) -> Session:
    locked = (
        Session.objects.select_for_update(of=("self",)).select_related("study").get(pk=session.pk)
    )
    if not locked.completed:
        raise Refused("Only completed sessions can be excluded or re-included.")
    return locked


# --- imports ----------------------------------------------------------------------------------


@transaction.atomic
def do_import_trials(
    name: str,
    rows: Iterable[ResponseRow],
    column_mapping: dict[str, str],
    source_file: str = "",
    user: User | None = None,
) -> ImportedDataset:
    """Store another study's trials (already read into tidy rows) as one dataset; nothing is
    stored when any row fails to read (the reader's error propagates)."""
    if ImportedDataset.objects.filter(name=name).exists():
        raise Refused(f"A dataset named {name!r} exists already: choose another name.")
    dataset = ImportedDataset.objects.create(
        name=name, source_file=source_file, column_mapping=column_mapping, imported_by=user
    )
    position = 0
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, IMPORT_BATCH)):
        records = [imported_response(dataset, position + i, row) for i, row in enumerate(batch)]
        ImportedResponse.objects.bulk_create(records)
        position += len(batch)
    if position == 0:
        raise Refused("The file has no trials.")
    dataset.rows = position
    dataset.save(update_fields=["rows"])
    return dataset


def column_mapping_from_json(text: str) -> dict[str, str]:
    """The mapping (our column → the file's) from JSON text; Refused when it is not one."""
    try:
        mapping = json.loads(text)
    except ValueError as err:
        raise Refused(f"The mapping is not JSON: {err}") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise Refused('The mapping must be a JSON object {"our column": "their column"}.')
    return mapping


def do_import_trial_file(
    name: str,
    fileobj: IO[str] | IO[bytes],
    column_mapping: dict[str, str],
    source_file: str = "",
    user: User | None = None,
) -> ImportedDataset:
    """Read a trial-level CSV through the mapping and store it as one dataset (the command and
    the admin upload both call this). A bad line raises `exports.ImportErrorWithLine`, naming
    the line and the column, and nothing is stored."""
    rows = read_trial_csv(fileobj, column_mapping, name)
    return do_import_trials(name, rows, column_mapping, source_file, user)
