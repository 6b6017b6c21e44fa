"""The results pages and API work while Redis is down: the results cache is only a shortcut,
so they are computed without it (and the same as with it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.participation.models import Session
from tests.analysis.conftest import SMALL_RULES
from tests.analysis.test_results_pages import api_as
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_the_results_are_computed_without_the_cache_while_redis_is_down(
    client: Client, owner: User, take_part: Callable[..., Session], settings: Any
) -> None:
    fixture = make_study(owner, n_lists=2, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01")
    client.force_login(owner)
    base = f"/admin/studies/study/{fixture.study.pk}/results/"
    api_url = f"/api/v1/researcher/studies/{fixture.study.slug}/results"
    api = api_as(owner)
    with_cache = api.get(api_url).json()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": UNREACHABLE_REDIS}}
    for page in ("", "status.json", "figure/condition.svg"):
        assert client.get(base + page).status_code == 200, page
    without = api.get(api_url)
    assert without.status_code == 200
    assert without.json() == with_cache
