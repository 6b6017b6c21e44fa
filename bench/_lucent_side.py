"""The torch-lucent side of bench_featurevis.py, run with /work/main/.bench-venv-lucent's python.

Reads one JSON command per stdin line and answers one JSON line: {"render": [units], ...} renders
each unit on its own (torch-lucent 0.1.8's render_vis, one unit at a time) and reports seconds.
Arguments: torch threads, the device (cpu or cuda: torch-lucent itself puts its images on the
GPU whenever there is one), then "keep" to give it our engine's malloc thresholds
(worker.memory).
Not a test and not part of PsyLens: it exists only so the benchmark can compare side by side.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from lucent.optvis import objectives, param, render, transform  # noqa: E402

from worker.memory import keep_freed_memory  # noqa: E402
from worker.pipelines.networks import load_network  # noqa: E402


def normaliser(mean: list[float], std: list[float]):  # type: ignore[no-untyped-def]
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return lambda image: (image - mean_t) / std_t


def render_unit(network, layer: str, unit: int, options: dict) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    transforms = list(transform.standard_transforms)
    transforms.append(normaliser(list(network.preprocess.mean), list(network.preprocess.std)))
    render.render_vis(
        network.module,
        objectives.channel(layer.replace(".", "_"), unit),
        lambda: param.image(options["image_size"], fft=True, decorrelate=True),
        transforms=transforms,
        thresholds=(options["steps"],),
        preprocess=False,
        progress=False,
        show_image=False,
        fixed_image_size=options["network_size"],
    )
    elapsed = time.perf_counter() - start
    # render_vis leaves a hook on every module; clearing them keeps later units as fast as the
    # first (otherwise lucent slows down with every unit and the comparison flatters us).
    for module in network.module.modules():
        module._forward_hooks.clear()
    return elapsed


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    if sys.argv[3:4] == ["keep"]:
        keep_freed_memory()
    network = load_network("builtin:efficientnet_lite0", device=device)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        times = [render_unit(network, command["layer"], u, command) for u in command["render"]]
        print(json.dumps({"seconds": times}), flush=True)


if __name__ == "__main__":
    main()
