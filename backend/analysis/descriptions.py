"""Words against exemplars (docs/descriptions.md): in a description_choice study, the accuracy
of the conditions that show the unit's description beside those that show only exemplars, per
layer and per unit, so the results page answers "are words as informative as exemplars?".

Each condition is one of three kinds: `description` (the description alone), `description +
exemplars` (the description beside references), `exemplars` (references, no words: the
reference trial). Per layer and kind: pooled accuracy with a 95 % CI by bootstrap over units
(`statistics.accuracy_ci`). The paired difference of a description kind against exemplars is
the mean, over the units seen in both, of (accuracy with words − accuracy with exemplars), with
a percentile bootstrap CI over those units (seeded). Conditions with neither words nor
references (the none baseline) are left out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from backend.analysis import statistics
from backend.analysis.rows import study_rows
from backend.analysis.tidy import ResponseRow, analysed_rows, unit_key
from backend.core import softcache
from backend.studies.models import Condition, Paradigm, Study, Trial, TrialKind

DESCRIPTION = "description"
BOTH = "description + exemplars"
EXEMPLARS = "exemplars"
KINDS = (DESCRIPTION, BOTH, EXEMPLARS)
COMPARED = (DESCRIPTION, BOTH)  # each against EXEMPLARS
CACHE_SECONDS = 24 * 3600
RESAMPLES = statistics.DEFAULT_RESAMPLES


@dataclass(frozen=True)
class KindCell:
    n: int
    accuracy: float
    low: float | None = None
    high: float | None = None
    units: int = 0


@dataclass(frozen=True)
class Difference:
    """Mean over units of (accuracy with words − accuracy with exemplars)."""

    units: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class LayerComparison:
    layer: str  # "<network> <layer>"
    cells: dict[str, KindCell]  # kind → its accuracy
    differences: dict[str, Difference]  # compared kind → against exemplars


@dataclass(frozen=True)
class UnitComparison:
    unit_set: str
    unit: str
    layer: str
    description: str
    cells: dict[str, KindCell]
    differences: dict[str, float]  # compared kind → its accuracy − exemplars'


@dataclass(frozen=True)
class Comparison:
    conditions: dict[str, list[str]]  # kind → condition names
    layers: list[LayerComparison]
    units: list[UnitComparison]


def condition_kind(condition: Condition) -> str | None:
    if condition.shows_description:
        return BOTH if condition.shows_references else DESCRIPTION
    return EXEMPLARS if condition.shows_references else None


def study_comparison(
    study: Study, version: str, *, include_excluded: bool = False
) -> Comparison | None:
    """The study's comparison (None unless it is a description_choice study with a condition
    that shows words), cached per `dashboard.results_version`."""
    kinds = {c.name: condition_kind(c) for c in study.conditions.all()}
    shown_words = {DESCRIPTION, BOTH} & set(kinds.values())
    if study.paradigm != Paradigm.DESCRIPTION_CHOICE or not shown_words:
        return None
    key = f"psylens:descriptions:{version}:{'all' if include_excluded else 'valid'}"

    def compute() -> Comparison:
        rows = study_rows(study, include_practice=False)
        analysed = analysed_rows(rows, include_excluded=include_excluded)
        named = {name: kind for name, kind in kinds.items() if kind}
        return compare(analysed, named, words_of(study))

    return softcache.get_or_compute(key, compute, CACHE_SECONDS)


def words_of(study: Study) -> dict[tuple[str, str], str]:
    """(unit set, unit) → the description its trials showed."""
    shown = (
        Trial.objects.filter(task_list__study=study, kind=TrialKind.DESCRIPTION_CHOICE)
        .values_list("unit__unit_set__name", "unit__index", "description")
        .distinct()
    )
    return {(unit_set, str(index)): text for unit_set, index, text in shown}


def compare(
    rows: Iterable[ResponseRow],
    kinds: dict[str, str],
    words: dict[tuple[str, str], str] | None = None,
    resamples: int = RESAMPLES,
) -> Comparison:
    """Pure over analysed rows; `kinds` maps condition name → kind (others are left out)."""
    kept = [(row, kinds[row.condition]) for row in rows if row.condition in kinds]
    by_layer: dict[str, list[tuple[ResponseRow, str]]] = {}
    for row, kind in kept:
        by_layer.setdefault(layer_label(row), []).append((row, kind))
    units = _units(kept, words or {})
    layers = [
        _layer(label, members, [u for u in units if u.layer == label], resamples)
        for label, members in sorted(by_layer.items())
    ]
    conditions: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for name, kind in sorted(kinds.items()):
        conditions[kind].append(name)
    return Comparison(conditions, layers, units)


def layer_label(row: ResponseRow) -> str:
    return f"{row.network} {row.layer}"


def _layer(
    label: str,
    members: list[tuple[ResponseRow, str]],
    units: list[UnitComparison],
    resamples: int,
) -> LayerComparison:
    cells = {}
    for kind in KINDS:
        rows = [row for row, row_kind in members if row_kind == kind]
        if rows:
            interval = statistics.accuracy_ci(rows, statistics.by_unit, resamples=resamples)
            correct = sum(row.correct for row in rows)
            cells[kind] = KindCell(len(rows), correct / len(rows), interval.low, interval.high,
                                   interval.clusters)  # fmt: skip
    differences = {}
    for kind in COMPARED:
        paired = [u.differences[kind] for u in units if kind in u.differences]
        if paired:
            differences[kind] = paired_difference(paired, resamples)
    return LayerComparison(label, cells, differences)


def _units(
    kept: list[tuple[ResponseRow, str]], words: dict[tuple[str, str], str]
) -> list[UnitComparison]:
    groups: dict[Hashable, list[tuple[ResponseRow, str]]] = {}
    for row, kind in kept:
        groups.setdefault(unit_key(row), []).append((row, kind))
    lines = []
    for members in groups.values():
        cells = {}
        for kind in KINDS:
            correct = [row.correct for row, row_kind in members if row_kind == kind]
            if correct:
                cells[kind] = KindCell(len(correct), sum(correct) / len(correct))
        differences = {
            kind: cells[kind].accuracy - cells[EXEMPLARS].accuracy
            for kind in COMPARED
            if kind in cells and EXEMPLARS in cells
        }
        first = members[0][0]
        lines.append(UnitComparison(first.unit_set, first.unit, layer_label(first),
                                    words.get((first.unit_set, first.unit), ""), cells,
                                    differences))  # fmt: skip
    return sorted(lines, key=lambda u: (u.layer, u.unit_set, _natural(u.unit)))


def paired_difference(differences: list[float], resamples: int = RESAMPLES) -> Difference:
    """Mean of per-unit differences with a seeded percentile bootstrap CI over the units."""
    values = np.asarray(differences, dtype=float)  # [units]
    generator = np.random.default_rng(0)
    picks = generator.integers(0, values.size, size=(resamples, values.size))  # [resamples, units]
    means = values[picks].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Difference(int(values.size), float(values.mean()), float(low), float(high))


def _natural(unit: str) -> tuple[int, str]:
    return (int(unit), "") if unit.isdigit() else (1 << 62, unit)
