"""Seed the demo: what `make demo` shows on a fresh database. Safe to run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo data (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        for step in demo_steps():
            step(self)


def demo_steps() -> list[Any]:
    """The seeding steps, in order; apps add theirs as the product grows."""
    from backend.atlas.demo import seed_atlas
    from backend.stimuli.demo import seed_stimuli
    from backend.studies.demo import seed_study

    return [seed_stimuli, seed_study, seed_atlas]
