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

# --- The machine observer: MIS of the demo's unit sets and the machine pilot of its study ------


def seed_observer(command: BaseCommand) -> None:
    from backend.atlas import observers
    from backend.atlas.models import Measure, ObserverAnswer
    from backend.stimuli.demo import NETWORK, UNIT_SETS, run_on_worker
    from backend.stimuli.models import Network, UnitSet
    from backend.studies.demo import SLUG
    from backend.studies.models import Study

    network = Network.objects.filter(name=NETWORK[0]).first()
    if network is None:
        return
    observer = observers.default_observer(network)
    names = [spec["name"] for spec in UNIT_SETS]
    unit_sets = [u for u in UnitSet.objects.filter(name__in=names) if observers.has_exemplars(u)]
    scored = Measure.objects.filter(name=observer.measure_name, unit__unit_set__in=unit_sets)
    if unit_sets and not scored.exists():
        command.stdout.write(f"Scoring every demo unit with the machine observer {observer}…")
        run_on_worker(command, observers.do_queue_mis(observer, unit_sets))
    study = Study.objects.filter(slug=SLUG).first()
    answered = ObserverAnswer.objects.filter(observer=observer, trial__task_list__study=study)
    if study is not None and study.task_lists.exists() and not answered.exists():
        command.stdout.write(f"Piloting {study.slug} with the machine observer…")
        job = run_on_worker(command, observers.do_queue_pilot(observer, study))
        flags = ", ".join(f"{f['condition']} ({f['flag']})" for f in job.result.get("flags", []))
        command.stdout.write(f"  predicted per condition: {job.result.get('condition')}")
        command.stdout.write(f"  flagged before launch: {flags or 'none'}")


STEPS.append(seed_observer)

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

# --- LWTA networks (#19): lite0 with its last block as LWTA, a short fine-tune ---------------
from backend.atlas.lwta_demo import seed_lwta  # noqa: E402

STEPS.append(seed_lwta)

# --- Mid-range activations (#20): a confound report on a logit, last-layer retraining ---------
from backend.atlas.midrange_demo import seed_confound_report, seed_retraining  # noqa: E402

STEPS += [seed_confound_report, seed_retraining]
