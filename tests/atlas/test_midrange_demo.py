"""The demo's mid-range steps (docs/midrange.md, "In the demo"): on a demo set imported before
the import gave attributes, they fill in each image's collection and crop scale; on a real
worker through the real Redis, a confound report of logit 609 of lite0 over the 588 demo images
in 10 bands, and lite0's last layer retrained on the corner crops of foolbox's ImageNet photos
(balanced over crop scale) beside the base on the held-out corners; a second run queues
nothing. The retraining sets' split and labels are checked without a worker."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from django.core.management.base import BaseCommand

from backend.atlas import midrange_demo
from backend.atlas.models import ConfoundReport, RetrainedNetwork
from backend.stimuli import demo, services
from backend.stimuli.models import Image, ImageSet, ImageSetMember, Job, UnitSet
from tests.stimuli.factories import png_bytes
from worker.pipelines import imagesets

pytestmark = pytest.mark.django_db(transaction=True)


def import_demo_set(candidates: list[imagesets.ImageCandidate]) -> ImageSet:
    """The demo set as an earlier import stored it: without attributes."""
    image_set = ImageSet.objects.create(name=demo.IMAGE_SET, origin=ImageSet.Origin.DEMO)
    old = [replace(candidate, attributes={}) for candidate in candidates]
    services.do_import_images(image_set, old, imagesets.ImportReport())
    return image_set


def quiet_command() -> BaseCommand:
    return BaseCommand(stdout=io.StringIO())


def output(command: BaseCommand) -> str:
    return str(command.stdout.getvalue())  # type: ignore[attr-defined]


def crop_names(*photos: str) -> list[str]:
    """The demo's names of the 14 crops of each photo."""
    return [f"{photo}/{photo}_s{scale:03d}_r{r}c{c}.png" for photo in photos
            for scale, grid in ((100, 1), (70, 2), (50, 3))
            for r in range(grid) for c in range(grid)]  # fmt: skip


def fake_crops(names: list[str]) -> list[imagesets.ImageCandidate]:
    """Small random images under the demo's names (label and source: the photo)."""
    return [
        imagesets.ImageCandidate(name, name.split("/")[0], png_bytes(i), name.split("/")[0])
        for i, name in enumerate(names)
    ]


def test_the_retraining_sets_hold_the_diagonal_corner_crops_labelled_by_class() -> None:
    names = crop_names("imagenet00_bull_mastiff", "imagenet06_jeep", "coffee")
    image_set = import_demo_set(fake_crops(names))
    command = quiet_command()
    midrange_demo.fill_demo_attributes(command, image_set)
    assert "Giving 42 demo images their collection and crop scale" in output(command)
    found = dict(image_set.members.values_list("original_name", "attributes"))
    assert found["coffee/coffee_s050_r2c1.png"] == {"collection": "skimage", "crop_scale": "50"}
    assert found["imagenet06_jeep/imagenet06_jeep_s100_r0c0.png"]["collection"] == "imagenet"

    sets = midrange_demo.ensure_retraining_sets(image_set)
    assert sets is not None
    train, held_out = sets
    rows = {
        part: sorted(s.members.values_list("original_name", "label", "attributes__crop_scale"))
        for part, s in (("train", train), ("eval", held_out))
    }  # fmt: skip
    assert [name.split("_s")[-1] for name, _, _ in rows["train"][:4]] == [
        "050_r0c0.png", "050_r2c2.png", "070_r0c0.png", "070_r1c1.png",
    ]  # fmt: skip
    assert [name.split("_s")[-1] for name, _, _ in rows["eval"][:4]] == [
        "050_r0c2.png", "050_r2c0.png", "070_r0c1.png", "070_r1c0.png",
    ]  # fmt: skip
    for part in ("train", "eval"):
        groups = Counter((label, scale) for _, label, scale in rows[part])
        assert groups == {("243_bull_mastiff", "50"): 2, ("243_bull_mastiff", "70"): 2,
                          ("609_jeep", "50"): 2, ("609_jeep", "70"): 2}  # fmt: skip
    stored = set(image_set.members.values_list("image_id", flat=True))
    assert set(train.members.values_list("image_id", flat=True)) <= stored  # the same images
    assert Image.objects.count() == len(names)
    assert (train.origin, train.owner) == (ImageSet.Origin.DEMO, None)

    again = quiet_command()
    midrange_demo.fill_demo_attributes(again, image_set)
    assert midrange_demo.ensure_retraining_sets(image_set) == (train, held_out)
    assert output(again) == "" and ImageSet.objects.count() == 3


def test_a_demo_set_without_foolboxs_photos_gets_no_retraining_sets() -> None:
    image_set = import_demo_set(fake_crops(crop_names("coffee", "china")))
    command = quiet_command()
    midrange_demo.seed_retraining(command)  # no network yet: nothing at all
    assert output(command) == "" and image_set.members.filter(attributes={}).count() == 28
    assert midrange_demo.ensure_retraining_sets(image_set) is None
    assert ImageSet.objects.count() == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_demo_steps_report_a_logit_and_retrain_lite0_on_the_worker_once(
    celery_worker: Any, stimuli: dict[str, Any]
) -> None:
    image_set = import_demo_set(list(imagesets.demo_images()))
    command = quiet_command()
    midrange_demo.seed_confound_report(command)
    midrange_demo.seed_retraining(command)
    printed = output(command)

    scales = Counter(image_set.members.values_list("attributes__crop_scale", flat=True))
    assert scales == {"100": 42, "70": 168, "50": 378}
    collections = Counter(image_set.members.values_list("attributes__collection", flat=True))
    assert collections == {"skimage": 280, "imagenet": 280, "sklearn": 28}

    report = ConfoundReport.objects.get()
    logits = report.unit.unit_set
    assert (logits.name, logits.kind, logits.layer.name) == ("lite0-logits", "channels", "output")
    assert logits.layer.network == stimuli["network"] and report.unit.index == 609
    assert report.image_set == image_set and report.n_bands == 10 and report.n_images == 588
    assert sorted(band["n_images"] for band in report.bands) == [58] * 2 + [59] * 8
    # 9 bands below the top × 48 values (42 photos, 3 collections, 3 scales) × 2 comparisons
    assert len(report.tests) == 864
    assert {test["attribute"] for test in report.tests} == {"label", "collection", "crop_scale"}
    assert report.candidates and report.job.state == Job.State.SUCCEEDED
    first = report.candidates[0]
    assert f"{first['attribute']} = {first['value']} in band {first['band']}" in printed

    made = RetrainedNetwork.objects.get()
    assert made.network.name == midrange_demo.RETRAINED and made.base == stimuli["network"]
    assert made.attribute == "crop_scale" and made.job.state == Job.State.SUCCEEDED
    assert (made.train_set.name, made.eval_set.name) == (
        midrange_demo.TRAIN_SET, midrange_demo.EVAL_SET,
    )  # fmt: skip
    for image_set_ in (made.train_set, made.eval_set):
        labels = image_set_.members.values_list("label", flat=True)
        assert len(labels) == 80 and all(re.match(r"^\d+_[a-z_]+$", label) for label in labels)
    assert made.fit["per_group"] == 2 and len(made.fit["groups"]) == 38  # 19 classes × 2 scales
    for key in ("base", "retrained"):
        assert made.report[key]["n"] == 80 and len(made.report[key]["groups"]) == 38
        assert 0 <= made.report[key]["worst_group_accuracy"] <= made.report[key]["accuracy"] <= 1
    assert f"held-out accuracy, lite0: {made.report['base']['accuracy']:.0%} of 80" in printed
    assert f"held-out accuracy, {midrange_demo.RETRAINED}: " in printed
    assert Image.objects.count() == 588 + 30  # the demo's and the fixture's: nothing re-imported

    again = quiet_command()
    midrange_demo.seed_confound_report(again)
    midrange_demo.seed_retraining(again)
    assert output(again) == ""
    assert sorted(Job.objects.values_list("kind", flat=True)) == [
        "confound_report", "retrain_last_layer",
    ]  # fmt: skip
    assert UnitSet.objects.filter(name="lite0-logits").count() == 1
    assert ImageSetMember.objects.filter(image_set__name__startswith="demo-").count() == 160
