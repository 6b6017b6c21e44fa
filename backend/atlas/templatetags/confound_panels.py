"""Template tag that puts a unit's confound reports on its admin page (docs/midrange.md §3):
each report the viewer may see with its first candidate, and a link that queues a new one
for the unit."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

register = template.Library()


@register.inclusion_tag("atlas/unit_confounds.html")
def unit_confounds(unit: Any, user: Any) -> dict[str, Any]:
    from backend.atlas import confounds
    from backend.atlas.access import visible_rows

    rows = visible_rows(confounds.reports_of().filter(unit=unit), user)
    reports = [
        {"url": reverse("admin:atlas_confoundreport_change", args=[row.pk]),
         **confounds.report_summary(row), "image_set_name": row.image_set.name}
        for row in rows
    ]  # fmt: skip
    compute = reverse("admin:atlas_confoundreport_compute")
    return {"reports": reports,
            "compute_url": f"{compute}?unit_set={unit.unit_set_id}&unit={unit.index}"}  # fmt: skip
