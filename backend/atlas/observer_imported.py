"""Calibrating a machine observer against an imported dataset's trial-level human data (runs on
a worker: it embeds the rows' images and calls the pure fit).

An imported row names its images by content hash (`query_images` in screen order,
`reference_images`) and says what the person chose and whether that was right, so the observer
can answer the very trial the person saw: the images are looked up among the platform's own
(`Image.sha256`), embedded once under the observer (kept, as for every other pass), and each
row gets the observer's gap Δ(correct query) − Δ(other query). The row's reference sides are
read as PsyLens writes them (docs/data-dictionary.md): the min side's images, then the max
side's, as many of each; a row with an odd number of references, without a choice, or naming an
image the platform does not hold is left out, and counted.

The report has the shape of a study's (`backend/atlas/calibration.py`): α with its 95 %
profile-likelihood interval, the observer's accuracy at that α beside the people's per
condition, and Spearman between human accuracy and MIS per unit, the dataset's units matched to
the platform's by unit set name and index.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from backend.analysis.models import ImportedDataset, ImportedResponse
from backend.atlas import calibration
from backend.atlas.models import Measure, Observer
from backend.stimuli.models import Image, Unit


@dataclass(frozen=True)
class ImportedTrial:
    """One usable imported row: its images (platform ids) and what the person did."""

    queries: tuple[int, int]
    references_max: tuple[int, ...]
    references_min: tuple[int, ...]
    correct_query: int
    correct: bool
    condition: str
    unit: tuple[str, int | None]  # (unit set name, unit index)


def image_ids(names: Iterable[str]) -> dict[str, int]:
    """Content-hash file names (`<sha256>.<ext>`) → the platform's image ids, where it has them."""
    by_hash: dict[str, str] = {}
    for name in names:
        stem = posixpath.splitext(posixpath.basename(name))[0]
        by_hash[stem] = name
    found = Image.objects.filter(sha256__in=list(by_hash)).values_list("sha256", "pk")
    return {by_hash[sha]: pk for sha, pk in found}


def imported_trials(dataset: ImportedDataset) -> tuple[list[ImportedTrial], dict[str, int]]:
    """The dataset's main trials the observer can answer, and why the others were left out."""
    rows = list(
        ImportedResponse.objects.filter(dataset=dataset, is_catch=False, is_practice=False)
        .filter(excluded=False)
        .order_by("position")
    )
    names = {n for r in rows for n in [*r.query_images, *r.reference_images]}
    ids = image_ids(names)
    trials: list[ImportedTrial] = []
    skipped: dict[str, int] = defaultdict(int)
    for row in rows:
        reason = _unusable(row, ids)
        if reason:
            skipped[reason] += 1
            continue
        half = len(row.reference_images) // 2
        refs = [ids[n] for n in row.reference_images]
        assert row.choice is not None  # _unusable left rows without one out
        trials.append(
            ImportedTrial(
                queries=(ids[row.query_images[0]], ids[row.query_images[1]]),
                references_max=tuple(refs[half:]), references_min=tuple(refs[:half]),
                correct_query=row.choice if row.correct else 1 - row.choice,
                correct=row.correct, condition=row.condition, unit=(row.unit_set, row.unit_index),
            )
        )  # fmt: skip
    return trials, dict(skipped)


def _unusable(row: ImportedResponse, ids: dict[str, int]) -> str:
    if row.choice not in (0, 1):
        return "no choice"
    if len(row.query_images) != 2:
        return "not two query images"
    if len(row.reference_images) % 2:
        return "an odd number of reference images (sides unknown)"
    if any(n not in ids for n in [*row.query_images, *row.reference_images]):
        return "an image the platform does not hold"
    return ""


def calibrate_dataset(
    observer: Observer, dataset: ImportedDataset, embeddings: Any,
    ensure: Callable[[set[int]], None],
) -> dict[str, Any]:  # fmt: skip
    """Fit α to the dataset's usable rows; `embeddings` (`observer_work.Embeddings`) supplies the
    similarity matrix once `ensure` has embedded the images not kept yet."""
    from worker.analyses import observer as analysis

    trials, skipped = imported_trials(dataset)
    base = {"dataset": dataset.pk, "skipped": skipped}
    if len(trials) < 2:
        return {**base, "responses": len(trials), "error": "fewer than 2 usable imported trials"}
    needed = {i for t in trials for i in [*t.queries, *t.references_max, *t.references_min]}
    ensure(needed)
    sims, rows_of = embeddings.gram(sorted(needed), observer.similarity)
    sims = sims.numpy()
    config = analysis.ObserverConfig(alpha=observer.alpha, similarity=observer.similarity)
    rows: list[dict[str, Any]] = []
    for trial in trials:
        if any(i not in rows_of for i in [*trial.queries, *trial.references_max,
                                          *trial.references_min]):  # fmt: skip
            unreadable = "an image that could not be read"
            skipped[unreadable] = skipped.get(unreadable, 0) + 1
            continue
        answer = analysis.answer_from_gram(
            sims, [rows_of[i] for i in trial.queries],
            [rows_of[i] for i in trial.references_max],
            [rows_of[i] for i in trial.references_min], config,
        )  # fmt: skip
        gap = answer.gap if trial.correct_query == 0 else -answer.gap
        rows.append({"gap": gap, "correct": trial.correct, "condition": trial.condition,
                     "unit": trial.unit})  # fmt: skip
    try:
        fit = analysis.fit_alpha([r["gap"] for r in rows], [r["correct"] for r in rows])
    except analysis.ObserverError as err:
        return {**base, "responses": len(rows), "error": str(err)}
    return {
        **base,
        "responses": fit.n,
        "alpha": fit.alpha,
        "alpha_ci": [fit.ci_low, fit.ci_high],
        "log_likelihood": fit.log_likelihood,
        "per_condition": calibration.per_condition(rows, fit.alpha),
        "mis_vs_human": mis_agreement(observer, rows),
    }


def mis_agreement(observer: Observer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman (with its bootstrap CI) between each unit's human accuracy in the dataset and its
    MIS under this observer, the units matched by unit set name and index."""
    from backend.atlas.compare import spearman_with_ci

    by_unit: dict[tuple[str, int | None], list[bool]] = defaultdict(list)
    for row in rows:
        by_unit[row["unit"]].append(bool(row["correct"]))
    names = {name for name, _ in by_unit}
    units: dict[tuple[str, int | None], int] = {
        (name, index): pk
        for pk, name, index in Unit.objects.filter(unit_set__name__in=names).values_list(
            "pk", "unit_set__name", "index"
        )
    }
    mis: dict[int, float] = {
        unit: float(value)
        for unit, value in Measure.objects.filter(
            name=observer.measure_name, unit_id__in=units.values(), value__isnull=False
        ).values_list("unit_id", "value")
        if value is not None
    }
    matched = sorted((k for k in by_unit if units.get(k, -1) in mis), key=str)
    human: list[float | None] = [sum(by_unit[k]) / len(by_unit[k]) for k in matched]
    values: list[float | None] = [mis[units[k]] for k in matched]
    result = spearman_with_ci(human, values, n_boot=1000)
    return {"spearman": result.statistic, "ci": [result.low, result.high], "units": result.n,
            "unmatched_units": len(by_unit) - len(matched)}  # fmt: skip
