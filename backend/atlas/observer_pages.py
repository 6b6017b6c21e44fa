"""The machine observer on the researcher's pages (docs/observer.md):

- the study page's panel: "Run the machine observer" on a built study, then the pilot's
  predicted accuracy per condition, layer, basis and unit, with the designs it finds trivial
  (≈ 100 %) or impossible (≈ 50 %) flagged before launch (`study_panel`, `run_pilot`);
- the results page's block: the pilot beside the people per condition, the MIS of each unit
  against its human accuracy as a scatter with Spearman's ρ and its bootstrap CI, and the
  latest calibration against this study (`beside_humans`);
- the human export with the observer's columns (`export_with_observer`,
  docs/data-dictionary.md, "Machine observer").

The views are mounted by the Observer admin (`backend/atlas/admin.py`), behind the admin login;
who may see a study is the studies' rule (`permissions.get_study_or_404`: 404 otherwise).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from backend.atlas import observers
from backend.atlas.compare import spearman_with_ci
from backend.atlas.models import Measure, Observer, ObserverAnswer
from backend.core import softcache
from backend.stimuli.models import Job
from backend.studies import permissions
from backend.studies.models import Study, Trial

SCATTER_RESAMPLES = 1000  # the page's bootstrap of ρ over units (seconds at most)
CACHE_SECONDS = 24 * 3600


# --- The study page -------------------------------------------------------------------------


def study_panel(study: Study) -> dict[str, Any]:
    """What the study page shows about the machine observer."""
    piloted = Observer.objects.filter(answers__trial__task_list__study=study).distinct()
    return {
        "study": study,
        "built": study.task_lists.exists(),
        "observers": list(Observer.objects.all()),
        "default": observers.DEFAULT_OBSERVER["name"],
        "run_url": reverse("admin:atlas_observer_pilot_study", args=[study.pk]),
        "job": latest_pilot_job(study),
        "pilots": [pilot_tables(observer, study) for observer in piloted],
    }


def latest_pilot_job(study: Study) -> Job | None:
    return (
        Job.objects.filter(kind=observers.PILOT_KIND, params__study=study.pk)
        .order_by("-created_at")
        .first()
    )


def pilot_tables(observer: Observer, study: Study) -> dict[str, Any]:
    """The pilot's tables: per condition (with its flag), layer, basis, unit set and unit."""
    summary = observers.pilot_summary(observer, study)
    flags = {f["condition"]: f["flag"] for f in summary["flags"]}
    tables = [
        {"heading": grouping.replace("_", " "), "grouping": grouping,
         "rows": [{"label": name, **cell, "flag": flags.get(name, "") if grouping == "condition"
                   else ""} for name, cell in summary[grouping].items()]}
        for grouping in observers.GROUPINGS
    ]  # fmt: skip
    csv_url = reverse("v1:atlas-observer-pilot-export", args=[observer.pk, study.pk])
    return {"observer": observer, "trials": summary["trials"], "flags": summary["flags"],
            "catch": summary["catch"], "tables": tables, "csv_url": csv_url}  # fmt: skip


def run_pilot(request: HttpRequest, study_id: int) -> HttpResponse:
    """POST observer=<id>: queue the machine pilot of the study; back to the study page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not permissions.is_researcher(request.user):
        raise Http404("No such study.")
    study = permissions.get_study_or_404(request.user, pk=study_id)
    back = redirect(reverse("admin:studies_study_change", args=[study.pk]))
    raw = request.POST.get("observer", "")
    observer = Observer.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if observer is None:
        messages.error(request, "Choose an observer (admin → Atlas → Observers adds one).")
        return back
    try:
        job = observers.do_queue_pilot(observer, study, request.user)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
        return back
    messages.success(
        request, f"The machine observer {observer} is answering every trial (job {job.pk}); "
        "reload this page to see its predictions.",
    )  # fmt: skip
    return back


# --- The results page -----------------------------------------------------------------------


def beside_humans(study: Study, results: Any, version: str) -> list[dict[str, Any]]:
    """Per observer that piloted the study or scored its units: the pilot's predicted accuracy
    beside the people's per condition, and the MIS-vs-human scatter per condition."""
    unit_ids = Trial.objects.filter(task_list__study=study).values("unit_id")
    names = set(
        Measure.objects.filter(name__startswith="mis:", unit_id__in=unit_ids)
        .values_list("name", flat=True)
        .distinct()
    )
    chosen = Observer.objects.filter(answers__trial__task_list__study=study).distinct()
    shown = {o.pk: o for o in [*chosen, *Observer.objects.filter(
        name__in=[n.removeprefix("mis:") for n in names])]}  # fmt: skip
    blocks = []
    for observer in sorted(shown.values(), key=lambda o: o.name):
        stamp = _observer_stamp(observer, study)
        key = f"psylens:observer-beside:{version}:{observer.pk}:{stamp}"
        compute = lambda o=observer: _block(o, study, results)  # noqa: E731
        blocks.append(softcache.get_or_compute(key, compute, CACHE_SECONDS))
    return blocks


def _observer_stamp(observer: Observer, study: Study) -> str:
    """Changes when the observer's answers, its MIS or its α change."""
    answers = ObserverAnswer.objects.filter(observer=observer, trial__task_list__study=study)
    latest = Measure.objects.filter(name=observer.measure_name).aggregate(at=Max("computed_at"))
    at = latest["at"].timestamp() if latest["at"] else "-"
    return f"{answers.aggregate(job=Max('job_id'))['job']}:{at}:{observer.alpha}"


def _block(observer: Observer, study: Study, results: Any) -> dict[str, Any]:
    summary = observers.pilot_summary(observer, study)
    human = {cell.label: cell for cell in results.by_condition}
    conditions = [
        {"condition": name, "human": human.get(name), **cell}
        for name, cell in summary["condition"].items()
    ]
    calibrations = [c for c in observer.calibrations if c.get("study") == study.pk]
    return {
        "observer": observer.name,
        "alpha": observer.alpha,
        "piloted": summary["trials"] > 0,
        "conditions": conditions,
        "scatters": mis_scatters(observer, results),
        "calibration": calibrations[-1] if calibrations else None,
        "export_url": reverse("admin:atlas_observer_study_export", args=[observer.pk, study.pk]),
    }


def mis_scatters(observer: Observer, results: Any) -> list[dict[str, Any]]:
    """Per condition: each unit's MIS against its human accuracy, with ρ and its CI."""
    unit_ids = {line.unit_id for line in results.units if line.unit_id is not None}
    mis = dict(
        Measure.objects.filter(name=observer.measure_name, unit_id__in=unit_ids)
        .order_by("computed_at")
        .values_list("unit_id", "value")
    )
    by_condition: dict[str, list[tuple[float, float, str]]] = {}
    for line in results.units:
        value = mis.get(line.unit_id)
        if value is not None:
            label = f"{line.unit_set}:{line.unit}"
            by_condition.setdefault(line.condition, []).append((value, line.accuracy, label))
    scatters = []
    for condition, points in sorted(by_condition.items()):
        xs: list[float | None] = [p[0] for p in points]
        ys: list[float | None] = [p[1] for p in points]
        rho = spearman_with_ci(xs, ys, n_boot=SCATTER_RESAMPLES)
        scatters.append({"condition": condition, "units": len(points), "rho": rho,
                         "svg": scatter_svg(points, f"MIS ({observer.name})",
                                            "human accuracy")})  # fmt: skip
    return scatters


def scatter_svg(
    points: list[tuple[float, float, str]], x_label: str, y_label: str, size: int = 260
) -> SafeString:
    """An inline SVG scatter, both axes 0–1 (chance at 0.5 dashed), one titled dot per unit."""
    pad = 36
    span = size - 2 * pad

    def at(x: float, y: float) -> tuple[float, float]:
        return pad + x * span, size - pad - y * span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
             f'class="psylens-mis-scatter" role="img" aria-label="{escape(x_label)} against '
             f'{escape(y_label)}">',
             f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" '
             'stroke="#999"/>']  # fmt: skip
    cx, cy = at(0.5, 0.5)
    parts.append(f'<line x1="{cx}" y1="{pad}" x2="{cx}" y2="{size - pad}" stroke="#ccc" '
                 f'stroke-dasharray="3"/><line x1="{pad}" y1="{cy}" x2="{size - pad}" '
                 f'y2="{cy}" stroke="#ccc" stroke-dasharray="3"/>')  # fmt: skip
    for x, y, label in points:
        px, py = at(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0))
        title = f"{escape(label)}: MIS {x:.3f}, accuracy {y:.3f}"
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="#36c" '
                     f'fill-opacity="0.7"><title>{title}</title></circle>')  # fmt: skip
    parts.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11">'
                 f"{escape(x_label)}</text>")  # fmt: skip
    parts.append(f'<text x="12" y="{size / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {size / 2})">{escape(y_label)}</text>')  # fmt: skip
    for value in (0, 0.5, 1):
        tx, _ = at(value, 0)
        _, ty = at(0, value)
        parts.append(f'<text x="{tx}" y="{size - pad + 12}" text-anchor="middle" '
                     f'font-size="9">{value}</text><text x="{pad - 4}" y="{ty + 3}" '
                     f'text-anchor="end" font-size="9">{value}</text>')  # fmt: skip
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


# --- The human export with the observer's columns ---------------------------------------------

OBSERVER_COLUMNS = (
    "observer", "observer_alpha", "observer_p_first", "observer_choice", "observer_p_correct",
    "observer_correct", "observer_gap", "unit_mis",
)  # fmt: skip


def export_with_observer(
    request: HttpRequest, observer_id: int, study_id: int
) -> StreamingHttpResponse:
    """The study's human export (the same rows and columns as export.csv) with the observer's
    columns appended: its answer to the very trial of each row, and the row's unit's MIS."""
    if not permissions.is_researcher(request.user):
        raise Http404("No such study.")
    study = permissions.get_study_or_404(request.user, pk=study_id)
    observer = Observer.objects.filter(pk=observer_id).first()
    if observer is None:
        raise Http404("No such observer.")
    response = StreamingHttpResponse(observer_csv(observer, study), content_type="text/csv")
    name = f"{study.slug}-responses-{observer.name}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def observer_csv(observer: Observer, study: Study) -> Iterator[str]:
    from backend.analysis.exports import _csv_cells
    from backend.analysis.rows import study_rows
    from backend.analysis.tidy import COLUMNS

    answers = {
        (f"tl-{tl}", index): (p_first, choice, gap, key)
        for tl, index, p_first, choice, gap, key in ObserverAnswer.objects.filter(
            observer=observer, trial__task_list__study=study
        ).values_list(
            "trial__task_list__index",
            "trial__index",
            "p_first",
            "choice",
            "gap",
            "trial__correct_query",
        )  # fmt: skip
    }
    unit_ids = Trial.objects.filter(task_list__study=study).values("unit_id")
    mis = {
        (unit_set, index): value
        for unit_set, index, value in Measure.objects.filter(
            name=observer.measure_name, unit_id__in=unit_ids
        )
        .order_by("computed_at")
        .values_list("unit__unit_set__name", "unit__index", "value")
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, *OBSERVER_COLUMNS])
    # The export's own cell formatting (exports.iter_csv's), so the human columns read the same.
    for written, row in enumerate(study_rows(study), 1):
        writer.writerow([*_csv_cells(row), *_observer_cells(observer, row, answers, mis)])
        if written % 2000 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _observer_cells(
    observer: Observer, row: Any, answers: dict[Any, Any], mis: dict[Any, Any]
) -> list[Any]:
    """The observer's answer to the row's trial (blank for practice rows, which it does not
    answer) and the row's unit's MIS (blank where not computed)."""
    answer = None if row.is_practice else answers.get((row.task_list, row.trial_index))
    unit_mis = mis.get((row.unit_set, row.unit_index))
    if answer is None:
        return [observer.name, observer.alpha, "", "", "", "", "", _cell(unit_mis)]
    p_first, choice, gap, key = answer
    p_correct = p_first if key == 0 else 1 - p_first
    hard = "" if choice is None else str(choice == key).lower()
    return [observer.name, observer.alpha, p_first, _cell(choice), p_correct, hard, gap,
            _cell(unit_mis)]  # fmt: skip


def _cell(value: Any) -> Any:
    return "" if value is None else value
