"""Last-layer retraining as a Job (backend/atlas/retrain.py, docs/midrange.md §4) on a
constructed confounded toy: a random tiny ResNet whose classifier was fitted to predict an image's
colour, on images whose class is their stripes' period. Refitting the last layer on a curated,
group-balanced set raises the worst-group accuracy on a held-out set, and the base network is
left as it was; bad parameters are a 400 that queues nothing; the rows follow the catalogue's
scope."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from PIL import Image as PILImage
from rest_framework.test import APIClient

from backend.atlas import retrain as retrain_job
from backend.atlas.models import RetrainedNetwork
from backend.stimuli import services
from backend.stimuli.models import ImageSet, Job, Network
from worker.analyses import retrain
from worker.pipelines import imagesets
from worker.pipelines.networks import load_network
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/researcher/atlas/retrained/"
COLOURS = ("red", "blue")


def toy_png(period: int, colour: str, seed: int) -> bytes:
    """64×64 stripes of `period` pixels (the class), tinted `colour` (the confound)."""
    rng = np.random.default_rng(seed)
    x = np.arange(64)
    stripes = ((x // (period // 2)) % 2).astype(np.float32)[None, :].repeat(64, 0)
    stripes = np.roll(stripes, int(rng.integers(0, period)), axis=1)
    tint = np.array([1.0, 0.25, 0.25] if colour == "red" else [0.25, 0.25, 1.0])
    pixels = 40 + 180 * stripes[..., None] * tint + rng.normal(0, 6, (64, 64, 3))
    buffer = io.BytesIO()
    PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


PERIODS = (4, 16)  # class 0: fine stripes, class 1: coarse


def toy_set(name: str, counts: dict[tuple[int, str], int], seed: int, label_by: str) -> ImageSet:
    """`counts[(class, colour)]` images each; labelled by their class or, for the base's own
    fit, by their colour."""
    image_set = ImageSet.objects.create(name=name, origin=ImageSet.Origin.DEMO)
    candidates = []
    for (label, colour), n in sorted(counts.items()):
        for i in range(n):
            value = label if label_by == "class" else COLOURS.index(colour)
            data = toy_png(PERIODS[label], colour, seed + 1000 * label + 100 * len(colour) + i)
            candidates.append(imagesets.ImageCandidate(
                f"{value}/{label}-{colour}-{i}.png", str(value), data, None, {"colour": colour},
            ))  # fmt: skip
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    return image_set


@pytest.fixture
def confounded(tmp_path: Path) -> dict[str, Any]:
    """The base (a tiny random ResNet whose classifier reads colour), a curated training set
    with unequal groups and a balanced held-out set."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=2)
    weights = tmp_path / "resnet.pt"
    torch.save(model.state_dict(), weights)
    scratch = services.do_create_network("scratch", f"timm:test_resnet@{weights}")
    loaded = load_network(scratch.source, device="cpu")
    colour_set = toy_set("colours", {(c, k): 6 for c in (0, 1) for k in COLOURS}, 7, "colour")
    images, labels, _ = retrain_job._labelled(colour_set, loaded.preprocess, "")
    features, _ = retrain.features_and_logits(loaded.module, images)
    weight, bias, _ = retrain.fit_last_layer(
        features, labels, model.fc.weight, model.fc.bias, retrain.FitConfig(l2=1e-2)
    )
    with torch.no_grad():
        model.fc.weight.copy_(weight)
        model.fc.bias.copy_(bias)
    torch.save(model.state_dict(), weights)
    scratch.delete()
    base = services.do_create_network("colour-reader", f"timm:test_resnet@{weights}")
    # class 0 mostly red, class 1 mostly blue: the confound the base follows
    train = toy_set("curated", {(0, "red"): 10, (0, "blue"): 4, (1, "red"): 4, (1, "blue"): 10},
                    11, "class")  # fmt: skip
    held_out = toy_set("held-out", {(c, k): 6 for c in (0, 1) for k in COLOURS}, 13, "class")
    return {"base": base, "train": train, "eval": held_out, "weights": weights}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_retraining_the_last_layer_raises_worst_group_accuracy_and_leaves_the_base_alone(
    confounded: dict[str, Any], client: Client, superuser: User
) -> None:
    base: Network = confounded["base"]
    before_file = digest(confounded["weights"])
    loaded = load_network(base.source, device="cpu")
    held_out = retrain_job._labelled(confounded["eval"], loaded.preprocess, "colour")
    before_outputs = retrain.features_and_logits(loaded.module, held_out[0])[1]

    job = retrain_job.do_queue_retrain(
        base, confounded["train"], confounded["eval"], "stripe-reader", send=False,
        attribute="colour", seed=3,
    )  # fmt: skip
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    made = RetrainedNetwork.objects.get(base=base)
    assert made.network.name == "stripe-reader" and made.module == "fc"
    assert made.network.source == f"lastlayer:{base.source}@{made.weights}"
    assert made.fit["groups"] == {"0|blue": 4, "0|red": 10, "1|blue": 10, "1|red": 4}
    assert made.fit["per_group"] == 4 and made.fit["images"] == 16  # equal groups
    before, after = made.report["base"], made.report["retrained"]
    assert before["n"] == after["n"] == 24 and set(after["groups"]) == set(before["groups"])
    assert before["worst_group_accuracy"] <= 0.25  # the base follows colour
    assert after["worst_group_accuracy"] >= 0.8 > before["worst_group_accuracy"] + 0.5
    assert after["accuracy"] > before["accuracy"]

    # the new network loads with the refitted layer and only that layer differs
    new = load_network(made.network.source, device="cpu")
    saved = torch.load(made.weights, weights_only=True)
    assert torch.equal(new.module.fc.weight, saved["weight"])
    base_state = load_network(base.source, device="cpu").module.state_dict()
    changed = [k for k, v in new.module.state_dict().items() if not torch.equal(v, base_state[k])]
    assert sorted(changed) == ["fc.bias", "fc.weight"]
    # the base is untouched: its row, its weights file and its outputs
    base.refresh_from_db()
    assert base.source == f"timm:test_resnet@{confounded['weights']}"
    assert digest(confounded["weights"]) == before_file
    again = load_network(base.source, device="cpu")
    assert torch.equal(retrain.features_and_logits(again.module, held_out[0])[1], before_outputs)

    client.force_login(superuser)
    page = client.get(f"/admin/atlas/retrainednetwork/{made.pk}/change/")
    assert page.status_code == 200 and b'class="retrain-report"' in page.content
    assert b"group 0|red" in page.content and b"worst group" in page.content
    listing = client.get("/admin/atlas/retrainednetwork/")
    assert b"Retrain a network" in listing.content


def test_the_same_seed_fits_the_same_layer(confounded: dict[str, Any]) -> None:
    layers = []
    for name in ("a", "b"):
        job = run_job_here(retrain_job.do_queue_retrain(
            confounded["base"], confounded["train"], confounded["eval"], name, send=False,
            attribute="colour", seed=5,
        ))  # fmt: skip
        assert job.state == Job.State.SUCCEEDED, job.error
        layers.append(torch.load(RetrainedNetwork.objects.get(network__name=name).weights,
                                 weights_only=True)["weight"])  # fmt: skip
    assert torch.equal(layers[0], layers[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown parameter"),
        ({"base": 999999}, "base 999999 does not exist"),
        ({"eval_set": "x"}, "eval set must be an id"),
        ({"name": "colour-reader"}, "must be a new network name"),
        ({"l2": -1}, "l2 must be a number"),
        ({"steps": 0}, "steps"),
        ({"attribute": "size"}, "no image of the curated set has the attribute 'size'"),
    ],
)
def test_it_refuses_parameters_that_cannot_run(
    confounded: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    params = {
        "base": confounded["base"].pk,
        "train_set": confounded["train"].pk,
        "eval_set": confounded["eval"].pk,
        "name": "new",
        "attribute": "colour",
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        services.do_queue_job(retrain_job.KIND, params, send=False)
    assert not Job.objects.exists()


def test_sets_without_class_labels_or_of_one_class_are_refused(
    confounded: dict[str, Any],
) -> None:
    unlabelled = ImageSet.objects.create(name="unlabelled", origin=ImageSet.Origin.DEMO)
    services.do_import_images(unlabelled, [imagesets.ImageCandidate(
        "a.png", "cat", toy_png(4, "red", 1))], imagesets.ImportReport())  # fmt: skip
    one_class = toy_set("one", {(0, "red"): 2, (0, "blue"): 2}, 3, "class")
    common = {"base": confounded["base"].pk, "name": "new"}
    with pytest.raises(ValidationError, match="no class-index label"):
        services.do_queue_job(retrain_job.KIND, {**common, "train_set": unlabelled.pk,
                                                 "eval_set": confounded["eval"].pk})  # fmt: skip
    with pytest.raises(ValidationError, match="at least two classes"):
        services.do_queue_job(retrain_job.KIND, {**common, "train_set": one_class.pk,
                                                 "eval_set": confounded["eval"].pk})  # fmt: skip
    assert not Job.objects.exists()


def test_the_api_queues_lists_and_refuses_and_scopes_by_the_catalogue(
    owner: User, confounded: dict[str, Any]
) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    body = {
        "base": confounded["base"].pk,
        "train_set": confounded["train"].pk,
        "eval_set": confounded["eval"].pk,
        "name": "api-retrained",
        "attribute": "colour",
    }
    refused = client.post(URL, {**body, "l2": "much"}, format="json")
    assert refused.status_code == 400 and "l2 must be a number" in refused.json()["message"]
    assert not Job.objects.exists()
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 202, answer.content
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.kind == "retrain_last_layer" and job.created_by == owner
    assert run_job_here(job).state == Job.State.SUCCEEDED
    listed = client.get(URL).json()["retrained_networks"]
    assert [row["name"] for row in listed] == ["api-retrained"]
    assert listed[0]["report"]["retrained"]["worst_group_accuracy"] >= 0.8
    assert Network.objects.get(name="api-retrained").owner == owner
    outsider = User.objects.create_user("outsider", password="x" * 12, is_staff=True)
    other = APIClient()
    other.force_authenticate(outsider)
    assert other.get(URL).json()["retrained_networks"] == []


def test_the_admin_form_refuses_with_400_and_queues_with_a_redirect(
    confounded: dict[str, Any], client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    url = "/admin/atlas/retrainednetwork/retrain/"
    assert client.get(f"{url}?base={confounded['base'].pk}").status_code == 200
    form = {"base": confounded["base"].pk, "train_set": confounded["train"].pk,
            "eval_set": confounded["eval"].pk, "name": "from-admin", "attribute": "size",
            "l2": 0.001, "steps": 50, "seed": 0}  # fmt: skip
    refused = client.post(url, form)
    assert refused.status_code == 400 and b"no image of the curated set" in refused.content
    assert not Job.objects.exists()
    queued = client.post(url, {**form, "attribute": "colour"})
    assert queued.status_code == 302
    assert Job.objects.get().params["attribute"] == "colour"


def test_an_image_set_the_caller_may_not_see_is_refused(
    owner: User, confounded: dict[str, Any]
) -> None:
    held_out: ImageSet = confounded["eval"]
    held_out.owner = User.objects.create_user("other", password="x" * 12, is_staff=True)
    held_out.save()
    client = APIClient()
    client.force_authenticate(owner)
    body = {"base": confounded["base"].pk, "train_set": confounded["train"].pk,
            "eval_set": held_out.pk, "name": "peek", "attribute": "colour"}  # fmt: skip
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 400
    assert f"image set {held_out.pk} does not exist" in answer.json()["message"]
    assert not Job.objects.exists()


def test_a_lastlayer_source_names_its_problems(tmp_path: Path) -> None:
    from worker.pipelines.networks import NetworkError

    with pytest.raises(NetworkError, match="lastlayer source must look like"):
        load_network("lastlayer:nothing", device="cpu")
    with pytest.raises(NetworkError, match="last-layer file not found"):
        load_network(f"lastlayer:builtin:efficientnet_lite0@{tmp_path / 'none.pt'}", device="cpu")
    junk = tmp_path / "junk.pt"
    torch.save({"weight": torch.zeros(2)}, junk)
    with pytest.raises(NetworkError, match="is not a last-layer file"):
        load_network(f"lastlayer:builtin:efficientnet_lite0@{junk}", device="cpu")


def test_a_retrained_network_that_does_not_load_fails_the_merge_and_saves_nothing(
    tmp_path: Path,
) -> None:
    from backend.stimuli.jobs import JobFailed
    from backend.stimuli.models import Shard

    base = services.do_create_network("lite0", "builtin:efficientnet_lite0")
    job = Job.objects.create(kind=retrain_job.KIND, params={
        "base": base.pk, "name": "never-saved", "train_set": 0, "eval_set": 0,
    })  # fmt: skip
    fitted = {"weights": str(tmp_path / "missing.pt"), "module": "classifier",
              "fit": {"attribute": ""}, "report": {}}  # fmt: skip
    with pytest.raises(JobFailed, match="^the retrained network does not load: "):
        retrain_job.register_retrained_network(job, [Shard(job=job, result=fitted)], None)  # type: ignore[arg-type]
    assert not Network.objects.filter(name="never-saved").exists()
    assert not RetrainedNetwork.objects.exists()
