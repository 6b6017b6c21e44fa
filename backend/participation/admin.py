"""Admin pages of backend.participation: read-only views of sessions and what they stored
(every write goes through the participant API). A researcher sees the sessions of the studies
they may see, and of a participant only what those sessions hold; anything else is a 404."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from backend.participation.models import Participant, Session
from backend.studies import permissions


class ResearcherReadOnlyAdmin(permissions.ResearcherReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        found = super().get_object(request, object_id, from_field)
        if found is None:
            raise Http404("No such object.")
        return found


@admin.register(Participant)
class ParticipantAdmin(ResearcherReadOnlyAdmin):
    list_display = ["pseudonym", "platform", "created_at"]
    list_filter = ["platform"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return permissions.visible_participants(request.user)


@admin.register(Session)
class SessionAdmin(ResearcherReadOnlyAdmin):
    list_display = ["pk", "study", "participant", "state", "is_pilot", "n_answered", "n_trials"]
    # The study filter lists only the studies of the sessions shown (the plain one lists all).
    list_filter = ["state", "is_pilot", ("study", admin.RelatedOnlyFieldListFilter)]
    exclude = ["token"]
    list_select_related = ["study", "participant"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return permissions.visible_sessions(request.user)
