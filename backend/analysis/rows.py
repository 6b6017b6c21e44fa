"""Tidy rows (`tidy.ResponseRow`) read from the database: a study's responses, or an imported
dataset's trials.

Both are streamed: responses are read in chunks with a server-side cursor (`.iterator()`), the
image names of each chunk are resolved in one query and cached (a study shows far fewer images
than it collects responses), so memory stays flat however many responses a study has. Per
session, only the pseudonym and the exclusion decision are kept (one small dict per study).
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from backend.analysis.models import ImportedDataset, ImportedResponse
from backend.analysis.tidy import COLUMNS, PSYLENS_SOURCE, ResponseRow
from backend.participation.models import PracticeResponse, Response, Session
from backend.stimuli.models import Image
from backend.studies.models import Study

CHUNK_ROWS = 2_000

RESPONSE_FIELDS = (
    "session_id", "trial_index", "choice", "confidence", "rt_ms", "correct",
    "client_started_at", "client_answered_at", "received_at",
    "trial__is_catch", "trial__queries", "trial__references_min", "trial__references_max",
    "trial__condition__name", "trial__unit__index", "trial__unit__unit_set__name",
    "trial__unit__unit_set__kind", "trial__unit__unit_set__layer__name",
    "trial__unit__unit_set__layer__network__source", "trial__block",
    "raw__load_ms", "raw__image_retries",
)  # fmt: skip
PRACTICE_FIELDS = (
    "session_id", "practice_index", "choice", "confidence", "rt_ms", "correct",
    "client_started_at", "client_answered_at", "received_at",
    "practice_trial__kind", "practice_trial__queries", "practice_trial__references_min",
    "practice_trial__references_max", "practice_trial__condition__name",
    "practice_trial__unit__index", "practice_trial__unit__unit_set__name",
    "practice_trial__unit__unit_set__kind", "practice_trial__unit__unit_set__layer__name",
    "practice_trial__unit__unit_set__layer__network__source",
    "raw__load_ms", "raw__image_retries",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What every row of one session repeats."""

    participant: str
    session: str
    task_list: str
    excluded: bool
    exclusion_reasons: tuple[str, ...]


def session_facts(study: Study, *, include_pilot: bool = False) -> dict[int, SessionFacts]:
    """session pk → facts, for the study's sessions (pilot sessions only when asked)."""
    sessions = Session.objects.filter(study=study)
    if not include_pilot:
        sessions = sessions.filter(is_pilot=False)
    facts = {}
    values = sessions.values_list(
        "pk", "participant__pseudonym", "task_list__index", "exclusion__excluded",
        "exclusion__reasons",
    )  # fmt: skip
    for pk, pseudonym, list_index, excluded, reasons in values:
        codes = tuple(reason["code"] for reason in reasons or ())
        facts[pk] = SessionFacts(pseudonym, f"s-{pk}", f"tl-{list_index}", bool(excluded), codes)
    return facts


def study_rows(
    study: Study, *, include_practice: bool = True, include_pilot: bool = False
) -> Iterator[ResponseRow]:
    """Every response of the study (main and catch trials, then practice), one tidy row each."""
    facts = session_facts(study, include_pilot=include_pilot)
    names = ImageNames()
    responses = (
        Response.objects.filter(session__study=study, session_id__in=list(facts))
        .order_by("session_id", "trial_index")
        .values_list(*RESPONSE_FIELDS)
    )
    yield from _rows(study.slug, responses, facts, names, practice=False)
    if include_practice:
        practice = (
            PracticeResponse.objects.filter(session__study=study, session_id__in=list(facts))
            .order_by("session_id", "attempt", "practice_index")
            .values_list(*PRACTICE_FIELDS)
        )
        yield from _rows(study.slug, practice, facts, names, practice=True)


def _rows(
    slug: str,
    values: QuerySet[Any, tuple[Any, ...]],
    facts: dict[int, SessionFacts],
    names: ImageNames,
    *,
    practice: bool,
) -> Iterator[ResponseRow]:
    iterator = values.iterator(chunk_size=CHUNK_ROWS)
    while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
        names.load(image for record in chunk for image in _image_ids(record))
        for record in chunk:
            yield _row(slug, record, facts[record[0]], names, practice)


def _image_ids(record: tuple[Any, ...]) -> list[int]:
    return [*(record[10] or ()), *(record[11] or ()), *(record[12] or ())]


def _row(
    slug: str, record: tuple[Any, ...], facts: SessionFacts, names: ImageNames, practice: bool
) -> ResponseRow:
    (_, index, choice, confidence, rt_ms, correct, started, answered, received, catch_or_kind,
     queries, references_min, references_max, condition, unit_index, unit_set, basis, layer,
     network) = record[:19]  # fmt: skip
    block = None if practice else record[19]
    load_ms, retries = record[-2:]  # from the raw data the page sent (absent: older pages)
    return ResponseRow(
        study=slug,
        condition=condition or "",
        unit=str(unit_index),
        unit_index=unit_index,
        unit_set=unit_set,
        layer=layer,
        basis=basis,
        network=network,
        trial_index=index,
        block=block,
        is_catch=False if practice else bool(catch_or_kind),
        is_practice=practice,
        query_images=names.of(queries or ()),
        reference_images=names.of([*(references_min or ()), *(references_max or ())]),
        choice=choice,
        correct=correct,
        confidence=confidence,
        rt_ms=rt_ms,
        client_started_at=started,
        client_answered_at=answered,
        server_received_at=received,
        participant=facts.participant,
        session=facts.session,
        task_list=facts.task_list,
        excluded=facts.excluded,
        exclusion_reasons=facts.exclusion_reasons,
        source=PSYLENS_SOURCE,
        image_load_ms=_number(load_ms),
        image_retries=_whole(retries),
    )


def _number(value: Any) -> float | None:
    """A number the page recorded in its raw data; None for anything else (older pages)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


class ImageNames:
    """Image id → content-hash file name, loaded in batches and kept."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def load(self, ids: Iterable[int]) -> None:
        wanted = {image for image in ids if image not in self.names}
        if wanted:
            for pk, name in Image.objects.filter(pk__in=wanted).values_list("pk", "file"):
                self.names[pk] = posixpath.basename(name)

    def of(self, ids: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.names.get(image, f"missing-{image}") for image in ids)


# --- imported datasets ---------------------------------------------------------------------

IMPORTED_FIELDS = tuple(COLUMNS)


def imported_rows(dataset: ImportedDataset) -> Iterator[ResponseRow]:
    """The dataset's trials, in file order, as tidy rows."""
    values = (
        ImportedResponse.objects.filter(dataset=dataset)
        .order_by("position")
        .values_list(*IMPORTED_FIELDS)
        .iterator(chunk_size=CHUNK_ROWS)
    )
    for record in values:
        yield _imported_row(record)


def _imported_row(record: tuple[Any, ...]) -> ResponseRow:
    values = dict(zip(IMPORTED_FIELDS, record, strict=True))
    for column in ("query_images", "reference_images", "exclusion_reasons"):
        values[column] = tuple(values[column] or ())
    return ResponseRow(**values)


def imported_response(
    dataset: ImportedDataset, position: int, row: ResponseRow
) -> ImportedResponse:
    """The model row for one tidy row (not saved)."""
    values: dict[str, Any] = {column: getattr(row, column) for column in COLUMNS}
    for column in ("query_images", "reference_images", "exclusion_reasons"):
        values[column] = list(values[column])
    return ImportedResponse(dataset=dataset, position=position, **values)


def latest_moment(study: Study) -> tuple[int, datetime | None]:
    """(latest response id, latest exclusion decision) of a study: what a cache is keyed by."""
    latest = (
        Response.objects.filter(session__study=study).order_by("-pk").values_list("pk", flat=True)
    )
    decided = (
        Session.objects.filter(study=study, exclusion__isnull=False)
        .order_by("-exclusion__decided_at")
        .values_list("exclusion__decided_at", flat=True)
    )
    return (latest.first() or 0, decided.first())
