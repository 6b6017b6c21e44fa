"""Every write to the stimuli tables: images by content hash, networks and their layers, image
set imports, jobs. Each function does its writes in one transaction."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.core import csvcells
from backend.stimuli import jobkinds
from backend.stimuli.models import (
    ExemplarSet,
    Image,
    ImageSet,
    ImageSetMember,
    Job,
    Layer,
    Network,
    OcclusionMap,
    Shard,
    Unit,
    UnitSet,
    Visualization,
)
from worker.pipelines import imagesets

# The user behind an admin action or API call (anonymous or absent for scripts).
Researcher = User | AnonymousUser | None

# Formats every browser shows; anything else is re-encoded as PNG.
WEB_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def image_path(sha256: str, extension: str) -> str:
    return f"img/{sha256[:2]}/{sha256}.{extension}"


def store_image(data: bytes, kind: str = Image.Kind.NATURAL) -> Image:
    """Store bytes once under their content hash; return the (new or existing) Image.

    Raises imagesets.BadImage for bytes that are not a usable image.
    """
    decoded = imagesets.decode_image(data)
    if decoded.format not in WEB_FORMATS:
        buffer = io.BytesIO()
        decoded.image.save(buffer, format="PNG")
        data, extension = buffer.getvalue(), "png"
    else:
        extension = WEB_FORMATS[decoded.format]
    sha256 = imagesets.content_hash(data)
    existing = Image.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing
    name = image_path(sha256, extension)
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    try:
        with transaction.atomic():
            return Image.objects.create(
                sha256=sha256, file=name, width=decoded.width, height=decoded.height, kind=kind
            )
    except IntegrityError:  # another worker stored the same bytes a moment ago
        return Image.objects.get(sha256=sha256)


def store_array_image(pixels: Any, kind: str) -> Image:
    """Store an RGB uint8 array [H, W, 3] (a visualization, an occluded copy) as PNG."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return store_image(buffer.getvalue(), kind=kind)


def store_trial_copy(image: Image) -> Image:
    """The same picture under other bytes (and so another content-hash URL): what a trial shows
    where it repeats an image (a catch trial's correct query is one of its references), so that
    a script cannot answer by comparing URLs or file bytes. Same format and size as the
    original (a PNG keeps its pixels and gains a text chunk; a JPEG or WebP is re-encoded at
    high quality); deterministic, so a rebuild reuses the copy."""
    from PIL import Image as PILImage
    from PIL import PngImagePlugin

    with default_storage.open(str(image.file.name), "rb") as handle:
        data = handle.read()
    decoded = PILImage.open(io.BytesIO(data))
    picture = decoded.convert("RGBA" if decoded.mode in {"RGBA", "LA", "P"} else "RGB")
    buffer = io.BytesIO()
    if decoded.format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("psylens", "trial copy")
        picture.save(buffer, format="PNG", pnginfo=info)
    else:
        picture.convert("RGB").save(buffer, format=decoded.format or "JPEG", quality=95)
    copy = store_image(buffer.getvalue(), kind=image.kind)
    if copy.pk == image.pk:  # never expected: the copy's bytes must differ
        raise ValueError(f"image {image.pk}: its trial copy has the same bytes")
    return copy


# --- Networks ------------------------------------------------------------------------------


def inspect_network(source: str) -> tuple[dict[str, Any], list[tuple[str, list[int]]]]:
    """Load a network from its source string; return its preprocessing and layers.

    Raises ValidationError with the loader's message for a bad source, a missing weights file
    or weights for another architecture.
    """
    from worker.pipelines import networks

    try:
        network = networks.load_network(source, device="cpu")
        layers = networks.list_layers(network)
    except networks.NetworkError as err:
        raise ValidationError(str(err)) from None
    return network.preprocess.to_dict(), [(info.name, list(info.shape)) for info in layers]


@transaction.atomic
def do_save_network(
    network: Network, preprocess: dict[str, Any], layers: Iterable[tuple[str, list[int]]]
) -> Network:
    network.preprocess = preprocess
    network.save()
    kept = []
    for position, (name, shape) in enumerate(layers):
        Layer.objects.update_or_create(
            network=network, name=name, defaults={"shape": shape, "position": position}
        )
        kept.append(name)
    network.layers.exclude(name__in=kept).filter(unit_sets__isnull=True).delete()
    return network


def do_create_network(name: str, source: str, description: str = "") -> Network:
    preprocess, layers = inspect_network(source)
    network = Network(name=name, source=source, description=description)
    network.full_clean(exclude=["preprocess"])
    return do_save_network(network, preprocess, layers)


# --- Image sets ----------------------------------------------------------------------------


def do_import_images(
    image_set: ImageSet,
    candidates: Iterable[imagesets.ImageCandidate],
    report: imagesets.ImportReport,
    progress: Any = None,
) -> imagesets.ImportReport:
    """Add candidates to the set; corrupt or unsupported files are skipped and reported."""
    position = image_set.members.count()
    for candidate in candidates:
        try:
            image = store_image(candidate.data)
        except imagesets.BadImage as err:
            report.skip(candidate.name, err.reason)
            continue
        _, created = ImageSetMember.objects.get_or_create(
            image_set=image_set,
            image=image,
            defaults={
                "position": position,
                "label": candidate.label or "",
                "original_name": candidate.name,
                "source": candidate.source or "",
                "attributes": dict(candidate.attributes),
            },
        )
        if created:
            position += 1
            report.accepted += 1
        else:
            report.duplicates += 1
        if progress is not None and position % 25 == 0:
            progress(None, f"{position} images")
    image_set.import_report = report_as_dict(report)
    image_set.save(update_fields=["import_report"])
    return report


@transaction.atomic
def do_create_image_subset(
    image_set: ImageSet, name: str, labels: dict[int, str], description: str = ""
) -> ImageSet:
    """A new image set of some of `image_set`'s images, already stored (nothing is read or
    imported): `labels` maps each chosen image's id to its label in the new set. The members
    keep their order, original name, source photo and attributes; the set its origin and
    owner. Raises ValidationError for a taken name or an image the set does not have."""
    if ImageSet.objects.filter(name=name).exists():
        raise ValidationError(f"an image set named {name!r} exists: choose another name")
    members = list(image_set.members.filter(image_id__in=labels).order_by("position"))
    missing = set(labels) - {m.image_id for m in members}
    if missing:
        raise ValidationError(f"{len(missing)} of the images are not in {image_set}")
    subset = ImageSet(
        name=name, origin=image_set.origin, owner=image_set.owner, description=description,
        source=f"subset of {image_set.name}",
    )  # fmt: skip
    subset.full_clean()
    subset.save()
    copies = [
        ImageSetMember(
            image_set=subset, image_id=m.image_id, position=position, label=labels[m.image_id],
            original_name=m.original_name, source=m.source, attributes=dict(m.attributes or {}),
        )
        for position, m in enumerate(members)
    ]  # fmt: skip
    ImageSetMember.objects.bulk_create(copies)
    return subset


def report_as_dict(report: imagesets.ImportReport) -> dict[str, Any]:
    return {
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "skipped": [{"name": s.name, "reason": s.reason} for s in report.skipped],
        "summary": report.summary(),
    }


# Source photos get ids above every image id, so "its own source" (the image's id) never collides.
SOURCE_ID_BASE = 1 << 40


def image_set_paths(
    image_set: ImageSet, positions: tuple[int, int] | None = None
) -> list[tuple[int, str, int | None]]:
    """(image id, local file path, source id) in position order, all or those in
    ``[start, stop)``: what the pipelines read. Source ids number the set's distinct source
    photos (the same in every shard); None: the image is its own."""
    members = image_set.members.select_related("image").order_by("position")
    if positions is not None:
        members = members.filter(position__gte=positions[0], position__lt=positions[1])
    numbers = source_numbers(image_set)
    return [
        (m.image_id, default_storage.path(str(m.image.file.name)),
         numbers[m.source] if m.source else None)
        for m in members
    ]  # fmt: skip


def source_numbers(image_set: ImageSet) -> dict[str, int]:
    names = image_set.members.exclude(source="").values_list("source", flat=True).distinct()
    return {name: SOURCE_ID_BASE + i for i, name in enumerate(sorted(names))}


def image_set_archive(image_set: ImageSet) -> Any:
    """The set as a ZIP in ImageFolder layout (each image under its original path, else
    `<label>/<hash>`) with an images.csv of name, label and source: what the import reads back
    (a temporary file, positioned at its start)."""
    import csv
    import tempfile
    import zipfile

    handle = tempfile.TemporaryFile()  # noqa: SIM115 - returned open; the response closes it
    table = io.StringIO()
    writer = csv.writer(table)
    members = image_set.members.select_related("image").order_by("position")
    columns = sorted({column for m in members for column in (m.attributes or {})})
    # cells escaped against formulas, read back; then the images' attributes (if any)
    writer.writerow(["name", "label", "source", *columns])
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for member in members:
            name = member.original_name or _default_name(member)
            with default_storage.open(str(member.image.file.name), "rb") as image:
                archive.writestr(name, image.read())
            values = [str((member.attributes or {}).get(column, "")) for column in columns]
            writer.writerow(csvcells.safe_row([name, member.label, member.source, *values]))
        archive.writestr(imagesets.IMAGES_CSV, table.getvalue())
    handle.seek(0)
    return handle


def _default_name(member: ImageSetMember) -> str:
    extension = Path(str(member.image.file.name)).suffix
    return (
        f"{member.label}/{member.image.sha256}{extension}"
        if member.label
        else (f"{member.image.sha256}{extension}")
    )


# --- Jobs ----------------------------------------------------------------------------------


def do_queue_job(
    kind: str, params: dict[str, Any], user: Researcher = None, send: bool = True
) -> Job:
    """Plan the job's shards (`jobkinds`), create the Job with its shards and merge step, and
    send the shards as one Celery group once the rows are committed (unless `send` is off: the
    caller then runs it here, `worker.tasks.run_job_here`).

    Raises ValidationError, queueing nothing, for parameters the kind cannot run, or that name
    a catalogue item the researcher may not see (or change, for a kind that changes it).
    """
    from backend.stimuli import access

    job_kind = jobkinds.kind_of(kind)
    access.check_job_params(user, kind, params)
    plans = job_kind.plan(params)
    created_by = user if isinstance(user, User) else None
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(kind=kind, params=params, created_by=created_by)
        shards = [
            Shard(job=job, index=i, covers=p.covers, weight=p.weight,
                  task_id=jobkinds.new_task_id(), sent_at=None if send else now)
            for i, p in enumerate(plans)
        ]  # fmt: skip
        merge = Shard(
            job=job, index=len(plans), role=Shard.Role.MERGE, state=Shard.State.WAITING,
            weight=0.0, task_id=jobkinds.new_task_id(), sent_at=None if send else now,
        )  # fmt: skip
        Shard.objects.bulk_create([*shards, merge])
        if send:
            jobkinds.send_on_commit(shards)
    return job


@transaction.atomic
def do_cancel_job(job: Job, user: Researcher = None) -> Job:
    """Cancel a queued or running job: its queued shards are revoked, its running ones stop at
    their next batch and save nothing. Raises ValidationError for a job that already ended."""
    from backend.stimuli import jobs

    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.is_finished:
        raise ValidationError(f"{job} has already {job.state}.")
    who = f" by {user.get_username()}" if isinstance(user, User) else ""
    job.state, job.finished_at, job.message = Job.State.CANCELLED, timezone.now(), f"cancelled{who}"
    job.save(update_fields=["state", "finished_at", "message", "updated_at"])
    jobs.stop_pending_shards(job.pk, f"cancelled{who}")
    return job


def store_upload(upload: Any) -> str:
    """Keep an uploaded archive in media under `uploads/<sha256>.zip`; return its storage name."""
    import hashlib

    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    name = f"uploads/{digest.hexdigest()}.zip"
    if not default_storage.exists(name):
        upload.seek(0)
        name = default_storage.save(name, upload)
    return name


# --- Unit sets -----------------------------------------------------------------------------


@transaction.atomic
def do_save_unit_set(unit_set: UnitSet) -> UnitSet:
    """Validate and save; channels and neurons get one Unit per channel at once."""
    unit_set.full_clean(exclude=["state_file"])
    if unit_set.kind in {UnitSet.Kind.CHANNELS, UnitSet.Kind.NEURONS}:
        unit_set.n_units = unit_set.layer.n_channels
    unit_set.save()
    if unit_set.kind in {UnitSet.Kind.CHANNELS, UnitSet.Kind.NEURONS}:
        do_ensure_units(unit_set, unit_set.n_units or 0)
    return unit_set


def do_ensure_units(unit_set: UnitSet, n_units: int) -> None:
    Unit.objects.bulk_create(
        [Unit(unit_set=unit_set, index=i) for i in range(n_units)], ignore_conflicts=True
    )
    unit_set.units.filter(index__gte=n_units).delete()


def do_queue_exemplar_jobs(
    unit_sets: list[UnitSet],
    user: Researcher = None,
    k: int = 200,
    send: bool = True,
    bands: list[list[float]] | None = None,
    band_size: int = 20,
) -> list[Job]:
    """One exemplar job per (network, image set): all its unit sets share one streaming pass;
    `bands` ([[lower, upper] in percent]) are drawn beside the default quantile bands."""
    problems = [f"{u}: fit it first." for u in unit_sets if not u.is_ready]
    problems += [f"{u}: choose an image set." for u in unit_sets if u.image_set_id is None]
    if problems:
        raise ValidationError(" ".join(problems))
    groups: dict[tuple[int, int], list[int]] = {}
    for unit_set in unit_sets:
        key = (unit_set.layer.network_id, unit_set.image_set_id or 0)
        groups.setdefault(key, []).append(unit_set.pk)
    return [
        do_queue_job(
            Job.Kind.COMPUTE_EXEMPLARS,
            {
                "network": network,
                "image_set": image_set,
                "unit_sets": ids,
                "k": k,
                **({"bands": bands, "band_size": band_size} if bands else {}),
            },
            user,
            send,
        )
        for (network, image_set), ids in groups.items()
    ]


def do_save_fitted_unit_set(unit_set: UnitSet, projector: Any, fitted: Any) -> UnitSet:
    """Store the fitted tensors under their content hash and create the units."""
    import tempfile

    from worker.pipelines import units

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as handle:
        units.save_projector(projector, handle.name)
        data = Path(handle.name).read_bytes()
    name = f"units/{imagesets.content_hash(data)}.safetensors"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    with transaction.atomic():
        unit_set.state_file.name = name
        unit_set.reconstruction_error = fitted.reconstruction_error
        unit_set.fit_seconds = fitted.fit_seconds
        unit_set.n_units = fitted.n_atoms
        unit_set.fitted_at = timezone.now()
        unit_set.save()
        do_ensure_units(unit_set, fitted.n_atoms)
    return unit_set


def do_save_exemplars(
    unit_set: UnitSet, image_set: ImageSet, result: Any, distinct_sources: bool = False
) -> None:
    """Store one ExemplarSet per unit (replacing an earlier one for the same image set)."""
    units_by_index = {unit.index: unit for unit in unit_set.units.all()}
    rows, stats = [], []
    for index, unit in sorted(units_by_index.items()):
        record = result.unit_record(index)
        unit.stats = record["stats"]
        stats.append(unit)
        row = exemplar_row(unit, image_set, result, index, record)
        row.distinct_sources = distinct_sources
        rows.append(row)
    with transaction.atomic():
        Unit.objects.bulk_update(stats, ["stats"])
        ExemplarSet.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["unit", "image_set"],
            update_fields=[
                "k", "distinct_sources", "top", "bottom", "bands", "imi_batches", "computed_at"
            ],
        )  # fmt: skip


def exemplar_row(
    unit: Unit, image_set: ImageSet, result: Any, index: int, record: dict[str, Any]
) -> ExemplarSet:
    def entries(pairs: list[list[float]]) -> list[dict[str, Any]]:
        return [{"image": int(image), "value": value} for image, value in pairs]

    def batch(b: Any) -> dict[str, Any]:
        references = zip(b.reference_ids, b.reference_values, strict=True)
        return {
            "query": {"image": b.query_id, "value": b.query_value},
            "references": [{"image": i, "value": v} for i, v in references],
        }

    bands = {
        name: {
            "low": band["lower_threshold"],
            "high": band["upper_threshold"],
            "quantiles": [band["lower_q"], band["upper_q"]],
            "images": entries(band["images"]),
        }
        for name, band in record["bands"].items()
    }
    return ExemplarSet(
        unit=unit,
        image_set=image_set,
        k=len(record["top"]),
        top=entries(record["top"]),
        bottom=entries(record["bottom"]),
        bands=bands,
        imi_batches={
            "max": [batch(b) for b in result.imi_batches(index, "top")],
            "min": [batch(b) for b in result.imi_batches(index, "bottom")],
        },
        computed_at=timezone.now(),
    )


def do_save_visualization(unit: Unit, result: Any, preset: str, sign: int) -> Visualization:
    """Store one rendered image (and MACO's attribution map) with its recipe; a re-run of the
    same recipe updates the row instead of adding one."""
    import numpy as np

    image = store_array_image(result.image, Image.Kind.SYNTHETIC)
    attribution = None
    if result.attribution is not None:
        gray = (np.clip(result.attribution, 0, 1) * 255).astype("uint8")
        attribution = store_array_image(np.stack([gray] * 3, axis=-1), Image.Kind.DERIVED)
    # A minimally activating image was optimised on the negated unit: undo the sign.
    final = sign * float(result.final_activation)
    visualization, _ = Visualization.objects.update_or_create(
        unit=unit, method=result.method, preset=preset, sign=sign, seed=result.seed,
        index=result.image_index,
        defaults={
            "image": image, "attribution": attribution, "steps": result.steps,
            "params": {**result.parameters, "sign": sign}, "final_activation": final,
            "exceeds_top_exemplar": result.exceeds_natural,
        },
    )  # fmt: skip
    return visualization


def do_save_occlusion_map(
    unit: Unit, base_image: Image, result: Any, config: Any, pixels: Any
) -> OcclusionMap:
    """Store the map with the two occluded copies (argmax, argmin) and the blurred version."""
    from worker.pipelines import occlusion

    def as_image(tensor: Any) -> Image:
        array = (tensor.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
        return store_array_image(array.astype("uint8"), Image.Kind.DERIVED)

    size = result.occluder_size
    copies = {}
    for name, (top, left) in {"max": result.argmax, "min": result.argmin}.items():
        tops, lefts = [torch_tensor([top]), torch_tensor([left])]
        copies[name] = as_image(
            occlusion.occluded_images(pixels, tops, lefts, size, config.fill)[0]
        )
    blurred = as_image(occlusion.blur_outside_region(pixels, result, config))
    occlusion_map, _ = OcclusionMap.objects.update_or_create(
        unit=unit, base_image=base_image, occluder_fraction=config.occluder_fraction,
        stride=config.stride,
        defaults={
            "grid": result.activations.round(6).tolist(), "base_activation": result.base_activation,
            "argmax": list(result.argmax), "argmin": list(result.argmin),
            "max_activation": result.max_activation, "min_activation": result.min_activation,
            "occluded_at_max": copies["max"], "occluded_at_min": copies["min"], "blurred": blurred,
        },
    )  # fmt: skip
    return occlusion_map


def torch_tensor(values: list[int]) -> Any:
    import torch

    return torch.tensor(values)
