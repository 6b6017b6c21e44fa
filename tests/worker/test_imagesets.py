"""Scanning folders and ZIPs, decoding images safely, and the built-in demo set."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.worker.factories import encoded_image
from worker.pipelines.imagesets import (
    BadImage,
    ImageSetError,
    ImportReport,
    content_hash,
    decode_image,
    demo_attributes,
    demo_imagenet_classes,
    demo_images,
    scan_folder,
    scan_zip,
)


def _zip(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_scan_folder_reads_image_folder_layout_recursively(tmp_path: Path) -> None:
    (tmp_path / "cat" / "indoor").mkdir(parents=True)
    (tmp_path / "dog").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(encoded_image(1))
    (tmp_path / "cat" / "indoor" / "b.jpg").write_bytes(encoded_image(2, fmt="JPEG"))
    (tmp_path / "dog" / "c.PNG").write_bytes(encoded_image(3))
    (tmp_path / "loose.png").write_bytes(encoded_image(4))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    report = ImportReport()
    found = [(c.name, c.label) for c in scan_folder(tmp_path, report)]
    assert found == [
        ("cat/a.png", "cat"),
        ("cat/indoor/b.jpg", "cat"),
        ("dog/c.PNG", "dog"),
        ("loose.png", None),
    ]
    assert [(s.name, s.reason) for s in report.skipped] == [
        ("dog/notes.txt", "not an image file (extension)")
    ]


def test_scan_folder_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageSetError, match="image folder not found"):
        list(scan_folder(tmp_path / "absent"))


def test_scan_zip_strips_a_single_top_folder() -> None:
    archive = _zip({"myset/cat/a.png": encoded_image(1), "myset/dog/b.png": encoded_image(2)})
    assert [(c.name, c.label) for c in scan_zip(archive)] == [
        ("cat/a.png", "cat"),
        ("dog/b.png", "dog"),
    ]


def test_a_zip_with_corrupt_images_imports_the_rest_and_reports_them() -> None:
    good = encoded_image(1)
    archive = _zip(
        {
            "cat/good.png": good,
            "cat/truncated.png": good[: len(good) // 2],
            "cat/garbage.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
            "dog/empty.png": b"",
            "__MACOSX/cat/._good.png": b"resource fork",
        }
    )
    report = ImportReport()
    accepted = []
    for candidate in scan_zip(archive, report):
        try:
            decode_image(candidate.data)
        except BadImage as error:
            report.skip(candidate.name, error.reason)
        else:
            accepted.append(candidate.name)
    assert accepted == ["cat/good.png"]
    reasons = {s.name: s.reason for s in report.skipped}
    assert set(reasons) == {"cat/truncated.png", "cat/garbage.jpg", "dog/empty.png"}
    assert reasons["dog/empty.png"] == "empty file"
    assert reasons["cat/truncated.png"].startswith("corrupt or truncated image")


def test_a_file_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(ImageSetError, match="not a readable ZIP archive"):
        list(scan_zip(io.BytesIO(b"plain text")))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello world", "not an image or unsupported format"),
        (encoded_image(1)[:60], "corrupt or truncated image"),
        (encoded_image(1, size=(20, 200)), "too small"),
    ],
)
def test_decode_image_rejects_bad_bytes_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage) as raised:
        decode_image(data)
    assert raised.value.reason.startswith(reason)


def test_decode_image_rejects_unsupported_formats() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PPM")
    with pytest.raises(BadImage, match="unsupported format PPM"):
        decode_image(buffer.getvalue())


def test_decode_image_gives_rgb_for_gray_and_transparent_images() -> None:
    gray = decode_image(encoded_image(1, mode="L"))
    assert gray.image.mode == "RGB" and gray.format == "PNG"
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 40), (10, 20, 30, 0)).save(buffer, format="PNG")
    transparent = decode_image(buffer.getvalue())
    assert transparent.image.getpixel((5, 5)) == (255, 255, 255)  # flattened onto white
    assert (transparent.width, transparent.height) == (40, 40)


def test_content_hash_is_sha256_of_the_bytes() -> None:
    assert content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_demo_set_has_500_decodable_images_and_is_byte_identical_across_runs() -> None:
    def digest() -> tuple[str, int, set[str | None]]:
        total = hashlib.sha256()
        sources = set()
        count = 0
        for image in demo_images():
            total.update(image.name.encode() + b"\0" + image.data)
            assert image.source == image.label and image.name.startswith(f"{image.source}/")
            sources.add(image.source)
            count += 1
        return total.hexdigest(), count, sources

    first, second = digest(), digest()
    assert first == second
    assert first[1] >= 500
    assert {"coffee", "chelsea", "astronaut", "motorcycle_left", "camera"} <= first[2]
    decoded = decode_image(next(iter(demo_images())).data)
    assert (decoded.width, decoded.height) == (224, 224)


def test_the_demo_set_combines_every_photo_that_ships_offline() -> None:
    sources = {image.source for image in demo_images()}
    imagenet = sorted(str(source) for source in sources if str(source).startswith("imagenet"))
    # the 20 labelled ImageNet photos of foolbox, named by their class (imagenet-classes)
    assert len(imagenet) == 20 and "imagenet00_bull_mastiff" in imagenet
    assert {"china", "flower"} <= sources  # scikit-learn's two sample photos
    assert len(sources) == 20 + 20 + 2


def test_every_demo_image_carries_its_photos_collection_and_its_crop_scale() -> None:
    per_photo: dict[str, Counter[str]] = {}
    collections: dict[str, set[str]] = {}
    for image in demo_images():
        assert image.attributes == demo_attributes(image.name)
        per_photo.setdefault(str(image.source), Counter())[image.attributes["crop_scale"]] += 1
        collections.setdefault(image.attributes["collection"], set()).add(str(image.source))
    assert all(scales == {"100": 1, "70": 4, "50": 9} for scales in per_photo.values())
    assert {name: len(photos) for name, photos in collections.items()} == {
        "skimage": 20, "imagenet": 20, "sklearn": 2,
    }  # fmt: skip
    assert "imagenet07_jeep" in collections["imagenet"] and "china" in collections["sklearn"]
    assert demo_attributes("coffee/coffee_s070_r1c0.png") == {
        "collection": "skimage", "crop_scale": "70",
    }  # fmt: skip
    assert demo_attributes("cats/coffee_s070_r1c0.png") == {}  # not a demo crop's name
    assert demo_attributes("mine/mine_s070_r1c0.png") == {}  # not a demo photo


def test_the_demo_knows_the_imagenet_class_of_each_of_foolboxs_photos() -> None:
    classes = demo_imagenet_classes()
    assert len(classes) == 20 and classes["imagenet00_bull_mastiff"] == 243
    assert classes["imagenet06_jeep"] == classes["imagenet07_jeep"] == 609
