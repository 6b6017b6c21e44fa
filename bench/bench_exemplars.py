"""Benchmark: the streaming exemplar pass and dictionary fits on the built-in EfficientNet-Lite0.

Prints five tables:

1. Throughput (images/s) of the exemplar pass over already-decoded tensors, against a bare
   forward loop of the same truncated network (`inference_network`: folded, channels_last)
   over the same tensors (target: ratio >= 0.8), and against the plain network (NCHW,
   unfolded: what the pass ran before `inference_network`),
   on the demo set and on a larger generated set. The two are interleaved batch by batch (the
   bare forward of a batch runs just before the exemplar pass consumes it, and its time is
   subtracted from the pass's), so load from other processes on the machine hits both alike.
2. An occlusion map of one channel (the job's unit function) with the plain and the inference
   network: ms per occluded copy, and one map's seconds at the default stride.
3. The whole pass with decoding (run_exemplar_pass) against the decode-only ceiling.
4. Peak memory of the whole pass for a small and a 10x larger generated set, each in a fresh
   subprocess: resident memory just before the pass and its peak during the pass, sampled
   every 20 ms (must stay flat). RSS rather than tracemalloc, which does not see tensor memory
   (and, switched on, itself inflated RSS by 1 GB here).
5. Dictionary fits (NMF, TopK SAE, PCA for reference) on one layer: seconds and held-out
   reconstruction error (1 - R^2); the layer's output is linear (half its entries negative), so
   NMF is also fitted on a post-ReLU6 point of the same block.

    .venv/bin/python bench/bench_exemplars.py            # full run (about 10-15 min on 2 cores)
    .venv/bin/python bench/bench_exemplars.py --quick    # smaller sets, for a smoke check

The project's machines have 2 cores shared with other work; --threads defaults to 1 because
per-operation threading overhead made 2 threads slower than 1 under load (measured).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.pipelines import occlusion  # noqa: E402
from worker.pipelines.dictionary import (  # noqa: E402
    DictionaryConfig,
    fit_dictionary_on_samples,
    sample_position_vectors,
)
from worker.pipelines.exemplars import ExemplarConfig, compute_exemplars, run_exemplar_pass  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageBatch, ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import (  # noqa: E402
    Network,
    Preprocess,
    TruncatedNetwork,
    autocast_context,
    inference_network,
    list_layers,
    load_network,
    prepare_batch,
)
from worker.pipelines.units import UnitProjector, UnitSetSpec, build_projector  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.4")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--large", type=int, default=800, help="generated images, throughput")
    parser.add_argument("--decode-images", type=int, default=280, help="demo images, decoding")
    parser.add_argument("--memory-sizes", default="1000,10000")
    parser.add_argument("--memory-crop", type=int, default=64, help="input size, memory runs")
    parser.add_argument("--atoms", type=int, default=32)
    parser.add_argument("--nmf-layer", default="blocks.4.2.bn2", help="a post-ReLU6 point")
    parser.add_argument("--fit-images", type=int, default=140)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser.parse_args()


# --------------------------------------------------------------------------------------------
# Image sets


def generated_png(seed: int, size: int = 96) -> bytes:
    """A smooth random colour image (upsampled noise plus a grating): cheap and varied."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32)
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
    y, x = np.mgrid[0:size, 0:size]
    grating = 40 * np.sin(frequency * (x * np.cos(angle) + y * np.sin(angle)))
    pixels = np.clip(pixels + grating[..., None], 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_generated_set(folder: Path, count: int) -> list[ImageRef]:
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for index in range(count):
        path = folder / f"{index:06d}.png"
        if not path.exists():
            path.write_bytes(generated_png(index))
        refs.append(ImageRef(index, path=str(path)))
    return refs


def decode_all(
    refs: Sequence[ImageRef], preprocess: Preprocess, batch_size: int
) -> list[ImageBatch]:
    return list(image_batches(refs, preprocess, batch_size))


# --------------------------------------------------------------------------------------------
# Timed runs


def unit_sets_for(network: Network, layer: str) -> dict[str, UnitProjector]:
    shape = {info.name: info.shape for info in list_layers(network)}[layer]
    return {
        "channels": build_projector(UnitSetSpec("channels", layer), shape),
        "neurons": build_projector(UnitSetSpec("neurons", layer), shape),
    }


def bare_forward(
    truncated: TruncatedNetwork,
    network: Network,
    layer: str,
    batch: ImageBatch,
    *,
    plain: bool = False,
) -> float:
    """Seconds of one forward of ``batch``; ``plain``: NCHW input, as before the inference
    network (the plain network is then given as ``truncated``)."""
    started = time.perf_counter()
    with torch.no_grad():
        with autocast_context(network.device):
            pixels = (
                batch.pixels.to(network.device)
                if plain
                else prepare_batch(batch.pixels, network.device)
            )
            acts = truncated(pixels)[layer]
        acts.float().sum().item()  # wait for the device, as the exemplar pass does
    return time.perf_counter() - started


def interleaved_pass(
    network: Network,
    layer: str,
    unit_sets: dict[str, UnitProjector],
    batches: Sequence[ImageBatch],
) -> tuple[float, float, float]:
    """(plain-network seconds, bare inference-network seconds, exemplar-pass seconds) over
    ``batches``, measured batch by batch."""
    plain, fast = TruncatedNetwork(network, [layer]), inference_network(network, [layer])
    seconds = {"plain": 0.0, "bare": 0.0}

    def feed() -> Iterator[ImageBatch]:
        for batch in batches:
            seconds["plain"] += bare_forward(plain, network, layer, batch, plain=True)
            seconds["bare"] += bare_forward(fast, network, layer, batch)
            yield batch

    started = time.perf_counter()
    compute_exemplars(network, unit_sets, feed(), ExemplarConfig())
    total = time.perf_counter() - started
    return seconds["plain"], seconds["bare"], total - seconds["plain"] - seconds["bare"]


def throughput_rows(
    network: Network, args: argparse.Namespace, label: str, refs: list[ImageRef]
) -> list[str]:
    batches = decode_all(refs, network.preprocess, args.batch_size)
    count = sum(len(batch) for batch in batches)
    unit_sets = unit_sets_for(network, args.layer)
    interleaved_pass(network, args.layer, unit_sets, batches[:1])  # warm-up
    rounds = [interleaved_pass(network, args.layer, unit_sets, batches) for _ in range(args.rounds)]
    plain, bare, exemplars = (
        count / statistics.median(round_[i] for round_ in rounds) for i in range(3)
    )
    return [
        f"| {label} | {count} | {plain:.1f} | {bare:.1f} | {exemplars:.1f} | "
        f"{exemplars / bare:.2f} | {exemplars / plain:.2f} |"
    ]


def occlusion_rows(network: Network, args: argparse.Namespace, refs: list[ImageRef]) -> list[str]:
    """ms per occluded copy (one channel at ``args.layer``, 40 % occluder, stride 8 over one
    224 px demo image) with the plain and the inference network, and the full map's seconds at
    the default stride of 2 px, extrapolated from that."""
    projector = unit_sets_for(network, args.layer)["channels"]
    image = decode_all(refs[:1], network.preprocess, 1)[0].pixels[0]
    mean = torch.tensor(network.preprocess.mean)[:, None, None]
    std = torch.tensor(network.preprocess.std)[:, None, None]
    image = (image * std + mean).clamp(0, 1)  # back to RGB in [0, 1], as the job gives it
    plain = TruncatedNetwork(network, [projector.tap])

    def plain_fn(images: torch.Tensor) -> torch.Tensor:  # the job's unit before this change
        acts = plain((images - mean) / std)[projector.tap.key]
        return projector(acts.float())[:, 3]

    config = occlusion.OcclusionConfig(stride=8)
    side = image.shape[-1]
    size = occlusion.occluder_size(side, config)
    full = ((side - size) // 2 + 1) ** 2
    rows = []
    for label, unit_fn in (
        ("plain network (NCHW)", plain_fn),
        ("inference network", occlusion.unit_function(network, projector, 3)),
    ):
        occlusion.occlusion_map(unit_fn, image, config)  # warm-up
        started = time.perf_counter()
        result = occlusion.occlusion_map(unit_fn, image, config)
        per_copy = (time.perf_counter() - started) / (result.activations.size + 1)
        rows.append(
            f"| {label} | {result.activations.size} | {per_copy * 1e3:.1f} | "
            f"{full} | {per_copy * (full + 1):.0f} |"
        )
    return rows


def decode_rows(network: Network, args: argparse.Namespace, refs: list[ImageRef]) -> list[str]:
    refs = refs[:: max(1, len(refs) // args.decode_images)][: args.decode_images]
    rows = []
    for workers in (0, 1):
        started = time.perf_counter()
        count = sum(
            len(b) for b in image_batches(refs, network.preprocess, args.batch_size, workers)
        )
        decode = count / (time.perf_counter() - started)
        started = time.perf_counter()
        run_exemplar_pass(
            network,
            unit_sets_for(network, args.layer),
            refs,
            ExemplarConfig(batch_size=args.batch_size, num_workers=workers),
        )
        whole = count / (time.perf_counter() - started)
        rows.append(f"| {workers} | {count} | {decode:.1f} | {whole:.1f} | {whole / decode:.2f} |")
    return rows


# --------------------------------------------------------------------------------------------
# Memory (each size in its own process, so peaks do not mix)


def memory_child(spec: str) -> None:
    folder, count, layer, crop, batch_size, threads = json.loads(spec)
    torch.set_num_threads(threads)
    network = load_network(
        "builtin:efficientnet_lite0",
        device="cpu",
        preprocess=Preprocess(resize=int(crop * 8 / 7), crop=crop, mean=(0.5,) * 3, std=(0.5,) * 3),
    )
    refs = [ImageRef(i, path=str(Path(folder) / f"{i:06d}.png")) for i in range(count)]
    unit_sets = unit_sets_for(network, layer)
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    results = run_exemplar_pass(network, unit_sets, refs, ExemplarConfig(batch_size=batch_size))
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak = max(peak, process.memory_info().rss)
    print(
        json.dumps(
            {
                "images": results["channels"].n_images,
                "seconds": seconds,
                "before_mib": before / 2**20,
                "peak_mib": peak / 2**20,
            }
        )
    )


def memory_rows(args: argparse.Namespace, folder: Path, sizes: list[int]) -> list[str]:
    write_generated_set(folder, max(sizes))
    rows = []
    for count in sizes:
        spec = json.dumps(
            [str(folder), count, args.layer, args.memory_crop, args.batch_size, args.threads]
        )
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", spec],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout
        measured = json.loads(output.strip().splitlines()[-1])
        rows.append(
            f"| {measured['images']} | {measured['images'] / measured['seconds']:.1f} "
            f"| {measured['before_mib']:.0f} | {measured['peak_mib']:.0f} "
            f"| {measured['peak_mib'] - measured['before_mib']:.0f} |"
        )
    return rows


# --------------------------------------------------------------------------------------------
# Dictionary fits


def dictionary_rows(network: Network, args: argparse.Namespace, refs: list[ImageRef]) -> list[str]:
    step = max(1, len(refs) // args.fit_images)
    chosen = refs[::step][: args.fit_images]
    rows = []
    for layer, kinds in ((args.layer, ("nmf", "sae", "pca")), (args.nmf_layer, ("nmf", "pca"))):
        batches = (b.pixels for b in image_batches(chosen, network.preprocess, args.batch_size))
        started = time.perf_counter()
        samples = sample_position_vectors(network, batches, layer, max_samples=20_000, seed=0)
        sampling = time.perf_counter() - started
        negative = float((samples < 0).float().mean())
        rows.append(
            f"| {layer} | sampling {len(samples)} x {samples.shape[1]} from {len(chosen)} images "
            f"| - | {sampling:.1f} | - | {negative:.0%} negative entries |"
        )
        for kind in kinds:
            fitted = fit_dictionary_on_samples(samples, DictionaryConfig(kind, args.atoms))  # type: ignore[arg-type]
            note = "error on the clamped activations" if kind == "nmf" and negative else ""
            rows.append(
                f"| {layer} | {kind} | {args.atoms} | {fitted.fit_seconds:.1f} "
                f"| {fitted.reconstruction_error:.3f} | {note} |"
            )
    return rows


# --------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.quick:
        args.large, args.memory_sizes, args.rounds, args.fit_images = 200, "200,1000", 1, 40
        args.decode_images = 100
    torch.set_num_threads(args.threads)
    network = load_network("builtin:efficientnet_lite0")
    demo = [ImageRef(i, data=image.data) for i, image in enumerate(demo_images())]
    cache = Path(tempfile.gettempdir()) / "psylens-bench-generated"
    sizes = [int(size) for size in args.memory_sizes.split(",")]

    print(f"# bench_exemplars — {platform.node()}, {platform.processor() or platform.machine()}")
    print(
        f"device {network.device}, torch {torch.__version__}, {args.threads} thread(s), "
        f"{os.cpu_count()} cores (shared), layer {args.layer}, batch {args.batch_size}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("\n## Exemplar pass vs bare truncated forward (same decoded tensors)\n")
    print(
        "| image set | images | plain network img/s (NCHW, unfolded) | bare inference network"
        " img/s | exemplar pass img/s | pass / bare | pass / plain |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in throughput_rows(network, args, "demo (224 px crops)", demo):
        print(row, flush=True)
    generated = write_generated_set(cache, args.large)
    for row in throughput_rows(network, args, "generated (96 px PNG)", generated):
        print(row, flush=True)

    print(f"\n## Occlusion map of one channel at {args.layer} (224 px, 40 % occluder)\n")
    print(
        "| network | copies timed (stride 8) | ms per copy | copies at stride 2 |"
        " one map at stride 2 (s) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for row in occlusion_rows(network, args, demo):
        print(row, flush=True)

    title = (
        f"Whole pass with decoding vs the decode-only ceiling ({args.decode_images} demo images)"
    )
    print(f"\n## {title}\n")
    print("| decode workers | images | decode-only img/s | whole pass img/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for row in decode_rows(network, args, demo):
        print(row, flush=True)

    print(f"\n## Peak memory of the whole pass ({args.memory_crop} px input, generated set)\n")
    print("| images | img/s | RSS before pass MiB | peak RSS MiB | growth MiB |")
    print("| --- | --- | --- | --- | --- |")
    for row in memory_rows(args, cache, sizes):
        print(row, flush=True)

    print("\n## Dictionary fits (demo images)\n")
    print("| layer | dictionary | atoms | seconds | held-out 1 - R^2 | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in dictionary_rows(network, args, demo):
        print(row, flush=True)


if __name__ == "__main__":
    main()
