"""Reading the atlas: a unit set's measures as one row per unit (every measure a column), for
the researcher API, the per-unit CSV and the admin pages."""

from __future__ import annotations

from typing import Any

from backend.atlas.models import Measure
from backend.stimuli.models import UnitSet


def measure_table(
    unit_set: UnitSet, image_set_id: int | None = None, viewer: Any = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """(measure names, rows): one row per unit, `index` then each measure (None: not computed
    or undefined). With several image sets and none chosen, columns are `name@image_set`.
    With a `viewer`, only measures over image sets they may see (backend.atlas.access)."""
    measures = Measure.objects.filter(unit__unit_set=unit_set)
    if viewer is not None:
        from backend.atlas.access import visible_rows

        measures = visible_rows(measures, viewer)
    if image_set_id is not None:
        measures = measures.filter(image_set_id=image_set_id)
    values = list(measures.values_list("unit__index", "name", "image_set_id", "value"))
    several = len({image_set for _, _, image_set, _ in values}) > 1
    rows: dict[int, dict[str, Any]] = {
        index: {"index": index}
        for index in unit_set.units.order_by("index").values_list("index", flat=True)
    }
    names: set[str] = set()
    for index, name, image_set, value in values:
        column = f"{name}@{image_set}" if several else name
        names.add(column)
        rows[index][column] = value
    ordered = sorted(names)
    for row in rows.values():
        for name in ordered:
            row.setdefault(name, None)
    return ordered, list(rows.values())
