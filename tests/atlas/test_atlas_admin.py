"""The atlas's admin lists (measures, ablation curves, populations) render for a superuser and
offer no add button (rows come from Jobs)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.atlas import services

pytestmark = pytest.mark.django_db


def test_the_atlas_lists_render_with_their_rows(
    client: Client, superuser: User, stimuli: dict[str, Any]
) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    services.do_save_populations(channels, image_set, "activity", [[0, 1, 2], [3]], {}, None)
    services.do_save_measures(channels, image_set, {"csi": {0: 0.25}}, {}, None)
    client.force_login(superuser)
    for model in ("measure", "ablationcurve", "population"):
        page = client.get(f"/admin/atlas/{model}/")
        assert page.status_code == 200, model
        assert f"/admin/atlas/{model}/add/".encode() not in page.content, model
    population = client.get("/admin/atlas/population/")
    assert b"ch" in population.content and b">3<" in population.content
