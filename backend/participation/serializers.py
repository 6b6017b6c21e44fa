"""Request bodies of the participant API (validation only) and response shapes (for the schema)."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from backend.core.strictfields import StrictFloatField, StrictIntegerField
from backend.participation.models import Session, SessionEvent
from backend.participation.services import Answer, FeedbackShown

MAX_RT_MS = 24 * 3600 * 1000
MAX_EVENTS = 100
BROWSER_FIELDS: dict[str, type] = {
    "user_agent": str,
    "screen_w": int,
    "screen_h": int,
    "window_w": int,
    "window_h": int,
    "pixel_ratio": float,
    "touch": bool,
    "language": str,
}


def no_nul(value: Any) -> Any:
    """Postgres cannot store NUL characters, nor numbers out of range (1e400 parses as
    infinity), in JSON: refuse them with a 400."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise serializers.ValidationError("numbers must be finite") from None
    if "\\u0000" in text:
        raise serializers.ValidationError("must not contain NUL characters")
    return value


def clean_browser(browser: dict[str, Any]) -> dict[str, Any]:
    """The known browser facts, coerced; anything else is dropped (it is information only)."""
    cleaned: dict[str, Any] = {}
    for key, kind in BROWSER_FIELDS.items():
        value = browser.get(key)
        if isinstance(value, bool) and kind is not bool:
            continue
        if kind is str and isinstance(value, str):
            cleaned[key] = value[:500].replace("\x00", "")
        elif kind in (int, float) and isinstance(value, (int, float)):
            cleaned[key] = kind(value)
        elif kind is bool and isinstance(value, bool):
            cleaned[key] = value
    return cleaned


class SessionStartSerializer(serializers.Serializer):
    platform = serializers.DictField(
        required=False,
        default=dict,
        validators=[no_nul],
        help_text="the page's query-string parameters as they came",
    )
    browser = serializers.DictField(required=False, default=dict)
    token = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="plain link and pilot only: a token this browser stored, to resume its session",
    )

    def validate_browser(self, value: dict[str, Any]) -> dict[str, Any]:
        return clean_browser(value)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 1})
class ChoiceIndexField(StrictIntegerField):
    """One of a trial's two queries. The schema says 0 or 1; a larger index is refused by the
    service as `choice_not_offered` (a 400 naming the trial), not here."""


class AnswerSerializer(serializers.Serializer):
    choice = ChoiceIndexField(min_value=0, help_text="index into the trial's queries (0 or 1)")
    confidence = StrictIntegerField(min_value=1, max_value=3)
    rt_ms = StrictFloatField(min_value=0, max_value=MAX_RT_MS)
    client_started_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    client_answered_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    raw = serializers.DictField(
        required=False, default=dict, validators=[no_nul], help_text="the jsPsych data"
    )

    def answer(self) -> Answer:
        data = self.validated_data
        return Answer(
            choice=data["choice"],
            confidence=data["confidence"],
            rt_ms=data["rt_ms"],
            client_started_at=data["client_started_at"],
            client_answered_at=data["client_answered_at"],
            raw=data["raw"],
        )


# Bound once: validating a body with these fields builds no serializer (and copies no field).
ANSWER_FIELDS = AnswerSerializer().fields


def plain_answer(data: Any) -> Answer | None:
    """The body's Answer, checked by AnswerSerializer's own fields without a serializer per
    request (the response PUT is the hot path); None if any field refuses it."""
    if not isinstance(data, dict):
        return None
    try:
        values = {
            name: field.run_validation(data.get(name, empty))
            for name, field in ANSWER_FIELDS.items()
        }
    except serializers.ValidationError:
        return None
    return Answer(**values)


def answer_from(data: Any) -> Answer:
    """The body's Answer; a body the fields refuse goes through the serializer, which raises
    the 400 with its message."""
    answer = plain_answer(data)
    if answer is not None:
        return answer
    serializer = AnswerSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.answer()


class FeedbackShownSerializer(serializers.Serializer):
    feedback_shown = serializers.BooleanField(help_text="whether the page showed feedback")
    correct = serializers.BooleanField(
        allow_null=True, default=None, help_text="the verdict shown; null when none was shown"
    )

    def shown(self) -> FeedbackShown:
        data = self.validated_data
        return FeedbackShown(feedback_shown=data["feedback_shown"], correct=data["correct"])


class SessionEndSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=Session.EndReason.choices, help_text="why the page cannot run the study here"
    )


class EventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=SessionEvent.Type.choices)
    t = serializers.DateTimeField(required=False, allow_null=True, default=None)
    detail = serializers.DictField(required=False, default=dict, validators=[no_nul])


class EventBatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=EventSerializer(), max_length=MAX_EVENTS)


# --- response shapes, for the OpenAPI schema --------------------------------------------------


class CompletionSerializer(serializers.Serializer):
    completion_code = serializers.CharField()
    redirect_url = serializers.URLField(allow_null=True)
    mturk_form = serializers.DictField(allow_null=True)
    message = serializers.CharField()


class RequirementsSerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    platform = serializers.ChoiceField(choices=["prolific", "mturk", "link"])
    min_window = serializers.DictField(child=serializers.IntegerField())
    fullscreen = serializers.BooleanField()


class FeedbackRecordedSerializer(serializers.Serializer):
    feedback_shown = serializers.BooleanField()
    correct = serializers.BooleanField(allow_null=True)


class SessionEndedSerializer(serializers.Serializer):
    state = serializers.CharField()
    end_reason = serializers.CharField(allow_blank=True)


class PracticeBlockStateSerializer(serializers.Serializer):
    block = serializers.IntegerField(help_text="the `block` of this block's practice trials")
    before = serializers.IntegerField(help_text="index of the first main trial after the block")
    size = serializers.IntegerField()
    attempts = serializers.IntegerField(help_text="rounds started")
    passed = serializers.BooleanField()


class BlockScoreSerializer(serializers.Serializer):
    block = serializers.IntegerField()
    answered = serializers.IntegerField()
    correct = serializers.IntegerField()


class SessionStateSerializer(serializers.Serializer):
    next_trial_index = serializers.IntegerField()
    correct_count = serializers.IntegerField(allow_null=True)
    n_trials = serializers.IntegerField()
    practice_passed = serializers.BooleanField()
    practice_attempts = serializers.IntegerField()
    practice_blocks = PracticeBlockStateSerializer(many=True)
    completed = serializers.BooleanField()
    completion = CompletionSerializer(allow_null=True)
    block_scores = BlockScoreSerializer(
        many=True, required=False, help_text="only where the design shows a score after each block"
    )


class SessionStartedSerializer(serializers.Serializer):
    token = serializers.CharField()
    study = serializers.DictField()
    practice = serializers.ListField(child=serializers.DictField())
    trials = serializers.ListField(child=serializers.DictField())
    state = SessionStateSerializer()


class AcknowledgementSerializer(serializers.Serializer):
    trial_index = serializers.IntegerField(required=False)
    correct_count = serializers.IntegerField(required=False)
    next_trial_index = serializers.IntegerField(required=False)
    feedback = serializers.DictField(required=False)
    attempt = serializers.IntegerField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    message = serializers.CharField()
