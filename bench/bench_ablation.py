"""Benchmark: all single-channel ablations of `blocks.4` of EfficientNet-Lite0 on demo images
(docs/benchmarks.md, Atlas), three ways side by side in one run:

1. ours: `worker.analyses.ablation.ablation_pass`: the prefix once per image batch, the suffix
   once for images × ablations (the folded inference network).
2. baseline: what a researcher would write: a forward hook that zeroes one channel and reruns
   the whole (plain) network, one unit at a time.
3. floor: the prefix once plus the suffix once per ablation, as plain forwards of the same
   folded module (no hook, no copies, no statistics).

Targets: ours ≥ 5× the baseline, ≥ 0.8 of the floor. Then the activation-measures pass
(classes from the network's top-1: the whole network runs) against a bare forward of the same
folded network (target ≥ 0.9), and the measures state's size for 100 and 10,000 images (flat).

    .venv/bin/python bench/bench_ablation.py            # 16 images
    .venv/bin/python bench/bench_ablation.py --quick    # 2 images, a smoke check
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from worker.analyses import ablation, activity  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import inference_network, load_network, prepare_batch  # noqa: E402
from worker.pipelines.units import ChannelProjector, UnitSetSpec  # noqa: E402

LAYER = "blocks.4"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images: a smoke check")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--copies", type=int, default=256, help="copies per suffix forward")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    if args.quick:
        args.images = 2
    return args


LAST_CPU = [0.0]  # the process CPU seconds of the last timed run


def timed(run) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """Wall seconds; the process CPU seconds go to LAST_CPU (on a machine shared with other
    work the fairer figure: it counts only this process's threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = run()
    LAST_CPU[0] = time.process_time() - cpu
    return time.perf_counter() - start, value


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = load_network("builtin:efficientnet_lite0", device="cpu")
    images = itertools.islice(demo_images(), args.images)
    refs = [ImageRef(i, data=image.data) for i, image in enumerate(images)]
    pixels = next(iter(image_batches(refs, network.preprocess, len(refs)))).pixels
    projector = ChannelProjector(UnitSetSpec("channels", LAYER), 112)
    remover = ablation.remover_for(projector)
    groups = [[c] for c in range(112)]
    folded = inference_network(network, [LAYER]).network.module
    batch = max(1, args.copies // (len(groups) + 1))

    def ours() -> object:
        batches = image_batches(refs, network.preprocess, batch)
        return ablation.ablation_pass(network, projector, remover, groups, batches)

    def baseline() -> object:
        layer = dict(network.module.named_modules())[LAYER]
        outputs = []
        with torch.no_grad():
            for channel in range(112):

                def zero(_m, _i, out, channel=channel):  # type: ignore[no-untyped-def]
                    out = out.clone()
                    out[:, channel] = 0
                    return out

                handle = layer.register_forward_hook(zero)
                outputs.append(network.module(pixels))
                handle.remove()
        return outputs

    def floor() -> object:
        with torch.no_grad():
            x = prepare_batch(pixels, "cpu")
            x = folded.bn1(folded.conv_stem(x))
            x = folded.blocks[:5](x)
            outputs = []
            for _ in range(112):
                y = folded.bn2(folded.conv_head(folded.blocks[5:](x)))
                outputs.append(folded.forward_head(y))
        return outputs

    ours()  # warm-up: folding, the probe check, oneDNN's first calls
    t_ours, state = timed(ours)
    c_ours = LAST_CPU[0]
    print(f"ours {t_ours:.2f} s ({c_ours:.1f} CPU s)", flush=True)
    t_base, _ = timed(baseline)
    c_base = LAST_CPU[0]
    print(f"baseline {t_base:.2f} s ({c_base:.1f} CPU s)", flush=True)
    t_floor, _ = timed(floor)
    c_floor = LAST_CPU[0]
    machine = platform.processor() or platform.machine()
    print(f"# ablation: {args.images} images x 112 channels of {LAYER}, "
          f"{os.cpu_count()} CPUs ({machine}), torch {torch.__version__}")  # fmt: skip
    print(f"{'way':<10}{'seconds':>10}{'CPU s':>10}{'ablations/s':>14}")
    for name, seconds, cpu in [("ours", t_ours, c_ours), ("baseline", t_base, c_base),
                               ("floor", t_floor, c_floor)]:  # fmt: skip
        print(f"{name:<10}{seconds:>10.2f}{cpu:>10.1f}{112 / seconds:>14.1f}")
    print(f"speed-up over the hook baseline: {t_base / t_ours:.2f}x wall, "
          f"{c_base / c_ours:.2f}x CPU (target >= 5)")  # fmt: skip
    print(f"fraction of the floor: {t_floor / t_ours:.2f} wall, {c_floor / c_ours:.2f} CPU "
          "(target >= 0.8)")  # fmt: skip
    del state

    units = {"c": projector}
    truncated = inference_network(network, [LAYER, "output"])

    decoded = list(image_batches(refs, network.preprocess, len(refs)))  # decoded once, as for
    # the bare forward: the ratio is the pass's own cost (statistics, class source, hooks)

    def measures() -> object:
        return activity.activity_states(network, units, decoded, activity.ClassSource())

    def bare() -> object:
        with torch.no_grad():
            return truncated(prepare_batch(pixels, "cpu"))

    measures(), bare()
    t_measures, c_measures = min((timed(measures)[0], LAST_CPU[0]) for _ in range(3))
    t_bare, c_bare = min((timed(bare)[0], LAST_CPU[0]) for _ in range(3))
    print(f"# measures pass (network top-1 classes) vs a bare forward, {args.images} images")
    print(f"measures {t_measures:.3f} s, bare forward {t_bare:.3f} s (images decoded "
          f"beforehand for both): ratio {t_bare / t_measures:.2f} wall, "
          f"{c_bare / c_measures:.2f} CPU (target >= 0.9)")  # fmt: skip
    sizes = []
    for n in (100, 10_000):
        state = activity.ActivityState(112, 1000)
        for _ in range(n // 100):
            state.add(torch.rand(100, 112), torch.randint(0, 1000, (100,)))
        sizes.append(sum(t.numel() * t.element_size() for t in state.state_dict().values()))
    print(f"measures state: {sizes[0]} bytes after 100 images, {sizes[1]} after 10,000 (flat)")


if __name__ == "__main__":
    main()
