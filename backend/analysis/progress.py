"""Where a study's recruitment stands: sessions by state, exclusions and their reasons, valid
responses per unit against the target, places still needed, and the platform submissions to
approve or to return/reject (read only; `services` writes the decisions).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from backend.analysis.models import SessionExclusion
from backend.analysis.services import VALID_RESULTS_PER_TASK_LIST
from backend.core import csvcells
from backend.participation.models import Participant, Response, Session
from backend.studies.models import Study

# Platform parameter that names one submission (Prolific's SESSION_ID, MTurk's assignmentId).
SUBMISSION_PARAM: dict[str, str] = {
    Participant.Platform.PROLIFIC: "SESSION_ID",
    Participant.Platform.MTURK: "assignmentId",
}
SUBMISSION_COLUMNS = ("submission_id", "participant_id", "platform", "completed_at", "action",
                      "reasons")  # fmt: skip


@dataclass(frozen=True)
class StudyCounts:
    started: int
    active: int
    abandoned: int
    ended: int  # ended early: the participant's window could not be made large enough
    completed: int
    excluded: int
    valid: int
    undecided: int  # completed before the results side decided (re-apply the rules)
    task_lists: int
    retired_task_lists: int
    places_needed: int
    target_per_unit: int
    units: int
    units_at_target: int
    exclusion_reasons: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def study_counts(study: Study) -> StudyCounts:
    """Non-pilot sessions only; places needed = Σ over lists not yet valid of (1 − valid)."""
    sessions = Session.objects.filter(study=study, is_pilot=False)
    by_state = dict(sessions.values_list("state").annotate(n=Count("pk")).order_by())
    completed = sessions.filter(state=Session.State.COMPLETED)
    decided = completed.aggregate(
        excluded=Count("pk", filter=Q(exclusion__excluded=True)),
        valid=Count("pk", filter=Q(exclusion__excluded=False)),
    )
    lists = list(study.task_lists.values_list("valid_results", "retired"))
    per_unit = valid_responses_per_unit(study)
    target = study.target_valid_responses_per_unit
    return StudyCounts(
        started=sum(by_state.values()),
        active=by_state.get(Session.State.ACTIVE, 0),
        abandoned=by_state.get(Session.State.ABANDONED, 0),
        ended=by_state.get(Session.State.ENDED, 0),
        completed=by_state.get(Session.State.COMPLETED, 0),
        excluded=decided["excluded"],
        valid=decided["valid"],
        undecided=by_state.get(Session.State.COMPLETED, 0) - decided["excluded"] - decided["valid"],
        task_lists=len(lists),
        retired_task_lists=sum(retired for _, retired in lists),
        places_needed=sum(max(VALID_RESULTS_PER_TASK_LIST - valid, 0) for valid, _ in lists),
        target_per_unit=target,
        units=len(per_unit),
        units_at_target=sum(n >= target for n in per_unit.values()),
        exclusion_reasons=exclusion_reason_counts(study),
    )


def exclusion_reason_counts(study: Study) -> dict[str, int]:
    reasons = Session.objects.filter(
        study=study, is_pilot=False, exclusion__excluded=True
    ).values_list("exclusion__reasons", flat=True)
    counts = Counter(reason["code"] for listed in reasons for reason in listed or ())
    return dict(counts.most_common())


def valid_responses_per_unit(study: Study) -> dict[tuple[int, str], int]:
    """(unit id, condition name) → main-trial responses of valid sessions; every unit and
    condition of the task lists appears, with 0 when nobody answered it validly yet."""
    planned = (
        study.task_lists.values_list("trials__unit_id", "trials__condition__name")
        .filter(trials__is_catch=False)
        .distinct()
    )
    counts = {(unit, condition): 0 for unit, condition in planned if unit is not None}
    answered = (
        Response.objects.filter(
            session__study=study,
            session__is_pilot=False,
            session__exclusion__excluded=False,
            trial__is_catch=False,
        )
        .values_list("trial__unit_id", "trial__condition__name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for unit, condition, n in answered:
        counts[(unit, condition)] = n
    return counts


# --- platform submissions ------------------------------------------------------------------


def submissions(study: Study, *, valid: bool) -> Iterator[dict[str, str]]:
    """Completed non-pilot sessions to approve (valid) or to return/reject (excluded)."""
    sessions = (
        Session.objects.filter(
            study=study,
            is_pilot=False,
            state=Session.State.COMPLETED,
            exclusion__excluded=not valid,
        )
        .select_related("participant", "exclusion")
        .order_by("completed_at", "pk")
    )
    for session in sessions:
        platform = session.participant.platform
        params = session.platform_params or {}
        yield {
            "submission_id": params.get(SUBMISSION_PARAM.get(platform, ""), ""),
            "participant_id": session.participant.platform_id,
            "platform": platform,
            "completed_at": session.completed_at.isoformat() if session.completed_at else "",
            "action": "approve" if valid else "return_or_reject",
            "reasons": "; ".join(reason["message"] for reason in _exclusion(session).reasons),
        }


def _exclusion(session: Session) -> SessionExclusion:
    return session.exclusion  # type: ignore[attr-defined,no-any-return]


def submissions_csv(study: Study, *, valid: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUBMISSION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csvcells.safe_dict(row) for row in submissions(study, valid=valid))
    return buffer.getvalue()
