"""The admin site, its sections in the order of a researcher's path through PsyLens (stimuli,
then studies, participation and results) instead of alphabetically, where Studies came last.
Sections of other apps (accounts, tokens, …) follow in Django's order."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest

SECTION_ORDER = ("stimuli", "studies", "participation", "analysis", "atlas")


class PsyLensAdminSite(admin.AdminSite):
    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(SECTION_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))


class PsyLensAdminConfig(AdminConfig):
    """`django.contrib.admin` with PsyLensAdminSite as `admin.site`."""

    default_site = "backend.core.admin_site.PsyLensAdminSite"
