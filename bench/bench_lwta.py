"""LWTA fine-tuning on CPU (worker/analyses/lwta.py): throughput in images per second, and the
top-1 agreement with the dense network before and after fine-tuning on the demo set.

    .venv/bin/python bench/bench_lwta.py [--images 64] [--steps 20] [--block-size 24]
        [--modules blocks.5 blocks.6] [--quick]

The base is the built-in EfficientNet-Lite0; the demo set's first images are the training and
evaluation images; agreement is also read on foolbox's 20 labelled ImageNet photos (held out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.analyses import lwta  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import load_network  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=24)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--modules", nargs="*", default=["blocks.5", "blocks.6"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.steps = 16, 3
    base = load_network("builtin:efficientnet_lite0", device="cpu")
    refs = [
        ImageRef(i, data=c.data) for i, c in zip(range(args.images), demo_images(), strict=False)
    ]
    images = torch.cat([b.pixels for b in image_batches(refs, base.preprocess, 32)])
    photos, labels = lwta.foolbox_labelled_images(base.preprocess)
    config = lwta.LWTAConfig(block_size=args.block_size, modules=tuple(args.modules))
    student, replaced = lwta.convert_to_lwta(base.module, config)
    before = lwta.lwta_report(student, base.module, images)
    before_photos = lwta.lwta_report(student, base.module, photos, labels)
    started = time.perf_counter()
    result = lwta.fine_tune(
        student, base.module, images,
        lwta.FineTuneConfig(steps=args.steps, batch_size=args.batch_size,
                            learning_rate=args.learning_rate),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    after = lwta.lwta_report(student, base.module, images)
    after_photos = lwta.lwta_report(student, base.module, photos, labels)
    print(f"LWTA U={args.block_size} over {len(replaced)} activations under {args.modules}; "
          f"{args.images} demo images, {args.steps} steps of {args.batch_size}, "
          f"threads={torch.get_num_threads()}")  # fmt: skip
    print(f"{'':34} {'before':>8} {'after':>8}")
    print(f"{'agreement (demo images)':34} {before.agreement:8.1%} {after.agreement:8.1%}")
    print(f"{'agreement (foolbox photos)':34} {before_photos.agreement:8.1%} "
          f"{after_photos.agreement:8.1%}")  # fmt: skip
    print(f"{'accuracy (foolbox photos)':34} {before_photos.accuracy:8.1%} "
          f"{after_photos.accuracy:8.1%}   dense: {after_photos.teacher_accuracy:.1%}")  # fmt: skip
    fractions = list(after.active_fraction.values())
    print(f"active fraction per layer: {min(fractions):.4f}–{max(fractions):.4f} "
          f"(1/U = {1 / args.block_size:.4f})")  # fmt: skip
    print(f"fine-tuning: {result.images_per_second:.1f} images/s ({seconds:.1f} s), "
          f"loss {result.curve[0]['loss']:.4f} -> {result.curve[-1]['loss']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
