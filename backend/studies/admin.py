"""The study admin, in the order a study is designed: the preset first (it decides most of the
rest), then texts, units, conditions, timing, practice, catch trials, exclusion, recruitment.
Buttons on the change page build the task lists, preview as a participant (pilot mode: each
researcher's own pilot session, resumed until completed), move the study through its states and
clone it; what launching still needs is listed with links to its fields. Researchers (staff)
see only the studies they own or collaborate on; any other is a 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from backend.participation.pilots import preview_participant_id
from backend.stimuli import access
from backend.studies import builder, links, permissions, presets, readiness, services
from backend.studies.models import Condition, PracticeTrial, Study, TaskList, Trial

# Long links wrap rather than widen the page.
WRAP = "white-space:pre-wrap;word-break:break-all;max-width:60em"
CATALOGUE_PICKERS = {
    "unit_sets": access.visible_unit_sets,
    "catch_units": access.visible_units,
    "image_set": access.visible_image_sets,
}
ACTIONS = ("build", "queue_missing", "pilot", "edit", "launch", "pause", "close", "clone")


class StudyForm(forms.ModelForm):  # type: ignore[type-arg]
    apply_preset = forms.ChoiceField(
        choices=presets.PRESET_CHOICES,
        required=False,
        help_text="Fills every parameter and replaces the conditions with the published ones.",
    )

    class Meta:
        model = Study
        fields = ["slug", "title"]  # the admin's fieldsets add the rest (never the owner)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        excluded = self.fields.get("excluded_studies")
        if isinstance(excluded, forms.ModelMultipleChoiceField) and self.instance.pk:
            # The admin has already narrowed the choices to the studies the researcher may see.
            shown = excluded.queryset if excluded.queryset is not None else Study.objects.none()
            excluded.queryset = shown.exclude(pk=self.instance.pk)

    def clean(self) -> dict[str, Any]:
        """A study uses only catalogue items its owner may see (a collaborator may pick only
        what the owner could)."""
        cleaned: dict[str, Any] = super().clean() or {}
        if self.instance.owner_id is None:
            return cleaned  # a new study: the pickers already hold only the creator's items
        held = {name: cleaned[name] for name in ("unit_sets", "catch_units") if name in cleaned}
        try:
            access.check_study_items(
                self.instance.owner,
                unit_sets=list(held.get("unit_sets") or []),
                catch_units=list(held.get("catch_units") or []),
            )
        except ValidationError as err:
            for name, messages_ in err.message_dict.items():
                self.add_error(name, messages_)
        return cleaned

    def clean_excluded_studies(self) -> Any:
        studies = self.cleaned_data.get("excluded_studies")
        if studies is not None and self.instance.pk and self.instance in studies:
            raise ValidationError("A study cannot exclude its own participants.")
        return studies


class StudyPartInline(admin.TabularInline):  # type: ignore[type-arg]
    """A part of a study edited on its page: whoever may see the study may edit its parts
    (the study admin has already checked that), whatever their per-model permissions, until
    the study's design is frozen (live, paused, closed): then they are shown, not editable."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_researcher(request.user)

    def _may_edit(self, request: HttpRequest, obj: Any) -> bool:
        frozen = isinstance(obj, Study) and obj.is_design_frozen
        return permissions.is_researcher(request.user) and not frozen

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)


class ConditionInline(StudyPartInline):
    model = Condition
    fields = ["position", "name", "explanation", "n_references", "sides", "query_selection",
              "visualization_preset", "unit_group", "exclusion_rules",
              "shows_description", "reference_band", "query_band"]  # fmt: skip
    extra = 0
    # Narrow widgets: the row fits a laptop screen (the defaults made it about 2,400 px wide).
    NARROW = {
        "position": forms.NumberInput(attrs={"style": "width:3em"}),
        "name": forms.TextInput(attrs={"style": "width:6em"}),
        "n_references": forms.NumberInput(attrs={"style": "width:3em"}),
        "visualization_preset": forms.TextInput(attrs={"style": "width:4.5em"}),
        "unit_group": forms.NumberInput(attrs={"style": "width:3em"}),
        "exclusion_rules": forms.Textarea(attrs={"rows": 2, "style": "width:6em"}),
        "reference_band": forms.TextInput(attrs={"style": "width:4.5em"}),
        "query_band": forms.TextInput(attrs={"style": "width:4.5em"}),
    }
    # Short column headers (a header is as wide as its longest word); docs/studies.md names
    # each column in full.
    HEADERS = {"position": "#", "n_references": "refs", "visualization_preset": "vis. preset",
               "unit_group": "group", "exclusion_rules": "exclusion", "shows_description": "text",
               "reference_band": "ref. band", "query_selection": "queries"}  # fmt: skip

    class Media:
        css = {"all": ["studies/study-admin.css"]}

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.NARROW:
            kwargs["widget"] = self.NARROW[db_field.name]
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in self.HEADERS:
            field.label = self.HEADERS[db_field.name]
        if isinstance(field, forms.TypedChoiceField | forms.ChoiceField):
            field.widget.attrs["style"] = "max-width:6.5em"
        return field


class PracticeTrialInline(StudyPartInline):
    model = PracticeTrial
    fields = ["index", "unit", "condition", "is_obvious", "filled"]
    readonly_fields = ["filled"]
    raw_id_fields = ["unit"]
    extra = 0
    verbose_name_plural = "practice trials (hand-picked; images filled when the lists are built)"

    @admin.display(description="images")
    def filled(self, practice: PracticeTrial) -> str:
        return "filled" if practice.queries else "not yet built"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        """Offer only this study's conditions (the form class is built anew per request)."""
        formset = super().get_formset(request, obj, **kwargs)
        field = formset.form.base_fields.get("condition")
        if isinstance(field, forms.ModelChoiceField):
            field.queryset = (
                Condition.objects.filter(study=obj) if obj else Condition.objects.none()
            )
        return formset


class TrialInline(permissions.ResearcherReadOnly, admin.TabularInline):  # type: ignore[type-arg]
    """A task list's trials as built, answer key included (researchers only)."""

    model = Trial
    fields = ("index", "block", "condition", "unit", "kind", "is_catch", "queries",
              "correct_query", "query_source", "description")  # fmt: skip
    readonly_fields = ("index", "block", "condition", "unit", "kind", "is_catch", "queries",
                       "correct_query", "query_source", "description")  # fmt: skip
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(TaskList)
class TaskListAdmin(permissions.ResearcherReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: what each participant slot holds and how far it has been served."""

    list_display = ["__str__", "study", "index", "sessions_started", "sessions_completed",
                    "valid_results", "retired"]  # fmt: skip
    list_filter = [("study", admin.RelatedOnlyFieldListFilter)]  # the plain one lists every study
    readonly_fields = ["study", "index", "seed", "condition_order", "practice_blocks",
                       "sessions_started",
                       "sessions_completed", "valid_results", "retired"]  # fmt: skip
    inlines = [TrialInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskList]:
        return TaskList.objects.filter(study__in=permissions.visible_studies(request.user))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        task_list = super().get_object(request, object_id, from_field)
        if task_list is None:
            raise Http404("No such task list.")
        return task_list


# What a live, paused or closed study's page may still change: the fields the model allows
# (Study.EDITABLE_ONCE_LIVE), who collaborates, and which other studies' participants it excludes.
EDITABLE_FROZEN = Study.EDITABLE_ONCE_LIVE | {"collaborators", "excluded_studies"}


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = StudyForm
    list_display = ["slug", "title", "state", "paradigm", "preset", "owner", "task_list_count"]
    list_filter = ["state", "paradigm"]
    search_fields = ["slug", "title"]
    filter_horizontal = ["unit_sets", "collaborators", "excluded_studies"]
    autocomplete_fields = ["catch_units"]
    inlines = [ConditionInline, PracticeTrialInline]
    readonly_fields = [
        "state",
        "launch_checklist",
        "texts_preview",
        "build_summary",
        "recruitment_links",
        "progress",
        "results_link",
    ]
    actions = ["build_selected", "clone_selected"]
    fieldsets = [
        ("Preset and paradigm", {
            "fields": ["apply_preset", "preset", "paradigm"],
            "description": "A preset fills most of what follows with a published study's design.",
        }),
        ("Study", {"fields": ["slug", "title", "state", "launch_checklist", "collaborators"]}),
        ("Texts", {"fields": ["consent_markdown", "consent_waived", "instructions_markdown",
                              "instructions_waived", "question", "texts_preview"]}),
        ("Units", {"fields": ["unit_sets", "image_set", "units_per_set", "seed"]}),
        ("Conditions and task lists", {
            "fields": ["condition_design", "unit_repeats", "main_trials_per_list",
                       "target_valid_responses_per_unit", "block_schedule", "build_summary"],
            "description": "The conditions themselves are listed below the form.",
        }),
        ("Timing and display", {"fields": [
            "lockout_ms", "feedback", "feedback_delay_ms", "feedback_duration_ms", "show_counter",
            "block_feedback",
            "break_every", "image_size_px", "min_window_width", "min_window_height", "fullscreen",
            "min_instruction_seconds"]}),
        ("Practice", {"fields": ["practice_until_correct", "practice_waived"],
                      "description": "The practice trials are listed below the form."}),
        ("Catch trials", {"fields": ["catch_trials_per_list", "catch_units"]}),
        ("Exclusion", {"fields": ["exclusion_rules", "excluded_studies"]}),
        ("Recruitment", {"fields": [
            "platform", "completion_code", "target_participants", "max_participants",
            "time_limit_minutes", "recruitment_links", "progress", "results_link"]}),
    ]  # fmt: skip

    # --- what may change ------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """No preset to apply once the design is frozen."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.is_design_frozen:
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "apply_preset"]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Once live, paused or closed, the design (units and catch units included) is shown
        read-only; what may still change is EDITABLE_FROZEN."""
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is None or not obj.is_design_frozen:
            return readonly
        shown = [f for _, options in self.get_fieldsets(request, obj) for f in options["fields"]]
        return readonly + [f for f in shown if f not in EDITABLE_FROZEN and f not in readonly]

    # --- who sees what ---------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        return permissions.visible_studies(request.user)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        study = super().get_object(request, object_id, from_field)
        if study is None:
            raise Http404("No such study.")
        return study

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_researcher(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_researcher(request.user)

    has_add_permission = has_module_permission  # type: ignore[assignment]
    has_change_permission = has_view_permission  # type: ignore[assignment]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        owns = obj is None or obj.owner_id == request.user.pk or request.user.is_superuser
        return permissions.is_researcher(request.user) and owns

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Only studies the researcher may see can be excluded: listing others would show their
        titles, and excluding one would make the start endpoint tell who took part in it."""
        if db_field.name == "excluded_studies":
            kwargs["queryset"] = permissions.visible_studies(request.user)
        if db_field.name in CATALOGUE_PICKERS:
            kwargs["queryset"] = CATALOGUE_PICKERS[db_field.name](request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """The catalogue pickers list only what the researcher may see (backend.stimuli.access);
        the form then checks that the study's owner may see what is chosen."""
        if db_field.name in CATALOGUE_PICKERS:
            kwargs["queryset"] = CATALOGUE_PICKERS[db_field.name](request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- saving ----------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Study, form: Any, change: bool) -> None:
        if not change:
            obj.owner = _user(request)
        services.do_save_study(obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        preset = form.cleaned_data.get("apply_preset")
        if preset:
            try:
                services.do_apply_preset(form.instance, preset)
                messages.success(request, f"Preset {preset} applied.")
            except (services.Refused, ValidationError) as err:
                messages.error(request, _text(err))

    # --- read-only panels ------------------------------------------------------------------

    @admin.display(description="task lists")
    def task_list_count(self, study: Study) -> int:
        return study.task_lists.count()

    @admin.display(description="preview")
    def texts_preview(self, study: Study) -> SafeString:
        consent = links.render_markdown(study.consent_markdown)
        instructions = links.render_markdown(study.instructions_markdown)
        html = f"<div class='psylens-md'><h4>Consent</h4>{consent}<h4>Instructions</h4>"
        return mark_safe(html + f"{instructions}</div>")  # noqa: S308 - researchers' own text

    @admin.display(description="before launch")
    def launch_checklist(self, study: Study) -> SafeString:
        if study.pk is None:
            return format_html("{}", "Save the study first.")
        if study.is_design_frozen:
            return format_html("{}", f"Launched {study.launched_at:%Y-%m-%d %H:%M}."
                               if study.launched_at else "—")  # fmt: skip
        return missing_html(readiness.missing_for_launch(study))

    @admin.display(description="last build")
    def build_summary(self, study: Study) -> str:
        if not study.built_at:
            return "Not built yet: use “Build task lists” at the top of the page."
        report = study.build_report
        return (
            f"{report['task_lists']} task lists of {report['trials_per_list']} trials "
            f"({report['catch_trials_per_list']} catch), {report['units']} units, "
            f"{report['practice_trials']} practice trials; built {study.built_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="paste into the platform")
    def recruitment_links(self, study: Study) -> SafeString:
        if study.pk is None:
            return format_html("{}", "Save the study to see its links.")
        shown: dict[str, SafeString] = {
            Study.Platform.PROLIFIC: format_html(
                "<p><b>Prolific</b> (study URL):</p><pre class='psylens-url' id='prolific-url' "
                f"style='{WRAP}'>{{}}</pre>", links.prolific_url(study)),
            Study.Platform.MTURK: format_html(
                f"<p><b>MTurk</b> (ExternalQuestion):</p><pre id='mturk-question' style='{WRAP}'>"
                "{}</pre>", links.mturk_external_question(study)),
            Study.Platform.LINK: format_html(
                f"<p><b>Plain link</b>:</p><pre id='plain-url' style='{WRAP}'>{{}}</pre>",
                links.page_url(study)),
        }  # fmt: skip
        ordered = [shown[study.platform]] + [
            html for platform, html in shown.items() if platform != study.platform
        ]
        return format_html(
            "{}<p id='completion'><b>Completion</b>: {}</p>",
            format_html_join("", "{}", ((html,) for html in ordered)),
            completion_note(study),
        )

    @admin.display(description="progress")
    def progress(self, study: Study) -> str:
        if study.pk is None:
            return "—"
        counts = services.progress(study)
        return (
            f"{counts['sessions_started']} sessions started, {counts['sessions_completed']} "
            f"completed, {counts['valid_results']} valid results over {counts['task_lists']} "
            f"task lists ({counts['retired_task_lists']} retired)"
        )

    @admin.display(description="results")
    def results_link(self, study: Study) -> str:
        if study.pk is None:
            return "—"
        url = reverse("analysis-dashboard", args=[study.pk])
        return format_html("<a href='{}' id='study-results'>Live results and exports</a>", url)

    # --- buttons ---------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(f"<path:object_id>/{action}/", self.admin_site.admin_view(self.act),
                 {"action": action}, name=f"studies_study_{action}")
            for action in ACTIONS
        ]  # fmt: skip
        preview = self.admin_site.admin_view(self.preview)
        own.append(path("<path:object_id>/preview/", preview, name="studies_study_preview"))
        return own + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        study = self.get_object(request, object_id)
        context = {**(extra_context or {}), "study_actions": _buttons(study)}
        return super().change_view(request, object_id, form_url, context)

    def preview(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The researcher's own pilot session: resumed by every preview until completed."""
        study = self.get_object(request, object_id)
        if not study.task_lists.exists():
            messages.error(request, "Build the task lists first: the preview shows them.")
            return redirect(_change_url(study))
        identity = preview_participant_id(study, _user(request))
        return HttpResponseRedirect(links.pilot_url(study, identity))

    def act(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        study = self.get_object(request, object_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return self._run(request, study, action)

    def _run(self, request: HttpRequest, study: Study, action: str) -> HttpResponse:
        try:
            target = run_action(request, study, action)
        except builder.BuildRefused as err:
            _refusal_message(request, study, err)
            return redirect(_change_url(study))
        except readiness.LaunchRefused as err:
            messages.error(request, format_html("The study cannot launch yet. {}",
                                                missing_html(err.missing)))  # fmt: skip
            return redirect(_change_url(study))
        except (services.Refused, ValidationError) as err:
            messages.error(request, _text(err))
            return redirect(_change_url(study))
        return redirect(_change_url(target))

    # --- list actions ----------------------------------------------------------------------

    @admin.action(description="Build task lists")
    def build_selected(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._run(request, study, "build")

    @admin.action(description="Clone")
    def clone_selected(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._run(request, study, "clone")


def run_action(request: HttpRequest, study: Study, action: str) -> Study:
    """Do one button's work; return the study to show next."""
    if action == "build":
        report = services.do_build_task_lists(study)
        messages.success(
            request,
            f"Built {report['task_lists']} task lists of {report['trials_per_list']} trials "
            f"({report['catch_trials_per_list']} catch trials each) for {report['units']} units.",
        )
        missing = readiness.missing_for_launch(study)
        if missing:
            note = "It can be piloted; to launch it, fill these first. {}"
            messages.warning(request, format_html(note, missing_html(missing)))
        return study
    if action == "queue_missing":
        return _queue_missing(request, study)
    if action == "clone":
        copy = services.do_clone_study(study, _user(request))
        messages.success(request, f"Cloned as {copy.slug} (a draft).")
        return copy
    services.do_change_state(study, action)
    study.refresh_from_db()
    messages.success(request, f"The study is now {study.state}.")
    return study


def _queue_missing(request: HttpRequest, study: Study) -> Study:
    try:
        builder.build(study)
    except builder.BuildRefused as err:
        try:
            jobs = services.do_queue_missing_stimuli(study, err.missing, _user(request))
        except ValidationError as refusal:  # a job's planner refused (e.g. an empty image set)
            messages.error(request, f"Could not queue the jobs: {' '.join(refusal.messages)}")
            return study
        names = ", ".join(str(job) for job in jobs)
        messages.success(request, f"Queued {len(jobs)} job(s): {names}. Build again when done.")
        return study
    messages.info(request, "Nothing is missing: build the task lists.")
    return study


def _refusal_message(request: HttpRequest, study: Study, err: builder.BuildRefused) -> None:
    if not err.missing:
        messages.error(request, err.message)
        return
    url = reverse("admin:studies_study_queue_missing", args=[study.pk])
    messages.error(
        request,
        format_html(
            "{} <form method='post' action='{}' style='display:inline'>"
            "<input type='hidden' name='csrfmiddlewaretoken' value='{}'>"
            "<button type='submit' id='queue-missing'>Queue the missing jobs</button></form>",
            err.message,
            url,
            _csrf(request),
        ),
    )


def missing_html(missing: list[readiness.Missing]) -> SafeString:
    """What launching still needs, each item linked to the field (on the study page) that
    fills it; "Ready to launch" when nothing is missing."""
    if not missing:
        return format_html("<span id='launch-ready'>{}</span>", "Ready to launch.")
    items = format_html_join(
        "",
        "<li data-missing='{}'>{} <a href='#{}'>{}</a></li>",
        ((item.code, item.message, item.anchor, _field_label(item.field)) for item in missing),
    )
    return format_html("<ul class='psylens-missing' id='launch-missing'>{}</ul>", items)


def _field_label(field: str) -> str:
    if field == "practice_trials":
        return "Go to the practice trials"
    return f"Go to “{getattr(Study._meta.get_field(field), 'verbose_name', field)}”"


def completion_note(study: Study) -> SafeString:
    """How a participant's completion reaches the study's platform."""
    code = study.completion_code
    if study.platform == Study.Platform.PROLIFIC:
        return format_html(
            "Prolific completion code <code>{}</code> (the page sends the participant back to "
            "Prolific with it; set the same code on Prolific).", code)  # fmt: skip
    if study.platform == Study.Platform.MTURK:
        return format_html(
            "the page submits the HIT to MTurk (externalSubmit) with <code>completion_code</code> "
            "<code>{}</code>; nothing to paste into MTurk.", code)  # fmt: skip
    return format_html("the page shows the participant the code <code>{}</code>.", code)


def _csrf(request: HttpRequest) -> str:
    from django.middleware.csrf import get_token

    return get_token(request)


def _buttons(study: Study) -> list[tuple[str, str, str]]:
    """(action, label, method) for the change page, in the order of the study's life."""
    available = [("build", "Build task lists", "post")] if not study.is_design_frozen else []
    available.append(("preview", "Preview as a participant", "get"))
    labels = {"pilot": "Start pilot", "edit": "Back to draft", "launch": "Launch",
              "pause": "Pause", "close": "Close"}  # fmt: skip
    for action, label in labels.items():
        if study.state in services.TRANSITIONS[action][0]:
            resume = action == "launch" and study.state == Study.State.PAUSED
            available.append((action, "Resume" if resume else label, "post"))
    available.append(("clone", "Clone", "post"))
    return available


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User), "the admin only lets signed-in users through"
    return request.user


def _change_url(study: Study) -> str:
    return reverse("admin:studies_study_change", args=[study.pk])


def _text(err: Exception) -> str:
    if isinstance(err, ValidationError):
        return " ".join(err.messages)
    return str(getattr(err, "message", err))
