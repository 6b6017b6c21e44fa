"""Per-image attributes: what is known of an image set's images beyond their label (a
background, a group, a suspected confound), for the analyses (the confound report reads them).

They arrive with the import (images.csv's columns beyond name, label and source) or later as
an attributes CSV: a ``name`` column naming each image as the import did (its path in the
folder or ZIP, as the set's download writes it) and one column per attribute. A later CSV sets
the columns it has and keeps the others; an empty cell removes that attribute of that image.
A table that names an unknown image, repeats one, or has no attribute column is refused whole,
with what is wrong, and nothing changes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from backend.core import csvcells
from backend.stimuli.models import ImageSet, ImageSetMember

TABLE_COLUMNS = frozenset({"name", "label", "source"})  # the import's own; not attributes
MAX_COLUMN_LENGTH = 64
MAX_VALUE_LENGTH = 200
MAX_BYTES = 20 * 1024 * 1024
SHOWN = 5


@dataclass(frozen=True)
class AttributeTable:
    columns: list[str]
    rows: dict[str, dict[str, str]]  # image name -> {column: value ("" removes it)}


def parse_attribute_csv(data: bytes) -> AttributeTable:
    """The table of an attributes CSV; ValidationError with what is wrong otherwise."""
    if len(data) > MAX_BYTES:
        raise ValidationError(f"The attributes CSV is over {MAX_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("The attributes CSV is not UTF-8 text.") from None
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        raise ValidationError(f"The attributes CSV cannot be read as CSV: {err}.") from None
    if not records:
        raise ValidationError("The attributes CSV is empty.")
    header = [cell.strip() for cell in records[0]]
    columns = _attribute_columns(header)
    rows: dict[str, dict[str, str]] = {}
    for line, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise ValidationError(
                f"Line {line} of the attributes CSV has {len(record)} cells; the header has "
                f"{len(header)}."
            )
        stripped = (csvcells.unescape_cell(cell.strip()) for cell in record)
        cells = dict(zip(header, stripped, strict=True))
        name = cells["name"].removeprefix("./")
        if not name:
            raise ValidationError(f"Line {line} of the attributes CSV names no image.")
        if name in rows:
            raise ValidationError(f"The attributes CSV names {name!r} twice (line {line}).")
        rows[name] = {column: _value(cells[column], line) for column in columns}
    return AttributeTable(columns, rows)


def _attribute_columns(header: list[str]) -> list[str]:
    if "name" not in header:
        raise ValidationError(
            "The attributes CSV needs a 'name' column naming each image as imported "
            "(e.g. cat/x.jpg)."
        )
    if len(set(header)) != len(header):
        repeated = sorted(c for c, n in Counter(header).items() if n > 1)
        raise ValidationError(f"The attributes CSV repeats columns: {', '.join(repeated)}.")
    columns = [column for column in header if column not in TABLE_COLUMNS]
    if not columns:
        raise ValidationError(
            "The attributes CSV has no attribute column: beside 'name' (and 'label', 'source', "
            "which the import owns), give one column per attribute."
        )
    for column in columns:
        if not column or len(column) > MAX_COLUMN_LENGTH:
            raise ValidationError(
                f"Attribute columns need a name of 1 to {MAX_COLUMN_LENGTH} characters "
                f"(got {column!r})."
            )
    return columns


def _value(cell: str, line: int) -> str:
    if len(cell) > MAX_VALUE_LENGTH:
        raise ValidationError(
            f"Line {line}: an attribute value is over {MAX_VALUE_LENGTH} characters."
        )
    return cell


def member_names(image_set: ImageSet) -> dict[str, ImageSetMember]:
    """Each member under the names a CSV may use: its imported path, and the name the set's
    download gives it (`<label>/<hash>.<ext>` where it has no imported path)."""
    names: dict[str, ImageSetMember] = {}
    for member in image_set.members.select_related("image"):
        extension = Path(str(member.image.file.name)).suffix
        hashed = f"{member.image.sha256}{extension}"
        names[f"{member.label}/{hashed}" if member.label else hashed] = member
        if member.original_name:
            names[member.original_name] = member
    return names


@transaction.atomic
def do_set_image_attributes(image_set: ImageSet, data: bytes) -> dict[str, object]:
    """Set the attributes a CSV gives; refused whole (ValidationError) if any row is wrong."""
    table = parse_attribute_csv(data)
    members = member_names(image_set)
    unknown = [name for name in table.rows if name not in members]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown[:SHOWN])
        more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
        raise ValidationError(
            f"The attributes CSV names {len(unknown)} image(s) that are not in {image_set}: "
            f"{shown}{more}. Name each image as imported (its path in the folder or ZIP)."
        )
    changed = []
    for name, values in table.rows.items():
        member = members[name]
        attributes = dict(member.attributes or {})
        for column, value in values.items():
            if value:
                attributes[column] = value
            else:
                attributes.pop(column, None)
        member.attributes = attributes
        changed.append(member)
    ImageSetMember.objects.bulk_update(changed, ["attributes"])
    return {"images": len(changed), "columns": table.columns}


def attribute_summary(image_set: ImageSet) -> dict[str, Counter[str]]:
    """Per attribute column, how many images have each value."""
    summary: dict[str, Counter[str]] = {}
    for attributes in image_set.members.values_list("attributes", flat=True):
        for column, value in (attributes or {}).items():
            summary.setdefault(column, Counter())[str(value)] += 1
    return dict(sorted(summary.items()))


def image_attributes(image_set_id: int) -> dict[int, dict[str, str]]:
    """image id -> its label (as "label") and attributes: what the analyses group images by."""
    members = ImageSetMember.objects.filter(image_set_id=image_set_id)
    return {
        image: {"label": label, **(attributes or {})} if label else dict(attributes or {})
        for image, label, attributes in members.values_list("image_id", "label", "attributes")
    }
