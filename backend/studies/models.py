"""Study design: a Study with its Conditions, the hand-picked PracticeTrials, and the TaskLists of
Trials the trial builder makes from them.

A Trial holds everything the participant API shows (reference and query image ids in display
order) and, in separate fields that are never serialized to participants, the answer key
(`correct_query`) and how the queries were chosen (`query_source`, for the export).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from backend.stimuli.models import Image, ImageSet, Unit, UnitSet
from backend.studies import validation


def new_pilot_token() -> str:
    return secrets.token_urlsafe(24)


def new_completion_code() -> str:
    return "C" + secrets.token_hex(4).upper()


class Paradigm(models.TextChoices):
    REFERENCE_CHOICE = "reference_choice", "2AFC: which query also strongly activates the unit?"
    OCCLUSION_CHOICE = "occlusion_choice", "counterfactual: which occluded image is favoured?"
    DESCRIPTION_CHOICE = (
        "description_choice",
        "2AFC with words: which query fits the unit's description? (docs/descriptions.md)",
    )


class Study(models.Model):
    """One experiment: texts, paradigm, units, conditions, timing, practice, catch trials,
    exclusion rules and recruitment, in the order the admin shows them."""

    class State(models.TextChoices):
        DRAFT = "draft"
        PILOT = "pilot"
        LIVE = "live"
        PAUSED = "paused"
        CLOSED = "closed"

    class Platform(models.TextChoices):
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon Mechanical Turk (external question)"
        LINK = "link", "plain link"

    class ConditionDesign(models.TextChoices):
        WITHIN = "within", "within participants: every task list has a block per condition"
        BETWEEN = "between", "between participants: each task list has one condition"

    class UnitRepeats(models.TextChoices):
        ONCE_PER_LIST = "list", "at most once per task list"
        ONCE_PER_CONDITION = (
            "condition",
            (
                "at most once per condition block (within participants: a participant sees a unit "
                "in every condition, as in Borowski et al. 2021)"
            ),
        )

    # Fields that may still change once a study has left draft and pilot.
    EDITABLE_ONCE_LIVE = frozenset(
        {"title", "max_participants", "exclusion_rules", "state", "launched_at", "updated_at"}
    )

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_studies"
    )
    collaborators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="shared_studies"
    )

    # Texts
    consent_markdown = models.TextField(blank=True, help_text="Markdown; images as ![](url)")
    consent_waived = models.BooleanField(
        default=False,
        verbose_name="launch without a consent page",
        help_text="consent is collected elsewhere: an empty consent text shows no page",
    )
    instructions_markdown = models.TextField(blank=True, help_text="Markdown; images as ![](url)")
    instructions_waived = models.BooleanField(
        default=False,
        verbose_name="launch without instructions",
        help_text="an empty instructions text shows no page (no reading time is recorded)",
    )
    question = models.CharField(
        max_length=300, default="Which image also strongly activates the unit?"
    )

    # Paradigm and preset
    paradigm = models.CharField(
        max_length=20, choices=Paradigm.choices, default=Paradigm.REFERENCE_CHOICE
    )
    preset = models.CharField(max_length=40, blank=True, help_text="the preset last applied")

    # Units
    unit_sets = models.ManyToManyField(UnitSet, blank=True, related_name="studies")
    image_set = models.ForeignKey(
        ImageSet,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="the image set whose exemplars are shown",
    )
    units_per_set = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="units drawn at random (by the seed) per unit set; empty: all",
    )
    seed = models.PositiveIntegerField(default=0, help_text="the trial builder's seed")

    # Conditions
    condition_design = models.CharField(
        max_length=8, choices=ConditionDesign.choices, default=ConditionDesign.WITHIN
    )
    unit_repeats = models.CharField(
        max_length=9,
        choices=UnitRepeats.choices,
        default=UnitRepeats.ONCE_PER_LIST,
        verbose_name="each unit appears",
        help_text="among a task list's main trials",
    )
    block_schedule = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "optional, within participants: the order of the blocks, as a list of sequences, one "
            "per group of task lists (cycled). A sequence lists condition names, one per block "
            "(a name given several times splits that condition's trials over several blocks), and "
            '"practice:NAME" where that condition\'s practice trials come, e.g. '
            '[["practice:none", "none", "natural", "none"]]. Empty: one block per condition in a '
            "balanced Latin-square order, all practice first"
        ),
    )
    main_trials_per_list = models.PositiveIntegerField(
        default=40, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    target_valid_responses_per_unit = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="valid responses wanted per unit and condition",
    )

    # Timing and display
    lockout_ms = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(60_000)])
    feedback = models.BooleanField(default=False)
    feedback_delay_ms = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(10_000)]
    )
    feedback_duration_ms = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(10_000)]
    )
    show_counter = models.BooleanField(
        default=False, help_text="a running count of correct answers"
    )
    block_feedback = models.BooleanField(
        default=False,
        help_text=(
            "after each block, show how many of its trials were answered correctly (Borowski "
            "et al. 2021)"
        ),
    )
    break_every = models.PositiveIntegerField(
        default=0, help_text="a break after every N main trials; 0: breaks between blocks only"
    )
    image_size_px = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(16), MaxValueValidator(1024)]
    )
    min_window_width = models.PositiveIntegerField(default=800)
    min_window_height = models.PositiveIntegerField(default=600)
    fullscreen = models.BooleanField(default=True)
    min_instruction_seconds = models.PositiveIntegerField(default=0)

    # Practice
    practice_until_correct = models.BooleanField(
        default=True, help_text="loop the practice block until every answer is correct"
    )
    practice_waived = models.BooleanField(
        default=False,
        verbose_name="launch without practice trials",
        help_text="the design loops practice, but this study runs without any",
    )

    # Catch trials
    catch_trials_per_list = models.PositiveIntegerField(
        default=5, validators=[MaxValueValidator(100)]
    )
    catch_units = models.ManyToManyField(
        Unit,
        blank=True,
        related_name="catch_in_studies",
        help_text=(
            "hand-picked easy units whose ordinary trials serve as catch trials (as in IMI and "
            "Zimmermann et al. 2021); empty: a catch trial repeats references of the study's own "
            "units as its queries (Borowski et al. 2021)"
        ),
    )

    # Exclusion (stored now; applied by the results)
    exclusion_rules = models.JSONField(default=validation.default_exclusion_rules, blank=True)
    excluded_studies = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        help_text="identities that took these studies may not take this one",
    )

    # Recruitment
    platform = models.CharField(max_length=8, choices=Platform.choices, default=Platform.PROLIFIC)
    completion_code = models.CharField(max_length=40, default=new_completion_code)
    target_participants = models.PositiveIntegerField(null=True, blank=True)
    max_participants = models.PositiveIntegerField(null=True, blank=True)
    time_limit_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)]
    )
    pilot_token = models.CharField(max_length=64, default=new_pilot_token, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    built_at = models.DateTimeField(null=True, blank=True, editable=False)
    build_report = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.title or self.slug

    @property
    def is_design_frozen(self) -> bool:
        return self.state not in {self.State.DRAFT, self.State.PILOT}

    def clean(self) -> None:
        errors = validation.study_errors(self)
        errors.update(self.frozen_field_errors())
        if errors:
            raise ValidationError(errors)

    def frozen_field_errors(self) -> dict[str, str]:
        """Once live, only EDITABLE_ONCE_LIVE fields may differ from the stored row."""
        if self.pk is None:
            return {}
        stored = Study.objects.filter(pk=self.pk).first()
        if stored is None or not stored.is_design_frozen:
            return {}
        changed = [
            field.name
            for field in self._meta.concrete_fields
            if field.name not in self.EDITABLE_ONCE_LIVE
            and getattr(stored, field.attname) != getattr(self, field.attname)
        ]
        message = f"The study is {stored.state}: only its title, maximum participants and "
        message += "exclusion rules may change. Clone it to change the design."
        return {name: message for name in changed}


class Condition(models.Model):
    """What explains the unit, how many references, and how the queries are chosen."""

    class Explanation(models.TextChoices):
        NONE = "none", "none (no references)"
        NATURAL = "natural", "natural exemplars"
        SYNTHETIC = "synthetic", "synthetic (feature visualizations)"
        MIXED = "mixed", "mixed (5 natural + 4 synthetic)"
        BLURRED = "blurred", "blurred natural"

    class Sides(models.TextChoices):
        MIN_MAX = "min_max", "minimally and maximally activating"
        MAX_ONLY = "max_only", "maximally activating only"

    class QuerySelection(models.TextChoices):
        EXTREME = "extreme", "most extreme image of an IMI batch"
        Q01_Q99 = "q01/q99", "bands 0–1 % / 99–100 %"
        Q05_Q95 = "q05/q95", "bands 1–5 % / 95–99 %"
        Q15_Q85 = "q15/q85", "bands 5–15 % / 85–95 %"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    position = models.PositiveIntegerField(default=0)
    name = models.SlugField(max_length=40)
    explanation = models.CharField(
        max_length=10, choices=Explanation.choices, default=Explanation.NATURAL
    )
    n_references = models.PositiveIntegerField(
        default=9, validators=[MinValueValidator(0), MaxValueValidator(20)]
    )
    sides = models.CharField(max_length=8, choices=Sides.choices, default=Sides.MIN_MAX)
    query_selection = models.CharField(
        max_length=8, choices=QuerySelection.choices, default=QuerySelection.EXTREME
    )
    visualization_preset = models.CharField(
        max_length=32, blank=True, help_text="synthetic references: the Visualization preset"
    )
    # Mid-range explanations (O'Mahony et al. 2025; backend/stimuli/bands.py): "MIN/MAX" bands
    # in percent, one side alone being the max side's; empty: the unit's extremes.
    reference_band = models.CharField(
        max_length=24,
        blank=True,
        help_text=(
            "optional: natural references from an activation band instead of the extremes, in "
            "percent, e.g. 40-60 (max side) or 0-10/40-60 (min side/max side); needs exemplars "
            "computed with that band"
        ),
    )
    query_band = models.CharField(
        max_length=24,
        blank=True,
        help_text=(
            "optional: queries from activation bands instead of the query rule, e.g. 40-60/90-100 "
            "(min query/max query); a side left empty keeps the rule's query"
        ),
    )
    unit_group = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(99)],
        help_text=(
            "optional (with each unit once per condition block): the study's units are split at "
            "random, by the seed, into equal groups 0, 1, …, one per number used, and this "
            "condition shows only group N's units (Borowski et al. 2021, Exp. II: a different "
            "set of units for each reference condition); empty in every condition: all units"
        ),
    )
    shows_description = models.BooleanField(
        default=False,
        help_text=(
            "description_choice paradigm: show the unit's stored description (atlas Description) "
            "above the queries; with explanation 'none' the description is all the participant "
            "sees of the unit"
        ),
    )
    exclusion_rules = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            "optional, between participants: exclusion rules for this condition's participants "
            "instead of the study's (Zimmermann et al. 2021's none condition); empty: the study's"
        ),
    )

    class Meta:
        ordering = ["study", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="unique_condition_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def shows_references(self) -> bool:
        return self.explanation != self.Explanation.NONE

    def clean(self) -> None:
        errors = validation.condition_errors(self)
        study = Study.objects.filter(pk=self.study_id).first() if self.study_id else None
        if study is not None and study.is_design_frozen:
            errors["name"] = "The study is no longer a draft or pilot: its conditions are fixed."
        within = study is not None and study.condition_design == Study.ConditionDesign.WITHIN
        if within and self.exclusion_rules is not None:
            errors["exclusion_rules"] = (
                "Rules of a condition's own apply to its participants, so they need conditions "
                "between participants; within participants everyone does every condition."
            )
        if errors:
            raise ValidationError(errors)


class TrialKind(models.TextChoices):
    REFERENCE_CHOICE = "reference_choice"
    OCCLUSION_CHOICE = "occlusion_choice"
    DESCRIPTION_CHOICE = "description_choice"


class TrialDisplay(models.Model):
    """What a participant sees (image ids in display order) and the answer key."""

    kind = models.CharField(max_length=20, choices=TrialKind.choices)
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="+")
    references_min = models.JSONField(default=list, blank=True)
    references_max = models.JSONField(default=list, blank=True)
    base_image = models.ForeignKey(
        Image, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    queries = models.JSONField(default=list, help_text="2 image ids: 0 = top, 1 = bottom")
    correct_query = models.PositiveSmallIntegerField(help_text="the answer key: 0 or 1")
    query_source = models.JSONField(default=dict, blank=True)
    description = models.CharField(
        max_length=300, blank=True, help_text="description_choice: the unit's words shown"
    )

    class Meta:
        abstract = True

    def image_ids(self) -> list[int]:
        ids = [*self.references_min, *self.references_max, *self.queries]
        return ids + ([self.base_image_id] if self.base_image_id else [])


class TaskList(models.Model):
    """The ordered trials one participant does; the participation side keeps the counters."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="task_lists")
    index = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    condition_order = models.JSONField(default=list, help_text="condition names, block order")
    practice_blocks = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'the practice blocks, in order: {"before": index of the first main trial after it, '
            '"condition": name or null, "trials": practice trial ids}'
        ),
    )
    sessions_started = models.PositiveIntegerField(default=0)
    sessions_completed = models.PositiveIntegerField(default=0)
    valid_results = models.PositiveIntegerField(default=0)
    retired = models.BooleanField(default=False)

    class Meta:
        ordering = ["study", "index"]
        constraints = [
            models.UniqueConstraint(fields=["study", "index"], name="unique_task_list_index")
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} list {self.index}"


class Trial(TrialDisplay):
    """One position of a task list: a main trial or a catch trial."""

    task_list = models.ForeignKey(TaskList, on_delete=models.CASCADE, related_name="trials")
    index = models.PositiveIntegerField(help_text="0-based position in the task list")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="trials")
    is_catch = models.BooleanField(default=False)
    block = models.PositiveIntegerField(default=0)
    response_number = models.PositiveIntegerField(
        default=0, help_text="which of the unit's responses in this condition (0-based)"
    )

    class Meta:
        ordering = ["task_list", "index"]
        constraints = [
            models.UniqueConstraint(fields=["task_list", "index"], name="unique_trial_index")
        ]

    def __str__(self) -> str:
        return f"{self.task_list} #{self.index}"


class PracticeTrial(TrialDisplay):
    """A hand-picked practice trial: a unit (and a condition) chosen by the researcher; the
    builder fills the images. Every task list of the study starts with the same practice."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="practice_trials")
    index = models.PositiveIntegerField(default=0)
    condition = models.ForeignKey(
        Condition, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    is_obvious = models.BooleanField(default=True)
    queries = models.JSONField(default=list, blank=True)
    correct_query = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(
        max_length=20, choices=TrialKind.choices, default=TrialKind.REFERENCE_CHOICE
    )

    class Meta:
        ordering = ["study", "index", "pk"]

    def __str__(self) -> str:
        label = "obvious" if self.is_obvious else "non-obvious"
        return f"practice {self.index} ({label}) of {self.study.slug}"
