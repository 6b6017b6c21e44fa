"""Participants, their sessions, and what a session stores: responses, practice responses, events.

A Participant is a platform identity (Prolific PID, MTurk worker id, an anonymous plain-link id,
or a pilot id); a Session is one participant in one study holding one TaskList (the lease), with
an unguessable token and its progress; a session the page cannot run (a window too small for the
study) is ended with its reason and gives its list back at once. A Response is unique per
(session, trial index): that constraint, not the client, is what keeps an answer from being
counted twice.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.db import models

from backend.studies.models import PracticeTrial, Study, TaskList, Trial

TOKEN_BYTES = 24  # 192 random bits, 32 url-safe characters


def new_session_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_pseudonym() -> str:
    return "P" + secrets.token_hex(6)


class Participant(models.Model):
    """One platform identity; exports show only the pseudonym."""

    class Platform(models.TextChoices):
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon Mechanical Turk"
        LINK = "link", "plain link (anonymous)"
        PILOT = "pilot", "pilot (researcher preview)"

    platform = models.CharField(max_length=8, choices=Platform.choices)
    platform_id = models.CharField(max_length=200)
    pseudonym = models.CharField(max_length=20, unique=True, default=new_pseudonym)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "platform_id"], name="one_participant_per_id"
            )
        ]

    def __str__(self) -> str:
        return self.pseudonym


class Session(models.Model):
    """One participant in one study, holding one task list while active."""

    class State(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        ABANDONED = "abandoned", "abandoned (no activity within the study's time limit)"
        ENDED = "ended", "ended early (the page could not run the study: see end_reason)"

    class EndReason(models.TextChoices):
        WINDOW_TOO_SMALL = (
            "window_too_small",
            "window too small (the participant could not make it large enough)",
        )

    token = models.CharField(max_length=64, unique=True, default=new_session_token)
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="sessions")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="sessions")
    task_list = models.ForeignKey(TaskList, on_delete=models.PROTECT, related_name="sessions")
    is_pilot = models.BooleanField(default=False)
    state = models.CharField(max_length=9, choices=State.choices, default=State.ACTIVE)
    platform_params = models.JSONField(default=dict, blank=True)
    browser = models.JSONField(default=dict, blank=True)

    # Progress, kept in step with the responses in the same transaction.
    n_trials = models.PositiveIntegerField(default=0)
    n_answered = models.PositiveIntegerField(default=0)
    next_trial_index = models.PositiveIntegerField(default=0)
    correct_count = models.PositiveIntegerField(default=0)
    practice_attempts = models.PositiveIntegerField(default=0)
    practice_passed = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    abandoned_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "participant"], name="one_session_per_identity_and_study"
            )
        ]
        # No index holds a column that an answer updates (the counters, last_activity_at), and
        # the table leaves room on each page (fillfactor, set in migration 0002): an answer's
        # UPDATE is then a heap-only tuple update, writing no index entries. Lapsed leases are
        # found among a study's active sessions through (study, state).
        indexes = [models.Index(fields=["study", "state"], name="session_study_state")]

    def __str__(self) -> str:
        return f"{self.participant} in {self.study_id}"

    @property
    def completed(self) -> bool:
        return self.state == self.State.COMPLETED

    @property
    def released_at(self) -> datetime | None:
        """When the session stopped holding its task list (abandoned or ended), else None."""
        if self.state == self.State.ABANDONED:
            return self.abandoned_at
        if self.state == self.State.ENDED:  # an abandoned session that ended: when it lapsed
            return self.abandoned_at or self.ended_at
        return None


class AnswerFields(models.Model):
    """What one answer stores, for main and practice trials alike."""

    choice = models.PositiveSmallIntegerField(help_text="index into the trial's queries")
    confidence = models.PositiveSmallIntegerField(help_text="1 (guess) … 3 (sure)")
    rt_ms = models.FloatField()
    client_started_at = models.DateTimeField(null=True, blank=True)
    client_answered_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    raw = models.JSONField(default=dict, blank=True, help_text="the jsPsych data, as sent")
    correct = models.BooleanField()

    class Meta:
        abstract = True


class Response(AnswerFields):
    """One answered main (or catch) trial of a session."""

    # No index of its own: the unique (session, trial_index) serves every lookup by session.
    session = models.ForeignKey(
        Session, on_delete=models.PROTECT, related_name="responses", db_index=False
    )
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="responses")
    trial_index = models.PositiveIntegerField()

    class Meta:
        ordering = ["session", "trial_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "trial_index"], name="one_response_per_trial"
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.trial_index}"


class PracticeResponse(AnswerFields):
    """One answered practice trial in one practice attempt (round) of a session."""

    session = models.ForeignKey(
        Session, on_delete=models.PROTECT, related_name="practice_responses"
    )
    practice_trial = models.ForeignKey(
        PracticeTrial, on_delete=models.PROTECT, related_name="responses"
    )
    attempt = models.PositiveIntegerField()
    practice_index = models.PositiveIntegerField()

    class Meta:
        ordering = ["session", "attempt", "practice_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "attempt", "practice_index"],
                name="one_practice_response_per_trial_and_attempt",
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id} practice {self.attempt}/{self.practice_index}"


class SessionEvent(models.Model):
    """An attention or setup event the page reported (blur, focus, fullscreen exit, resize…)."""

    class Type(models.TextChoices):
        BLUR = "blur"
        FOCUS = "focus"
        FULLSCREEN_EXIT = "fullscreen_exit"
        RESIZE = "resize"
        INSTRUCTIONS_READ = "instructions_read"

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=20, choices=Type.choices)
    client_time = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "received_at", "pk"]

    def __str__(self) -> str:
        return f"{self.type} of {self.session_id}"
