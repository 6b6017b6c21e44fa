"""The demo's LWTA network: EfficientNet-Lite0 with only its last block (`blocks.6`, two ReLU6
modules of 1152 channels) converted to LWTA blocks of U = 24, and a short distillation on the
first demo images with the layers before it frozen: cheap (seconds on 2 cores), so the demo
shows an LWTA network's page (its report and training curve) without a long fine-tune.
Idempotent: skipped when the network exists."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.atlas import lwta
from backend.stimuli import demo
from backend.stimuli.models import ImageSet, Network

NAME = "lite0-lwta-blocks6"
OPTIONS: dict[str, Any] = {
    "block_size": 24, "modules": ["blocks.6"], "module_types": ["ReLU6"],
    "steps": 6, "batch_size": 8, "learning_rate": 1e-3, "checkpoint_every": 3,
    "freeze_prefix": True, "max_images": 16,
}  # fmt: skip


def seed_lwta(command: BaseCommand) -> None:
    base = Network.objects.filter(name=demo.NETWORK[0]).first()
    image_set = ImageSet.objects.filter(name=demo.IMAGE_SET).first()
    if base is None or image_set is None or Network.objects.filter(name=NAME).exists():
        return
    command.stdout.write(f"Fine-tuning {NAME}: {base.name} with blocks.6 as LWTA (U = 24)…")
    job = demo.run_on_worker(command, lwta.do_queue_lwta(base, image_set, NAME, **OPTIONS))
    report = job.result.get("report", {})
    before = report.get("agreement_before")
    after = (report.get("image_set") or {}).get("agreement")
    if before is not None and after is not None:
        command.stdout.write(f"  top-1 agreement with {base.name}: {before:.0%} → {after:.0%}")
