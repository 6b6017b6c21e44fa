"""What the live results page shows, computed from tidy rows with the tested statistics:
accuracy by condition (95 % CI by bootstrap over units), by layer and by basis, one line per
unit and condition, and reaction-time and confidence summaries. Imported datasets picked by the
researcher (`?with=<dataset id>`) are shown beside the study: their accuracy by condition, by
layer and by basis and their unit lines are computed by the same code over their tidy rows.

`study_results` is cached (Django's cache, i.e. Redis) under a key that changes whenever a
response arrives or a decision changes (`results_version`), so a page refresh between answers
costs one small query; while Redis is down the results are computed without it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import default_storage

from backend.analysis import statistics
from backend.analysis.models import ImportedDataset
from backend.analysis.rows import imported_rows, latest_moment, study_rows
from backend.analysis.tidy import ResponseRow, analysed_rows
from backend.core import softcache
from backend.stimuli.models import Image
from backend.studies.models import Study, Trial

CACHE_SECONDS = 24 * 3600
DASHBOARD_RESAMPLES = statistics.DEFAULT_RESAMPLES
MAX_UNIT_IMAGES = 4


@dataclass(frozen=True)
class Cell:
    """One group's accuracy with its interval."""

    label: str
    n: int
    correct: int
    accuracy: float
    low: float
    high: float
    clusters: int


@dataclass(frozen=True)
class UnitLine:
    unit_id: int | None
    unit: str
    unit_set: str
    layer: str
    basis: str
    condition: str
    n: int
    accuracy: float
    rt_median_ms: float | None
    confidence_mean: float | None
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Results:
    by_condition: list[Cell]
    by_layer: list[Cell]
    by_basis: list[Cell]
    units: list[UnitLine]
    rt_ms: dict[str, list[float]] = field(default_factory=dict)  # condition → values
    confidence: dict[str, dict[int, int]] = field(default_factory=dict)  # condition → counts
    analysed_trials: int = 0
    chance: float = statistics.CHANCE_LEVEL_2AFC


@dataclass(frozen=True)
class Compared:
    """An imported dataset's accuracy (by condition, layer and basis) and unit lines, shown
    beside a study."""

    dataset_id: int
    name: str
    analysed_trials: int
    by_condition: list[Cell]
    by_layer: list[Cell]
    by_basis: list[Cell]
    units: list[UnitLine]


# The accuracy figures (and tables) a dataset is compared in: figure name, table heading. The
# cells of each are the field `by_<figure>` of Results and Compared alike.
ACCURACY_TABLES = (("condition", "condition"), ("layer", "network and layer"), ("basis", "basis"))
COMPARED_GROUPINGS = tuple(f"by_{figure}" for figure, _ in ACCURACY_TABLES)


def results_version(study: Study) -> str:
    """Changes whenever a response arrives or an exclusion decision is (re)made. The study's
    creation time joins its id: ids repeat after a database is reset (the demo's, the tests'),
    and a new study must never be served an old one's cached results."""
    latest_response, decided_at = latest_moment(study)
    stamp = decided_at.isoformat() if decided_at else "-"
    created = study.created_at.isoformat() if study.created_at else "-"
    return (f"{study.pk}@{created}:{latest_response}:{stamp}:"
            f"{study.target_valid_responses_per_unit}")  # fmt: skip


def study_results(study: Study, version: str, *, include_excluded: bool = False) -> Results:
    """The study's results, computed once per `results_version`: main trials of its valid
    sessions, or of every completed session (`include_excluded`, to look at what the rules
    left out)."""
    key = f"psylens:results:{version}:{'all' if include_excluded else 'valid'}"

    def compute() -> Results:
        rows = study_rows(study, include_practice=False)
        results = compute_results(analysed_rows(rows, include_excluded=include_excluded))
        return _with_unit_images(study, results)

    return softcache.get_or_compute(key, compute, CACHE_SECONDS)


def imported_results(dataset: ImportedDataset) -> Compared:
    """The dataset's results; cached for good (an import is never changed)."""
    key = f"psylens:imported:v2:{dataset.pk}:{dataset.imported_at.isoformat()}"

    def compute() -> Compared:
        results = compute_results(analysed_rows(imported_rows(dataset)))
        return Compared(
            dataset.pk, dataset.name, results.analysed_trials,
            **{grouping: getattr(results, grouping) for grouping in COMPARED_GROUPINGS},
            units=results.units,
        )  # fmt: skip

    return softcache.get_or_compute(key, compute, CACHE_SECONDS)


def with_compared(results: Results, study_label: str, compared: list[Compared]) -> Results:
    """The results with the datasets' cells appended to accuracy by condition, layer and basis,
    every cell labelled "<study or dataset>: <group>" (what the accuracy figures draw)."""
    merged = {}
    for grouping in COMPARED_GROUPINGS:
        cells = [_labelled(cell, study_label) for cell in getattr(results, grouping)]
        for other in compared:
            cells += [_labelled(cell, other.name) for cell in getattr(other, grouping)]
        merged[grouping] = cells
    return Results(**{**results.__dict__, **merged})


@dataclass(frozen=True)
class SourcedRow:
    """A line of a results table, with where it comes from: the study or an imported dataset."""

    source: str
    dataset_id: int | None
    line: Cell | UnitLine


@dataclass(frozen=True)
class AccuracyTable:
    figure: str  # the figure drawn from the same cells: "condition", "layer" or "basis"
    heading: str
    rows: list[SourcedRow]


def accuracy_tables(
    results: Results, study_label: str, compared: list[Compared]
) -> list[AccuracyTable]:
    """The study's cells, then each dataset's, for each grouping of the accuracy figures."""
    return [
        AccuracyTable(figure, heading, _sourced(results, study_label, compared, grouping))
        for (figure, heading), grouping in zip(ACCURACY_TABLES, COMPARED_GROUPINGS, strict=True)
    ]


def unit_rows(results: Results, study_label: str, compared: list[Compared]) -> list[SourcedRow]:
    """The per-unit table: the study's unit lines, then each dataset's."""
    return _sourced(results, study_label, compared, "units")


def _sourced(
    results: Results, study_label: str, compared: list[Compared], field_name: str
) -> list[SourcedRow]:
    rows = [SourcedRow(study_label, None, line) for line in getattr(results, field_name)]
    for other in compared:
        source = f"{other.name} (imported)"
        rows += [SourcedRow(source, other.dataset_id, line) for line in getattr(other, field_name)]
    return rows


def _labelled(cell: Cell, source: str) -> Cell:
    return Cell(**{**cell.__dict__, "label": f"{source}: {cell.label}"})


def compute_results(rows: list[ResponseRow], resamples: int = DASHBOARD_RESAMPLES) -> Results:
    """Pure over analysed rows (main trials of valid sessions)."""
    return Results(
        by_condition=_cells(rows, statistics.by_condition, resamples),
        by_layer=_cells(rows, lambda row: f"{row.network} {row.layer}", resamples),
        by_basis=_cells(rows, statistics.by_basis, resamples),
        units=_unit_lines(rows),
        rt_ms=_values_by_condition(rows, lambda row: row.rt_ms),
        confidence=_confidence_counts(rows),
        analysed_trials=len(rows),
    )


def _cells(rows: list[ResponseRow], group: Any, resamples: int) -> list[Cell]:
    if not rows:
        return []
    counts = statistics.accuracy_by(rows, group)
    intervals = statistics.accuracy_ci_by(rows, group, statistics.by_unit, resamples=resamples)
    return [
        Cell(str(label), counts[label].n, counts[label].correct, counts[label].accuracy,
             intervals[label].low, intervals[label].high, intervals[label].clusters)
        for label in sorted(counts, key=str)
    ]  # fmt: skip


def _unit_lines(rows: list[ResponseRow]) -> list[UnitLine]:
    groups: dict[Hashable, list[ResponseRow]] = {}
    for row in rows:
        groups.setdefault((row.unit_set, row.unit, row.condition), []).append(row)
    lines = [_unit_line(members) for members in groups.values()]
    return sorted(lines, key=lambda line: (line.unit_set, _natural(line.unit), line.condition))


def _unit_line(members: list[ResponseRow]) -> UnitLine:
    first = members[0]
    rts = [row.rt_ms for row in members if row.rt_ms is not None]
    confidences = [row.confidence for row in members if row.confidence is not None]
    return UnitLine(
        unit_id=None,
        unit=first.unit,
        unit_set=first.unit_set,
        layer=first.layer,
        basis=first.basis,
        condition=first.condition,
        n=len(members),
        accuracy=sum(row.correct for row in members) / len(members),
        rt_median_ms=statistics.summarize(rts).median if rts else None,
        confidence_mean=sum(confidences) / len(confidences) if confidences else None,
    )


def _natural(unit: str) -> tuple[int, str]:
    return (int(unit), "") if unit.isdigit() else (1 << 62, unit)


def _values_by_condition(rows: Iterable[ResponseRow], value: Any) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for row in rows:
        if (measured := value(row)) is not None:
            values.setdefault(row.condition, []).append(float(measured))
    return values


def _confidence_counts(rows: Iterable[ResponseRow]) -> dict[str, dict[int, int]]:
    counts: dict[str, dict[int, int]] = {}
    for row in rows:
        if row.confidence is not None:
            per_level = counts.setdefault(row.condition, {})
            per_level[row.confidence] = per_level.get(row.confidence, 0) + 1
    return counts


def _with_unit_images(study: Study, results: Results) -> Results:
    """Each unit line gets the URLs of a few maximally activating references it was shown with."""
    shown = (
        Trial.objects.filter(task_list__study=study, is_catch=False)
        .values_list("unit__unit_set__name", "unit__index", "unit_id", "references_max", "queries")
        .order_by("unit_id", "task_list__index", "index")
    )
    images: dict[tuple[str, str], tuple[int | None, list[int]]] = {}
    for unit_set, index, unit_id, references, queries in shown.iterator():
        key = (unit_set, str(index))
        if key not in images:
            images[key] = (unit_id, list(references or queries or [])[:MAX_UNIT_IMAGES])
    wanted = {pk for _, ids in images.values() for pk in ids}
    urls = {
        pk: default_storage.url(name)
        for pk, name in Image.objects.filter(pk__in=wanted).values_list("pk", "file")
    }
    lines = []
    for line in results.units:
        found, ids = images.get((line.unit_set, line.unit), (None, []))
        line_images = tuple(urls[pk] for pk in ids if pk in urls)
        lines.append(UnitLine(**{**line.__dict__, "unit_id": found, "images": line_images}))
    return Results(**{**results.__dict__, "units": lines})
