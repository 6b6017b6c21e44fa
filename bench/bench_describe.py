"""Benchmark: descriptions by soft-WPMI (CLIP-Dissect) on the built-in EfficientNet-Lite0 over the
demo image set, with the network's own concept source (its 1000 ImageNet classes).

Prints two tables:

1. Time to describe the demo's channel unit sets (blocks.2, blocks.4), against the activation
   pass alone over the same images (the exemplar pass's state, `exemplar_states`): the
   description pass (activations + the network's output probabilities per image) and the
   soft-WPMI scoring of every concept for every unit.
2. Sanity on the output layer (1000 units, one per class): the share of output units whose top
   concept is their own class, at CLIP-Dissect's defaults (top_k=100, lam=1, p 0.998 -> 0.97)
   and at a smaller top_k.

    .venv/bin/python bench/bench_describe.py            # the demo set (588 images)
    .venv/bin/python bench/bench_describe.py --quick    # the first 96 images
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.analyses import concepts, describe  # noqa: E402
from worker.pipelines import exemplars  # noqa: E402
from worker.pipelines.imagesets import demo_images  # noqa: E402
from worker.pipelines.loading import ImageRef, image_batches  # noqa: E402
from worker.pipelines.networks import OUTPUT_LAYER, load_network  # noqa: E402
from worker.pipelines.units import UnitSetSpec, build_projector  # noqa: E402

LAYERS = {"blocks.2": (40, 28, 28), "blocks.4": (112, 14, 14)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    network = load_network("builtin:efficientnet_lite0", device="cpu")
    refs = [ImageRef(i, data=c.data) for i, c in enumerate(demo_images())]
    if options.quick:
        refs = refs[:96]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(shared, loaded), torch threads {options.threads}; "
          f"{len(refs)} demo images")  # fmt: skip
    channel_sets = {
        name: build_projector(UnitSetSpec("channels", name), shape)
        for name, shape in LAYERS.items()
    }
    source = concepts.classifier_source(network, 1000)
    config = describe.SoftWpmiConfig()

    started = time.perf_counter()
    batches = image_batches(refs, network.preprocess, options.batch_size)
    exemplars.exemplar_states(network, channel_sets, batches, exemplars.ExemplarConfig(k=100))
    activation_s = time.perf_counter() - started

    started = time.perf_counter()
    states = concepts.describe_states(
        network, channel_sets, refs, source, config.top_k, options.batch_size
    )
    pass_s = time.perf_counter() - started
    started = time.perf_counter()
    n_units = 0
    for state in states.values():
        found = describe.top_concepts(state.scores(config), source.concepts, config.n_top)
        n_units += len(found)
    scoring_s = time.perf_counter() - started
    print("\n| what | units | seconds | vs activation pass |")
    print("|---|---:|---:|---:|")
    print(
        f"| activation pass alone (exemplar state, k=100) | {n_units} | {activation_s:.1f} | 1.00 |"
    )
    print(f"| description pass (activations + P(class given image)) | {n_units} | {pass_s:.1f} "
          f"| {pass_s / activation_s:.2f} |")  # fmt: skip
    print(f"| soft-WPMI scoring + top 5 (1000 concepts) | {n_units} | {scoring_s:.1f} "
          f"| {scoring_s / activation_s:.2f} |")  # fmt: skip
    total = pass_s + scoring_s
    print(f"| descriptions in all | {n_units} | {total:.1f} | {total / activation_s:.2f} |")

    output = {"output": build_projector(UnitSetSpec("channels", OUTPUT_LAYER), (1000,))}
    # top_k = every image: the state keeps every image's P(t | x) (for the classes present)
    state = concepts.describe_states(network, output, refs, source, len(refs), options.batch_size)
    probs = state["output"].probs
    # Classes the probe set holds at all, by the network's own top-1 over the images.
    present = torch.zeros(1000, dtype=torch.bool)
    present[probs.argmax(dim=1).unique()] = True
    print(f"\n{int(present.sum())} of 1000 classes are some probe image's top-1 class")
    print(
        "\n| output layer, classifier source | top_k | all 1000 units | units of classes present |"
    )
    print("|---|---:|---:|---:|")
    for top_k in (100, 20, 5):
        cfg = describe.SoftWpmiConfig(top_k=top_k)
        small = describe.DescribeState(state["output"].values[:top_k],
                                       state["output"].rows[:top_k], probs)  # fmt: skip
        own = small.scores(cfg).argmax(dim=1) == torch.arange(1000)
        share = float(own.float().mean())
        share_present = float(own[present].float().mean())
        label = "CLIP-Dissect defaults" if top_k == 100 else "smaller top_k"
        print(f"| {label} | {top_k} | {share:.1%} | {share_present:.1%} |")


if __name__ == "__main__":
    main()
