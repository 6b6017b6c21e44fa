"""Benchmark: the spectrum pass (covariance sums per layer) on the built-in EfficientNet-Lite0.

Prints three tables:

1. Throughput (images/s) of the spectrum pass for every block of lite0 at once (pooled vectors,
   float64 sums) against a bare forward of the same truncated network (`inference_network`)
   over the same decoded tensors (target: ratio ≥ 0.9). The two are interleaved batch by batch,
   so load from other processes on the machine hits both alike.
2. Eigendecomposition (`torch.linalg.eigvalsh`, float64) of the covariance of the widest layers
   of lite0 (conv_head: 1280 channels; blocks.6: 320), median of 5.
3. α (ranks 11–500 clipped, weights 1/n), its R², participation ratio (and / dimension),
   components for 50/90/99 % and the circle path's random-projection energy (with the shuffled
   path and the pixels) for every block of lite0 on the demo set; with `--networks lite0,lite1,
   lite2`, the same table for each network (each at its own input size: 224, 240, 260 px), and
   one table of α, PR and energy per block side by side (`--figures-only` skips tables 1 and 2).

    .venv/bin/python bench/bench_spectra.py             # about 3 min on 2 shared cores
    .venv/bin/python bench/bench_spectra.py --quick     # smoke check
    .venv/bin/python bench/bench_spectra.py --figures-only --networks lite0,lite1,lite2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.analyses import spectrum  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageBatch, ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import (  # noqa: E402
    LayerTap,
    autocast_context,
    inference_network,
    load_network,
    prepare_batch,
)

BLOCKS = [f"blocks.{i}" for i in range(7)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--throughput-images", type=int, default=96)
    parser.add_argument("--figure-images", type=int, default=360, help="demo images for table 3")
    parser.add_argument("--path-steps", type=int, default=128)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--networks", default="lite0", help="built-ins, comma-separated")
    parser.add_argument("--figures-only", action="store_true", help="only table 3 (and 4)")
    return parser.parse_args()


def decoded(network: object, count: int, batch_size: int) -> list[ImageBatch]:
    refs = [ImageRef(i, data=image.data) for i, image in enumerate(demo_images())][:count]
    return list(image_batches(refs, network.preprocess, batch_size))  # type: ignore[attr-defined]


def throughput(network: object, batches: list[ImageBatch]) -> tuple[float, float]:
    """(bare forward img/s, spectrum pass img/s), interleaved batch by batch."""
    taps = [LayerTap(name) for name in BLOCKS]
    truncated = inference_network(network, taps)  # type: ignore[arg-type]
    targets = {name: spectrum.SpectrumTarget(LayerTap(name)) for name in BLOCKS}
    device = network.device  # type: ignore[attr-defined]
    bare = passed = 0.0
    sums: dict[str, spectrum.CovarianceSums] = {}
    for batch in batches:
        started = time.perf_counter()
        with torch.no_grad(), autocast_context(device):
            truncated(prepare_batch(batch.pixels, device))
        middle = time.perf_counter()
        part = spectrum.spectrum_sums(network, targets, [batch])  # type: ignore[arg-type]
        passed += time.perf_counter() - middle
        bare += middle - started
        for name, value in part.items():
            sums[name] = sums[name].merge(value) if name in sums else value
    images = sum(len(b) for b in batches)
    return images / bare, images / passed


def eigh_seconds(dimension: int) -> float:
    data = torch.randn(4 * dimension, dimension, dtype=torch.float64)
    sums = spectrum.CovarianceSums(dimension)
    sums.add(data)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        spectrum.eigenspectrum(sums)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def figures_table(
    network: object, batches: list[ImageBatch], steps: int, row_of: dict[str, tuple[str, ...]]
) -> list[str]:
    """Table 3 for one network; fills `row_of[block]` with its (α, PR, energy) cells."""
    targets = {name: spectrum.SpectrumTarget(LayerTap(name)) for name in BLOCKS}
    sums = spectrum.spectrum_sums(network, targets, batches)  # type: ignore[arg-type]
    crop = network.preprocess.crop  # type: ignore[attr-defined]
    config = spectrum.PathConfig(kind="circle", steps=steps, size=crop)
    taps = [LayerTap(name) for name in BLOCKS]
    frames = spectrum.circle_path(config)
    energies = spectrum.path_energies(network, taps, frames, config)  # type: ignore[arg-type]
    pixels = energies["pixels"]
    lines = [
        f"circle path, {steps} steps, 16 directions; pixels: energy {pixels.energy:.3f}, "
        f"shuffled {pixels.shuffled:.3f}",
        "| block | D | samples | α (ranks) | R² | PR | PR / D | 50 / 90 / 99 % | energy "
        "| shuffled |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in BLOCKS:
        figures = spectrum.spectrum_figures(sums[name])
        fit = figures.fit
        alpha = f"{fit.alpha:.3f} ({fit.first}–{fit.last})" if fit else f"— ({figures.fit_error})"
        r2 = f"{fit.r_squared:.3f}" if fit else "—"
        c = figures.components
        energy = energies[name]
        row_of[name] = (f"{fit.alpha:.3f}" if fit else "—",
                        f"{figures.participation_ratio:.1f} ({figures.dimension})",
                        f"{energy.energy:.3f}")  # fmt: skip
        lines.append(
            f"| {name} | {figures.dimension} | {figures.n_samples} | {alpha} | {r2} | "
            f"{figures.participation_ratio:.1f} | {figures.pr_fraction:.3f} | "
            f"{c['50']} / {c['90']} / {c['99']} | {energy.energy:.3f} | {energy.shuffled:.3f} |"
        )
    return lines


def main() -> None:
    options = parse_args()
    torch.set_num_threads(options.threads)
    if options.quick:
        options.throughput_images, options.figure_images, options.path_steps = 32, 64, 32
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{options.threads}, batch {options.batch_size}")  # fmt: skip
    if not options.figures_only:
        cost_tables(options)
    names = [name.strip() for name in options.networks.split(",") if name.strip()]
    rows: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in names:
        network = load_network(f"builtin:efficientnet_{name}", device="cpu")
        print(f"\n{name} ({network.preprocess.crop} px), {options.figure_images} demo images, ",
              end="")  # fmt: skip
        batches = decoded(network, options.figure_images, options.batch_size)
        rows[name] = {}
        for line in figures_table(network, batches, options.path_steps, rows[name]):
            print(line)
    if len(names) > 1:
        print("\nα / PR (D) / energy per block\n")
        print("| block | " + " | ".join(f"{n} α | {n} PR (D) | {n} energy" for n in names) + " |")
        print("| --- |" + " --- |" * (3 * len(names)))
        for block in BLOCKS:
            cells = [cell for n in names for cell in rows[n][block]]
            print(f"| {block} | " + " | ".join(cells) + " |")


def cost_tables(options: argparse.Namespace) -> None:
    """Tables 1 and 2: the pass against a bare forward, and eigendecomposition times."""
    network = load_network("builtin:efficientnet_lite0", device="cpu")
    batches = decoded(network, options.throughput_images, options.batch_size)
    throughput(network, batches[:1])  # warm-up: folding, first allocations
    bare, passed = throughput(network, batches)
    print("\n| images | bare forward (img/s) | spectrum pass, 7 blocks (img/s) | ratio (≥ 0.9) |")
    print("| --- | --- | --- | --- |")
    print(f"| {options.throughput_images} | {bare:.2f} | {passed:.2f} | {passed / bare:.2f} |")
    print("\n| layer | dimension | eigvalsh float64 (ms, median of 5) |\n| --- | --- | --- |")
    for name, dimension in (("conv_head", 1280), ("blocks.6", 320)):
        print(f"| {name} | {dimension} | {eigh_seconds(dimension) * 1000:.1f} |")


if __name__ == "__main__":
    main()
