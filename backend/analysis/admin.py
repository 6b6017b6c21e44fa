"""Admin pages of backend.analysis: imported datasets (read only; the `import_trials` command
and the upload page `views.import_trials`, linked from the list, create them).

The results dashboard itself is a set of views (`views.py`) under each study's admin URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from backend.analysis.models import ImportedDataset
from backend.studies import permissions


@admin.register(ImportedDataset)
class ImportedDatasetAdmin(permissions.ResearcherViewOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "rows", "source_file", "imported_at", "imported_by"]
    readonly_fields = ["name", "rows", "source_file", "column_mapping", "imported_at",
                       "imported_by"]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportedDataset]:
        """A researcher's own imports and the shared ones (superusers: all)."""
        return permissions.visible_imported_datasets(request.user)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        dataset = super().get_object(request, object_id, from_field)
        if dataset is None:
            raise Http404("No such dataset.")
        return dataset

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)
