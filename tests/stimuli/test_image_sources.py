"""Each image of a set can name the photo it was derived from: from an images.csv in the ZIP or
folder, or a naming rule; the set downloads as a ZIP with images.csv that imports back the same;
exemplars keep one image per photo by default where the set has sources."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client

from backend.stimuli import services
from backend.stimuli.models import ExemplarSet, ImageSet, Job
from tests.stimuli.factories import png_bytes, zip_with
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def import_zip(name: str, data: bytes, **fields: Any) -> ImageSet:
    stored = default_storage.save(f"uploads/{name}.zip", ContentFile(data))
    image_set = ImageSet.objects.create(name=name, origin=ImageSet.Origin.ZIP, source=stored,
                                        **fields)  # fmt: skip
    job = run_job_here(services.do_queue_job(Job.Kind.IMPORT_IMAGES, {"image_set": image_set.pk},
                                             send=False))  # fmt: skip
    assert job.state == Job.State.SUCCEEDED, job.error
    return ImageSet.objects.get(pk=image_set.pk)


def members(image_set: ImageSet) -> list[tuple[str, str, str]]:
    rows = image_set.members.order_by("original_name")
    return list(rows.values_list("original_name", "label", "source"))


def table(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def test_an_import_with_a_source_csv_round_trips() -> None:
    files = {f"cats/a_crop{i}.png": png_bytes(i) for i in range(3)}
    files |= {"dogs/b.png": png_bytes(7), "dogs/c.png": png_bytes(8)}
    files["images.csv"] = table([["name", "source", "note"], ["cats/a_crop0.png", "a", "x"],
                                 ["cats/a_crop1.png", "a", ""], ["cats/a_crop2.png", "a", ""],
                                 ["dogs/b.png", "b", ""], ["dogs/zzz.png", "z", ""]])  # fmt: skip
    image_set = import_zip("with-sources", zip_with(files))
    expected = [("cats/a_crop0.png", "cats", "a"), ("cats/a_crop1.png", "cats", "a"),
                ("cats/a_crop2.png", "cats", "a"), ("dogs/b.png", "dogs", "b"),
                ("dogs/c.png", "dogs", "")]  # fmt: skip
    assert members(image_set) == expected
    skipped = {s["name"]: s["reason"] for s in image_set.import_report["skipped"]}
    assert skipped == {"images.csv: dogs/zzz.png": "names no image of the set"}

    archive = services.image_set_archive(image_set).read()
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert sorted(opened.namelist()) == sorted([*(name for name, _, _ in expected),
                                                    "images.csv"])  # fmt: skip
    again = import_zip("round-trip", archive)
    assert members(again) == expected
    assert again.import_report["skipped"] == []


def test_a_naming_rule_gives_the_sources(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "birds").mkdir(parents=True)
    for name, seed in (("owl_crop1", 1), ("owl_crop2", 2), ("tit", 3)):
        (folder / "birds" / f"{name}.png").write_bytes(png_bytes(seed))
    call_command("import_images", "rule", "--folder", str(folder), "--source-rule",
                 r"^(.+?)_crop", "--now")  # fmt: skip
    image_set = ImageSet.objects.get(name="rule")
    assert members(image_set) == [("birds/owl_crop1.png", "birds", "birds/owl"),
                                  ("birds/owl_crop2.png", "birds", "birds/owl"),
                                  ("birds/tit.png", "birds", "")]  # fmt: skip
    assert image_set.has_sources


def test_a_rule_that_is_not_a_regular_expression_is_refused(
    tmp_path: Path, client: Client, superuser: User
) -> None:
    with pytest.raises(CommandError, match="Not a regular expression"):
        call_command("import_images", "bad", "--folder", str(tmp_path), "--source-rule", "(")
    client.force_login(superuser)
    response = client.post("/admin/stimuli/imageset/add/", {
        "name": "bad", "origin": "folder", "source": str(tmp_path), "source_rule": "(",
        "description": "",
    })  # fmt: skip
    assert response.status_code == 200 and "Not a regular expression" in response.content.decode()
    assert not ImageSet.objects.exists() and not Job.objects.exists()


def test_exemplars_keep_one_image_per_photo_where_the_set_has_sources(
    stimuli: dict[str, Any],
) -> None:
    image_set = stimuli["image_set"]
    # 30 images, 6 photos of 5 crops each
    for member in image_set.members.all():
        member.source = f"photo{member.position // 5}"
        member.save()
    params = {"image_set": image_set.pk, "unit_sets": [stimuli["channels"].pk], "k": 10}
    run_job_here(services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, params, send=False))
    source = dict(image_set.members.values_list("image_id", "source"))
    for exemplar_set in ExemplarSet.objects.all():
        assert exemplar_set.distinct_sources
        for entries in (exemplar_set.top, exemplar_set.bottom):
            photos = [source[e["image"]] for e in entries]
            assert len(photos) == 6 == len(set(photos))  # one crop of each of the 6 photos
    every_crop = {**params, "distinct_sources": False}
    run_job_here(services.do_queue_job(Job.Kind.COMPUTE_EXEMPLARS, every_crop, send=False))
    exemplar_set = ExemplarSet.objects.first()
    assert exemplar_set is not None and not exemplar_set.distinct_sources
    assert len(exemplar_set.top) == 10
