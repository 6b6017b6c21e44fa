"""Routes of the participant API (mounted under /api/v1/) and of the participant page."""

from __future__ import annotations

from django.urls import URLPattern, path, register_converter

from backend.participation import api


class TokenConverter:
    """A session token's shape; anything else is a 404 before any query."""

    regex = "[A-Za-z0-9_-]{16,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class SignedIntConverter:
    """An integer that may be negative, so that -1 is a 400 (out of range), not a 404."""

    regex = "-?[0-9]{1,9}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(TokenConverter, "session_token")
register_converter(SignedIntConverter, "signed_int")

api_urlpatterns: list[URLPattern] = [
    path(
        "studies/<slug:slug>/requirements",
        api.RequirementsView.as_view(),
        name="study-requirements",
    ),
    path(
        "studies/<slug:slug>/sessions",
        api.SessionStartView.as_view(),
        name="session-start",
    ),
    path("sessions/<session_token:token>", api.SessionStateView.as_view(), name="session-state"),
    path(
        "sessions/<session_token:token>/responses/<signed_int:trial_index>",
        api.ResponseView.as_view(),
        name="session-response",
    ),
    path(
        "sessions/<session_token:token>/practice/<signed_int:attempt>/<signed_int:practice_index>",
        api.PracticeResponseView.as_view(),
        name="session-practice-response",
    ),
    path(
        "sessions/<session_token:token>/responses/<signed_int:trial_index>/shown",
        api.FeedbackShownView.as_view(),
        name="session-response-shown",
    ),
    path(
        "sessions/<session_token:token>/practice/<signed_int:attempt>/<signed_int:practice_index>"
        "/shown",
        api.PracticeFeedbackShownView.as_view(),
        name="session-practice-response-shown",
    ),
    path("sessions/<session_token:token>/events", api.EventsView.as_view(), name="session-events"),
    path("sessions/<session_token:token>/end", api.EndSessionView.as_view(), name="session-end"),
    path(
        "sessions/<session_token:token>/complete",
        api.CompleteView.as_view(),
        name="session-complete",
    ),
]
