"""Fine-tuning an LWTA network as a Job (backend/atlas/lwta.py): the new Network with its own
source string, its report and training curve, resuming a checkpoint, refused parameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from backend.atlas.lwta import checkpoint_path, do_queue_lwta
from backend.atlas.models import LWTANetwork
from backend.stimuli import services
from backend.stimuli.models import ImageSet, Job, Network
from worker.analyses import lwta
from worker.pipelines.networks import load_network
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)
U = 4
OPTIONS = {"block_size": U, "steps": 4, "batch_size": 4, "checkpoint_every": 2,
           "learning_rate": 1e-2, "modules": ["layer2"]}  # fmt: skip


def test_the_job_makes_a_network_whose_source_loads_its_fine_tuned_weights(
    base_and_images: tuple[Network, ImageSet], client: Client, superuser: User
) -> None:
    base, image_set = base_and_images
    job = run_job_here(do_queue_lwta(base, image_set, "tiny-resnet-lwta", send=False, **OPTIONS))
    assert job.state == Job.State.SUCCEEDED, job.error
    made = LWTANetwork.objects.get(base=base)
    assert made.network.name == "tiny-resnet-lwta"
    assert made.network.source == f"lwta:{base.source}@{made.checkpoint}"
    assert made.network.layers.filter(name="layer2.0.act1").exists()
    assert made.modules and all(name.startswith("layer2.") for name in made.modules)
    assert [point["step"] for point in made.curve] == [1, 2, 3, 4]
    fractions = made.report["image_set"]["active_fraction"]
    assert set(fractions) == set(made.modules) and all(f == 1 / U for f in fractions.values())
    photos = made.report["imagenet_photos"]
    assert photos["labelled_images"] == 20 and 0 <= photos["accuracy"] <= 1

    loaded = load_network(made.network.source, device="cpu")
    saved = torch.load(made.checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in saved.items())
    assert isinstance(loaded.module.get_submodule(made.modules[0]), lwta.LWTA)

    client.force_login(superuser)
    page = client.get(f"/admin/atlas/lwtanetwork/{made.pk}/change/")
    assert page.status_code == 200
    assert b'class="lwta-curve"' in page.content and b"training loss over 4 steps" in page.content
    assert f"{made.modules[0]}: 0.2500".encode() in page.content


def test_a_redelivered_job_resumes_from_its_last_checkpoint(
    base_and_images: tuple[Network, ImageSet],
) -> None:
    base, image_set = base_and_images
    job = do_queue_lwta(base, image_set, "resumed", send=False, **OPTIONS)
    # what a worker killed after step 2 leaves: the checkpoint at the job's path
    teacher = load_network(base.source, device="cpu").module
    student, _ = lwta.convert_to_lwta(teacher, lwta.LWTAConfig(block_size=U, modules=("layer2",)))
    lwta.fine_tune(
        student, teacher, torch.randn(4, 3, 64, 64), lwta.FineTuneConfig(steps=2, batch_size=4),
        checkpoint_path=str(checkpoint_path(job)),
    )  # fmt: skip
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    made = LWTANetwork.objects.get(network__name="resumed")
    assert made.fine_tune["resumed_from"] == 2
    assert [point["step"] for point in made.curve] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "tiny-resnet"}, "must be a new network name"),
        ({"block_size": 1}, "at least 2"),
        ({"learning_rate": 0}, "positive number"),
        ({"steps": 0}, "steps must be a whole number"),
    ],
)
def test_it_refuses_parameters_that_cannot_run(
    base_and_images: tuple[Network, ImageSet], change: dict[str, Any], message: str
) -> None:
    base, image_set = base_and_images
    params = {"base": base.pk, "image_set": image_set.pk, "name": "new", **OPTIONS, **change}
    with pytest.raises(ValidationError, match=message):
        services.do_queue_job("finetune_lwta", params, send=False)
    assert not Job.objects.exists()
