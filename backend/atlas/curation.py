"""Curated retraining sets (docs/midrange.md §4): select images of an image set by a rule over a
unit's activation bands — the target class's images whose value falls in a chosen band, balanced
against a confounding attribute's values; the values given, or a stored confound report's with
its own bands — or by an explicit list of image ids (what a researcher ticks in a grid), and
export the selection as an ImageFolder ZIP (one folder per label, under a top folder, with an
`images.csv` of name, label and attributes that the image-set import reads back) and as a CSV of
image name, label, attributes, band and value.

A band is a quantile range in percent over all the values given (`backend/stimuli/bands.py`'s
definition: rank r among n, 0 = lowest, is inside when r / (n − 1) lies in the range, both edges
included).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from backend.atlas import confounds
from backend.atlas.models import ConfoundReport
from backend.core import csvcells
from backend.stimuli.bands import ActivationBand, BandError, parse_band
from backend.stimuli.models import ImageSet, ImageSetMember
from worker.pipelines import imagesets


def quantile_ranks(values: dict[int, float]) -> dict[int, float]:
    """Each image's rank r / (n − 1) among the values (ties by image id), 0…1."""
    order = sorted(values, key=lambda i: (values[i], i))
    span = max(len(order) - 1, 1)
    return {image_id: rank / span for rank, image_id in enumerate(order)}


def band_of(rank: float, bands: Sequence[ActivationBand]) -> str:
    """The first band holding the quantile rank, as written (`40–60 %`), else ``""``."""
    for band in bands:
        low, high = band.quantiles
        if low - 1e-12 <= rank <= high + 1e-12:
            return f"{band.lower:g}-{band.upper:g}"
    return ""


def select_by_rule(
    image_set: ImageSet,
    values: dict[int, float],
    label: str,
    band: str,
    attribute: str = "",
    seed: int = 0,
) -> list[int]:
    """Image ids of the set's images labelled `label` whose value lies in `band` (quantiles over
    all `values`); with `attribute`, the same number of each of its values (the rarest's count),
    each value's drawn by a seeded permutation. Sorted by the set's positions."""
    try:
        chosen_band = parse_band(band)
    except BandError as err:
        raise ValidationError(str(err)) from None
    members = _members_of(image_set, values)
    ranks = quantile_ranks(values)
    low, high = chosen_band.quantiles
    inside = [i for i in values if low - 1e-12 <= ranks[i] <= high + 1e-12]
    return _balanced(members, inside, label, attribute, seed, f"the {chosen_band} band")


def report_values(report: ConfoundReport) -> dict[int, float]:
    """The report's value of each of its images ({image id: value})."""
    ids, values = report.values.get("image_ids", []), report.values.get("values", [])
    return {int(i): float(v) for i, v in zip(ids, values, strict=True)}


def select_from_report(
    report: ConfoundReport,
    label: str,
    report_bands: Sequence[int] = (),
    band: str = "",
    attribute: str = "",
    seed: int = 0,
) -> list[int]:
    """The rule over a stored confound report's values: the images labelled `label` in the
    report's bands `report_bands` (indices, 0 = lowest, as its page shows them) or in the
    quantile band `band` over its values, balanced against `attribute` as `select_by_rule`."""
    if bool(report_bands) == bool(band):
        raise ValidationError("choose the report's bands or a quantile band (one of the two)")
    values = report_values(report)
    if band:
        return select_by_rule(report.image_set, values, label, band, attribute, seed)
    if not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b < report.n_bands
        for b in report_bands
    ):
        raise ValidationError(
            f"the report's bands are 0 … {report.n_bands - 1} (got {list(report_bands)!r})"
        )
    chosen = set(report_bands)
    inside = [i for i, b in confounds.image_bands(report).items() if b in chosen]
    where = "band " + ", ".join(str(b) for b in sorted(chosen)) + " of the report"
    return _balanced(_members_of(report.image_set, values), inside, label, attribute, seed, where)


def report_band_names(report: ConfoundReport) -> dict[int, str]:
    """Each image's band in the report as its quantile range (`40-50`), for the CSV."""
    names = []
    for band in report.bands:
        low, high = band["quantiles"]
        names.append(f"{100 * low:.4g}-{100 * high:.4g}")
    return {i: names[b] for i, b in confounds.image_bands(report).items()}


def _members_of(image_set: ImageSet, values: dict[int, float]) -> dict[int, ImageSetMember]:
    members = {m.image_id: m for m in image_set.members.all()}
    unknown = sorted(set(values) - set(members))
    if unknown:
        raise ValidationError(f"images {unknown[:5]} are not in the image set {image_set}")
    return members


def _balanced(
    members: dict[int, ImageSetMember],
    inside: Sequence[int],
    label: str,
    attribute: str,
    seed: int,
    where: str,
) -> list[int]:
    """Those of `inside` labelled `label`; with `attribute`, the same number of each of its
    values (the rarest's count), each value's drawn by a permutation seeded with `seed`."""
    chosen = [i for i in inside if members[i].label == label]
    if not chosen:
        raise ValidationError(f"no image labelled {label!r} has its value in {where}")
    if attribute:
        by_value: dict[str, list[int]] = {}
        for i in sorted(chosen):
            value = members[i].attributes.get(attribute)
            if value is not None:
                by_value.setdefault(str(value), []).append(i)
        if len(by_value) < 2:
            raise ValidationError(
                f"the images in {where} take {len(by_value)} value(s) of {attribute!r}: "
                "nothing to balance"
            )
        size = min(len(ids) for ids in by_value.values())
        rng = np.random.default_rng(seed)
        chosen = [
            int(i) for value in sorted(by_value) for i in rng.permutation(by_value[value])[:size]
        ]
    return sorted(chosen, key=lambda i: members[i].position)


def selected_members(image_set: ImageSet, image_ids: Sequence[int]) -> list[ImageSetMember]:
    """The set's members of `image_ids` in position order; ValidationError for ids not in it."""
    if not image_ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in image_ids):
        raise ValidationError("image_ids must be a non-empty list of image ids")
    members = list(
        image_set.members.select_related("image")
        .filter(image_id__in=image_ids)
        .order_by("position")
    )
    missing = sorted(set(image_ids) - {m.image_id for m in members})
    if missing:
        raise ValidationError(f"images {missing[:5]} are not in the image set {image_set}")
    return members


def _names(members: Sequence[ImageSetMember]) -> dict[int, str]:
    """Each member's name in the export: `<label>/<its file name>` (unlabelled: the file name),
    made unique by its hash where two would clash."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for member in members:
        base = PurePosixPath(member.original_name or str(member.image.file.name)).name
        name = f"{member.label}/{base}" if member.label else base
        if name in taken:
            stem = PurePosixPath(base)
            name = str(
                PurePosixPath(name).with_name(
                    f"{stem.stem}-{member.image.sha256[:12]}{stem.suffix}"
                )
            )
        taken.add(name)
        names[member.image_id] = name
    return names


def _columns(members: Sequence[ImageSetMember]) -> list[str]:
    return sorted({column for m in members for column in (m.attributes or {})})


def selection_csv(
    members: Sequence[ImageSetMember],
    values: dict[int, float] | None = None,
    bands: Sequence[str] = (),
    band_names: dict[int, str] | None = None,
) -> str:
    """name, label, the attributes, band and value of each selected image (band and value empty
    without values). The band: the first of `bands` (quantiles over `values`) holding the image,
    or its name in `band_names` (a confound report's bands) when given."""
    try:
        parsed = [parse_band(b) for b in bands]
    except BandError as err:
        raise ValidationError(str(err)) from None
    ranks = quantile_ranks(values) if values else {}
    names, columns = _names(members), _columns(members)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "label", *columns, "band", "value"])
    for m in members:
        value = values.get(m.image_id) if values else None
        if band_names is not None:
            band = band_names.get(m.image_id, "")
        else:
            band = band_of(ranks[m.image_id], parsed) if value is not None else ""
        cells = [str((m.attributes or {}).get(c, "")) for c in columns]
        writer.writerow(csvcells.safe_row([
            names[m.image_id], m.label, *cells, band, "" if value is None else f"{value:.6g}",
        ]))  # fmt: skip
    return table.getvalue()


def selection_archive(members: Sequence[ImageSetMember], top: str = "curated") -> bytes:
    """The selection as an ImageFolder ZIP: `<top>/<label>/<file>` (the import strips the common
    top folder, so a selection of one class keeps its label) with `<top>/images.csv` of name,
    label, source and the attributes, as `image_set_archive` writes it."""
    names, columns = _names(members), _columns(members)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "label", "source", *columns])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for m in members:
            with default_storage.open(str(m.image.file.name), "rb") as image:
                archive.writestr(f"{top}/{names[m.image_id]}", image.read())
            cells = [str((m.attributes or {}).get(c, "")) for c in columns]
            writer.writerow(csvcells.safe_row([names[m.image_id], m.label, m.source, *cells]))
        archive.writestr(f"{top}/{imagesets.IMAGES_CSV}", table.getvalue())
    return buffer.getvalue()


def parse_values(raw: Any) -> dict[int, float]:
    """`{"<image id>": value, …}` (JSON keys are strings) as {image id: float}."""
    if not isinstance(raw, dict) or not raw:
        raise ValidationError("values must be an object of image id → activation value")
    try:
        return {int(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise ValidationError("values must map image ids to numbers") from None
