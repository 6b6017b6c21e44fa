"""LWTA fine-tuning on CPU (worker/analyses/lwta.py): throughput in images per second, the top-1
agreement with the dense network before and after fine-tuning on the demo set, and the LWTA
network's exemplar pass against the dense network's (side by side, alternated).

    .venv/bin/python bench/bench_lwta.py [--images 32] [--steps 50] [--batch-size 8]
        [--learning-rate 1e-3] [--block-size 24] [--modules blocks.6] [--all-weights] [--quick]

The base is the built-in EfficientNet-Lite0; the demo set's first images are the training and
evaluation images; agreement is also read on foolbox's 20 labelled ImageNet photos (held out).
By default only the weights after the first replaced module train (`freeze_prefix`);
`--all-weights` trains every weight as DISCOVER does.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.analyses import lwta  # noqa: E402
from worker.pipelines.exemplars import ExemplarConfig, compute_exemplars  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageBatch, ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import Network, list_layers, load_network, wrap_module  # noqa: E402
from worker.pipelines.units import UnitSetSpec, build_projector  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=24)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--modules", nargs="*", default=["blocks.6"])
    parser.add_argument("--all-weights", action="store_true")
    parser.add_argument("--exemplar-layer", default="blocks.6")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.steps = 8, 3
    return args


def exemplar_seconds(network: Network, layer: str, images: torch.Tensor) -> float:
    """One exemplar pass (channels of ``layer``) over already-decoded ``images``."""
    shape = {info.name: info.shape for info in list_layers(network)}[layer]
    unit_sets = {"channels": build_projector(UnitSetSpec("channels", layer), shape)}
    batches = [
        ImageBatch(image_ids=torch.arange(i, min(i + 32, len(images))), pixels=images[i : i + 32])
        for i in range(0, len(images), 32)
    ]
    started = time.perf_counter()
    compute_exemplars(network, unit_sets, batches, ExemplarConfig(k=4))
    return time.perf_counter() - started


def exemplar_ratio(dense: Network, sparse: Network, layer: str, images: torch.Tensor) -> None:
    exemplar_seconds(dense, layer, images[:2])  # warm both (folding, checks)
    exemplar_seconds(sparse, layer, images[:2])
    times: dict[str, list[float]] = {"dense": [], "lwta": []}
    for name in ("dense", "lwta", "lwta", "dense"):  # alternated: drifting load hits both
        times[name].append(exemplar_seconds(dense if name == "dense" else sparse, layer, images))
    best = {name: min(values) for name, values in times.items()}
    print(f"\nexemplar pass, channels of {layer}, {len(images)} images (best of 2):")
    print("| network | seconds | images/s |\n|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {len(images) / seconds:.1f} |")
    print(f"| ratio (LWTA / dense time) | **{best['lwta'] / best['dense']:.2f}** | |")


def main() -> None:
    args = arguments()
    print(f"# bench_lwta — {platform.node()}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}")  # fmt: skip
    base = load_network("builtin:efficientnet_lite0", device="cpu")
    refs = [
        ImageRef(i, data=c.data) for i, c in zip(range(args.images), demo_images(), strict=False)
    ]
    images = torch.cat([b.pixels for b in image_batches(refs, base.preprocess, 32)])
    photos, labels = lwta.foolbox_labelled_images(base.preprocess)
    config = lwta.LWTAConfig(block_size=args.block_size, modules=tuple(args.modules))
    student, replaced = lwta.convert_to_lwta(base.module, config)
    targets = lwta.teacher_logits(base.module, images)
    before = lwta.lwta_report(student, base.module, images, targets=targets)
    before_photos = lwta.lwta_report(student, base.module, photos, labels)
    fine_tune = lwta.FineTuneConfig(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        freeze_prefix=not args.all_weights,
    )  # fmt: skip
    started = time.perf_counter()

    def report_step(step: int, steps: int, loss: float) -> None:
        if step == 1 or step % 10 == 0 or step == steps:
            print(f"  step {step:4d}  loss {loss:8.4f}  {time.perf_counter() - started:7.1f} s")

    result = lwta.fine_tune(
        student, base.module, images, fine_tune, targets=targets, progress=report_step
    )
    seconds = time.perf_counter() - started
    after = lwta.lwta_report(student, base.module, images, targets=targets)
    after_photos = lwta.lwta_report(student, base.module, photos, labels)
    print(f"LWTA U={args.block_size} over {len(replaced)} activations under {args.modules}; "
          f"{args.images} demo images, {args.steps} steps of {args.batch_size} at lr "
          f"{args.learning_rate}, training {result.trained_parameters} weights")  # fmt: skip
    print(f"| | before | after {args.steps} steps |\n|---|---:|---:|")
    print(f"| agreement (demo images) | {before.agreement:.1%} | {after.agreement:.1%} |")
    print(f"| agreement (foolbox photos, held out) | {before_photos.agreement:.1%} | "
          f"{after_photos.agreement:.1%} |")  # fmt: skip
    print(f"| accuracy (foolbox photos; dense {after_photos.teacher_accuracy:.0%}) | "
          f"{before_photos.accuracy:.1%} | {after_photos.accuracy:.1%} |")  # fmt: skip
    fractions = list(after.active_fraction.values())
    print(f"active fraction per layer: {min(fractions):.4f}–{max(fractions):.4f} "
          f"(1/U = {1 / args.block_size:.4f})")  # fmt: skip
    print(f"fine-tuning: {result.images_per_second:.2f} images/s ({seconds:.1f} s), "
          f"loss {result.curve[0]['loss']:.4f} -> {result.curve[-1]['loss']:.4f}")  # fmt: skip
    sparse = wrap_module(student, base.preprocess, source="lwta", device="cpu")
    exemplar_ratio(base, sparse, args.exemplar_layer, images)


if __name__ == "__main__":
    main()
