"""Human against machine on the results page (ARCHITECTURE §6): per study, human accuracy per
unit scattered against each machine measure of those units, with Spearman's ρ and a bootstrap
CI over units (per condition); and the study's per-unit export (CSV, Parquet: one row per unit
and condition, every measure a column, each unit's top description; docs/data-dictionary.md).

The dashboard draws the section through the template tag `human_vs_machine` (one include in
analysis/dashboard.html); the export's URLs are mounted by backend/urls.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.safestring import mark_safe

from backend.analysis.dashboard import Results, UnitLine
from backend.atlas import atlas_plots, compare
from backend.atlas.models import Description, Measure
from backend.core import softcache

CACHE_SECONDS = 3600
LINE_COLUMNS = ("unit_set", "unit", "layer", "basis", "condition", "n", "accuracy",
                "rt_median_ms", "confidence_mean")  # fmt: skip
DESCRIPTION_COLUMNS = ("description", "description_score", "description_source")


@dataclass(frozen=True)
class MeasureCorrelation:
    measure: str
    condition: str
    correlation: compare.RankCorrelation


def unit_measures(unit_ids: list[int]) -> tuple[list[str], dict[int, dict[str, float | None]]]:
    """(measure columns, unit id → column → value). A measure over several image sets gets
    one column per image set, `name@<image set id>`."""
    values = list(
        Measure.objects.filter(unit_id__in=unit_ids)
        .values_list("unit_id", "name", "image_set_id", "value")
        .order_by("name", "image_set_id")
    )
    sets_per_name: dict[str, set[int]] = {}
    for _, name, image_set, _ in values:
        sets_per_name.setdefault(name, set()).add(image_set)
    table: dict[int, dict[str, float | None]] = {}
    for unit_id, name, image_set, value in values:
        column = name if len(sets_per_name[name]) == 1 else f"{name}@{image_set}"
        table.setdefault(unit_id, {})[column] = value
    columns = sorted({column for row in table.values() for column in row})
    return columns, table


def top_descriptions(unit_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each unit's best description (the highest top-concept score over its descriptions)."""
    best: dict[int, dict[str, Any]] = {}
    for d in Description.objects.filter(unit_id__in=unit_ids):
        score = d.concepts[0].get("score") if d.concepts else None
        known = best.get(d.unit_id)
        if known is None or (score is not None and (known["description_score"] or -1e9) < score):
            best[d.unit_id] = {"description": d.text, "description_score": score,
                               "description_source": d.source}  # fmt: skip
    return best


def correlations(
    lines: list[UnitLine], columns: list[str], table: dict[int, dict[str, float | None]]
) -> list[MeasureCorrelation]:
    """ρ of accuracy with each measure, per condition, over the units that have both."""
    found = []
    for measure in columns:
        for condition in sorted({line.condition for line in lines}):
            kept = [line for line in lines if line.condition == condition and line.unit_id]
            xs = [table.get(line.unit_id or 0, {}).get(measure) for line in kept]
            ys: list[float | None] = [line.accuracy for line in kept]
            found.append(MeasureCorrelation(measure, condition, compare.spearman_with_ci(xs, ys)))
    return found


def study_section(study: Any, results: Results) -> dict[str, Any]:
    """The results page's section (cached per results version and latest measure)."""
    lines = [line for line in results.units if line.unit_id]
    ids = sorted({line.unit_id for line in lines if line.unit_id})
    latest = Measure.objects.filter(unit_id__in=ids).order_by("-computed_at").first()
    stamp = latest.computed_at.isoformat() if latest else "-"
    shown = ",".join(f"{u.unit_id}/{u.condition}/{u.n}/{u.accuracy:.6f}" for u in lines)
    digest = hashlib.sha1(f"{stamp}|{shown}".encode(), usedforsecurity=False).hexdigest()
    key = f"psylens:human-machine:{study.pk}:{digest}"

    def compute() -> dict[str, Any]:
        columns, table = unit_measures(ids)
        found = correlations(lines, columns, table)
        figures = []
        for measure in columns:
            points: dict[str, list[tuple[float, float]]] = {}
            for line in lines:
                value = table.get(line.unit_id or 0, {}).get(measure)
                if value is not None:
                    points.setdefault(line.condition, []).append((value, line.accuracy))
            rhos = {c.condition: c.correlation for c in found if c.measure == measure}
            figure = atlas_plots.human_scatter_figure(measure, points, rhos)
            figures.append({"measure": measure, "svg": atlas_plots.inline_svg(figure)})
        return {"rows": found, "figures": figures}

    computed = softcache.get_or_compute(key, compute, CACHE_SECONDS) if ids else None
    figures = [
        {**f, "svg": mark_safe(f["svg"])}  # noqa: S308 - matplotlib's own SVG
        for f in (computed or {}).get("figures", [])
    ]
    return {"study": study, "has_units": bool(ids), "figures": figures,
            "rows": (computed or {}).get("rows", [])}  # fmt: skip


# --- The per-unit export ---------------------------------------------------------------------


def unit_export_rows(study: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one row per unit and condition of the study's valid sessions, with
    every measure of the unit and its top description."""
    from backend.analysis.dashboard import results_version, study_results

    results = study_results(study, results_version(study))
    ids = sorted({line.unit_id for line in results.units if line.unit_id})
    columns, table = unit_measures(ids)
    described = top_descriptions(ids)
    rows = []
    for line in results.units:
        row: dict[str, Any] = {"study": study.slug, "unit_id": line.unit_id}
        row.update({name: getattr(line, name) for name in LINE_COLUMNS})
        row.update(described.get(line.unit_id or 0, dict.fromkeys(DESCRIPTION_COLUMNS)))
        measures = table.get(line.unit_id or 0, {})
        row.update({column: measures.get(column) for column in columns})
        rows.append(row)
    return ["study", "unit_id", *LINE_COLUMNS, *DESCRIPTION_COLUMNS, *columns], rows


def units_csv(request: HttpRequest, study_id: int) -> HttpResponse:
    from backend.analysis.views import researcher_study

    study = researcher_study(request, study_id)
    columns, rows = unit_export_rows(study)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-units.csv"'
    return response


def units_parquet(request: HttpRequest, study_id: int) -> HttpResponse:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backend.analysis.views import researcher_study

    study = researcher_study(request, study_id)
    columns, rows = unit_export_rows(study)
    types = {"study": pa.string(), "unit_id": pa.int64(), "unit_set": pa.string(),
             "unit": pa.string(), "layer": pa.string(), "basis": pa.string(),
             "condition": pa.string(), "n": pa.int64(), "description": pa.string(),
             "description_source": pa.string()}  # fmt: skip
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    response = HttpResponse(buffer.getvalue(), content_type="application/vnd.apache.parquet")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-units.parquet"'
    return response


def urlpatterns() -> list[URLPattern]:
    """Mounted under admin/ before the admin's own URLs (backend/urls.py)."""
    base = "studies/study/<int:study_id>/results/"
    wrap = admin.site.admin_view
    return [
        path(base + "units.csv", wrap(units_csv), name="atlas-study-units-csv"),
        path(base + "units.parquet", wrap(units_parquet), name="atlas-study-units-parquet"),
    ]
