"""Streamed exports of tidy response rows (CSV, Parquet) and import of other studies' trials.

Writers consume an iterable of `ResponseRow` once and hold only one chunk at a time, so a
million-row export keeps memory flat (a Django `StreamingHttpResponse` can send `iter_csv`
as it comes). `read_trial_csv` turns another study's trial-level CSV into the same rows, through
a column mapping, and names the line and column of the first value it cannot read.

Encodings (see docs/data-dictionary.md): CSV booleans are `true`/`false`, missing values are
empty, lists are `;`-joined, timestamps ISO 8601 with offset. Parquet uses native types: bool,
int64, float64, timestamp[us, UTC] and list<string>.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from backend.analysis.tidy import (
    BOOL_COLUMNS,
    COLUMNS,
    DATETIME_COLUMNS,
    FLOAT_COLUMNS,
    IMPORTED_SOURCE_PREFIX,
    INT_COLUMNS,
    LIST_COLUMNS,
    LIST_SEPARATOR,
    OPTIONAL_COLUMNS,
    ResponseRow,
)
from backend.core import csvcells

CSV_CHUNK_ROWS = 1_000
PARQUET_BATCH_ROWS = 10_000  # rows held at once: about 20 MiB of tidy rows and their arrays
REQUIRED_IMPORT_COLUMNS: tuple[str, ...] = ("participant", "unit", "correct")
MISSING_MARKERS = frozenset({"", "na", "nan", "null", "none"})
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


class ImportErrorWithLine(ValueError):
    """A value of an imported file could not be read; says where."""

    def __init__(self, line: int, column: str, message: str) -> None:
        self.line = line
        self.column = column
        super().__init__(f"line {line}, column {column!r}: {message}")


# --- CSV export ----------------------------------------------------------------------------


def iter_csv(rows: Iterable[ResponseRow], *, chunk_rows: int = CSV_CHUNK_ROWS) -> Iterator[str]:
    """CSV text in chunks: the header line first, then `chunk_rows` rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield _drain(buffer)
    for written, row in enumerate(rows, 1):
        writer.writerow(_csv_cells(row))
        if written % chunk_rows == 0:
            yield _drain(buffer)
    if buffer.tell():
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


_ROW_VALUES = operator.attrgetter(*COLUMNS)
_BOOL_POSITIONS = tuple(i for i, column in enumerate(COLUMNS) if column in BOOL_COLUMNS)
_DATETIME_POSITIONS = tuple(i for i, column in enumerate(COLUMNS) if column in DATETIME_COLUMNS)
_LIST_POSITIONS = tuple(i for i, column in enumerate(COLUMNS) if column in LIST_COLUMNS)


def _csv_cells(row: ResponseRow) -> list[Any]:
    # The csv module already writes None as "" and numbers with str() (the shortest text that
    # reads back to the same float), so only booleans, timestamps and lists need formatting.
    cells: list[Any] = list(_ROW_VALUES(row))
    for position in _BOOL_POSITIONS:
        cells[position] = "true" if cells[position] else "false"
    for position in _DATETIME_POSITIONS:
        if cells[position] is not None:
            cells[position] = cells[position].isoformat()
    for position in _LIST_POSITIONS:
        cells[position] = _join_list(cells[position])
    return csvcells.safe_row(cells)


def _join_list(items: tuple[str, ...]) -> str:
    joined = LIST_SEPARATOR.join(items)
    if joined.count(LIST_SEPARATOR) != max(len(items) - 1, 0):
        raise ValueError(f"list item contains {LIST_SEPARATOR!r}: {items!r}")
    return joined


# --- Parquet -------------------------------------------------------------------------------


def _arrow_type(column: str) -> pa.DataType:
    if column in BOOL_COLUMNS:
        return pa.bool_()
    if column in INT_COLUMNS:
        return pa.int64()
    if column in FLOAT_COLUMNS:
        return pa.float64()
    if column in DATETIME_COLUMNS:
        return pa.timestamp("us", tz="UTC")
    if column in LIST_COLUMNS:
        return pa.list_(pa.string())
    return pa.string()


PARQUET_SCHEMA = pa.schema(
    [
        pa.field(column, _arrow_type(column), nullable=column in OPTIONAL_COLUMNS)
        for column in COLUMNS
    ]
)


def write_parquet(
    rows: Iterable[ResponseRow], sink: str | IO[bytes], *, batch_rows: int = PARQUET_BATCH_ROWS
) -> int:
    """Write rows as Parquet, one row group per `batch_rows` rows; returns the row count."""
    written = 0
    iterator = iter(rows)
    with pq.ParquetWriter(sink, PARQUET_SCHEMA) as writer:
        while batch := list(itertools.islice(iterator, batch_rows)):
            writer.write_batch(_record_batch(batch), row_group_size=batch_rows)
            written += len(batch)
    return written


def _record_batch(rows: list[ResponseRow]) -> pa.RecordBatch:
    columns = [
        pa.array([getattr(row, column) for row in rows], type=field.type)
        for column, field in zip(COLUMNS, PARQUET_SCHEMA, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=PARQUET_SCHEMA)


def iter_parquet(
    source: str | IO[bytes], *, batch_rows: int = PARQUET_BATCH_ROWS
) -> Iterator[ResponseRow]:
    """Read back a Parquet export (ours, or one with the same columns), batch by batch; an
    optional column it lacks (exports from before the `block` column) reads as missing."""
    parquet_file = pq.ParquetFile(source)
    present = set(parquet_file.schema_arrow.names)
    lacking = [column for column in COLUMNS if column not in present]
    required = [column for column in lacking if column not in OPTIONAL_COLUMNS]
    if required:
        raise ValueError(f"The Parquet file lacks the column(s) {', '.join(required)}.")
    columns = [column for column in COLUMNS if column in present]
    for batch in parquet_file.iter_batches(batch_size=batch_rows, columns=columns):
        for record in batch.to_pylist():
            yield _row_from_arrow(record, lacking)


def _row_from_arrow(record: dict[str, Any], lacking: list[str]) -> ResponseRow:
    for column in LIST_COLUMNS:
        record[column] = tuple(record[column] or ())
    for column in lacking:
        record[column] = None
    return ResponseRow(**record)


# --- CSV import ----------------------------------------------------------------------------


def read_trial_csv(
    fileobj: IO[str] | IO[bytes], column_mapping: Mapping[str, str], source_name: str
) -> Iterator[ResponseRow]:
    """Rows of another study's trial-level CSV, mapped onto `ResponseRow`.

    `column_mapping` maps our column to the file's, e.g. {"participant": "subject_id",
    "correct": "is_correct"}. participant, unit and correct are required. Unmapped columns get
    defaults: study = `source_name`, session = participant, trial_index = the participant's row
    count so far, flags false, optional values missing, source = "imported:<source_name>" (a
    mapped source column is kept as it is, so a PsyLens export re-imports unchanged).
    Timestamps without an offset are read as UTC. Raises `ImportErrorWithLine` on bad values.
    """
    reader = csv.reader(_as_text(fileobj))
    header = _read_header(reader)
    positions = _mapped_positions(column_mapping, header)
    trials_seen: dict[str, int] = {}
    for record in reader:
        if not record:
            continue  # blank line
        if len(record) != len(header):
            raise ImportErrorWithLine(
                reader.line_num, "", f"{len(record)} fields, but the header has {len(header)}"
            )
        values = _mapped_values(record, positions, reader.line_num)
        yield _row_with_defaults(values, source_name, trials_seen)


def _as_text(fileobj: IO[str] | IO[bytes]) -> IO[str]:
    if isinstance(fileobj.read(0), str):
        return cast(IO[str], fileobj)
    return io.TextIOWrapper(cast(IO[bytes], fileobj), encoding="utf-8-sig", newline="")


def _read_header(reader: Iterator[list[str]]) -> list[str]:
    header = next(reader, None)
    if not header:
        raise ImportErrorWithLine(1, "", "the file has no header line")
    header[0] = header[0].removeprefix("\ufeff")
    return header


def _mapped_positions(mapping: Mapping[str, str], header: list[str]) -> dict[str, tuple[int, str]]:
    """{our column: (index in the record, the file's column name)}."""
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise ValueError(f"column_mapping names unknown columns: {', '.join(unknown)}")
    unmapped = [column for column in REQUIRED_IMPORT_COLUMNS if column not in mapping]
    if unmapped:
        raise ValueError(f"column_mapping must map the required columns: {', '.join(unmapped)}")
    positions = {}
    for ours, theirs in mapping.items():
        if theirs not in header:
            raise ImportErrorWithLine(1, theirs, f"not in the header (mapped to {ours!r})")
        positions[ours] = (header.index(theirs), theirs)
    return positions


def _mapped_values(
    record: list[str], positions: dict[str, tuple[int, str]], line: int
) -> dict[str, Any]:
    values = {}
    for ours, (index, theirs) in positions.items():
        try:
            values[ours] = _parse_value(ours, record[index])
        except ValueError as error:
            raise ImportErrorWithLine(line, theirs, f"{ours}: {error}") from None
    return values


def _row_with_defaults(
    values: dict[str, Any], source_name: str, trials_seen: dict[str, int]
) -> ResponseRow:
    participant = values["participant"]
    defaults: dict[str, Any] = {
        "study": source_name,
        "session": participant,
        "trial_index": trials_seen.get(participant, 0),
        "source": f"{IMPORTED_SOURCE_PREFIX}{source_name}",
    }
    trials_seen[participant] = trials_seen.get(participant, 0) + 1
    row = {column: values.get(column, defaults.get(column, _empty(column))) for column in COLUMNS}
    return ResponseRow(**row)


def _empty(column: str) -> object:
    if column in BOOL_COLUMNS:
        return False
    if column in LIST_COLUMNS:
        return ()
    if column in OPTIONAL_COLUMNS:
        return None
    return ""


def _parse_value(column: str, raw: str) -> object:
    raw = csvcells.unescape_cell(raw)  # what our own export escaped reads back as it was
    parse = _PARSERS.get(column)
    if parse is None:  # plain text, kept as written
        if column in REQUIRED_IMPORT_COLUMNS and not raw.strip():
            raise ValueError("value is missing")
        return raw
    text = raw.strip()
    if column not in LIST_COLUMNS and text.lower() in MISSING_MARKERS:
        if column in OPTIONAL_COLUMNS:
            return None
        raise ValueError("value is missing")
    return parse(text)


def _parse_bool(text: str) -> bool:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"cannot read {text!r} as a boolean (use true/false, 1/0 or yes/no)")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as an integer") from None
    if not number.is_integer():
        raise ValueError(f"cannot read {text!r} as an integer")
    return int(number)  # "3.0", as tools that store integers as floats write them


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a number") from None


def _parse_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as an ISO 8601 timestamp") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(LIST_SEPARATOR) if item.strip())


def _parse_query_images(raw: str) -> tuple[str, ...]:
    images = _parse_list(raw)
    if len(images) not in (0, 2):
        raise ValueError(f"expected two {LIST_SEPARATOR!r}-separated image names, got {raw!r}")
    return images


def _parse_choice(text: str) -> int:
    choice = _parse_int(text)
    if choice not in (0, 1):
        raise ValueError(f"choice must be 0 or 1 (the chosen query image), got {text!r}")
    return choice


_PARSERS: dict[str, Callable[[str], object]] = {
    **{column: _parse_bool for column in BOOL_COLUMNS},
    **{column: _parse_int for column in INT_COLUMNS},
    **{column: _parse_float for column in FLOAT_COLUMNS},
    **{column: _parse_datetime for column in DATETIME_COLUMNS},
    **{column: _parse_list for column in LIST_COLUMNS},
    "query_images": _parse_query_images,
    "choice": _parse_choice,
}
