"""Admin pages for stimuli: networks (with a layer picker), image sets (folder, ZIP, demo),
unit sets with their "fit" and "compute exemplars" actions, units with their exemplar grids,
and Jobs with live progress bars."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from backend.stimuli import access, attributes, jobkinds, queries, services
from backend.stimuli.admin_access import CatalogueScoped
from backend.stimuli.models import (
    ExemplarSet,
    Image,
    ImageSet,
    Job,
    Layer,
    Network,
    Shard,
    Unit,
    UnitSet,
    Visualization,
)
from backend.studies import permissions


class NetworkForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Network
        fields = ["name", "source", "description"]

    def clean_source(self) -> str:
        source = self.cleaned_data["source"].strip()
        if self.instance.pk is None or source != self.instance.source:
            try:
                self.inspected = services.inspect_network(source)
            except ValidationError as err:
                raise ValidationError(err.messages) from None
        return str(source)


class LayerInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Layer
    fields = ["name", "shape"]
    readonly_fields = ["name", "shape"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Network)
class NetworkAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    form = NetworkForm
    list_display = ["name", "source", "layer_count", "owner", "created_at"]
    search_fields = ["name", "source"]
    readonly_fields = ["owner"]
    inlines = [LayerInline]
    actions = ["share"]

    @admin.display(description="layers")
    def layer_count(self, network: Network) -> int:
        return network.layers.count()

    def save_model(self, request: HttpRequest, obj: Network, form: Any, change: bool) -> None:
        inspected = getattr(form, "inspected", None)
        if inspected is None:
            obj.save()
        else:
            services.do_save_network(obj, *inspected)


@admin.register(Layer)
class LayerAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "network", "shape"]
    list_filter = ["network"]
    search_fields = ["name", "network__name"]
    readonly_fields = ["network", "name", "shape", "position"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ImageSetForm(forms.ModelForm):  # type: ignore[type-arg]
    zip_file = forms.FileField(required=False, help_text="for an uploaded ZIP (ImageFolder layout)")
    attributes_csv = forms.FileField(
        required=False,
        label="attributes CSV",
        help_text=(
            "optional, once imported: per-image attributes beyond the label, a 'name' column "
            "(each image's path as imported) and one column per attribute; an empty cell "
            "removes that attribute (docs/stimuli.md)"
        ),
    )

    class Meta:
        model = ImageSet
        fields = ["name", "description", "origin", "source", "source_rule"]
        help_texts = {"source": "for a server folder: its absolute path on the worker machines"}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        origin = cleaned.get("origin")
        if origin == ImageSet.Origin.ZIP and not cleaned.get("zip_file") and not self.instance.pk:
            self.add_error("zip_file", "Upload the ZIP archive.")
        if origin == ImageSet.Origin.FOLDER and not cleaned.get("source"):
            self.add_error("source", "Give the folder's path on the worker machines.")
        self._check_attributes(cleaned.get("attributes_csv"))
        return cleaned

    def _check_attributes(self, upload: Any) -> None:
        """The attributes CSV parses and names only this set's images (else nothing is saved)."""
        if upload is None:
            return
        if not self.instance.pk:
            self.add_error("attributes_csv", "Add attributes once the images are imported.")
            return
        try:
            with transaction.atomic():
                attributes.do_set_image_attributes(self.instance, upload.read())
                transaction.set_rollback(True)  # a dry run: save_model applies it
        except ValidationError as err:
            self.add_error("attributes_csv", err.messages)
        upload.seek(0)


@admin.register(ImageSet)
class ImageSetAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ImageSetForm
    list_display = ["name", "origin", "image_count", "source_count", "owner", "created_at"]
    readonly_fields = ["owner", "report", "attribute_table", "preview"]
    actions = ["download_archive", "share"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["origin", "source", "source_rule"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    @admin.display(description="images")
    def image_count(self, image_set: ImageSet) -> int:
        return image_set.members.count()

    @admin.display(description="source photos")
    def source_count(self, image_set: ImageSet) -> str:
        named = image_set.members.exclude(source="")
        if not named.exists():
            return "each its own"
        return str(named.values("source").distinct().count())

    @admin.action(description="Download as a ZIP (ImageFolder layout with images.csv)")
    def download_archive(
        self, request: HttpRequest, queryset: QuerySet[ImageSet]
    ) -> FileResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Choose one image set to download.")
            return None
        image_set = queryset.get()
        archive = services.image_set_archive(image_set)
        return FileResponse(archive, as_attachment=True, filename=f"{image_set.name}.zip")

    @admin.display(description="import report")
    def report(self, image_set: ImageSet) -> SafeString:
        report = image_set.import_report or {}
        skipped = format_html_join(
            "", "<li>{}: {}</li>", ((s["name"], s["reason"]) for s in report.get("skipped", []))
        )
        return format_html(
            "<p>{}</p><ul>{}</ul>", report.get("summary", "not imported yet"), skipped
        )

    @admin.display(description="first images")
    def preview(self, image_set: ImageSet) -> SafeString:
        members = image_set.members.select_related("image")[:24]
        return image_grid((m.image, m.source or m.label) for m in members)

    @admin.display(description="attributes")
    def attribute_table(self, image_set: ImageSet) -> SafeString:
        summary = attributes.attribute_summary(image_set)
        if not summary:
            return format_html("<p>{}</p>", "none (upload an attributes CSV to add some)")
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (column, sum(counts.values()),
                 ", ".join(f"{value} ({n})" for value, n in counts.most_common(12))
                 + (" …" if len(counts) > 12 else ""))
                for column, counts in summary.items()
            ),
        )  # fmt: skip
        return format_html(
            "<table><tr><th>attribute</th><th>images</th><th>values</th></tr>{}</table>", rows
        )

    def save_model(self, request: HttpRequest, obj: ImageSet, form: Any, change: bool) -> None:
        if change:
            obj.save()
            upload = form.cleaned_data.get("attributes_csv")
            if upload is not None:
                done = attributes.do_set_image_attributes(obj, upload.read())
                messages.info(
                    request,
                    f"Attributes {', '.join(done['columns'])} set on {done['images']} images.",  # type: ignore[arg-type]
                )
            return
        upload = form.cleaned_data.get("zip_file")
        if upload is not None:
            obj.source = services.store_upload(upload)
        obj.save()
        job = services.do_queue_job(Job.Kind.IMPORT_IMAGES, {"image_set": obj.pk}, request.user)
        messages.info(request, f"Import queued as job #{job.pk}; see its progress under Jobs.")


@admin.register(UnitSet)
class UnitSetAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "layer", "kind", "n_units", "ready", "reconstruction_error", "owner"]
    list_filter = ["kind", "layer__network"]
    autocomplete_fields = ["layer"]
    readonly_fields = ["owner", "reconstruction_error", "fit_seconds", "fitted_at"]
    actions = ["fit", "compute_exemplars", "share"]

    @admin.display(boolean=True)
    def ready(self, unit_set: UnitSet) -> bool:
        return unit_set.is_ready

    def save_model(self, request: HttpRequest, obj: UnitSet, form: Any, change: bool) -> None:
        services.do_save_unit_set(obj)

    @admin.action(description="Fit dictionary / directions on the unit set's image set")
    def fit(self, request: HttpRequest, queryset: QuerySet[UnitSet]) -> None:
        for unit_set in queryset:
            if not unit_set.needs_fit:
                messages.warning(request, f"{unit_set}: {unit_set.kind} units need no fitting.")
                continue
            try:
                job = services.do_queue_job(
                    Job.Kind.FIT_UNIT_SET, {"unit_set": unit_set.pk}, request.user
                )
            except ValidationError as err:
                messages.error(request, f"{unit_set}: {' '.join(err.messages)}")
                continue
            messages.info(request, f"{unit_set}: fitting queued as job #{job.pk}.")

    @admin.action(description="Compute exemplars (one streaming pass per network and image set)")
    def compute_exemplars(self, request: HttpRequest, queryset: QuerySet[UnitSet]) -> None:
        try:
            queued = services.do_queue_exemplar_jobs(list(queryset), request.user)
        except ValidationError as err:
            messages.error(request, " ".join(err.messages))
            return
        for job in queued:
            messages.info(request, f"Exemplars queued as job #{job.pk}.")


@admin.register(Unit)
class UnitAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    """A unit's page is for looking: its feature visualizations first, then its exemplars, then
    its activation statistics as a table. Units come from their unit set: nothing to change or
    delete here (the list's actions queue jobs for the selected units)."""

    list_display = ["__str__", "unit_set", "index"]
    list_filter = ["unit_set"]
    search_fields = ["unit_set__name"]
    fieldsets = [
        (None, {"fields": ["unit_set", "index"]}),
        ("Feature visualizations", {"fields": ["visualizations"]}),
        ("Natural exemplars", {"fields": ["exemplars"]}),
        ("Activation statistics (last exemplar pass)", {"fields": ["activation_stats"]}),
        ("Descriptions in words (soft-WPMI)", {"fields": ["descriptions"]}),
    ]
    readonly_fields = ["unit_set", "index", "visualizations", "exemplars", "activation_stats",
                       "descriptions"]  # fmt: skip
    actions = ["render_lucent", "render_imi", "compute_occlusion"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """The unit, with who looks at it: its page shows exemplars and descriptions only over
        the image sets the viewer may see (a shared unit set's may be computed on anyone's)."""
        unit = super().get_object(request, object_id, from_field)
        unit.viewer = request.user
        return unit

    @admin.action(description="Render feature visualizations (Lucent defaults, min and max)")
    def render_lucent(self, request: HttpRequest, queryset: QuerySet[Unit]) -> None:
        self._queue_render(request, queryset, "lucent", n_images=1)

    @admin.action(description="Render feature visualizations (IMI recipe, 5 diverse images)")
    def render_imi(self, request: HttpRequest, queryset: QuerySet[Unit]) -> None:
        self._queue_render(request, queryset, "imi", n_images=5)

    def _queue_render(
        self, request: HttpRequest, queryset: QuerySet[Unit], preset: str, n_images: int
    ) -> None:
        params = {"units": sorted(queryset.values_list("pk", flat=True)), "preset": preset,
                  "n_images": n_images}  # fmt: skip
        job = services.do_queue_job(Job.Kind.RENDER_VISUALIZATIONS, params, request.user)
        messages.info(request, f"Visualizations queued as job #{job.pk}.")

    @admin.action(description="Compute occlusion maps (40 %% occluder, stride 2 px)")
    def compute_occlusion(self, request: HttpRequest, queryset: QuerySet[Unit]) -> None:
        lacking = [str(u) for u in queryset if not u.exemplar_sets.exists()]
        if lacking:
            messages.error(request, f"Compute exemplars first for: {', '.join(lacking)}.")
            return
        params = {"units": sorted(queryset.values_list("pk", flat=True)),
                  "occluder_fraction": 0.4, "stride": 2}  # fmt: skip
        job = services.do_queue_job(Job.Kind.COMPUTE_OCCLUSION, params, request.user)
        messages.info(request, f"Occlusion maps queued as job #{job.pk}.")

    @admin.display(description="exemplars")
    def exemplars(self, unit: Unit) -> SafeString:
        exemplar_sets = unit.exemplar_sets.select_related("image_set")
        viewer = getattr(unit, "viewer", None)
        if viewer is not None:
            exemplar_sets = exemplar_sets.filter(image_set__in=access.visible_image_sets(viewer))
        sections = [exemplar_set_html(es) for es in exemplar_sets]
        return format_html_join("", "{}", ((s,) for s in sections)) or format_html(
            "<p>{}</p>", "No exemplars yet: run “Compute exemplars” on the unit set."
        )

    @admin.display(description="images")
    def visualizations(self, unit: Unit) -> SafeString:
        rows = list(
            unit.visualizations.select_related("image").order_by("-sign", "preset", "index")
        )
        if not rows:
            return format_html(
                "<p>{}</p>",
                "No feature visualizations yet: select the unit in the list and run a "
                "“Render feature visualizations” action.",
            )
        groups: dict[str, list[Visualization]] = {}
        for visualization in rows:
            groups.setdefault(visualization_group(visualization), []).append(visualization)
        parts = [
            format_html(
                "<h4>{}</h4>{}",
                title,
                image_grid((v.image, visualization_caption(v)) for v in members),
            )  # fmt: skip
            for title, members in groups.items()
        ]
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="descriptions")
    def descriptions(self, unit: Unit) -> SafeString:
        from backend.atlas.descriptions import description_html

        return description_html(unit, getattr(unit, "viewer", None))

    @admin.display(description="statistics")
    def activation_stats(self, unit: Unit) -> SafeString:
        if not unit.stats:
            return format_html("<p>{}</p>", "Not computed yet: compute the exemplars.")
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>",
            ((STAT_LABELS.get(key, key), _stat(value)) for key, value in unit.stats.items()),
        )  # fmt: skip
        return format_html("<table class='psylens-stats'>{}</table>", rows)


STAT_LABELS = {
    "mean": "mean activation",
    "std": "standard deviation",
    "min": "lowest activation",
    "max": "highest activation",
    "fraction_positive": "share of images with a positive activation",
    "n_images": "images in the pass",
}


def _stat(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def visualization_group(visualization: Visualization) -> str:
    """The heading a visualization is shown under: direction and recipe."""
    direction = "Maximally" if visualization.sign >= 0 else "Minimally"
    recipe = visualization.preset or visualization.method
    method = f", method {visualization.method}" if visualization.method != recipe else ""
    return f"{direction} activating (preset {recipe}{method}, seed {visualization.seed})"


def visualization_caption(visualization: Visualization) -> str:
    which = (
        "image 1 (non-diverse)" if visualization.index == 0 else f"image {visualization.index + 1}"
    )
    return f"{which}: activation {visualization.final_activation:.2f}"


def exemplar_set_html(exemplar_set: ExemplarSet) -> SafeString:
    images = queries.images_by_id(exemplar_set)
    parts = [format_html("<h3>On image set {}</h3>", exemplar_set.image_set.name)]
    for title, entries in queries.exemplar_sections(exemplar_set):
        labelled = (
            (images[e["image"]], f"{e['value']:.3f}") for e in entries if e["image"] in images
        )
        parts.append(format_html("<h4>{}</h4>{}", title, image_grid(labelled)))
    return format_html_join("", "{}", ((p,) for p in parts))


def image_grid(items: Any) -> SafeString:
    cells = format_html_join(
        "",
        '<figure style="display:inline-block;margin:2px;text-align:center">'
        '<img src="{}" width="96" height="96" style="object-fit:cover" loading="lazy">'
        '<figcaption style="font-size:11px">{}</figcaption></figure>',
        ((image.url, caption) for image, caption in items),
    )
    return format_html('<div class="psylens-grid">{}</div>', cells)


@admin.register(Image)
class ImageAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["sha256", "kind", "width", "height", "created_at"]
    list_filter = ["kind"]
    search_fields = ["sha256"]
    readonly_fields = ["sha256", "file", "width", "height", "kind", "thumbnail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def thumbnail(self, image: Image) -> SafeString:
        return format_html('<img src="{}" style="max-width:256px">', image.url)


@admin.register(Visualization)
class VisualizationAdmin(CatalogueScoped, admin.ModelAdmin):  # type: ignore[type-arg]
    scope_through = {"unit": Unit}
    list_display = [
        "unit",
        "method",
        "preset",
        "index",
        "steps",
        "final_activation",
        "exceeds_top_exemplar",
    ]
    list_filter = ["method", "preset", "unit__unit_set"]
    readonly_fields = [field.name for field in Visualization._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ShardInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Shard
    fields = ("label", "covers_text", "shown_state", "progress_bar", "attempts", "worker_host",
              "duration", "message")  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "shards"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="shard")
    def label(self, shard: Shard) -> str:
        return shard.label

    @admin.display(description="covers")
    def covers_text(self, shard: Shard) -> str:
        return "" if shard.role == Shard.Role.MERGE else jobkinds.describe_covers(shard.covers)

    @admin.display(description="state")
    def shown_state(self, shard: Shard) -> SafeString:
        state = shard.display_state
        if state == "stalled":
            age = (timezone.now() - shard.heartbeat_at).total_seconds()  # type: ignore[operator]
            return format_html(
                '<strong class="shard-stalled">stalled</strong> (no heartbeat for {} s)', int(age)
            )
        return format_html("{}", state)

    @admin.display(description="progress")
    def progress_bar(self, shard: Shard) -> SafeString:
        return format_html(
            '<progress max="100" value="{}"></progress>', round(shard.progress * 100)
        )

    @admin.display(description="duration")
    def duration(self, shard: Shard) -> str:
        return seconds_text(shard.duration_seconds)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "kind",
        "subject",
        "state",
        "progress_bar",
        "shards",
        "message",
        "duration",
        "eta",
        "hosts",
        "created_at",
    ]
    list_filter = ["kind", "state"]
    readonly_fields = [
        "kind", "subject", "params", "state", "progress_bar", "shards", "eta", "hosts",
        "message", "error_text", "result", "attempts", "created_by", "created_at",
        "started_at", "finished_at",
    ]  # fmt: skip
    exclude = ["error", "progress", "worker_host"]
    inlines = [ShardInline]
    actions = ["cancel"]

    class Media:
        js = ["stimuli/job-progress.js"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        """A researcher's own jobs (superusers: all), on every page and JSON endpoint."""
        return permissions.visible_jobs(request.user)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        job = super().get_object(request, object_id, from_field)
        if job is None:
            raise Http404("No such job.")
        return job

    @admin.display(description="works on")
    def subject(self, job: Job) -> str:
        return job_subject(job.params or {})

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> SafeString:
        percent = round(job.progress * 100)
        return format_html(
            '<progress class="job-progress" data-job="{}" data-state="{}" max="100" value="{}">'
            "</progress> <span class=\"job-percent\" data-job=\"{}\">{}%</span>",
            job.pk, job.state, percent, job.pk, percent,
        )  # fmt: skip

    @admin.display(description="shards")
    def shards(self, job: Job) -> SafeString:
        return format_html(
            '<span class="job-shards" data-job="{}">{}</span>',
            job.pk,
            shard_counts_text(job.shard_summary()["shards"]),
        )

    @admin.display(description="hosts")
    def hosts(self, job: Job) -> SafeString:
        hosts = ", ".join(job.shard_summary()["hosts"])
        return format_html('<span class="job-hosts" data-job="{}">{}</span>', job.pk, hosts)

    @admin.display(description="ETA")
    def eta(self, job: Job) -> SafeString:
        text = seconds_text(job.eta_seconds)
        return format_html('<span class="job-eta" data-job="{}">{}</span>', job.pk, text)

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        return seconds_text(job.duration_seconds)

    @admin.display(description="error")
    def error_text(self, job: Job) -> SafeString:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", job.error)

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                services.do_cancel_job(job, request.user)
            except ValidationError as err:
                messages.warning(request, " ".join(err.messages))
                continue
            messages.info(request, f"{job} cancelled: its running shards stop at their next batch.")

    def get_urls(self) -> list[URLPattern]:
        progress = self.admin_site.admin_view(self.progress_json)
        cancel = self.admin_site.admin_view(self.cancel_view)
        return [
            path("progress.json", progress, name="stimuli_job_progress"),
            path("<int:job_id>/cancel/", cancel, name="stimuli_job_cancel"),
            *super().get_urls(),
        ]

    def progress_json(self, request: HttpRequest) -> JsonResponse:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.isdigit()][:200]
        rows = self.get_queryset(request).filter(pk__in=ids)
        return JsonResponse({"jobs": [job.as_progress() for job in rows]})

    def cancel_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        if request.method != "POST":
            return JsonResponse({"detail": "POST to cancel the job."}, status=405)
        job = self.get_queryset(request).filter(pk=job_id).first()
        if job is None:
            return JsonResponse({"detail": f"job {job_id} does not exist"}, status=404)
        try:
            services.do_cancel_job(job, request.user)
        except ValidationError as err:
            messages.warning(request, " ".join(err.messages))
        else:
            messages.info(request, f"{job} cancelled: its running shards stop at their next batch.")
        return HttpResponseRedirect(reverse("admin:stimuli_job_change", args=[job_id]))

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           **kwargs: Any) -> HttpResponse:  # fmt: skip
        job = context.get("original")
        if job is not None and not job.is_finished:
            context["cancel_url"] = reverse("admin:stimuli_job_cancel", args=[job.pk])
        return super().render_change_form(request, context, *args, **kwargs)


def shard_counts_text(counts: dict[str, int]) -> str:
    """ "3 done · 2 running · 1 stalled · 4 queued" (states with no shard left out)."""
    names = {"succeeded": "done"}
    parts = [f"{n} {names.get(state, state)}" for state, n in counts.items() if n]
    return " · ".join(parts) or "no shards"


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _ids(value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _names(model: Any, ids: list[int], shown: int = 3) -> str:
    names = list(model.objects.filter(pk__in=ids[:shown]).values_list("name", flat=True))
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(sorted(names)) + more if names else "(deleted)"


def job_subject(params: dict[str, Any]) -> str:
    """What a job works on, in words, from its parameters: the image sets, networks, layers,
    unit sets or units it names (read defensively: a job of another version may name others)."""
    parts = []
    if units := _ids(params.get("units")):
        sets = UnitSet.objects.filter(units__in=units).distinct().values_list("name", flat=True)
        parts.append(f"{len(units)} unit(s) of {', '.join(sorted(sets)) or '(deleted)'}")
    for key, label in (("unit_sets", "unit sets"), ("unit_set", "unit set")):
        if ids := _ids(params.get(key)):
            unit = params.get("unit") if key == "unit_set" else None
            which = f"unit {unit} of " if _ids(unit) else ""
            parts.append(f"{which}{label} {_names(UnitSet, ids)}")
    if ids := _ids(params.get("layers")):
        layers = Layer.objects.filter(pk__in=ids[:3]).select_related("network")
        names = sorted(f"{layer.network.name} {layer.name}" for layer in layers)
        more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
        parts.append(f"layers {', '.join(names) + more if names else '(deleted)'}")
    for key, label in (("network", "network"), ("base", "base network")):
        if ids := _ids(params.get(key)):
            parts.append(f"{label} {_names(Network, ids)}")
    for key, label in (("image_set", "image set"), ("train_set", "training set"),
                       ("eval_set", "held-out set")):  # fmt: skip
        if ids := _ids(params.get(key)):
            parts.append(f"{label} {_names(ImageSet, ids)}")
    if isinstance(params.get("preset"), str) and params["preset"]:
        parts.append(f"preset {params['preset']}")
    return "; ".join(parts) or "—"


# --- #15: the atlas's action on the unit-set list (its form: backend/atlas/atlas_pages.py) ---
from backend.atlas.atlas_pages import queue_atlas_jobs  # noqa: E402

UnitSetAdmin.actions = [*UnitSetAdmin.actions, queue_atlas_jobs]  # type: ignore[list-item]
