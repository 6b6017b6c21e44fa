"""Benchmark: what cutting a Job into shards costs and what it buys (docs/benchmarks.md, Shards).

Prints three tables, each measured side by side in one run:

1. render: the same render job (16 units of `blocks.4` of EfficientNet-Lite0, 64 steps, 128 px,
   both signs) through real Celery workers and Redis on 1 worker process x 2 threads and on 2
   processes x 1 thread: the job's wall time on each, their ratio, and whether the two agree on
   every image (bit for bit, else the largest pixel difference).
2. exemplars: the exemplar pass over 10,000 generated images cut into 8 shards against one
   unsharded pass, both in this process: whether the stored exemplar sets are identical, and the
   time ratio unsharded / sharded (target >= 0.9: the merge costs little). By default on timm's
   TinyNet-E (`timm:tinynet_e@FILE`, seeded random weights written to a file: its own input is
   106 px, so 10,000 images fit in minutes on a 2-core CPU; lite0 sees 224 px, 14x the work),
   channels of blocks.2, blocks.4 and blocks.6; `--exemplar-network lite0` for lite0's.
3. overhead: the same exemplar job through a real worker cut into 1 shard and into one shard per
   image: the fixed cost of a shard (claim, heartbeat, progress, saving its state, the queue round
   trip, its share of the merge) in ms, and the shard size below which it passes 5 % of the work.

It works in a database of its own (`<DATABASE_URL's name>_bench_shards`, made afresh), a Redis
database of its own (14) and a temporary media folder, so a running demo is not touched.

    .venv/bin/python -m backend.core.stack run -- .venv/bin/python bench/bench_shards.py
    ... bench/bench_shards.py --quick     # small sizes, a smoke check
    ... bench/bench_shards.py --only render    # one table (render, exemplars or overhead)
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_REDIS_DB = 14


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--images", type=int, default=10_000, help="exemplar pass images")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--units", type=int, default=16, help="render job units")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--overhead-images", type=int, default=48)
    parser.add_argument("--exemplar-network", choices=("tinynet_e", "lite0"), default="tinynet_e")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--repeats", type=int, default=2, help="exemplar runs of each side")
    parser.add_argument("--only", choices=("render", "exemplars", "overhead"), action="append",
                        help="run only these tables (repeatable); default all")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.images, args.units, args.steps, args.overhead_images = 400, 2, 4, 8
    return args


# --- A database, Redis db and media folder of the benchmark's own ---------------------------------


def bench_environment(label: str = "") -> dict[str, str]:
    import psycopg2

    database_url, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    parts = urlsplit(database_url)
    name = f"{parts.path.lstrip('/') or 'psylens'}_bench_shards{label}"
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    redis_parts = urlsplit(redis_url)
    return {
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
        "REDIS_URL": urlunsplit(redis_parts._replace(path=f"/{BENCH_REDIS_DB}")),
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="psylens-bench-shards-"),
        "DJANGO_SETTINGS_MODULE": "backend.settings",
    }


def start_workers(env: dict[str, str], processes: int, threads: int, log: Path) -> Any:
    celery = str(Path(sys.executable).parent / "celery")
    args = [celery, "-A", "backend", "worker", "-Q", "gpu,default", "--loglevel", "WARNING",
            "--concurrency", str(processes), "--hostname", f"bench-{processes}@%h"]  # fmt: skip
    worker_env = {**os.environ, **env, "OMP_NUM_THREADS": str(threads),
                  "MKL_NUM_THREADS": str(threads)}  # fmt: skip
    handle = log.open("ab")
    process = subprocess.Popen(args, cwd=ROOT, env=worker_env, stdout=handle, stderr=handle)
    from backend.celery import app

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5)
        if replies and process.poll() is None:
            return process
    raise RuntimeError(f"workers did not start; see {log}")


def stop_workers(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def wait(job: Any, seconds: float = 3600) -> float:
    """Seconds from the job's creation until it finished (polled every 50 ms)."""
    from backend.stimuli.models import Job

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        job.refresh_from_db()
        if job.is_finished:
            if job.state != Job.State.SUCCEEDED:
                raise RuntimeError(f"{job} {job.state}: {job.error}")
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{job} did not finish in {seconds} s")


# --- Fixtures -------------------------------------------------------------------------------------


def stimuli(n_images: int, network_name: str, label: str) -> dict[str, Any]:
    """A network, generated images, channel units: lite0's blocks.2 and blocks.4, or TinyNet-E's
    blocks.2, blocks.4 and blocks.6."""
    from backend.stimuli import services
    from backend.stimuli.models import ImageSet, Network, UnitSet
    from worker.pipelines import imagesets

    blocks = (2, 4) if network_name == "lite0" else (2, 4, 6)
    network = Network.objects.filter(name=network_name).first()
    if network is None:
        source = "builtin:efficientnet_lite0" if network_name == "lite0" else tinynet_source()
        network = services.do_create_network(network_name, source)
    image_set = ImageSet.objects.create(name=f"generated-{label}", origin=ImageSet.Origin.DEMO)
    started = time.perf_counter()
    candidates = (imagesets.ImageCandidate(f"{i}.jpg", None, generated_jpeg(i)) for i in
                  range(n_images))  # fmt: skip
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    print(f"# imported {n_images} generated images in {time.perf_counter() - started:.0f} s")
    unit_sets = [
        services.do_save_unit_set(
            UnitSet(
                name=f"{label}-b{n}",
                layer=network.layers.get(name=f"blocks.{n}"),
                kind=UnitSet.Kind.CHANNELS,
                image_set=image_set,
            )
        )  # fmt: skip
        for n in blocks
    ]
    return {"image_set": image_set, "unit_sets": unit_sets}


def tinynet_source() -> str:
    """`timm:tinynet_e@FILE` with seeded random weights written to a file (nothing from a hub)."""
    import timm
    import torch

    torch.manual_seed(0)
    path = Path(tempfile.mkdtemp(prefix="psylens-bench-tinynet-")) / "tinynet_e.pth"
    torch.save(timm.create_model("tinynet_e", pretrained=False).state_dict(), path)
    return f"timm:tinynet_e@{path}"


def generated_jpeg(seed: int, size: int = 96) -> bytes:
    """A smooth random colour field with some texture: distinct for every seed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(image).astype(np.int16) + rng.integers(-20, 20, (size, size, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --- 1. render ------------------------------------------------------------------------------------


def render_rows(
    env: dict[str, str], fixtures: dict[str, Any], args: argparse.Namespace
) -> list[str]:
    import numpy as np
    from django.core.files.storage import default_storage
    from PIL import Image

    from backend.stimuli import services
    from backend.stimuli.models import Job, Visualization

    units = list(fixtures["unit_sets"][1].units.order_by("index")[: args.units])
    overrides = {"max_steps": args.steps, "image_size": args.image_size}
    params = {"units": [u.pk for u in units], "preset": "lucent", "overrides": overrides}
    rows, images = [], {}
    for processes, threads in ((1, 2), (2, 1)):
        Visualization.objects.all().delete()
        workers = start_workers(env, processes, threads, Path(env["MEDIA_ROOT"]) / "render.log")
        try:
            job = services.do_queue_job(Job.Kind.RENDER_VISUALIZATIONS, params)
            seconds = wait(job)
        finally:
            stop_workers(workers)
        shards = job.shards.filter(role="work").count()
        hosts = len(set(job.shards.values_list("worker_pid", flat=True)))
        images[processes] = {
            (v.unit_id, v.sign): np.asarray(Image.open(default_storage.open(v.image.file.name)))
            for v in Visualization.objects.select_related("image")
        }
        rows.append((f"{processes} process{'es' * (processes > 1)} x {threads} thread"
                     f"{'s' * (threads > 1)}", seconds, shards, hosts))  # fmt: skip
    same = images[1].keys() == images[2].keys()
    worst = max(
        (int(np.abs(images[1][k].astype(int) - images[2][k].astype(int)).max()) for k in images[1]),
        default=0,
    ) if same else -1  # fmt: skip
    agreement = "bit for bit" if same and worst == 0 else f"max pixel difference {worst}/255"
    table = [
        "| workers | job wall time (s) | shards | processes used |",
        "| --- | --- | --- | --- |",
    ]
    table += [
        f"| {name} | {seconds:.1f} | {shards} | {used} |" for name, seconds, shards, used in rows
    ]
    table.append(f"| ratio (1x2 / 2x1) | {rows[0][1] / rows[1][1]:.2f} | images: {agreement} | |")
    return table


# --- 2. exemplars ---------------------------------------------------------------------------------


def exemplar_rows(fixtures: dict[str, Any], args: argparse.Namespace) -> list[str]:
    from backend.stimuli import services
    from backend.stimuli.models import ExemplarSet, Job
    from worker.tasks import run_job_here

    image_set, unit_sets = fixtures["image_set"], fixtures["unit_sets"]
    n = image_set.members.count()
    params = {"image_set": image_set.pk, "unit_sets": [u.pk for u in unit_sets], "k": 200}
    stored, seconds = {}, {}
    warm = {**params, "image_set": subset(image_set, "warm-up", 16).pk}
    run_job_here(services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, warm, send=False))
    # Alternated (unsharded, sharded, sharded, unsharded, ...) so drift hits both alike. Shards
    # are cut at multiples of the batch (64), as the planner's default (2,048) is: each image is
    # then computed in a batch of the same size as in the one pass (oneDNN's sums depend on the
    # batch size in the last bits, and near-ties among smooth generated images would reorder).
    sides = ("one pass", f"{args.shards} shards")
    labels = [sides[(i + i // 2) % 2] for i in range(2 * args.repeats)]
    for label in labels:
        per_shard = n if label == "one pass" else -(-n // args.shards // 64) * 64
        job = services.do_queue_job(
            Job.Kind.COMPUTE_EXEMPLARS, {**params, "images_per_shard": per_shard}, send=False
        )
        started = time.perf_counter()
        job = run_job_here(job)
        seconds.setdefault(label, []).append(time.perf_counter() - started)
        assert job.state == Job.State.SUCCEEDED, job.error
        # This image set's rows only: the warm-up wrote rows of its own for the same units.
        rows = ExemplarSet.objects.filter(image_set=image_set).order_by("unit_id")
        stored[label] = list(rows.values_list("unit_id", "top", "bottom", "bands", "imi_batches"))
    one, sharded = min(seconds["one pass"]), min(seconds[f"{args.shards} shards"])
    identical = stored["one pass"] == stored[f"{args.shards} shards"]
    if not identical:
        describe_difference(stored["one pass"], stored[f"{args.shards} shards"])
    units = sum(u.units.count() for u in unit_sets)
    return [
        f"| pass | images | units | seconds (best of {args.repeats}) | images/s |",
        "| --- | --- | --- | --- | --- |",
        f"| one pass | {n} | {units} | {one:.1f} | {n / one:.1f} |",
        f"| {args.shards} shards + merge | {n} | {units} | {sharded:.1f} | {n / sharded:.1f} |",
        f"| ratio (one pass / sharded) | | | {one / sharded:.3f} | exemplar sets identical: "
        f"{'yes' if identical else 'NO'} |",
    ]


def describe_difference(one: list[tuple[Any, ...]], sharded: list[tuple[Any, ...]]) -> None:
    """Print the first unit and field where the two passes' exemplar sets differ."""
    fields = ("unit", "top", "bottom", "bands", "imi_batches")
    for a, b in zip(one, sharded, strict=False):
        for name, x, y in zip(fields, a, b, strict=True):
            if x != y:
                at = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
                x, y = (x[at], y[at]) if isinstance(x, list) and at is not None else (x, y)
                print(f"# first difference: unit {a[0]}, {name}[{at}]:\n#   one pass "
                      f"{str(x)[:300]}\n#   sharded  {str(y)[:300]}")  # fmt: skip
                return
    print(f"# {len(one)} against {len(sharded)} rows")


# --- 3. overhead ----------------------------------------------------------------------------------


def overhead_rows(
    env: dict[str, str], fixtures: dict[str, Any], args: argparse.Namespace
) -> list[str]:
    from backend.stimuli import services
    from backend.stimuli.models import Job

    small = subset(fixtures["image_set"], "overhead", args.overhead_images)
    n = small.members.count()
    params = {"image_set": small.pk, "unit_sets": [u.pk for u in fixtures["unit_sets"]], "k": 20}
    workers = start_workers(env, 1, 2, Path(env["MEDIA_ROOT"]) / "overhead.log")
    try:
        warm = services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, {**params, "images_per_shard": n})
        wait(warm)  # the worker loads the network once
        times: dict[int, list[float]] = {n: [], 1: []}
        for per_shard in (n, 1, 1, n):
            job = services.do_queue_job(
                Job.Kind.COMPUTE_EXEMPLARS, {**params, "images_per_shard": per_shard}
            )
            times[per_shard].append(wait(job))
    finally:
        stop_workers(workers)
    whole, split = min(times[n]), min(times[1])
    per_shard_ms = (split - whole) / (n - 1) * 1000
    per_image_ms = whole / n * 1000
    break_even = per_shard_ms / (0.05 * per_image_ms)
    return [
        "| job through a worker | shards | seconds (best of 2) |",
        "| --- | --- | --- |",
        f"| {n} images in one shard | 1 | {whole:.2f} |",
        f"| {n} images, one shard each | {n} | {split:.2f} |",
        f"| overhead per shard | | {per_shard_ms:.0f} ms |",
        f"| work per image (blocks.2 + blocks.4) | | {per_image_ms:.1f} ms |",
        f"| shard size where the overhead is 5 % | | {break_even:.0f} images |",
    ]


def subset(image_set: Any, name: str, n: int) -> Any:
    """A new image set of the first `n` images of `image_set`."""
    from backend.stimuli import services
    from backend.stimuli.models import ImageSet
    from worker.pipelines import imagesets

    small = ImageSet.objects.create(name=name, origin=ImageSet.Origin.DEMO)
    members = image_set.members.select_related("image")[:n]
    candidates = [imagesets.ImageCandidate(m.original_name, None, read(m.image.file.name))
                  for m in members]  # fmt: skip
    services.do_import_images(small, candidates, imagesets.ImportReport())
    return small


def read(name: str) -> bytes:
    from django.core.files.storage import default_storage

    with default_storage.open(name, "rb") as handle:
        return bytes(handle.read())


def main() -> None:
    args = parse_args()
    env = bench_environment("_" + "_".join(args.only) if args.only else "")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads here")  # fmt: skip
    torch.set_num_threads(args.threads)
    tables = args.only or ["exemplars", "overhead", "render"]
    lite0 = stimuli(args.overhead_images if "overhead" in tables else 1, "lite0", "lite0")
    if "exemplars" in tables:
        print(f"\n## exemplars ({args.exemplar_network}): sharded against one pass\n")
        fixtures = stimuli(args.images, args.exemplar_network, "exemplars")
        print("\n".join(exemplar_rows(fixtures, args)), flush=True)
    if "overhead" in tables:
        print("\n## overhead per shard\n")
        print("\n".join(overhead_rows(env, lite0, args)), flush=True)
    if "render" in tables:
        print("\n## render: 1 process x 2 threads against 2 processes x 1 thread\n")
        print("\n".join(render_rows(env, lite0, args)), flush=True)


if __name__ == "__main__":
    main()
