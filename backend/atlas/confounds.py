"""The confound report as a Job (docs/midrange.md §3; O'Mahony, Nikolov & O'Sullivan 2025): one
unit's activations over an image set, split into quantile bands, with the labels and attributes
over-represented in the middle bands against the top band and against the base rate.

A unit is an index of a unit set: a channel, a neuron, a direction; a logit is unit c (the
class index) of a `channels` unit set on the network's `output` layer. The planner runs on the
web side and cuts the image set into ranges of images; each shard (on a GPU worker,
`backend/atlas/confounds_work.py`) keeps the unit's value on each of its images, n floats; the
merge computes the report (`worker/analyses/midrange.confound_report`) and writes one
`ConfoundReport` row per (unit, image set, number of bands), replacing an earlier one.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from backend.atlas.models import ConfoundReport
from backend.core import csvcells
from backend.stimuli import jobkinds, services
from backend.stimuli.jobkinds import ShardPlan
from backend.stimuli.models import Job, Unit, UnitSet

KIND = "confound_report"
DEFAULTS: dict[str, Any] = {"n_bands": 10, "alpha": 0.05, "grid": 12}
MAX_BANDS = 100
MAX_GRID = 100
PARAMETERS = {"unit_set", "unit", "image_set", "images_per_shard", "batch_size", *DEFAULTS}
CSV_COLUMNS = [
    "rank", "attribute", "value", "band", "band_from", "band_to", "against", "in_band",
    "band_size", "in_other", "other_size", "share_in_band", "enrichment", "odds_ratio",
    "log_odds_ratio", "p", "p_holm",
]  # fmt: skip


def plan_confound_report(params: dict[str, Any]) -> list[ShardPlan]:
    """Ranges of images (each shard: the unit's value on its images). Refuses unknown
    parameters, a unit set that is not ready, a unit it does not have, bad numbers, and an
    image set with fewer than two images per band."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(PARAMETERS))}"
        )
    from backend.atlas.jobkinds import activity_unit_sets  # the registry imports this module

    if isinstance(params.get("unit_set"), bool) or not isinstance(params.get("unit_set"), int):
        raise ValidationError(f"unit_set must be a unit set's id (got {params.get('unit_set')!r})")
    (unit_set,) = activity_unit_sets({"unit_sets": [params["unit_set"]]})
    _check_unit(unit_set, params.get("unit"))
    n_bands = jobkinds.positive_int(params, "n_bands", DEFAULTS["n_bands"])
    if not 2 <= n_bands <= MAX_BANDS:
        raise ValidationError(f"n_bands must be from 2 to {MAX_BANDS} (got {n_bands})")
    alpha = params.get("alpha", DEFAULTS["alpha"])
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValidationError(f"alpha must be a number between 0 and 1 (got {alpha!r})")
    if jobkinds.positive_int(params, "grid", DEFAULTS["grid"]) > MAX_GRID:
        raise ValidationError(f"grid must be at most {MAX_GRID} images per band")
    jobkinds.positive_int(params, "batch_size", 64)
    plans = jobkinds.image_ranges(params.get("image_set"), params)
    n_images = int(sum(p.weight for p in plans))
    if n_images < 2 * n_bands:
        raise ValidationError(
            f"{n_bands} bands need at least {2 * n_bands} images (two per band); the image "
            f"set has {n_images}: choose fewer bands or a larger set"
        )
    return plans


def _check_unit(unit_set: UnitSet, unit: Any) -> None:
    n_units = unit_set.units.count() or unit_set.n_units or 0
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < n_units:
        raise ValidationError(
            f"unit must be a unit index of {unit_set}, from 0 to {n_units - 1} (got {unit!r})"
        )


def do_queue_confound_report(params: dict[str, Any], user: Any = None, send: bool = True) -> Job:
    """Queue the job from its parameters as the API, the admin form and the command send
    them; raises ValidationError, queueing nothing, for parameters it cannot run."""
    return services.do_queue_job(KIND, params, user, send=send)


def option(params: dict[str, Any], key: str) -> Any:
    return params.get(key, DEFAULTS[key])


@transaction.atomic
def do_save_confound_report(job: Job, report: dict[str, Any], values: dict[str, Any]) -> int:
    """Write (or replace) the report of the job's unit, image set and number of bands."""
    params = job.params
    unit, _ = Unit.objects.get_or_create(unit_set_id=params["unit_set"], index=params["unit"])
    row, _ = ConfoundReport.objects.update_or_create(
        unit=unit, image_set_id=params["image_set"], n_bands=report["n_bands"],
        defaults={"alpha": float(option(params, "alpha")), "n_images": report["n_images"],
                  "bands": report["bands"], "tests": report["tests"],
                  "candidates": report["candidates"], "values": values, "job": job},
    )  # fmt: skip
    return int(row.pk)


def image_bands(row: ConfoundReport) -> dict[int, int]:
    """Every image's band in the report (image id → 0 … n_bands − 1), as the merge banded them
    (`worker/analyses/midrange.decile_bands`: rank r of n, ties by position, goes to band
    ⌊r · n_bands / n⌋): what a curation rule selects from, on the web side."""
    ids, values = row.values.get("image_ids", []), row.values.get("values", [])
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    bands = [0] * len(values)
    for rank, i in enumerate(order):
        bands[i] = rank * row.n_bands // max(len(values), 1)
    return {int(image): band for image, band in zip(ids, bands, strict=True)}  # position order


def reports_of(
    unit_set: int | None = None, image_set: int | None = None, unit: int | None = None
) -> QuerySet[ConfoundReport]:
    rows = ConfoundReport.objects.select_related("unit__unit_set__layer__network", "image_set")
    if unit_set is not None:
        rows = rows.filter(unit__unit_set_id=unit_set)
    if image_set is not None:
        rows = rows.filter(image_set_id=image_set)
    if unit is not None:
        rows = rows.filter(unit__index=unit)
    return rows.order_by("-computed_at", "-pk")


def unit_label(unit: Unit) -> str:
    """ "logit 3 of lite0" for a channels unit set on the output layer, else "unit 3 of ch"."""
    layer = unit.unit_set.layer
    if layer.name == "output" and unit.unit_set.kind == UnitSet.Kind.CHANNELS:
        return f"logit {unit.index} of {layer.network.name}"
    return f"unit {unit.index} of {unit.unit_set.name} ({layer.name})"


def report_summary(row: ConfoundReport) -> dict[str, Any]:
    top = row.candidates[0] if row.candidates else None
    return {
        "id": row.pk, "unit_set": row.unit.unit_set_id, "unit": row.unit.index,
        "unit_label": unit_label(row.unit), "network": row.unit.unit_set.layer.network_id,
        "layer": row.unit.unit_set.layer.name, "image_set": row.image_set_id,
        "n_bands": row.n_bands, "alpha": row.alpha, "n_images": row.n_images,
        "n_tests": len(row.tests), "n_candidates": len(row.candidates),
        "top_candidate": candidate_row(top, row, 1) if top else None, "job": row.job_id,
        "computed_at": row.computed_at.isoformat(),
    }  # fmt: skip


def report_detail(row: ConfoundReport) -> dict[str, Any]:
    return {
        **report_summary(row), "bands": row.bands,
        "candidates": [candidate_row(c, row, i + 1) for i, c in enumerate(row.candidates)],
        "tests": row.tests, "values": row.values,
    }  # fmt: skip


def candidate_row(test: dict[str, Any], row: ConfoundReport, rank: int) -> dict[str, Any]:
    """A candidate as the table and the CSV show it: its 2×2 table spelled out."""
    (a, b), (c, d) = test["table"]
    band_from, band_to = row.bands[test["band"]]["quantiles"]
    return {
        "rank": rank, "attribute": test["attribute"], "value": test["value"],
        "band": test["band"], "band_from": band_from, "band_to": band_to,
        "against": test["against"], "in_band": a, "band_size": a + b, "in_other": c,
        "other_size": c + d, "share_in_band": test["share_in_band"],
        "enrichment": test["enrichment"], "odds_ratio": test["odds_ratio"],
        "log_odds_ratio": test["log_odds_ratio"], "p": test["p"], "p_holm": test["p_holm"],
    }  # fmt: skip


def candidates_csv(row: ConfoundReport) -> str:
    """The candidate table, best first: one line per (attribute, value, band)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rank, test in enumerate(row.candidates, start=1):
        writer.writerow({k: _cell(v) for k, v in candidate_row(test, row, rank).items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Floats to six significant digits; text guarded against spreadsheet formulas (an
    attribute value comes from a researcher's CSV)."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return csvcells.safe_cell(value)
