"""The atlas in the demo: the machine measures of the demo's unit sets, computed by the real
worker after the demo study is built (`seed_demo`'s last step). Idempotent."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand

# Each analysis adds its step: a function that queues its jobs when their rows are missing and
# waits for the worker (backend.stimuli.demo.run_on_worker).
STEPS: list[Callable[[BaseCommand], None]] = []


def seed_atlas(command: BaseCommand) -> None:
    for step in STEPS:
        step(command)


# Spectra (issue 16): every block of the demo network, and the SAE basis on blocks.4.
from backend.atlas.spectra_demo import seed_spectra  # noqa: E402

STEPS.append(seed_spectra)
