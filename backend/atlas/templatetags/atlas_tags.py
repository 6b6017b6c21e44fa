"""Template tags of the atlas: the atlas section of a unit's admin page (so the stimuli admin
shows it without a change), and the results page's human-against-machine section."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("atlas/unit_atlas.html")
def unit_atlas(unit: Any, user: Any) -> dict[str, Any]:
    from backend.atlas.atlas_pages import unit_context

    return unit_context(unit, user)


@register.inclusion_tag("atlas/human_vs_machine.html")
def human_vs_machine(study: Any, results: Any) -> dict[str, Any]:
    from backend.atlas.human_machine import study_section

    return study_section(study, results)
