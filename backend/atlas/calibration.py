"""Calibrating a machine observer against people (runs on a worker: it calls the pure fit).

From a study's trial-level human data — the main trials of its completed, non-pilot sessions
that the exclusion rules did not exclude — and the observer's answers to the very same trials
(the machine pilot): α of P(correct) = σ(α · gap) by maximum likelihood, gap being the
observer's Δ(correct query) − Δ(other query), with its 95 % profile-likelihood interval; and
the agreement: Spearman between human accuracy and the observer's MIS per unit, and the
observer's predicted accuracy (at the fitted α) against the humans' per condition.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backend.atlas.models import Measure, Observer, ObserverAnswer
from backend.participation.models import Response, Session


def human_rows(observer: Observer, study_id: int) -> list[dict[str, Any]]:
    """One row per valid human response with the observer's gap toward the correct query."""
    gaps = {
        trial: (gap if correct_query == 0 else -gap)
        for trial, gap, correct_query in ObserverAnswer.objects.filter(
            observer=observer, trial__task_list__study_id=study_id
        ).values_list("trial_id", "gap", "trial__correct_query")
    }
    responses = (
        Response.objects.filter(
            session__study_id=study_id,
            session__state=Session.State.COMPLETED,
            session__is_pilot=False,
            trial__is_catch=False,
        )
        .filter(Q(session__exclusion__isnull=True) | Q(session__exclusion__excluded=False))
        .values_list("trial_id", "correct", "trial__condition__name", "trial__unit_id")
    )
    return [
        {"gap": gaps[trial], "correct": correct, "condition": condition, "unit": unit}
        for trial, correct, condition, unit in responses
        if trial in gaps
    ]


def calibrate(observer: Observer, study_id: int) -> dict[str, Any]:
    from worker.analyses import observer as analysis

    rows = human_rows(observer, study_id)
    if len(rows) < 2:
        return {"responses": len(rows), "error": "fewer than 2 valid human responses"}
    try:
        fit = analysis.fit_alpha([r["gap"] for r in rows], [r["correct"] for r in rows])
    except analysis.ObserverError as err:
        return {"responses": len(rows), "error": str(err)}
    return {
        "study": study_id,
        "responses": fit.n,
        "alpha": fit.alpha,
        "alpha_ci": [fit.ci_low, fit.ci_high],
        "log_likelihood": fit.log_likelihood,
        "per_condition": per_condition(rows, fit.alpha),
        "mis_vs_human": mis_agreement(observer, rows),
    }


def per_condition(rows: list[dict[str, Any]], alpha: float) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["condition"]].append(row)
    return {
        name: {
            "responses": len(members),
            "human_accuracy": sum(r["correct"] for r in members) / len(members),
            "observer_accuracy": sum(_sigmoid(alpha * r["gap"]) for r in members) / len(members),
        }
        for name, members in sorted(groups.items())
    }


def mis_agreement(observer: Observer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman (with its percentile bootstrap CI over units) between each unit's human accuracy
    and its MIS under this observer."""
    from backend.atlas.compare import spearman_with_ci

    by_unit: dict[int, list[bool]] = defaultdict(list)
    for row in rows:
        by_unit[row["unit"]].append(bool(row["correct"]))
    measures = Measure.objects.filter(
        name=observer.measure_name, unit_id__in=by_unit, value__isnull=False
    ).values_list("unit_id", "value")
    mis = {unit: float(value) for unit, value in measures if value is not None}
    units = sorted(u for u in by_unit if u in mis)
    human: list[float | None] = [sum(by_unit[u]) / len(by_unit[u]) for u in units]
    values: list[float | None] = [mis[u] for u in units]
    result = spearman_with_ci(human, values, n_boot=1000)
    return {"spearman": result.statistic, "ci": [result.low, result.high], "units": result.n}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@transaction.atomic
def do_save_calibration(observer: Observer, report: dict[str, Any]) -> None:
    """Keep the fit on the observer (newest last); α itself changes only when asked."""
    observer = Observer.objects.select_for_update().get(pk=observer.pk)
    entry = {**report, "at": timezone.now().isoformat()}
    entry.pop("per_condition", None)
    observer.calibrations = [*observer.calibrations, entry]
    observer.save(update_fields=["calibrations"])
