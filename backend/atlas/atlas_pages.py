"""The atlas in the admin (ARCHITECTURE §6): the atlas section of a unit's page (every measure
with its rank in the unit set, its populations, human accuracy with CI where a study ran it),
the unit set's atlas page (the Spearman matrix between measures, the cumulative ablation curves,
the populations' dendrograms, the basis comparison of Colin et al. 2024), and the form that
queues an atlas job for unit sets chosen in the unit-set list (its admin action leads there).

The unit page's section is drawn by the template tag `unit_atlas` (templates
admin/stimuli/unit/change_form.html), so the stimuli admin needs no change to show it.
"""

from __future__ import annotations

import random
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils.safestring import mark_safe

from backend.atlas import atlas_plots, compare, jobkinds, queries
from backend.atlas.models import AblationCurve, Measure, Population
from backend.stimuli import services as stimuli_services
from backend.stimuli.models import ImageSet, Unit, UnitSet
from backend.studies import permissions

# Measures of the basis comparison: single-unit ablation impact and selectivity (Colin et al.
# 2024's third finding: dictionary directions matter more to the decision than neurons).
BASIS_MEASURES = ("ablation_accuracy_drop", "ablation_kl", "csi")
DICTIONARY_KINDS = ("nmf", "sae", "pca", "random", "population")
HUMAN_RESAMPLES = 2000


# --- The unit page's section ---------------------------------------------------------------


def measure_ranks(unit: Unit) -> list[dict[str, Any]]:
    """Each measure of the unit with its rank among the unit set's units (1 = highest) on the
    same image set, of the units that have a value."""
    rows = []
    for measure in Measure.objects.filter(unit=unit).select_related("image_set"):
        peers = Measure.objects.filter(
            unit__unit_set_id=unit.unit_set_id, image_set_id=measure.image_set_id,
            name=measure.name, value__isnull=False,
        )  # fmt: skip
        rank = None
        if measure.value is not None:
            rank = peers.filter(value__gt=measure.value).count() + 1
        rows.append({"name": measure.name, "image_set": measure.image_set.name,
                     "value": measure.value, "rank": rank, "of": peers.count(),
                     "details": _details_line(measure)})  # fmt: skip
    return rows


def _details_line(measure: Measure) -> str:
    """What a reader needs to read the number: the class source, the removal."""
    details = measure.details or {}
    parts = []
    if details.get("classes"):
        parts.append(f"classes: {details['classes']}")
    if details.get("preferred_class") is not None:
        name = details.get("preferred_class_name")
        named = f" ({name})" if name else ""
        parts.append(f"preferred class: {details['preferred_class']}{named}")
    if details.get("removal"):
        parts.append(f"removal: {details['removal']}")
    return "; ".join(str(p) for p in parts)


def unit_populations(unit: Unit) -> list[dict[str, Any]]:
    """The populations of its unit set the unit belongs to, per basis and image set."""
    found = Population.objects.filter(
        unit_set_id=unit.unit_set_id, members__contains=[unit.index]
    ).select_related("image_set")  # fmt: skip
    return [
        {"basis": p.basis, "image_set": p.image_set.name, "index": p.index,
         "size": len(p.members), "others": [m for m in p.members if m != unit.index][:30],
         "url": reverse("admin:atlas_population_change", args=[p.pk])}
        for p in found
    ]  # fmt: skip


def human_accuracy(unit: Unit, user: Any) -> list[dict[str, Any]]:
    """Per study the viewer may see that showed the unit, and per condition: valid sessions'
    accuracy on its main trials with a 95 % CI (bootstrap over participants)."""
    from backend.analysis import statistics
    from backend.analysis.rows import study_rows
    from backend.analysis.tidy import analysed_rows

    studies = permissions.visible_studies(user).filter(
        task_lists__trials__unit=unit, task_lists__trials__is_catch=False
    ).distinct()  # fmt: skip
    found = []
    for study in studies:
        rows = [
            row for row in analysed_rows(study_rows(study, include_practice=False))
            if row.unit_set == unit.unit_set.name and row.unit == str(unit.index)
        ]  # fmt: skip
        by_condition = statistics.accuracy_ci_by(
            rows, statistics.by_condition, statistics.by_participant, resamples=HUMAN_RESAMPLES
        )
        for condition, ci in sorted(by_condition.items(), key=lambda item: str(item[0])):
            n = sum(1 for row in rows if row.condition == condition)
            found.append({"study": study.slug, "condition": condition, "n": n,
                          "participants": ci.clusters, "accuracy": ci.estimate,
                          "low": ci.low, "high": ci.high,
                          "url": reverse("analysis-dashboard", args=[study.pk])})  # fmt: skip
        if not rows:
            found.append({"study": study.slug, "condition": "", "n": 0,
                          "url": reverse("analysis-dashboard", args=[study.pk])})  # fmt: skip
    return found


def unit_context(unit: Unit, user: Any) -> dict[str, Any]:
    return {
        "unit": unit,
        "measures": measure_ranks(unit),
        "populations": unit_populations(unit),
        "human": human_accuracy(unit, user),
        "unit_set_url": reverse("atlas-unit-set", args=[unit.unit_set_id]),
    }


# --- The unit set's page ---------------------------------------------------------------------


def dendrograms(unit_set: UnitSet) -> list[dict[str, Any]]:
    """One dendrogram per basis and image set, from the populations job's stored linkage."""
    shown = []
    seen: set[tuple[str, int]] = set()
    for population in Population.objects.filter(unit_set=unit_set).select_related(
        "job", "image_set"
    ):
        key = (population.basis, population.image_set_id)
        if key in seen:
            continue
        seen.add(key)
        result = population.job.result if population.job else {}
        title = f"Populations by {population.basis} on {population.image_set.name}"
        figure = atlas_plots.dendrogram_figure(
            result.get("linkage", []), result.get("units", []), title
        )
        count = Population.objects.filter(
            unit_set=unit_set, basis=population.basis, image_set=population.image_set
        ).count()
        rule = population.details.get("rule", "")
        shown.append(
            {
                "title": title,
                "count": count,
                "rule": rule,
                "svg": mark_safe(atlas_plots.inline_svg(figure)),
            }
        )  # noqa: S308
    return shown


def comparison_partners(unit_set: UnitSet) -> list[tuple[UnitSet, UnitSet]]:
    """(dictionary unit set, channels unit set) pairs on the unit set's layer."""
    layer_sets = UnitSet.objects.filter(layer_id=unit_set.layer_id).order_by("pk")
    channels = [u for u in layer_sets if u.kind == UnitSet.Kind.CHANNELS]
    dictionaries = [u for u in layer_sets if u.kind in DICTIONARY_KINDS]
    if unit_set.kind == UnitSet.Kind.CHANNELS:
        return [(d, unit_set) for d in dictionaries]
    if unit_set.kind in DICTIONARY_KINDS:
        return [(unit_set, c) for c in channels]
    return []


def basis_comparison(dictionary: UnitSet, channels: UnitSet) -> dict[str, Any] | None:
    """Mean ± sem of each basis measure over the dictionary's directions and over as many of
    the layer's channels (a seeded random sample when the layer has more), on the image set
    both were measured on."""
    import numpy as np

    image_sets = set(
        Measure.objects.filter(unit__unit_set=dictionary, name__in=BASIS_MEASURES)
        .values_list("image_set_id", flat=True)
    ) & set(
        Measure.objects.filter(unit__unit_set=channels, name__in=BASIS_MEASURES)
        .values_list("image_set_id", flat=True)
    )  # fmt: skip
    if not image_sets:
        return None
    image_set_id = min(image_sets)
    n = dictionary.units.count()
    channel_indices = sorted(channels.units.values_list("index", flat=True))
    if len(channel_indices) > n:
        channel_indices = sorted(random.Random(0).sample(channel_indices, n))
    rows = []
    for name in BASIS_MEASURES:
        sides = []
        for label, unit_set, indices in (
            (dictionary.name, dictionary, None), (channels.name, channels, channel_indices)
        ):  # fmt: skip
            values = Measure.objects.filter(
                unit__unit_set=unit_set, image_set_id=image_set_id, name=name,
                value__isnull=False,
            )  # fmt: skip
            if indices is not None:
                values = values.filter(unit__index__in=indices)
            numbers = np.array(list(values.values_list("value", flat=True)), float)
            if len(numbers):
                sem = float(numbers.std(ddof=1) / np.sqrt(len(numbers))) if len(numbers) > 1 else 0
                sides.append({"label": label, "mean": float(numbers.mean()), "sem": sem,
                              "n": len(numbers)})  # fmt: skip
        if len(sides) == 2:
            rows.append({"measure": name, "sides": sides})
    image_set = ImageSet.objects.get(pk=image_set_id)
    return {
        "dictionary": dictionary,
        "channels": channels,
        "image_set": image_set,
        "matched": min(n, channels.units.count()),
        "rows": rows,
        "svg": mark_safe(atlas_plots.inline_svg(atlas_plots.basis_figure(rows))),
    }  # noqa: S308


def unit_set_context(unit_set: UnitSet) -> dict[str, Any]:
    names, matrix = compare.spearman_matrix(unit_set)
    curves = list(AblationCurve.objects.filter(unit_set=unit_set).select_related("image_set"))
    names_table, rows = queries.measure_table(unit_set)
    comparisons = [basis_comparison(d, c) for d, c in comparison_partners(unit_set)]
    return {
        "unit_set": unit_set,
        "measure_names": names,
        "matrix": [{"name": n, "values": row} for n, row in zip(names, matrix, strict=True)],
        "spearman_svg": mark_safe(  # noqa: S308 - matplotlib's own SVG
            atlas_plots.inline_svg(atlas_plots.spearman_figure(names, matrix))
        ),
        "curves": curves,
        "curves_svg": mark_safe(  # noqa: S308
            atlas_plots.inline_svg(atlas_plots.ablation_curves_figure(curves))
        ),
        "dendrograms": dendrograms(unit_set),
        "comparisons": [c for c in comparisons if c is not None],
        "units": _unit_links(unit_set, names_table, rows),
        "queue_url": reverse("atlas-queue") + f"?ids={unit_set.pk}",
        "api_csv": f"/api/v1/researcher/atlas/unit-sets/{unit_set.pk}/measures.csv",
    }


def _unit_links(
    unit_set: UnitSet, names: list[str], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    ids = dict(unit_set.units.values_list("index", "pk"))
    return [
        {"index": row["index"],
         "url": reverse("admin:stimuli_unit_change", args=[ids[row["index"]]]),
         "values": [row[name] for name in names]}
        for row in rows[:500]
    ]  # fmt: skip


def _researcher(request: HttpRequest) -> None:
    if not permissions.is_researcher(request.user):
        raise Http404("Not found.")


def unit_set_page(request: HttpRequest, pk: int) -> HttpResponse:
    _researcher(request)
    unit_set = UnitSet.objects.select_related("layer__network").filter(pk=pk).first()
    if unit_set is None:
        raise Http404("No such unit set.")
    context = {**admin.site.each_context(request), "title": f"Atlas: {unit_set}",
               **unit_set_context(unit_set)}  # fmt: skip
    return render(request, "atlas/unit_set_atlas.html", context)


# --- Queueing the atlas's jobs from the admin --------------------------------------------------

KIND_CHOICES = [
    (jobkinds.COMPUTE_ACTIVITY, "activation measures (one pass for all chosen unit sets)"),
    (jobkinds.COMPUTE_ABLATION, "single-unit ablations"),
    (jobkinds.COMPUTE_ABLATION_CURVES, "group ablation curves against random groups"),
    (jobkinds.COMPUTE_POPULATIONS, "populations (hierarchical clustering)"),
]


class QueueAtlasForm(forms.Form):
    """One atlas job's parameters; each kind reads the fields it needs (the planner checks
    them and refuses what cannot run)."""

    kind = forms.ChoiceField(choices=KIND_CHOICES)
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.order_by("name"))
    measures = forms.MultipleChoiceField(
        choices=[(m, m) for m in jobkinds.ACTIVITY_MEASURES], required=False,
        help_text="activation measures (none ticked: all)",
    )  # fmt: skip
    measures_extra = forms.CharField(
        required=False, help_text="more activation measures by name, comma-separated"
    )
    classes = forms.ChoiceField(choices=[(c, c) for c in jobkinds.CLASS_SOURCES])
    mode = forms.ChoiceField(choices=[(m, m) for m in jobkinds.ABLATION_MODES])
    rank_by = forms.CharField(
        required=False, initial="mean,csi,ablation_kl",
        help_text="curves: measures to rank the units by, comma-separated",
    )  # fmt: skip
    ks = forms.CharField(
        required=False, help_text="curves: group sizes k, e.g. 1,2,4 (blank: doubling)"
    )
    repeats = forms.IntegerField(required=False, min_value=1, initial=3)
    basis = forms.ChoiceField(choices=[(b, b) for b in jobkinds.POPULATION_BASES])
    threshold = forms.FloatField(
        required=False, help_text="populations: cut distance 1 − r (blank: best silhouette)"
    )

    def params(self, unit_sets: list[UnitSet]) -> dict[str, Any]:
        data = self.cleaned_data
        kind, base = data["kind"], {"image_set": data["image_set"].pk}
        if kind == jobkinds.COMPUTE_ACTIVITY:
            measures = [*data["measures"], *_names(data["measures_extra"])]
            return {**base, "unit_sets": [u.pk for u in unit_sets], "classes": data["classes"],
                    **({"measures": measures} if measures else {})}  # fmt: skip
        if len(unit_sets) != 1:
            raise ValidationError("choose one unit set for this kind of job")
        base["unit_set"] = unit_sets[0].pk
        if kind == jobkinds.COMPUTE_ABLATION:
            return {**base, "mode": data["mode"], "classes": data["classes"]}
        if kind == jobkinds.COMPUTE_ABLATION_CURVES:
            ks = _whole_numbers(data["ks"])
            return {**base, "mode": data["mode"], "rank_by": _names(data["rank_by"]),
                    "repeats": data["repeats"] or 3, **({"ks": ks} if ks else {})}  # fmt: skip
        threshold = data["threshold"]
        return {**base, "basis": data["basis"],
                **({"threshold": threshold} if threshold is not None else {})}  # fmt: skip


def _names(text: str) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _whole_numbers(text: str) -> list[int]:
    try:
        return [int(k) for k in _names(text)]
    except ValueError:
        message = f"ks must be whole numbers separated by commas (got {text!r})"
        raise ValidationError(message) from None


def _chosen_unit_sets(request: HttpRequest) -> list[UnitSet]:
    raw = request.POST.get("ids") or request.GET.get("ids", "")
    ids = [int(i) for i in raw.split(",") if i.strip().isdigit()]
    unit_sets = list(UnitSet.objects.filter(pk__in=ids).order_by("pk"))
    if not unit_sets:
        raise Http404("Choose unit sets in the unit-set list first.")
    return unit_sets


def queue_jobs(request: HttpRequest) -> HttpResponse:
    """GET: the form for the chosen unit sets; POST: queue one job, or say why not (400,
    nothing queued)."""
    _researcher(request)
    unit_sets = _chosen_unit_sets(request)
    form = QueueAtlasForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():  # a refusal leaves no Job row and sends nothing
                job = stimuli_services.do_queue_job(
                    form.cleaned_data["kind"], form.params(unit_sets), request.user
                )
        except ValidationError as err:
            error = " ".join(err.messages)
        else:
            messages.info(request, f"{job.kind} queued as job #{job.pk}.")
            return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job.pk]))
    elif request.method == "POST":
        error = "; ".join(f"{field}: {' '.join(map(str, e))}" for field, e in form.errors.items())
    context = {**admin.site.each_context(request), "title": "Queue an atlas job",
               "form": form, "unit_sets": unit_sets, "error": error,
               "ids": ",".join(str(u.pk) for u in unit_sets)}  # fmt: skip
    return render(request, "atlas/queue_jobs.html", context, status=400 if error else 200)


@admin.action(description="Atlas: queue measures, ablations, curves or populations…")
def queue_atlas_jobs(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[UnitSet]
) -> HttpResponseRedirect:
    """The unit-set list's action: the queue form for the chosen unit sets."""
    ids = ",".join(str(pk) for pk in queryset.order_by("pk").values_list("pk", flat=True))
    return HttpResponseRedirect(reverse("atlas-queue") + f"?ids={ids}")


def urlpatterns() -> list[URLPattern]:
    """Mounted under admin/ before the admin's own URLs (backend/urls.py)."""
    wrap = admin.site.admin_view
    return [
        path("atlas/unit-set/<int:pk>/", wrap(unit_set_page), name="atlas-unit-set"),
        path("atlas/unit-set/queue/", wrap(queue_jobs), name="atlas-queue"),
    ]
