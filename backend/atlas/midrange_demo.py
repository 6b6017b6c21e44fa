"""The mid-range analyses in the demo (docs/midrange.md, "In the demo"): a confound report on one
of lite0's logits over the demo set, and lite0's last layer retrained on crops of foolbox's
ImageNet photos, balanced over the crop's scale. Both read the demo images' attributes
(`collection`, `crop_scale`), which the import gives and which these steps fill in on a demo
set imported before it did. Idempotent: each step is skipped when its rows exist."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from django.core.management.base import BaseCommand

from backend.atlas import confounds, retrain
from backend.atlas.models import ConfoundReport, RetrainedNetwork
from backend.stimuli import attributes, demo, services
from backend.stimuli.models import ImageSet, Network, UnitSet
from worker.pipelines import imagesets

# Lite0's 1000 logits: a channels unit set on the output pseudo-layer (no fit, no exemplars).
LOGITS: dict[str, Any] = {"name": "lite0-logits", "layer": "output", "kind": UnitSet.Kind.CHANNELS}
LOGIT = 609  # ImageNet's "jeep": the class of two of foolbox's photos (imagenet_06, _07)
N_BANDS = 10

TRAIN_SET = "demo-imagenet-curated"
EVAL_SET = "demo-imagenet-heldout"
RETRAINED = "lite0-dfr-crop-scale"
ATTRIBUTE = "crop_scale"
OPTIONS: dict[str, Any] = {"attribute": ATTRIBUTE, "steps": 200, "seed": 0}

_CROP = re.compile(r"_s(?P<scale>\d{3})_r(?P<row>\d+)c(?P<col>\d+)\.png$")


def seed_confound_report(command: BaseCommand) -> None:
    """The report of logit LOGIT over the demo set in N_BANDS bands, when it has none."""
    network, image_set = _demo_rows()
    if network is None or image_set is None:
        return
    fill_demo_attributes(command, image_set)
    logits = demo.ensure_unit_set(network, image_set, LOGITS)
    done = ConfoundReport.objects.filter(
        unit__unit_set=logits, unit__index=LOGIT, image_set=image_set, n_bands=N_BANDS
    )
    if done.exists():
        return
    command.stdout.write(f"Confound report of logit {LOGIT} of {network.name} over the demo set…")
    params = {"unit_set": logits.pk, "unit": LOGIT, "image_set": image_set.pk, "n_bands": N_BANDS}
    demo.run_on_worker(command, confounds.do_queue_confound_report(params))
    command.stdout.write(f"  {first_candidate(done.get())}")


def first_candidate(row: ConfoundReport) -> str:
    if not row.candidates:
        return f"no candidate confound at α = {row.alpha:g} ({len(row.tests)} tests)"
    top = confounds.candidate_row(row.candidates[0], row, 1)
    return (
        f"first of {len(row.candidates)} candidates: {top['attribute']} = {top['value']} in band "
        f"{top['band']} (quantiles {top['band_from'] * 100:.0f}–{top['band_to'] * 100:.0f} %), "
        f"{top['in_band']} of {top['band_size']} images, {top['enrichment']:.1f}× its share "
        f"{'in the top band' if top['against'] == 'top' else 'in the set'}, "
        f"Holm p = {top['p_holm']:.2g}"
    )


def seed_retraining(command: BaseCommand) -> None:
    """Lite0's last layer refitted on the curated crops, balanced over crop_scale, and
    evaluated beside lite0 on the held-out crops, when the retrained network does not exist."""
    network, image_set = _demo_rows()
    if network is None or image_set is None or Network.objects.filter(name=RETRAINED).exists():
        return
    fill_demo_attributes(command, image_set)
    sets = ensure_retraining_sets(image_set)
    if sets is None:  # foolbox is not installed: the demo set has no ImageNet photos
        return
    train_set, eval_set = sets
    command.stdout.write(
        f"Retraining {network.name}'s last layer on {train_set.members.count()} crops of "
        f"foolbox's ImageNet photos, balanced over {ATTRIBUTE}…"
    )
    job = retrain.do_queue_retrain(network, train_set, eval_set, RETRAINED, **OPTIONS)
    demo.run_on_worker(command, job)
    report = RetrainedNetwork.objects.get(network__name=RETRAINED).report
    command.stdout.write(f"  held-out accuracy, {network.name}: {_accuracy(report['base'])}")
    command.stdout.write(f"  held-out accuracy, {RETRAINED}: {_accuracy(report['retrained'])}")


def _accuracy(result: dict[str, Any]) -> str:
    """Overall, per crop scale (its groups pooled) and the worst (class, crop scale) group."""
    scales: dict[str, list[float]] = {}
    for group, found in result["groups"].items():
        right, n = scales.setdefault(group.partition("|")[2], [0.0, 0.0]), found["n"]
        right[0], right[1] = right[0] + found["accuracy"] * n, right[1] + n
    pooled = ", ".join(f"{s} % crops {r / n:.0%}" for s, (r, n) in sorted(scales.items()))
    return (
        f"{result['accuracy']:.0%} of {result['n']} ({pooled}); worst group "
        f"{result['worst_group']} {result['worst_group_accuracy']:.0%}"
    )


def _demo_rows() -> tuple[Network | None, ImageSet | None]:
    network = Network.objects.filter(name=demo.NETWORK[0]).first()
    image_set = ImageSet.objects.filter(name=demo.IMAGE_SET).first()
    return network, image_set


def fill_demo_attributes(command: BaseCommand, image_set: ImageSet) -> None:
    """Give the demo images that lack them their `collection` and `crop_scale` (a demo set
    imported before the import gave them); the others are left as they are."""
    lacking = [
        (name, imagesets.demo_attributes(name))
        for name, values in image_set.members.values_list("original_name", "attributes")
        if not {"collection", "crop_scale"} <= set(values or {})
    ]
    rows = [[name, found["collection"], found["crop_scale"]] for name, found in lacking if found]
    if rows:
        command.stdout.write(f"Giving {len(rows)} demo images their collection and crop scale…")
        table = io.StringIO()
        csv.writer(table).writerows([["name", "collection", "crop_scale"], *rows])
        attributes.do_set_image_attributes(image_set, table.getvalue().encode())


def crop_split(name: str) -> str | None:
    """Where a demo crop goes by its place in its grid: of the corners of the 2×2 grid at
    70 % and of the 3×3 grid at 50 %, those on the main diagonal (top left, bottom right) to the
    curated set ("train"), those on the other (top right, bottom left) to the held-out set
    ("eval"), so every (photo, crop scale) is in both with two crops. The full photo (one per
    photo) and the 3×3 grid's edges and centre go to neither (None)."""
    match = _CROP.search(name)
    grids = {int(scale * 100): grid for scale, grid in imagesets.DEMO_CROPS}
    if match is None or grids.get(int(match["scale"]), 1) < 2:
        return None
    last, row, col = grids[int(match["scale"])] - 1, int(match["row"]), int(match["col"])
    if row not in (0, last) or col not in (0, last):
        return None
    return "train" if row == col else "eval"


def ensure_retraining_sets(image_set: ImageSet) -> tuple[ImageSet, ImageSet] | None:
    """The curated and held-out sets: the demo set's crops of foolbox's ImageNet photos (the
    same stored images), labelled `<class index>_<class name>` as retraining needs; None when
    the demo set has none of them."""
    classes = imagesets.demo_imagenet_classes()
    split: dict[str, dict[int, str]] = {"train": {}, "eval": {}}
    for image, name, photo in image_set.members.values_list("image_id", "original_name", "label"):
        part = crop_split(name)
        if photo in classes and part is not None:
            split[part][image] = f"{classes[photo]}_{photo.split('_', 1)[1]}"
    if not split["train"] or not split["eval"]:
        return None
    made = []
    for name, part, what in ((TRAIN_SET, "train", "curated"), (EVAL_SET, "eval", "held-out")):
        existing = ImageSet.objects.filter(name=name).first()
        made.append(existing or services.do_create_image_subset(
            image_set, name, split[part], description=f"The demo's retraining set ({what}): "
            "the corner crops of foolbox's ImageNet photos at 70 % and 50 % on the "
            f"{'main' if part == 'train' else 'other'} diagonal, labelled by class index",
        ))  # fmt: skip
    return made[0], made[1]
