"""The common answer to a main trial in one prepared SQL statement: the session's next trial, in
order, its lease current. The statement locks the session, scores the answer against the trial
row (the answer key stays in the database), inserts the response and advances the session's
counters in a single round trip; it writes nothing in every other case, which the careful path
in `services.do_record_response` then handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from backend.participation.models import Response, Session
from backend.studies.models import Study, Trial

if TYPE_CHECKING:
    from backend.participation.services import Answer


@dataclass(frozen=True)
class Recorded:
    """What the response PUT answers (§3), and whether this request stored the answer."""

    trial_index: int
    next_trial_index: int
    correct_count: int
    correct: bool
    feedback: bool
    show_counter: bool
    created: bool


# The statement's parameters, in order ($1 …), with their types.
ANSWER_PARAMS = (
    ("token", "text"),
    ("index", "integer"),
    ("now", "timestamptz"),
    ("choice", "integer"),
    ("confidence", "integer"),
    ("rt_ms", "double precision"),
    ("started", "timestamptz"),
    ("answered", "timestamptz"),
    ("raw", "jsonb"),
)
PREPARED_ANSWER = "psylens_answer_in_order"
SMALLINT_MAX = 32767


def _answer_in_order_sql() -> str:
    """One statement for the common answer: it locks the session only while it is active, its
    lease current, its answers in order and this index the next one; scores against the trial
    row (the key stays in the database); inserts; advances the counters only if it inserted.
    No row back means "not the common case": nothing was written."""
    session, study = Session._meta.db_table, Study._meta.db_table
    trial, response = Trial._meta.db_table, Response._meta.db_table
    sql = f"""
WITH s AS (
    SELECT s.id, s.task_list_id, st.feedback OR st.block_feedback AS feedback, st.show_counter
    FROM {session} s JOIN {study} st ON st.id = s.study_id
    WHERE s.token = :token AND s.state = 'active'
      AND s.n_answered = s.next_trial_index AND s.next_trial_index = :index
      AND s.last_activity_at >= :now - make_interval(mins => st.time_limit_minutes)
    FOR UPDATE OF s
), k AS (
    SELECT t.id, t.correct_query = :choice AS correct
    FROM {trial} t JOIN s ON t.task_list_id = s.task_list_id
    WHERE t."index" = :index AND :choice < jsonb_array_length(t.queries)
), ins AS (
    INSERT INTO {response} (session_id, trial_id, trial_index, choice, confidence, rt_ms,
        client_started_at, client_answered_at, received_at, raw, correct)
    SELECT s.id, k.id, :index, :choice, :confidence, :rt_ms, :started, :answered, :now, :raw,
        k.correct
    FROM s, k
    ON CONFLICT (session_id, trial_index) DO NOTHING
    RETURNING correct
), upd AS (
    UPDATE {session} u
    SET n_answered = u.n_answered + 1, next_trial_index = u.next_trial_index + 1,
        correct_count = u.correct_count + ins.correct::int, last_activity_at = :now
    FROM s, ins WHERE u.id = s.id
    RETURNING u.next_trial_index, u.correct_count
)
SELECT ins.correct, upd.next_trial_index, upd.correct_count, s.feedback, s.show_counter
FROM s, ins, upd"""
    for number, (name, _) in enumerate(ANSWER_PARAMS, start=1):
        sql = sql.replace(f":{name}", f"${number}")
    types = ", ".join(kind for _, kind in ANSWER_PARAMS)
    return f"PREPARE {PREPARED_ANSWER} ({types}) AS {sql}"


PREPARE_ANSWER_SQL = _answer_in_order_sql()
EXECUTE_ANSWER_SQL = f"EXECUTE {PREPARED_ANSWER} ({', '.join(['%s'] * len(ANSWER_PARAMS))})"


def record_in_order(token: str, trial_index: int, answer: Answer) -> Recorded | None:
    """The common answer in one statement; None (nothing written) for every other case."""
    if answer.choice > SMALLINT_MAX:  # no trial offers it; as a constant it would not fit the
        return None  # column and the statement would fail: the careful path gives the 400
    values = (
        token,
        trial_index,
        timezone.now(),
        answer.choice,
        answer.confidence,
        answer.rt_ms,
        answer.client_started_at,
        answer.client_answered_at,
        json.dumps(answer.raw),
    )
    with connection.cursor() as cursor:  # one statement: atomic on its own, no BEGIN/COMMIT
        _prepare_answer_statement(cursor)
        cursor.execute(EXECUTE_ANSWER_SQL, values)
        row = cursor.fetchone()
    if row is None:
        return None
    correct, next_trial_index, correct_count, feedback, show_counter = row
    return Recorded(
        trial_index, next_trial_index, correct_count, correct, feedback, show_counter, True
    )


def _prepare_answer_statement(cursor: Any) -> None:
    """Prepares the statement once per database connection: planning it costs Postgres more
    than running it. (Prepared statements live as long as the server session and survive a
    rollback; the web processes connect to Postgres directly, not through a transaction pool.)"""
    raw_connection = connection.connection
    if getattr(connection, "psylens_prepared_on", None) is not raw_connection:
        cursor.execute(PREPARE_ANSWER_SQL)
        connection.psylens_prepared_on = raw_connection  # type: ignore[attr-defined]
