"""Descriptions as a Job: queued through the researcher API, run by a real worker through the
real Redis, sharded by image ranges (the same words as one shard), written once when run twice,
shown on the unit's admin page with their concept source; bad parameters get a clear 400."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.atlas import descriptions
from backend.atlas.models import Description
from backend.stimuli import services
from backend.stimuli.models import ImageSet, Job, UnitSet
from tests.stimuli.factories import png_bytes
from tests.stimuli.test_image_sets import wait_for_job
from worker.pipelines import imagesets
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)
LAYER = "blocks.1"  # [24, 56, 56]


@pytest.fixture
def probe(db: Any) -> dict[str, Any]:
    network = services.do_create_network("lite0", "builtin:efficientnet_lite0")
    image_set = ImageSet.objects.create(name="probe", origin=ImageSet.Origin.DEMO)
    candidates = [imagesets.ImageCandidate(f"{i}.png", None, png_bytes(i)) for i in range(12)]
    services.do_import_images(image_set, candidates, imagesets.ImportReport())
    channels = services.do_save_unit_set(
        UnitSet(name="ch", layer=network.layers.get(name=LAYER), kind=UnitSet.Kind.CHANNELS,
                image_set=image_set)
    )  # fmt: skip
    return {"network": network, "image_set": image_set, "channels": channels}


def test_descriptions_through_the_api_and_a_real_worker(
    celery_worker: Any, client: Client, superuser: User, probe: dict[str, Any]
) -> None:
    client.force_login(superuser)
    body = {"unit_sets": [probe["channels"].pk], "image_set": probe["image_set"].pk,
            "top_k": 5, "images_per_shard": 5}  # fmt: skip
    response = client.post("/api/v1/researcher/atlas/descriptions/", body, "application/json")
    assert response.status_code == 202, response.content
    job = wait_for_job(Job.objects.get(pk=response.json()["id"]), seconds=240)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.shards.filter(role="work").count() == 3  # 12 images, 5 per shard
    assert job.result["units"] == 24 and job.result["images"] == 12
    rows = Description.objects.filter(unit__unit_set=probe["channels"])
    assert rows.count() == 24
    first = rows.get(unit__index=0)
    assert first.source == "classifier: builtin:efficientnet_lite0"
    assert len(first.concepts) == 5 and first.text == first.concepts[0]["concept"]
    scores = [c["score"] for c in first.concepts]
    assert scores == sorted(scores, reverse=True)
    listed = client.get(f"/api/v1/researcher/atlas/descriptions/?unit_set={probe['channels'].pk}")
    assert listed.status_code == 200 and len(listed.json()["descriptions"]) == 24
    page = client.get(f"/admin/stimuli/unit/{first.unit.pk}/change/")
    assert page.status_code == 200
    assert b"concept source: classifier: builtin:efficientnet_lite0" in page.content
    assert first.text.encode() in page.content


def test_shards_give_the_words_of_one_pass_and_a_rerun_writes_once(
    probe: dict[str, Any],
) -> None:
    one = descriptions.queue_descriptions(
        [probe["channels"]], probe["image_set"], send=False, top_k=4, images_per_shard=100
    )
    run_job_here(one.pk)
    whole = {d.unit.index: d.concepts for d in Description.objects.select_related("unit")}
    sharded = descriptions.queue_descriptions(
        [probe["channels"]], probe["image_set"], send=False, top_k=4, images_per_shard=4
    )
    run_job_here(sharded.pk)
    assert Job.objects.get(pk=sharded.pk).state == Job.State.SUCCEEDED
    again = {d.unit.index: d.concepts for d in Description.objects.select_related("unit")}
    assert Description.objects.count() == 24  # replaced, not added
    for index, concepts in whole.items():
        assert [c["concept"] for c in again[index]] == [c["concept"] for c in concepts]
        for a, b in zip(again[index], concepts, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)


BAD = [
    ({"source": "clip"}, "open_clip:ARCH@CHECKPOINT_PATH"),
    ({"source": "open_clip:ViT-B-32@/models/clip.pt"}, "concepts_file"),
    ({"p_start": 0.5, "p_end": 0.9}, "p_end"),
    ({"top_k": 0}, "top_k"),
    ({"colour": "red"}, "unknown parameter"),
]


def test_bad_parameters_get_a_400_and_queue_nothing(
    client: Client, superuser: User, probe: dict[str, Any]
) -> None:
    client.force_login(superuser)
    for extra, message in BAD:
        body = {"unit_sets": [probe["channels"].pk], "image_set": probe["image_set"].pk, **extra}
        response = client.post("/api/v1/researcher/atlas/descriptions/", body, "application/json")
        assert response.status_code == 400 and message in response.json()["message"], extra
    assert not Job.objects.exists()
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/researcher/atlas/descriptions/" in schema
