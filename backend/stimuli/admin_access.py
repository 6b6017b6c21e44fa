"""The admin's side of the catalogue's access rule (`backend.stimuli.access`): a mixin for every
admin page of a catalogue model or of rows that hang off one (the stimuli's and the atlas's).

It narrows the changelist, the change, history and delete pages, the list filters, the
autocomplete and every foreign-key picker to what the researcher may see (anything else is a
404); lets only the owner (and superusers) change or delete an item; makes the researcher who
adds an item its owner; and gives superusers an action that puts items in the shared catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist
from django.db.models import ForeignKey, ManyToManyField, Model, QuerySet
from django.http import Http404, HttpRequest

from backend.stimuli import access


class CatalogueScoped:
    """Mix in before `admin.ModelAdmin`. `scope_through` (field → catalogue model) for rows that
    hang off catalogue items; None for a catalogue model itself."""

    scope_through: dict[str, type[Model]] | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)  # type: ignore[misc]
        return access.scoped(rows, request.user, self.scope_through)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        found = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if found is None:
            raise Http404("No such object.")
        return found

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)  # type: ignore[misc]
        return bool(allowed) and (obj is None or access.can_change(request.user, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)  # type: ignore[misc]
        return bool(allowed) and (obj is None or access.can_change(request.user, obj))

    def get_list_filter(self, request: HttpRequest) -> Any:
        """A filter on a relation offers only the related items of the rows shown (the plain
        filter would list every researcher's networks, unit sets and image sets)."""
        model: type[Model] = self.model  # type: ignore[attr-defined]
        filters = super().get_list_filter(request)  # type: ignore[misc]
        return [_related_only(model, entry) for entry in filters]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scope = access.visible(db_field.related_model, request.user)
        if scope is not None and "queryset" not in kwargs:
            kwargs["queryset"] = scope
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scope = access.visible(db_field.related_model, request.user)
        if scope is not None and "queryset" not in kwargs:
            kwargs["queryset"] = scope
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        item = super().save_form(request, form, change)  # type: ignore[misc]
        if not change and hasattr(item, "owner_id") and item.owner_id is None:
            item.owner = request.user
        return item

    def has_share_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(
        description="Put in the shared catalogue (every researcher sees it, read-only)",
        permissions=["share"],
    )
    def share(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        shared = queryset.update(owner=None)
        messages.info(request, f"{shared} item(s) are now in the shared catalogue.")


def _related_only(model: type[Model], entry: Any) -> Any:
    if not isinstance(entry, str) or _target(model, entry) is None:
        return entry
    return (entry, admin.RelatedOnlyFieldListFilter)


def _target(model: type[Model], field_path: str) -> Any:
    current: Any = model
    field = None
    for name in field_path.split("__"):
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        if not isinstance(field, ForeignKey | ManyToManyField):
            return None
        current = field.related_model
    return field


class ScopedChoicesForm(forms.Form):
    """A form of the admin's own pages whose catalogue pickers offer only what the researcher
    may see: `scoped_fields` maps a (multiple) model choice field to its `access.visible_*`
    scope; the form takes the researcher as `user`. A hidden item's id posted anyway is the
    field's "select a valid choice" error."""

    scoped_fields: ClassVar[dict[str, Callable[[Any], QuerySet[Any]]]] = {}

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, scope in self.scoped_fields.items():
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = field.queryset.filter(pk__in=scope(user).values("pk"))  # type: ignore[union-attr]
