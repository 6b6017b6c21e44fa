"""The tidy response row: one answered trial, one row, the shape of every export.

Statistics, exclusion and exports all speak `ResponseRow`. It holds only what a researcher may
publish: the participant is a pseudonym (never the platform identity), the session an opaque id
(never its token). Multi-valued fields are tuples here; CSV joins them with `;`, Parquet stores
them as lists of strings. `docs/data-dictionary.md` describes every column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

LIST_SEPARATOR = ";"
PSYLENS_SOURCE = "psylens"
IMPORTED_SOURCE_PREFIX = "imported:"


@dataclass(frozen=True, slots=True)
class ResponseRow:
    """One answered trial of one session, in export column order."""

    study: str
    condition: str
    unit: str  # the unit's identifier within its unit set (PsyLens writes its index)
    unit_index: int | None
    unit_set: str
    layer: str
    basis: str  # channels | neurons | nmf | sae | pca | random | …
    network: str
    trial_index: int
    block: int | None  # the block of the task list (0, 1, …); None for practice and imports
    is_catch: bool
    is_practice: bool
    query_images: tuple[str, ...]  # the two content-hash names, in screen order
    reference_images: tuple[str, ...]  # empty when the condition shows none
    choice: int | None  # index into query_images; None when no answer was given
    correct: bool
    confidence: int | None
    rt_ms: float | None
    client_started_at: datetime | None
    client_answered_at: datetime | None
    server_received_at: datetime | None
    participant: str  # pseudonym, never the platform id
    session: str
    task_list: str
    excluded: bool
    exclusion_reasons: tuple[str, ...]  # exclusion codes, see exclusion_rules
    source: str  # "psylens" or "imported:<name>"
    # How the trial's images loaded (the page shows a trial only once all are decoded): the
    # wait before it appeared, and the failed loads fetched again; None where not recorded.
    image_load_ms: float | None = None
    image_retries: int | None = None


COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(ResponseRow))
LIST_COLUMNS: frozenset[str] = frozenset({"query_images", "reference_images", "exclusion_reasons"})
BOOL_COLUMNS: frozenset[str] = frozenset({"is_catch", "is_practice", "correct", "excluded"})
INT_COLUMNS: frozenset[str] = frozenset(
    {"unit_index", "trial_index", "block", "choice", "confidence", "image_retries"}
)
FLOAT_COLUMNS: frozenset[str] = frozenset({"rt_ms", "image_load_ms"})
DATETIME_COLUMNS: frozenset[str] = frozenset(
    {"client_started_at", "client_answered_at", "server_received_at"}
)
OPTIONAL_COLUMNS: frozenset[str] = frozenset(
    {"unit_index", "block", "choice", "confidence", "rt_ms", "image_load_ms", "image_retries"}
    | DATETIME_COLUMNS
)


def unit_key(row: ResponseRow) -> tuple[str, str]:
    """A unit is only unique within its unit set, so units are grouped by both."""
    return (row.unit_set, row.unit)


def is_main_trial(row: ResponseRow) -> bool:
    """Main trials are those that measure the unit: neither catch nor practice."""
    return not row.is_catch and not row.is_practice


def analysed_rows(
    rows: Iterable[ResponseRow], *, include_excluded: bool = False
) -> list[ResponseRow]:
    """The rows a results table counts: main trials of sessions that were not excluded."""
    return [row for row in rows if is_main_trial(row) and (include_excluded or not row.excluded)]
