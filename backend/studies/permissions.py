"""Who may see what. A study: its owner and its collaborators (and superusers); what hangs off a
study (task lists, sessions, their participants) follows it. A job: the researcher who queued it
(and superusers). An imported dataset: its importer's, or shared when nobody imported it (a
command did). The catalogue (networks, image sets, unit sets) has its own helpers built on
these: `backend.stimuli.access`. Anyone else gets a 404 from the admin and the API, as
if the object did not exist; every admin page and endpoint goes through these helpers."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from backend.studies.models import Study


def visible_studies(user: Any) -> QuerySet[Study]:
    if not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(Q(owner=user) | Q(collaborators=user)).distinct()


def visible_sessions(user: Any) -> QuerySet[Any]:
    from backend.participation.models import Session

    return Session.objects.filter(study__in=visible_studies(user))


def visible_participants(user: Any) -> QuerySet[Any]:
    """Participants with a session in a study the user may see (an identity that took part in
    other studies too shows nothing of those)."""
    from backend.participation.models import Participant

    return Participant.objects.filter(sessions__in=visible_sessions(user)).distinct()


def _own(user: Any, objects: QuerySet[Any], field: str) -> QuerySet[Any]:
    if not user.is_authenticated or not user.is_active:
        return objects.none()
    return objects if user.is_superuser else objects.filter(**{field: user})


def visible_jobs(user: Any) -> QuerySet[Any]:
    """Jobs a researcher may follow: their own (superusers: all)."""
    from backend.stimuli.models import Job

    return _own(user, Job.objects.all(), "created_by")


def visible_imported_datasets(user: Any) -> QuerySet[Any]:
    """Imported trial files a researcher may see and compare with: their own, and the shared
    ones (no importer: loaded by `manage.py import_trials`, e.g. a published study's data);
    superusers: all."""
    from backend.analysis.models import ImportedDataset

    if not user.is_authenticated or not user.is_active:
        return ImportedDataset.objects.none()
    if user.is_superuser:
        return ImportedDataset.objects.all()
    return ImportedDataset.objects.filter(Q(imported_by=None) | Q(imported_by=user))


def can_see(user: Any, study: Study) -> bool:
    return visible_studies(user).filter(pk=study.pk).exists()


def get_study_or_404(user: Any, **lookup: Any) -> Study:
    study = visible_studies(user).filter(**lookup).first()
    if study is None:
        raise Http404("No such study.")
    return study


def is_researcher(user: Any) -> bool:
    """Staff accounts are researchers: they may create studies and see their own."""
    return bool(user.is_authenticated and user.is_active and user.is_staff)


class ResearcherViewOnly:
    """Mix in first, before any other admin base: researchers may read these pages, nobody adds
    or changes their rows (jobs and the participant API write them). Deleting is the next
    base's rule (a catalogue owner's, the model permissions')."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_researcher(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_researcher(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ResearcherReadOnly(ResearcherViewOnly):
    """Researchers may read these pages; nobody edits or deletes them (they are built, not
    written)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
