"""Image sets imported through the admin and a real worker: ZIP uploads with corrupt files,
server folders with class labels, images stored once by content hash."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from backend.stimuli.models import Image, ImageSet, Job
from tests.stimuli.factories import mixed_zip, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_job(job: Job, seconds: float = 120) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job.pk} still {job.state} after {seconds} s: {job.message}")


def upload_zip(client: Client, name: str, data: bytes) -> Any:
    return client.post(
        "/admin/stimuli/imageset/add/",
        {"name": name, "origin": "zip", "source": "", "description": "",
         "zip_file": SimpleUploadedFile(f"{name}.zip", data, content_type="application/zip")},
    )  # fmt: skip


def test_a_zip_with_corrupt_files_is_imported_and_the_bad_files_are_reported(
    celery_worker: Any, client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    response = upload_zip(client, "mixed", mixed_zip())
    assert response.status_code == 302
    job = wait_for_job(Job.objects.get(kind=Job.Kind.IMPORT_IMAGES))
    assert job.state == Job.State.SUCCEEDED, job.error
    image_set = ImageSet.objects.get(name="mixed")
    labels = sorted(image_set.members.values_list("label", flat=True))
    assert labels == ["cats", "cats", "dogs"]
    skipped = {entry["name"] for entry in image_set.import_report["skipped"]}
    assert "dogs/broken.jpg" in skipped
    page = client.get(f"/admin/stimuli/imageset/{image_set.pk}/change/")
    assert b"dogs/broken.jpg" in page.content


def test_the_same_images_are_stored_once_across_imports(
    celery_worker: Any, client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    for name in ("first", "second"):
        upload_zip(client, name, mixed_zip())
    for job in Job.objects.filter(kind=Job.Kind.IMPORT_IMAGES):
        assert wait_for_job(job).state == Job.State.SUCCEEDED
    assert Image.objects.count() == 3
    assert ImageSet.objects.get(name="second").members.count() == 3
    for image in Image.objects.all():
        stored = Path(settings.MEDIA_ROOT) / image.file.name
        assert stored.name.startswith(image.sha256)
        assert stored.exists()


def test_a_server_folder_keeps_class_labels(
    celery_worker: Any, client: Client, superuser: User, tmp_path: Path
) -> None:
    for label, seed in [("apple", 10), ("apple", 11), ("pear", 12)]:
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / f"{seed}.png").write_bytes(png_bytes(seed))
    client.force_login(superuser)
    client.post(
        "/admin/stimuli/imageset/add/",
        {"name": "fruit", "origin": "folder", "source": str(tmp_path), "description": ""},
    )
    assert wait_for_job(Job.objects.get()).state == Job.State.SUCCEEDED
    members = ImageSet.objects.get(name="fruit").members.order_by("position")
    assert [m.label for m in members] == ["apple", "apple", "pear"]


def test_a_missing_folder_fails_the_job_with_a_message(
    celery_worker: Any, client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    client.post(
        "/admin/stimuli/imageset/add/",
        {"name": "nowhere", "origin": "folder", "source": "/no/such/folder", "description": ""},
    )
    job = wait_for_job(Job.objects.get())
    assert job.state == Job.State.FAILED
    assert "/no/such/folder" in job.error


def test_a_zip_set_without_its_archive_is_refused_in_the_admin(
    client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    response = client.post(
        "/admin/stimuli/imageset/add/", {"name": "empty", "origin": "zip", "source": ""}
    )
    assert response.status_code == 200
    assert "Upload the ZIP archive." in response.content.decode()
    assert not ImageSet.objects.exists() and not Job.objects.exists()
