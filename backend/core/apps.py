"""App configuration for backend.core."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "backend.core"
    label = "core"
    verbose_name = "PsyLens core"

    def ready(self) -> None:
        from django.apps import apps

        from backend.core.researchers import ensure_researchers_group

        # After every migrate (its signal for the atlas, the last app with models): the
        # Researchers group with exactly its permissions.
        post_migrate.connect(
            ensure_researchers_group,
            sender=apps.get_app_config("atlas"),
            dispatch_uid="researchers",
        )
