"""Rows of the results side: each completed session's exclusion decision, the rules a study's
decisions were last computed under, and trial data imported from other studies.

`SessionExclusion` is written when a session completes and whenever a study's rules change or
a researcher excludes by hand (`services`); the task lists' `valid_results` counters follow it.
`ImportedResponse` holds the tidy columns (`tidy.ResponseRow`) as they were read, so statistics
run over imported and native rows alike.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.participation.models import Session
from backend.studies.models import Study


class SessionExclusion(models.Model):
    """Whether a completed session counts, and why not."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="exclusion")
    excluded = models.BooleanField(default=False)
    reasons = models.JSONField(default=list, blank=True, help_text="[{code, message}, …]")
    measurements = models.JSONField(
        default=dict, blank=True, help_text="the session summary the rules were applied to"
    )
    manual_reason = models.TextField(blank=True, help_text="non-empty: excluded by a researcher")
    manual_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["excluded"])]

    def __str__(self) -> str:
        return f"{self.session_id}: {'excluded' if self.excluded else 'valid'}"

    @property
    def codes(self) -> list[str]:
        return [reason["code"] for reason in self.reasons]


class AppliedRules(models.Model):
    """The exclusion rules a study's decisions were last computed under (to notice changes)."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="applied_rules")
    rules = models.JSONField(default=dict)
    applied_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rules applied to {self.study_id}"


class ImportedDataset(models.Model):
    """One trial-level file of another study, read through a column mapping."""

    name = models.SlugField(max_length=80, unique=True)
    source_file = models.CharField(max_length=500, blank=True)
    column_mapping = models.JSONField(default=dict)
    rows = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return self.name


class ImportedResponse(models.Model):
    """One imported trial, in the tidy columns (see docs/data-dictionary.md)."""

    dataset = models.ForeignKey(ImportedDataset, on_delete=models.CASCADE, related_name="responses")
    position = models.PositiveIntegerField(help_text="row order in the file")
    study = models.CharField(max_length=200)
    condition = models.CharField(max_length=200, blank=True)
    unit = models.CharField(max_length=200)
    unit_index = models.IntegerField(null=True, blank=True)
    unit_set = models.CharField(max_length=200, blank=True)
    layer = models.CharField(max_length=200, blank=True)
    basis = models.CharField(max_length=40, blank=True)
    network = models.CharField(max_length=500, blank=True)
    trial_index = models.IntegerField()
    block = models.IntegerField(null=True, blank=True)
    is_catch = models.BooleanField(default=False)
    is_practice = models.BooleanField(default=False)
    query_images = models.JSONField(default=list, blank=True)
    reference_images = models.JSONField(default=list, blank=True)
    choice = models.SmallIntegerField(null=True, blank=True)
    correct = models.BooleanField()
    confidence = models.IntegerField(null=True, blank=True)
    rt_ms = models.FloatField(null=True, blank=True)
    client_started_at = models.DateTimeField(null=True, blank=True)
    client_answered_at = models.DateTimeField(null=True, blank=True)
    server_received_at = models.DateTimeField(null=True, blank=True)
    participant = models.CharField(max_length=200)
    session = models.CharField(max_length=200)
    task_list = models.CharField(max_length=200, blank=True)
    excluded = models.BooleanField(default=False)
    exclusion_reasons = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=200)
    image_load_ms = models.FloatField(null=True, blank=True)
    image_retries = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "position"], name="one_imported_row_per_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id} row {self.position}"
