"""The admin index lists its sections in the order of a researcher's path (issue #21)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_admin_index_follows_the_researchers_path(client: Client, superuser: User) -> None:
    client.force_login(superuser)
    html = client.get("/admin/").content.decode()
    sections = re.findall(r'<a href="/admin/([a-z_]+)/" class="section"', html)
    ours = [label for label in sections if label in {"stimuli", "studies", "participation",
                                                     "analysis"}]  # fmt: skip
    assert ours == ["stimuli", "studies", "participation", "analysis"]
    assert sections.index("analysis") < sections.index("auth")  # Django's own come after
