"""The results pages of the admin, under /admin/studies/study/<id>/results/: the live dashboard,
its small status JSON (polled to refresh), its figures, the exports (CSV, Parquet, design JSON),
the platform submission lists, manual exclusion, the design upload and the trial-data upload.

Same rule as the study admin: staff who own or collaborate on the study; anyone else gets 404.
Imported datasets are shared: any researcher may import one or show one beside a study.
Views validate and call one service; the services write.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.text import slugify

from backend.analysis import descriptions, design, plots, progress, services, trial_export
from backend.analysis.dashboard import (
    ACCURACY_TABLES,
    Compared,
    accuracy_tables,
    imported_results,
    results_version,
    study_results,
    unit_rows,
    with_compared,
)
from backend.analysis.exports import ImportErrorWithLine, iter_csv, write_parquet
from backend.analysis.models import ImportedDataset
from backend.analysis.rows import study_rows
from backend.atlas import spectra
from backend.participation.models import Session
from backend.studies import permissions
from backend.studies.models import Study

# How often the dashboard polls status.json (a test shortens it).
REFRESH_SECONDS = float(os.environ.get("PSYLENS_RESULTS_REFRESH_SECONDS", "10"))
SESSIONS_SHOWN = 500
PARQUET_SPOOL_BYTES = 32 * 1024 * 1024


def researcher_study(request: HttpRequest, study_id: int) -> Study:
    """The study if the signed-in researcher may see it; 404 otherwise."""
    if not permissions.is_researcher(request.user):
        raise Http404("No such study.")
    return permissions.get_study_or_404(request.user, pk=study_id)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User), "admin_view lets only signed-in users through"
    return request.user


def include_excluded(request: HttpRequest) -> bool:
    """`?excluded=1`: the results of every completed session, the excluded ones included."""
    return request.GET.get("excluded") == "1"


def dashboard(request: HttpRequest, study_id: int) -> HttpResponse:
    study = researcher_study(request, study_id)
    version = results_version(study)
    everyone = include_excluded(request)
    sessions = (
        Session.objects.filter(study=study, state=Session.State.COMPLETED)
        .select_related("participant", "exclusion", "task_list")
        .order_by("-completed_at")[:SESSIONS_SHOWN]
    )
    compared = compared_datasets(request)
    results = study_results(study, version, include_excluded=everyone)
    with_query = "".join(f"&with={other.dataset_id}" for other in compared)
    context = {
        **admin.site.each_context(request),
        "title": f"Results: {study}",
        "study": study,
        "version": version,
        "counts": progress.study_counts(study),
        "results": results,
        "accuracy_tables": accuracy_tables(results, study.slug, compared),
        "unit_rows": unit_rows(results, study.slug, compared),
        "compared": compared,
        "datasets": permissions.visible_imported_datasets(request.user).only("pk", "name", "rows"),
        "with_query": with_query,
        "excluded_query": "&excluded=1" if everyone else "",
        "include_excluded": everyone,
        "sessions": sessions,
        "figures": list(plots.FIGURES),
        "figure_size": plots.FIGURE_ATTRIBUTES,
        "compared_figures": [figure for figure, _ in ACCURACY_TABLES],
        "refresh_ms": int(REFRESH_SECONDS * 1000),
        "code_density": spectra.layer_code_density(results.by_layer),  # the atlas's spectra
        # description_choice studies: words against exemplars (docs/descriptions.md)
        "description_comparison": descriptions.study_comparison(
            study, version, include_excluded=everyone
        ),
        "description_kinds": descriptions.KINDS,
    }
    return render(request, "analysis/dashboard.html", context)


def compared_datasets(request: HttpRequest) -> list[Compared]:
    """The imported datasets named by `?with=<id>` (repeatable), in id order; others ignored."""
    ids = {int(raw) for raw in request.GET.getlist("with") if raw.strip().isdigit()}
    datasets = permissions.visible_imported_datasets(request.user).filter(pk__in=ids)
    datasets = datasets.order_by("pk")
    return [imported_results(dataset) for dataset in datasets]


def status(request: HttpRequest, study_id: int) -> JsonResponse:
    """What the page polls: the results version (reload when it changes) and the counts."""
    study = researcher_study(request, study_id)
    body = {"version": results_version(study), "counts": progress.study_counts(study).as_dict()}
    return JsonResponse(body)


def figure(request: HttpRequest, study_id: int, name: str) -> HttpResponse:
    study = researcher_study(request, study_id)
    if name not in plots.FIGURES:
        raise Http404("No such figure.")
    everyone = include_excluded(request)
    version = results_version(study)
    results = study_results(study, version, include_excluded=everyone)
    version += ":all" if everyone else ""
    compared = compared_datasets(request) if name in dict(ACCURACY_TABLES) else []
    if compared:
        results = with_compared(results, study.slug, compared)
        version += "+with=" + ",".join(str(other.dataset_id) for other in compared)
    drawn = plots.cached_svg(name, version, results)
    return HttpResponse(drawn, content_type="image/svg+xml")


# --- exports -------------------------------------------------------------------------------


def csv_response(study: Study) -> StreamingHttpResponse:
    """Streamed: rows are read in chunks and sent as they are written."""
    response = StreamingHttpResponse(iter_csv(study_rows(study)), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
    return response


def parquet_response(study: Study) -> FileResponse:
    """Parquet needs its footer at the end: written to a spooled temporary file, then sent."""
    spool = tempfile.SpooledTemporaryFile(max_size=PARQUET_SPOOL_BYTES)  # noqa: SIM115
    write_parquet(study_rows(study), spool)
    spool.seek(0)
    return FileResponse(
        spool, as_attachment=True, filename=f"{study.slug}-responses.parquet",
        content_type="application/vnd.apache.parquet",
    )  # fmt: skip


def design_response(study: Study) -> HttpResponse:
    response = HttpResponse(
        json.dumps(design.export_design(study), indent=1), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-design.json"'
    return response


def submissions_response(study: Study, valid: bool) -> HttpResponse:
    name = "approve" if valid else "return-or-reject"
    response = HttpResponse(progress.submissions_csv(study, valid=valid), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{name}.csv"'
    return response


def trials_response(study: Study) -> StreamingHttpResponse:
    """Each trial's paradigm and the words it showed (trial_export.py)."""
    response = StreamingHttpResponse(trial_export.iter_trials_csv(study), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-trials.csv"'
    return response


def export(kind: str) -> Callable[[HttpRequest, int], HttpResponseBase]:
    makers: dict[str, Callable[[Study], HttpResponseBase]] = {
        "csv": csv_response,
        "parquet": parquet_response,
        "design": design_response,
        "approve": lambda study: submissions_response(study, valid=True),
        "reject": lambda study: submissions_response(study, valid=False),
        "trials": trials_response,
    }

    def view(request: HttpRequest, study_id: int) -> HttpResponseBase:
        return makers[kind](researcher_study(request, study_id))

    return view


# --- manual exclusion ----------------------------------------------------------------------


def exclude(request: HttpRequest, study_id: int) -> HttpResponse:
    """POST session=<id> reason=<text> excludes; POST session=<id> include=1 undoes it."""
    study = researcher_study(request, study_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    session = _study_session(study, request.POST.get("session", ""))
    try:
        if request.POST.get("include"):
            services.do_clear_manual_exclusion(session)
            messages.success(request, f"Session s-{session.pk} is decided by the rules again.")
        else:
            services.do_exclude_manually(session, request.POST.get("reason", ""), _user(request))
            messages.success(request, f"Session s-{session.pk} is excluded.")
    except services.Refused as err:
        messages.error(request, err.message)
    return redirect(reverse("analysis-dashboard", args=[study.pk]))


def reapply(request: HttpRequest, study_id: int) -> HttpResponse:
    """POST: re-decide every completed session under the study's current rules."""
    study = researcher_study(request, study_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    excluded = services.do_recompute_exclusions(study)
    messages.success(request, f"Rules applied again: {excluded} session(s) excluded.")
    return redirect(reverse("analysis-dashboard", args=[study.pk]))


def _study_session(study: Study, raw: str) -> Session:
    pk = raw.strip().removeprefix("s-")
    session = Session.objects.filter(study=study, pk=int(pk)).first() if pk.isdigit() else None
    if session is None:
        raise Http404("No such session in this study.")
    return session


# --- trial-data upload (not tied to a study) -------------------------------------------------


def import_trials(request: HttpRequest) -> HttpResponse:
    """POST file=<CSV> mapping=<JSON: our column → theirs> name=<slug>: the admin twin of the
    `import_trials` command (same service); a bad line is shown with its line and column."""
    if not permissions.is_researcher(request.user):
        raise Http404("Not found.")
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Import trial data"}
    if request.method != "POST":
        return render(request, "analysis/import_trials.html", context)
    context["form"] = {key: request.POST.get(key, "") for key in ("name", "mapping")}
    try:
        dataset = _imported_upload(request)
    except services.Refused as err:
        context["error"] = err.message
    except ImportErrorWithLine as err:
        context["error"] = f"Nothing was imported: {err}"
    else:
        messages.success(request, f"Imported {dataset.rows} trials as dataset {dataset.name}.")
        return redirect(reverse("admin:analysis_importeddataset_change", args=[dataset.pk]))
    return render(request, "analysis/import_trials.html", context, status=400)


def _imported_upload(request: HttpRequest) -> ImportedDataset:
    upload = request.FILES.get("file")
    name = request.POST.get("name", "").strip()
    if upload is None:
        raise services.Refused("Choose a CSV file.")
    if not name or name != slugify(name):
        raise services.Refused("The dataset name must be a slug (letters, digits, - and _).")
    mapping = services.column_mapping_from_json(request.POST.get("mapping", ""))
    return services.do_import_trial_file(name, upload, mapping, upload.name or "", _user(request))


# --- design upload (not tied to a study) -----------------------------------------------------


def import_design(request: HttpRequest) -> HttpResponse:
    if not permissions.is_researcher(request.user):
        raise Http404("Not found.")
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Import a study design"}
    if request.method == "POST":
        upload = request.FILES.get("design")
        try:
            document = json.load(upload) if upload else None
            study = design.do_import_study_design(
                document, _user(request), request.POST.get("slug", "").strip()
            )
        except (ValueError, services.Refused) as err:
            context["error"] = getattr(err, "message", None) or f"Not a JSON file: {err}"
            return render(request, "analysis/import_design.html", context, status=400)
        messages.success(request, f"Imported {study.slug} as a draft.")
        return redirect(reverse("admin:studies_study_change", args=[study.pk]))
    return render(request, "analysis/import_design.html", context)


def _admin(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    return admin.site.admin_view(view)  # type: ignore[arg-type]


def urlpatterns() -> list[URLPattern]:
    """Mounted before the admin's own URLs (see backend/urls.py)."""
    base = "studies/study/<int:study_id>/results/"
    return [
        path(base, _admin(dashboard), name="analysis-dashboard"),
        path(base + "status.json", _admin(status), name="analysis-status"),
        path(base + "figure/<slug:name>.svg", _admin(figure), name="analysis-figure"),
        path(base + "export.csv", _admin(export("csv")), name="analysis-export-csv"),
        path(base + "export.parquet", _admin(export("parquet")), name="analysis-export-parquet"),
        path(base + "design.json", _admin(export("design")), name="analysis-design"),
        path(base + "trials.csv", _admin(export("trials")), name="analysis-export-trials"),
        path(base + "approve.csv", _admin(export("approve")), name="analysis-approve"),
        path(base + "return-or-reject.csv", _admin(export("reject")), name="analysis-reject"),
        path(base + "exclude/", _admin(exclude), name="analysis-exclude"),
        path(base + "reapply/", _admin(reapply), name="analysis-reapply"),
        path("studies/import-design/", _admin(import_design), name="analysis-import-design"),
        path(
            "analysis/importeddataset/upload/", _admin(import_trials), name="analysis-import-trials"
        ),
    ]
