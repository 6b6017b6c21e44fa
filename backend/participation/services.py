"""Every write of the participant side, each `do_*` in one transaction.

Sessions: one per (study, identity), enforced by a unique constraint, so two tabs racing to
start get the same session. A session holds (leases) a task list; task lists are handed out
least-served first with `SELECT … FOR UPDATE SKIP LOCKED`. A session with no activity for the
study's time limit is abandoned when the next session is assigned: its list counts one holder
fewer (`sessions_started` is decremented) and may go to someone else. A session the page ends
(the participant's window cannot be made large enough) gives its list back at once. An abandoned
or ended participant who comes back resumes if nobody was given the list since; otherwise the
session has expired.

Responses: unique per (session, trial index) and written under the session's row lock, so a
retried PUT either finds the same answer (200) or a different one (409), never a second row.
The common answer (the session's next trial, in order, lease current) is one SQL statement
(`answer_statement`): lock, score, insert and advance in a single round trip; every other case
takes the careful path here.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from backend.analysis import services as analysis_services
from backend.core.errors import ApiError
from backend.participation import practice, recruitment
from backend.participation.answer_statement import Recorded, record_in_order
from backend.participation.models import (
    Participant,
    PracticeResponse,
    Response,
    Session,
    SessionEvent,
)
from backend.participation.trial_keys import trial_key
from backend.studies import permissions
from backend.studies.models import Study, TaskList

HOLDING_STATES = (Session.State.ACTIVE, Session.State.COMPLETED)
# Sessions that gave their task list back: they resume (if nobody got the list since) when the
# participant comes back.
RELEASED_STATES = (Session.State.ABANDONED, Session.State.ENDED)
# What the response PUT reads: the session's progress and the few study settings it needs.
ANSWER_PATH_FIELDS = (
    "id",
    "task_list_id",
    "is_pilot",
    "state",
    "n_trials",
    "n_answered",
    "next_trial_index",
    "correct_count",
    "last_activity_at",
    "abandoned_at",
    "study__id",
    "study__state",
    "study__feedback",
    "study__block_feedback",
    "study__show_counter",
    "study__time_limit_minutes",
    "participant__id",
)


@dataclass(frozen=True)
class Answer:
    """One validated answer body (§3)."""

    choice: int
    confidence: int
    rt_ms: float
    client_started_at: datetime | None
    client_answered_at: datetime | None
    raw: dict[str, Any]

    def stored_fields(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "confidence": self.confidence,
            "rt_ms": self.rt_ms,
            "client_started_at": self.client_started_at,
            "client_answered_at": self.client_answered_at,
            "raw": self.raw,
        }

    def same_as(self, stored: Response | PracticeResponse) -> bool:
        """Same answer on the semantic fields (not the raw blob)."""
        return (
            stored.choice == self.choice
            and stored.confidence == self.confidence
            and stored.rt_ms == self.rt_ms
            and stored.client_started_at == self.client_started_at
            and stored.client_answered_at == self.client_answered_at
        )


@dataclass(frozen=True)
class FeedbackShown:
    """What the page showed after an answer: whether feedback appeared, and which verdict."""

    RAW_KEYS: ClassVar[tuple[str, ...]] = ("feedback_shown", "correct", "feedback_reported")

    feedback_shown: bool
    correct: bool | None

    def raw(self) -> dict[str, Any]:
        """The keys it sets in the answer's raw data (`feedback_reported`: set by this report,
        not by the answer's own snapshot)."""
        correct = self.correct if self.feedback_shown else None
        return {"feedback_shown": self.feedback_shown, "correct": correct,
                "feedback_reported": True}  # fmt: skip


def session_expired() -> ApiError:
    return ApiError(
        "session_expired",
        "This session expired after a long time without activity, and its place was given to "
        "someone else. Please return the study on your platform.",
        404,
    )


# --- starting a session -------------------------------------------------------------------


def do_start_session(
    study: Study, platform: dict[str, Any], browser: dict[str, Any], resume_token: str | None
) -> tuple[Session, bool]:
    """(session, created): the identity's existing session, or a new one with a task list."""
    arrival = recruitment.arrival_from(study, platform)
    existing = _existing_session(study, arrival, resume_token)
    if existing is not None:
        _check_may_resume(existing, arrival, resume_token)
        return _resume(existing, status=403), False
    _check_open(study, arrival)
    platform_name, platform_id = arrival.identity()
    try:
        with transaction.atomic():
            participant, _ = Participant.objects.get_or_create(
                platform=platform_name, platform_id=platform_id
            )
            return _create_session(study, participant, arrival, browser), True
    except IntegrityError:  # a second tab created the session a moment ago
        session = Session.objects.get(
            study=study, participant__platform=platform_name, participant__platform_id=platform_id
        )
        _check_may_resume(session, arrival, resume_token)
        return _resume(session, status=403), False


def _check_may_resume(session: Session, arrival: recruitment.Arrival, token: str | None) -> None:
    """Knowing a participant's platform id is not enough to take their session over: resuming
    needs the session's token (the page keeps it, so a reload in the same browser needs no
    more) or the platform's per-submission id that started it (Prolific's SESSION_ID, MTurk's
    assignmentId), which only that participant's platform link carries. Pilots are exempt."""
    if arrival.is_pilot or arrival.platform_id is None:
        return
    if token and secrets.compare_digest(token.encode(), session.token.encode()):
        return
    key = recruitment.SUBMISSION_KEYS.get(arrival.platform, "")
    stored = str((session.platform_params or {}).get(key, ""))
    presented = arrival.params.get(key, "")
    if stored and presented and secrets.compare_digest(stored.encode(), presented.encode()):
        return
    raise ApiError("resume_refused", recruitment.resume_refused_message(arrival.platform), 403)


def _existing_session(
    study: Study, arrival: recruitment.Arrival, token: str | None
) -> Session | None:
    sessions = Session.objects.select_related("study", "participant", "task_list")
    if arrival.platform_id is not None:
        return sessions.filter(
            study=study,
            participant__platform=arrival.platform,
            participant__platform_id=arrival.platform_id,
        ).first()
    if token:  # an anonymous (plain link or pilot) browser re-sending its stored token
        return sessions.filter(
            study=study, token=token, participant__platform=arrival.platform
        ).first()
    return None


def _check_open(study: Study, arrival: recruitment.Arrival) -> None:
    if arrival.is_pilot:
        return
    if study.state != Study.State.LIVE:
        raise ApiError("study_not_live", "This study is not open at the moment.", 403)
    if arrival.platform_id is not None and _took_excluded_study(study, arrival):
        raise ApiError(
            "identity_excluded",
            "You cannot take part in this study because you took part in a related study.",
            403,
        )


def _took_excluded_study(study: Study, arrival: recruitment.Arrival) -> bool:
    """Only studies the owner may see count (one set before the admin narrowed its choices to
    those would make this endpoint tell who took part in another researcher's study)."""
    excluded = study.excluded_studies.filter(pk__in=permissions.visible_studies(study.owner))
    return Session.objects.filter(
        study__in=excluded,
        participant__platform=arrival.platform,
        participant__platform_id=arrival.platform_id,
        is_pilot=False,
    ).exists()


def _create_session(
    study: Study, participant: Participant, arrival: recruitment.Arrival, browser: dict[str, Any]
) -> Session:
    now = timezone.now()
    if arrival.is_pilot:
        task_list = _pick_task_list(study, lock=False)
    else:
        task_list = _assign_task_list(study, now)
    session = Session.objects.create(
        study=study,
        participant=participant,
        task_list=task_list,
        is_pilot=arrival.is_pilot,
        platform_params=arrival.params,
        browser=browser,
        n_trials=task_list.trials.count(),
        practice_passed=not any(block["trials"] for block in task_list.practice_blocks or []),
        last_activity_at=now,
    )
    return Session.objects.select_related("study", "participant", "task_list").get(pk=session.pk)


def _assign_task_list(study: Study, now: datetime) -> TaskList:
    """Least-served non-retired list, counted as held; 403 study_full when none is left."""
    if study.max_participants is not None:
        # Serializes starts of a capped study so two starts cannot both take the last place.
        Study.objects.select_for_update().filter(pk=study.pk).first()
    release_expired_leases(study, now)
    if study.max_participants is not None and _holders(study) >= study.max_participants:
        raise ApiError("study_full", "This study is full. Thank you for your interest.", 403)
    task_list = _pick_task_list(study, lock=True)
    TaskList.objects.filter(pk=task_list.pk).update(sessions_started=F("sessions_started") + 1)
    return task_list


def _holders(study: Study) -> int:
    return Session.objects.filter(study=study, is_pilot=False, state__in=HOLDING_STATES).count()


def _pick_task_list(study: Study, lock: bool) -> TaskList:
    lists = TaskList.objects.filter(study=study, retired=False).order_by(
        "sessions_started", "index"
    )
    task_list = lists.select_for_update(skip_locked=True).first() if lock else lists.first()
    if task_list is None and lock:  # every open list is being handed out right now: wait
        task_list = lists.select_for_update().first()
    if task_list is None:
        raise ApiError(
            "study_full", "This study has no places left. Thank you for your interest.", 403
        )
    return task_list


def release_expired_leases(study: Study, now: datetime) -> int:
    """Marks sessions idle past the time limit abandoned and frees their lists; returns how many."""
    cutoff = now - timedelta(minutes=study.time_limit_minutes)
    expired = list(
        Session.objects.select_for_update(skip_locked=True)
        .filter(study=study, state=Session.State.ACTIVE, last_activity_at__lt=cutoff)
        .values_list("pk", "task_list_id", "is_pilot")
    )
    if not expired:
        return 0
    Session.objects.filter(pk__in=[pk for pk, _, _ in expired]).update(
        state=Session.State.ABANDONED, abandoned_at=now
    )
    freed = Counter(task_list for _, task_list, is_pilot in expired if not is_pilot)
    for task_list_id in sorted(freed):  # a fixed lock order: no deadlock between two starts
        TaskList.objects.filter(pk=task_list_id).update(
            sessions_started=Greatest(F("sessions_started") - freed[task_list_id], 0)
        )
    return len(expired)


# --- the lease of an existing session -------------------------------------------------------


def _resume(session: Session, status: int) -> Session:
    """The session, its lease renewed; `session_expired` (status) if its list was re-assigned."""
    if session.completed or not _lease_lapsed(session):
        return session
    with transaction.atomic():
        locked = Session.objects.select_for_update(of=("self",)).get(pk=session.pk)
        _renew_lease(locked, status)
    session.refresh_from_db()
    return session


def _lease_lapsed(session: Session) -> bool:
    if session.state in RELEASED_STATES:
        return True
    limit = timedelta(minutes=session.study.time_limit_minutes)
    return session.last_activity_at < timezone.now() - limit


def _renew_lease(session: Session, status: int) -> None:
    """Called under the session's lock."""
    now = timezone.now()
    if session.state in RELEASED_STATES:
        reassigned = Session.objects.filter(
            task_list_id=session.task_list_id, is_pilot=False, created_at__gt=session.released_at
        ).exists()
        if reassigned:
            error = session_expired()
            error.status_code = status
            raise error
        if not session.is_pilot:
            TaskList.objects.filter(pk=session.task_list_id).update(
                sessions_started=F("sessions_started") + 1
            )
        session.state, session.abandoned_at = Session.State.ACTIVE, None
        session.ended_at, session.end_reason = None, ""
    session.last_activity_at = now
    session.save(
        update_fields=["state", "abandoned_at", "ended_at", "end_reason", "last_activity_at"]
    )


def locked_session(token: str, fields: tuple[str, ...] = ()) -> Session:
    """The token's session under a row lock, its lease renewed; 404 if unknown or expired.

    Call inside a transaction. `fields` (optional) limits the columns read.
    """
    sessions = Session.objects.select_for_update(of=("self",)).select_related(
        "study", "participant"
    )
    if fields:
        sessions = sessions.only(*fields)
    try:  # get(), not first(): no ORDER BY on the hot path
        session = sessions.get(token=token)
    except Session.DoesNotExist:
        raise ApiError("not_found", "This session does not exist.", 404) from None
    if not session.completed and _lease_lapsed(session):
        _renew_lease(session, status=404)
    return session


def do_touch_session(token: str) -> Session:
    """The session for §2 (GET state), its lease renewed."""
    with transaction.atomic():
        session = locked_session(token)
        if not session.completed:
            session.last_activity_at = timezone.now()
            session.save(update_fields=["last_activity_at"])
        return session


# --- answers ------------------------------------------------------------------------------


def record_response(token: str, trial_index: int, answer: Answer) -> Recorded:
    """Stores and scores a main-trial answer, once: one statement in the common case, else the
    careful path (repeats, conflicts, out-of-order answers, lapsed leases, bad indices)."""
    recorded = record_in_order(token, trial_index, answer)
    if recorded is not None:
        return recorded
    session, response, created = do_record_response(token, trial_index, answer)
    return Recorded(
        trial_index=response.trial_index,
        next_trial_index=session.next_trial_index,
        correct_count=session.correct_count,
        correct=response.correct,
        feedback=session.study.feedback or session.study.block_feedback,
        show_counter=session.study.show_counter,
        created=created,
    )


def do_record_response(
    token: str, trial_index: int, answer: Answer
) -> tuple[Session, Response, bool]:
    """(session, response, created): stores and scores a main-trial answer, once."""
    with transaction.atomic():
        session = locked_session(token, fields=ANSWER_PATH_FIELDS)
        if not 0 <= trial_index < session.n_trials:
            raise ApiError(
                "trial_out_of_range",
                f"Trial index {trial_index} is not in this session (0…{session.n_trials - 1}).",
            )
        stored = _stored_response(session, trial_index)
        if stored is not None:
            _check_same(answer, stored, f"trial {trial_index}")
            return session, stored, False
        key = trial_key(session.task_list_id, trial_index, session.study.is_design_frozen)
        if key is None:
            raise ApiError("trial_out_of_range", f"This session has no trial {trial_index}.")
        _check_choice(answer, key.n_queries)
        response = Response.objects.create(
            session=session,
            trial_id=key.trial_id,
            trial_index=trial_index,
            correct=answer.choice == key.correct_query,
            **answer.stored_fields(),
        )
        _advance(session, trial_index, response.correct)
        return session, response, True


def _stored_response(session: Session, trial_index: int) -> Response | None:
    """The stored answer to a trial, without a query on the common path: answers in order
    (n_answered == next_trial_index) mean nothing at or past next_trial_index is stored."""
    in_order = session.n_answered == session.next_trial_index
    if in_order and trial_index >= session.next_trial_index:
        return None
    return Response.objects.filter(session=session, trial_index=trial_index).first()


def _check_same(answer: Answer, stored: Response | PracticeResponse, what: str) -> None:
    if not answer.same_as(stored):
        raise ApiError(
            "conflict", f"A different answer to {what} is already stored; it is kept.", 409
        )


def _check_choice(answer: Answer, n_queries: int) -> None:
    if not 0 <= answer.choice < n_queries:
        raise ApiError(
            "choice_not_offered", f"choice must be one of 0…{n_queries - 1} for this trial."
        )


def _advance(session: Session, trial_index: int, correct: bool) -> None:
    """Progress after a new answer: the next index is the first trial still unanswered."""
    answered_before = session.n_answered
    session.n_answered += 1
    session.correct_count += int(correct)
    if trial_index == session.next_trial_index:
        session.next_trial_index = trial_index + 1
        if answered_before > trial_index:  # answers arrived out of order: fill the gap
            session.next_trial_index = _first_unanswered(session, trial_index + 1)
    session.last_activity_at = timezone.now()
    session.save(
        update_fields=["n_answered", "correct_count", "next_trial_index", "last_activity_at"]
    )


def _first_unanswered(session: Session, start: int) -> int:
    answered = set(
        Response.objects.filter(session=session, trial_index__gte=start).values_list(
            "trial_index", flat=True
        )
    )
    index = start
    while index in answered:
        index += 1
    return index


def do_record_practice_response(
    token: str, attempt: int, practice_index: int, answer: Answer
) -> tuple[Session, PracticeResponse, bool]:
    """(session, response, created) for one practice answer in one attempt (1, 2, …)."""
    with transaction.atomic():
        session = locked_session(token)
        slots = practice.practice_slots(session.task_list)
        if not 0 <= practice_index < len(slots):
            raise ApiError("trial_out_of_range", f"There is no practice trial {practice_index}.")
        until_correct = session.study.practice_until_correct
        states = practice.block_states(session, slots, until_correct)
        block = next(state for state in states if practice_index in state.indexes)
        if not 1 <= attempt <= block.attempts + 1:
            raise ApiError("attempt_out_of_range", f"Practice attempt {attempt} is not open.")
        stored = PracticeResponse.objects.filter(
            session=session, attempt=attempt, practice_index=practice_index
        ).first()
        if stored is not None:
            _check_same(answer, stored, f"practice trial {practice_index}")
            return session, stored, False
        trial = slots[practice_index].trial
        _check_choice(answer, len(trial.queries))
        response = PracticeResponse.objects.create(
            session=session,
            practice_trial=trial,
            attempt=attempt,
            practice_index=practice_index,
            correct=answer.choice == trial.correct_query,
            **answer.stored_fields(),
        )
        states = practice.block_states(session, slots, until_correct)
        _advance_practice(session, states)
        return session, response, True


def _advance_practice(session: Session, states: list[practice.BlockState]) -> None:
    """The session's practice summary: the most rounds a block needed, every block passed."""
    session.practice_passed = all(state.passed for state in states)
    session.practice_attempts = max((state.attempts for state in states), default=0)
    session.last_activity_at = timezone.now()
    session.save(update_fields=["practice_attempts", "practice_passed", "last_activity_at"])


# --- what the page showed --------------------------------------------------------------------


def do_record_feedback_shown(
    token: str, shown: FeedbackShown, trial_index: int, attempt: int | None = None
) -> Response | PracticeResponse:
    """Records in the answer's raw data what the page showed after it (the answer's own raw
    data is sent before the verdict is known). A main answer when `attempt` is None, else a
    practice answer; 409 `answer_missing` when the answer is not stored, 409 `conflict` when a
    different display is already recorded."""
    with transaction.atomic():
        session = locked_session(token)
        answers = (
            Response.objects.filter(session=session, trial_index=trial_index)
            if attempt is None
            else PracticeResponse.objects.filter(
                session=session, attempt=attempt, practice_index=trial_index
            )
        )
        answer = answers.first()  # written only under the session's lock, held here
        if answer is None:
            raise ApiError(
                "answer_missing", "There is no stored answer to record the feedback of.", 409
            )
        recorded = {key: answer.raw.get(key) for key in FeedbackShown.RAW_KEYS}
        if recorded.get("feedback_reported") and recorded != shown.raw():
            raise ApiError(
                "conflict", "A different feedback display is already recorded; it is kept.", 409
            )
        answer.raw = {**answer.raw, **shown.raw()}
        answer.save(update_fields=["raw"])
        return answer


# --- ending a session the page cannot run -------------------------------------------------------


def do_end_session(token: str, reason: str) -> Session:
    """Ends an active session early (its window cannot be made large enough): the session is
    `ended` with its reason and its task list is given back at once, so that it goes to the
    next participant. A completed or already ended session is returned as it is."""
    with transaction.atomic():
        session = (
            Session.objects.select_for_update(of=("self",))
            .select_related("study", "participant")
            .filter(token=token)
            .first()
        )
        if session is None:
            raise ApiError("not_found", "This session does not exist.", 404)
        if session.state in (Session.State.COMPLETED, Session.State.ENDED):
            return session
        holding = session.state == Session.State.ACTIVE
        session.state, session.end_reason = Session.State.ENDED, reason
        session.ended_at = timezone.now()
        session.save(update_fields=["state", "end_reason", "ended_at"])
        if holding and not session.is_pilot:
            TaskList.objects.filter(pk=session.task_list_id).update(
                sessions_started=Greatest(F("sessions_started") - 1, 0)
            )
        return session


# --- events and completion ------------------------------------------------------------------


def do_record_events(token: str, events: list[dict[str, Any]]) -> int:
    """Stores a batch of attention events; returns how many."""
    with transaction.atomic():
        session = locked_session(token)
        SessionEvent.objects.bulk_create(
            SessionEvent(
                session=session,
                type=event["type"],
                client_time=event.get("t"),
                detail=event.get("detail") or {},
            )
            for event in events
        )
        if not session.completed:
            session.last_activity_at = timezone.now()
            session.save(update_fields=["last_activity_at"])
        return len(events)


def missing_trials(session: Session) -> list[int]:
    answered = set(Response.objects.filter(session=session).values_list("trial_index", flat=True))
    return [index for index in range(session.n_trials) if index not in answered]


def do_complete_session(token: str) -> Session:
    """Marks the session completed (once) when every trial has an answer; else 409."""
    with transaction.atomic():
        session = locked_session(token)
        if session.completed:
            return session
        missing = missing_trials(session)
        if missing:
            raise ApiError(
                "trials_missing",
                f"{len(missing)} answers have not reached the server yet.",
                409,
                missing=missing,
            )
        now = timezone.now()
        session.state, session.completed_at, session.last_activity_at = (
            Session.State.COMPLETED,
            now,
            now,
        )
        session.save(update_fields=["state", "completed_at", "last_activity_at"])
        if not session.is_pilot:
            TaskList.objects.filter(pk=session.task_list_id).update(
                sessions_completed=F("sessions_completed") + 1
            )
        analysis_services.on_session_completed(session)
        return session
