"""Benchmark: the machine observer (docs/benchmarks.md, Machine observer).

On the demo's three unit sets (EfficientNet-Lite0: channels of blocks.2 and blocks.4, a 64-atom
sparse autoencoder on blocks.4) over generated images, with the built-in observer (lite0's pooled
penultimate features, cosine), all in this process:

1. MIS for every unit: the MIS job's wall time (no embeddings kept beforehand) against its floor,
   the time to embed the same distinct images once, measured just before on the same warm
   network (target: floor / job ≥ 0.8), and the time per unit.
2. The machine pilot of the demo study (the imi2023 preset, built over these unit sets): trials
   per second, embeddings included, and again with every embedding kept (matrix products only).

It works in a database of its own (`<DATABASE_URL's name>_bench_observer`, made afresh) and a
temporary media folder.

    .venv/bin/python -m backend.core.stack run -- .venv/bin/python bench/bench_observer.py
    ... bench/bench_observer.py --quick     # fewer images, a smoke check
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images: a smoke check")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument(
        "--demo", action="store_true", help="the demo's own image set (crops of 42 photos)"
    )
    args = parser.parse_args()
    if args.quick:
        args.images = 120
    return args


def bench_environment() -> dict[str, str]:
    import psycopg2

    parts = urlsplit(os.environ["DATABASE_URL"])
    name = f"{parts.path.lstrip('/') or 'psylens'}_bench_observer"
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return {
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="psylens-bench-observer-"),
        "DJANGO_SETTINGS_MODULE": "backend.settings",
    }


def demo_stimuli(n_images: int, demo_set: bool = False) -> list[Any]:
    """The demo's network and unit sets over `n_images` generated images (`demo_set`: the
    demo's own crops of its 42 photos), fitted, with exemplars (in this process; not timed)."""
    from bench_shards import generated_jpeg

    from backend.stimuli import demo, services
    from backend.stimuli.models import ImageSet, Job, UnitSet
    from worker.pipelines import imagesets
    from worker.tasks import run_job_here

    network = services.do_create_network(*demo.NETWORK)
    image_set = ImageSet.objects.create(name=demo.IMAGE_SET, origin=ImageSet.Origin.DEMO)
    candidates = imagesets.demo_images() if demo_set else (
        imagesets.ImageCandidate(f"{i}.jpg", None, generated_jpeg(i)) for i in range(n_images)
    )  # fmt: skip
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    unit_sets = [demo.ensure_unit_set(network, image_set, spec) for spec in demo.UNIT_SETS]
    for unit_set in unit_sets:
        if unit_set.needs_fit:
            job = services.do_queue_job(
                Job.Kind.FIT_UNIT_SET, {"unit_set": unit_set.pk}, send=False
            )
            run_job_here(job)
    unit_sets = list(UnitSet.objects.filter(pk__in=[u.pk for u in unit_sets]))
    for job in services.do_queue_exemplar_jobs(unit_sets, send=False):
        assert run_job_here(job).state == Job.State.SUCCEEDED
    return unit_sets


def mis_rows(unit_sets: list[Any]) -> list[str]:
    import math

    from backend.atlas import observer_work, observers
    from backend.atlas.models import ObserverEmbedding
    from backend.stimuli.models import ExemplarSet, Image, Network
    from backend.stimuli.work import load_network
    from worker.analyses import observer as analysis
    from worker.pipelines import loading
    from worker.tasks import run_job_here

    observer = observers.default_observer(Network.objects.get(name="lite0"))
    network = load_network(observer.network)
    exemplar_sets = list(ExemplarSet.objects.filter(unit__unit_set__in=unit_sets))
    pool = math.ceil(0.25 * observer_work.pool_base(exemplar_sets[0]))
    distinct = sorted(
        {int(e["image"]) for x in exemplar_sets for e in x.top[:pool] + x.bottom[:pool]}
    )
    files = dict(Image.objects.filter(pk__in=distinct).values_list("pk", "file"))
    from django.core.files.storage import default_storage

    refs = [loading.ImageRef(image_id=i, path=default_storage.path(files[i])) for i in distinct]
    analysis.embed(network, observer.layer, loading.image_batches(refs[:8], network.preprocess, 8))
    started = time.perf_counter()
    analysis.embed(network, observer.layer, loading.image_batches(refs, network.preprocess, 64))
    floor = time.perf_counter() - started
    ObserverEmbedding.objects.all().delete()
    started = time.perf_counter()
    job = run_job_here(observers.do_queue_mis(observer, unit_sets, send=False))
    total = time.perf_counter() - started
    assert job.state == "succeeded", job.error
    units = len(exemplar_sets)
    return [
        "| units | distinct images | embedding floor s | MIS job s | floor / job | ms per unit "
        "| ms per unit beyond the floor |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {units} | {len(distinct)} | {floor:.1f} | {total:.1f} | {floor / total:.2f} | "
        f"{1000 * total / units:.0f} | {1000 * (total - floor) / units:.0f} |",
    ]


def pilot_rows(unit_sets: list[Any]) -> list[str]:
    from django.contrib.auth.models import User

    from backend.atlas import observers
    from backend.atlas.models import Observer
    from backend.studies import demo as study_demo
    from backend.studies import services
    from backend.studies.models import Trial
    from worker.tasks import run_job_here

    User.objects.create_superuser("bench", password="bench")
    study = study_demo.create_study(unit_sets)
    services.do_build_task_lists(study)
    trials = Trial.objects.filter(task_list__study=study).count()
    observer = Observer.objects.get(name=observers.DEFAULT_OBSERVER["name"])
    rows = ["| pilot | trials | s | trials / s |", "|---|---:|---:|---:|"]
    for label in ("embedding what the MIS pass left", "every embedding kept"):
        started = time.perf_counter()
        job = run_job_here(observers.do_queue_pilot(observer, study, send=False))
        seconds = time.perf_counter() - started
        assert job.state == "succeeded", job.error
        rows.append(f"| {label} | {trials} | {seconds:.1f} | {trials / seconds:.0f} |")
    flags = ", ".join(f"{f['condition']}: {f['flag']}" for f in job.result["flags"]) or "none"
    rows.append(f"\nflags: {flags}; per condition: {job.result['condition']}")
    return rows


def main() -> None:
    args = parse_args()
    os.environ.update(bench_environment())
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import torch

    machine = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    images = "the demo's image set" if args.demo else f"{args.images} generated images"
    print(f"# {machine}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads, "
          f"{images}; load average {os.getloadavg()}")  # fmt: skip
    unit_sets = demo_stimuli(args.images, args.demo)
    print("\n## MIS of every unit against the embedding floor\n")
    print("\n".join(mis_rows(unit_sets)), flush=True)
    print("\n## The machine pilot of the demo study\n")
    print("\n".join(pilot_rows(unit_sets)), flush=True)
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
