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


# --- Descriptions (#18): the demo's channel unit sets in the network's own words ----------------


def describe_demo_units(command: BaseCommand) -> None:
    """Descriptions (soft-WPMI, the classifier's own classes) of the demo's channel unit sets over
    the demo images, when they have none yet."""
    from backend.atlas.descriptions import queue_descriptions
    from backend.atlas.models import Description
    from backend.stimuli.demo import IMAGE_SET, UNIT_SETS, run_on_worker
    from backend.stimuli.models import ImageSet, UnitSet

    image_set = ImageSet.objects.filter(name=IMAGE_SET).first()
    names = [s["name"] for s in UNIT_SETS if s["kind"] == UnitSet.Kind.CHANNELS]
    unit_sets = list(UnitSet.objects.filter(name__in=names).order_by("pk"))
    if image_set is None or not unit_sets:
        return
    if Description.objects.filter(unit__unit_set__in=unit_sets, image_set=image_set).exists():
        return
    command.stdout.write("Describing the demo's channel units in words (soft-WPMI)…")
    run_on_worker(command, queue_descriptions(unit_sets, image_set))


STEPS.append(describe_demo_units)
