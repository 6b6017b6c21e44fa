"""Exports: CSV and Parquet round trips, imports with a column mapping, flat memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.analysis.exports import (
    ImportErrorWithLine,
    iter_csv,
    iter_parquet,
    read_trial_csv,
    write_parquet,
)
from backend.analysis.statistics import (
    accuracy_ci_over_units,
    accuracy_per_condition,
    accuracy_per_participant,
    accuracy_per_unit,
    kruskal_wallis,
    reaction_time_summary_by,
)
from backend.analysis.tidy import COLUMNS, analysed_rows
from tests.analysis.factories import fresh_rows, make_row, synthetic_rows

IDENTITY_MAPPING = {column: column for column in COLUMNS}


def awkward_rows() -> list:
    """Rows whose values are hard to round-trip through text."""
    return [
        make_row(),
        make_row(
            condition='blurred, "natural"',
            unit="unit\nwith newline",
            unit_index=None,
            reference_images=(),
            choice=None,
            correct=False,
            confidence=None,
            rt_ms=None,
            client_started_at=None,
            client_answered_at=None,
            server_received_at=None,
            excluded=True,
            exclusion_reasons=("catch_accuracy_low", "manual"),
            participant="p-ü",
        ),
        make_row(
            rt_ms=0.1 + 0.2,
            is_catch=True,
            server_received_at=datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            source="imported:imi-2023",
        ),
    ]


def csv_text(rows: Iterable) -> str:
    return "".join(iter_csv(rows))


# --- CSV export ----------------------------------------------------------------------------


def test_iter_csv_yields_the_header_alone_first_then_chunks_of_rows() -> None:
    chunks = list(iter_csv(synthetic_rows(2_500), chunk_rows=1_000))
    assert chunks[0] == ",".join(COLUMNS) + "\n"
    assert [chunk.count("\n") for chunk in chunks[1:]] == [1_000, 1_000, 500]


def test_iter_csv_of_no_rows_is_just_the_header() -> None:
    assert list(iter_csv([])) == [",".join(COLUMNS) + "\n"]


def test_csv_cells_use_the_documented_encodings() -> None:
    record = next(csv.DictReader(io.StringIO(csv_text([make_row()]))))
    assert record["is_catch"] == "false"
    assert record["correct"] == "true"
    assert record["query_images"] == "3f2a9c.webp;b71e04.webp"
    assert record["client_started_at"] == "2024-05-17T09:30:00.123456+00:00"
    assert record["rt_ms"] == "1834.5"
    assert record["exclusion_reasons"] == ""


def test_csv_export_then_import_with_identity_mapping_gives_the_same_rows() -> None:
    rows = awkward_rows() + list(synthetic_rows(500, seed=3))
    imported = list(read_trial_csv(io.StringIO(csv_text(rows)), IDENTITY_MAPPING, "roundtrip"))
    assert imported == rows


def test_csv_round_trip_gives_the_same_statistics() -> None:
    rows = list(synthetic_rows(4_000, seed=4))
    imported = list(read_trial_csv(io.StringIO(csv_text(rows)), IDENTITY_MAPPING, "roundtrip"))
    before, after = analysed_rows(rows), analysed_rows(imported)
    assert accuracy_per_unit(after) == accuracy_per_unit(before)
    assert accuracy_per_participant(after) == accuracy_per_participant(before)
    assert accuracy_per_condition(after) == accuracy_per_condition(before)
    assert accuracy_ci_over_units(after, resamples=1_000) == accuracy_ci_over_units(
        before, resamples=1_000
    )
    assert reaction_time_summary_by(after) == reaction_time_summary_by(before)

    def unit_accuracies_per_condition(table_rows: list) -> dict:
        return {
            condition: [
                cell.accuracy
                for cell in accuracy_per_unit(
                    r for r in table_rows if r.condition == condition
                ).values()
            ]
            for condition in ("natural", "synthetic", "none")
        }

    assert kruskal_wallis(unit_accuracies_per_condition(after)) == kruskal_wallis(
        unit_accuracies_per_condition(before)
    )


def test_list_items_containing_the_separator_are_refused_rather_than_corrupted() -> None:
    with pytest.raises(ValueError, match="';'"):
        csv_text([make_row(reference_images=("a;b.webp",))])


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_round_trip_gives_the_same_rows(tmp_path) -> None:
    rows = awkward_rows() + list(synthetic_rows(700, seed=5))
    path = tmp_path / "responses.parquet"
    assert write_parquet(rows, str(path), batch_rows=300) == len(rows)
    assert list(iter_parquet(str(path), batch_rows=128)) == rows


def test_a_parquet_export_from_before_the_block_column_reads_with_blocks_missing() -> None:
    sink = io.BytesIO()
    write_parquet(synthetic_rows(50), sink)
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    older = io.BytesIO()
    pq.write_table(table.drop(["block"]), older)
    rows = list(iter_parquet(io.BytesIO(older.getvalue())))
    assert len(rows) == 50 and {row.block for row in rows} == {None}
    assert [row.participant for row in rows] == [row.participant for row in synthetic_rows(50)]
    broken = io.BytesIO()
    pq.write_table(table.drop(["participant"]), broken)
    with pytest.raises(ValueError, match="lacks the column\\(s\\) participant"):
        list(iter_parquet(io.BytesIO(broken.getvalue())))


def test_parquet_is_written_in_row_groups_with_native_types() -> None:
    sink = io.BytesIO()
    write_parquet(synthetic_rows(2_500), sink, batch_rows=1_000)
    parquet_file = pq.ParquetFile(io.BytesIO(sink.getvalue()))
    assert parquet_file.metadata.num_rows == 2_500
    assert parquet_file.metadata.num_row_groups == 3
    schema = parquet_file.schema_arrow
    assert schema.names == list(COLUMNS)
    assert schema.field("correct").type == pa.bool_()
    assert schema.field("rt_ms").type == pa.float64()
    assert schema.field("trial_index").type == pa.int64()
    assert schema.field("query_images").type == pa.list_(pa.string())
    assert schema.field("server_received_at").type == pa.timestamp("us", tz="UTC")
    table = pq.read_table(io.BytesIO(sink.getvalue()), columns=["participant", "correct"])
    assert table.num_rows == 2_500


def test_parquet_of_no_rows_is_a_readable_empty_table() -> None:
    sink = io.BytesIO()
    assert write_parquet([], sink) == 0
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    assert table.num_rows == 0
    assert table.schema.names == list(COLUMNS)


# --- memory --------------------------------------------------------------------------------


def peak_python_memory(export: Callable[[int], object], rows: int) -> int:
    """Peak of Python allocations while exporting `rows` fresh rows (after a warm-up run)."""
    export(100)  # first calls import and cache; keep that out of the measurement
    tracemalloc.start()
    try:
        export(rows)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def export_csv(rows: int) -> None:
    for _ in iter_csv(fresh_rows(rows)):
        pass


def export_parquet(rows: int) -> None:
    write_parquet(fresh_rows(rows), io.BytesIO(), batch_rows=5_000)


def test_streaming_csv_export_memory_stays_flat_from_20k_to_200k_rows() -> None:
    small = peak_python_memory(export_csv, 10_000)
    large = peak_python_memory(export_csv, 100_000)
    assert large < 1.5 * small


def test_streaming_parquet_export_memory_stays_flat_from_10k_to_100k_rows() -> None:
    small = peak_python_memory(export_parquet, 10_000)
    large = peak_python_memory(export_parquet, 100_000)
    # The BytesIO sink grows with the file (about 9 bytes a row); the rows must not accumulate.
    assert large < 1.5 * small


# --- import --------------------------------------------------------------------------------

OTHER_STUDY_CSV = """subject_id,unit_name,is_correct,rt,answered,cond
S01,u7,1,812.5,2021-03-04T10:00:00,natural
S01,u9,0,NA,,synthetic
S02,u7,yes,1200,2021-03-04T11:00:00Z,natural
"""
OTHER_STUDY_MAPPING = {
    "participant": "subject_id",
    "unit": "unit_name",
    "correct": "is_correct",
    "rt_ms": "rt",
    "client_answered_at": "answered",
    "condition": "cond",
}


def test_import_maps_the_other_studys_columns_and_fills_defaults() -> None:
    rows = list(read_trial_csv(io.StringIO(OTHER_STUDY_CSV), OTHER_STUDY_MAPPING, "imi-2023"))
    assert [(row.participant, row.unit, row.correct, row.rt_ms) for row in rows] == [
        ("S01", "u7", True, 812.5),
        ("S01", "u9", False, None),
        ("S02", "u7", True, 1200.0),
    ]
    first = rows[0]
    assert first.source == "imported:imi-2023"
    assert first.study == "imi-2023"
    assert first.session == "S01"
    assert first.condition == "natural"
    assert first.client_answered_at == datetime(2021, 3, 4, 10, 0, tzinfo=UTC)
    assert rows[1].client_answered_at is None
    assert [row.trial_index for row in rows] == [0, 1, 0]
    assert (first.is_catch, first.excluded, first.query_images, first.choice) == (
        False,
        False,
        (),
        None,
    )


def test_import_reads_bytes_with_a_byte_order_mark() -> None:
    data = io.BytesIO(("\ufeff" + OTHER_STUDY_CSV).encode("utf-8"))
    rows = list(read_trial_csv(data, OTHER_STUDY_MAPPING, "imi-2023"))
    assert rows[2].participant == "S02"


def test_import_error_names_the_line_and_the_files_column() -> None:
    bad = OTHER_STUDY_CSV + "S03,u1,maybe,900,,natural\n"
    with pytest.raises(ImportErrorWithLine) as raised:
        list(read_trial_csv(io.StringIO(bad), OTHER_STUDY_MAPPING, "imi-2023"))
    assert raised.value.line == 5
    assert raised.value.column == "is_correct"
    assert str(raised.value) == (
        "line 5, column 'is_correct': correct: cannot read 'maybe' as a boolean "
        "(use true/false, 1/0 or yes/no)"
    )
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("S03,u1,1,fast,,natural", "rt", "cannot read 'fast' as a number"),
        ("S03,u1,1,900,yesterday,natural", "answered", "as an ISO 8601 timestamp"),
        ("S03,u1,,900,,natural", "is_correct", "value is missing"),
        (",u1,1,900,,natural", "subject_id", "value is missing"),
    ],
)
def test_import_errors_for_unreadable_values(line: str, column: str, message: str) -> None:
    with pytest.raises(ImportErrorWithLine, match=message) as raised:
        list(read_trial_csv(io.StringIO(OTHER_STUDY_CSV + line + "\n"), OTHER_STUDY_MAPPING, "x"))
    assert (raised.value.line, raised.value.column) == (5, column)


def test_import_refuses_a_choice_that_is_not_a_query_image_index() -> None:
    text = "pid,unit,correct,choice\nA,1,true,2\n"
    mapping = {"participant": "pid", "unit": "unit", "correct": "correct", "choice": "choice"}
    with pytest.raises(ImportErrorWithLine, match="choice must be 0 or 1"):
        list(read_trial_csv(io.StringIO(text), mapping, "x"))


def test_import_reads_integers_written_as_floats() -> None:
    text = "pid,unit,correct,confidence\nA,1,true,3.0\n"
    mapping = {
        "participant": "pid",
        "unit": "unit",
        "correct": "correct",
        "confidence": "confidence",
    }
    assert next(read_trial_csv(io.StringIO(text), mapping, "x")).confidence == 3


def test_import_refuses_a_mapped_column_missing_from_the_header() -> None:
    mapping = dict(OTHER_STUDY_MAPPING, confidence="conf")
    with pytest.raises(ImportErrorWithLine, match="line 1, column 'conf': not in the header"):
        list(read_trial_csv(io.StringIO(OTHER_STUDY_CSV), mapping, "x"))


def test_import_refuses_unknown_target_columns_and_missing_required_ones() -> None:
    with pytest.raises(ValueError, match="unknown columns: subject"):
        list(read_trial_csv(io.StringIO(OTHER_STUDY_CSV), {"subject": "subject_id"}, "x"))
    with pytest.raises(ValueError, match="required columns: unit, correct"):
        list(read_trial_csv(io.StringIO(OTHER_STUDY_CSV), {"participant": "subject_id"}, "x"))


def test_import_refuses_a_line_with_the_wrong_number_of_fields() -> None:
    with pytest.raises(ImportErrorWithLine, match="line 3, column '': 2 fields, but the header"):
        list(
            read_trial_csv(
                io.StringIO("subject_id,unit_name,is_correct\nA,1,1\nB,2\n"),
                {"participant": "subject_id", "unit": "unit_name", "correct": "is_correct"},
                "x",
            )
        )


def test_import_of_two_query_images_needs_exactly_two_names() -> None:
    text = "pid,unit,correct,queries\nA,1,true,a.webp;b.webp;c.webp\n"
    mapping = {
        "participant": "pid",
        "unit": "unit",
        "correct": "correct",
        "query_images": "queries",
    }
    with pytest.raises(ImportErrorWithLine, match="expected two ';'-separated image names"):
        list(read_trial_csv(io.StringIO(text), mapping, "x"))
