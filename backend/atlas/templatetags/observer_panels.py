"""Template tags that put the machine observer on pages other apps own: the study page's panel
and the results page's block (backend/atlas/observer_pages.py), so those templates need one
line each."""

from __future__ import annotations

from typing import Any

from django import template

from backend.atlas import observer_pages

register = template.Library()


@register.inclusion_tag("atlas/observer_on_study.html", takes_context=True)
def machine_pilot_panel(context: Any, study: Any) -> dict[str, Any]:
    """The study page: run the machine observer; its predictions and flags before launch."""
    if study is None or study.pk is None:
        return {"panel": None}
    return {"panel": observer_pages.study_panel(study), "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("atlas/observer_beside_humans.html", takes_context=True)
def observer_beside_humans(context: Any) -> dict[str, Any]:
    """The results page: the pilot beside the people, and MIS against human accuracy per unit."""
    study, results = context.get("study"), context.get("results")
    if study is None or results is None:
        return {"blocks": []}
    return {"blocks": observer_pages.beside_humans(study, results, context.get("version", ""))}
