"""Researcher accounts (backend/core/researchers.py): the Researchers group holds exactly its
permissions after a migrate (and gets them back when changed); `add_researcher` makes a staff
account in it with a password that works, or makes an existing user one; a researcher so made
can use the catalogue's and the atlas's pages (a bare staff account gets a 403 there), and
still changes only what it owns."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from backend.core.researchers import GROUP, codenames, ensure_researchers_group
from backend.stimuli.models import ImageSet, Network
from tests.studies import factories

pytestmark = pytest.mark.django_db


def held(group: Group) -> set[tuple[str, str]]:
    return {(p.content_type.app_label, p.codename)
            for p in group.permissions.select_related("content_type")}  # fmt: skip


def test_the_group_holds_exactly_its_permissions_after_a_migrate() -> None:
    group = Group.objects.get(name=GROUP)  # made by the test database's migrate
    assert held(group) == codenames()
    assert ("stimuli", "view_unit") in codenames() and ("stimuli", "add_imageset") in codenames()
    assert ("stimuli", "delete_job") not in codenames()
    group.permissions.add(Permission.objects.get(codename="delete_job"))
    group.permissions.remove(Permission.objects.get(codename="view_unit"))
    ensure_researchers_group()
    assert held(Group.objects.get(name=GROUP)) == codenames()


def add_researcher(*args: str) -> str:
    out = io.StringIO()
    call_command("add_researcher", *args, stdout=out)
    return out.getvalue()


def test_add_researcher_makes_a_staff_account_in_the_group_with_a_working_password() -> None:
    said = add_researcher("ada", "--email", "ada@example.org")
    password = re.search(r"password '([^']+)'", said)
    assert password is not None
    ada = User.objects.get(username="ada")
    assert ada.is_staff and not ada.is_superuser and ada.email == "ada@example.org"
    assert list(ada.groups.values_list("name", flat=True)) == [GROUP]
    assert Client().login(username="ada", password=password[1])

    again = add_researcher("ada")
    assert "password kept" in again and "password '" not in again
    assert Client().login(username="ada", password=password[1])

    User.objects.create_user("bob", password="x" * 12)  # an existing account, not staff
    assert "is a researcher now" in add_researcher("bob")
    bob = User.objects.get(username="bob")
    assert bob.is_staff and bob.groups.filter(name=GROUP).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(("root",), "is a superuser"), (("eve", "--email", "not-an-address"), "not an email"),
     (("  ",), "give the account's username")],
)  # fmt: skip
def test_add_researcher_refuses_what_it_cannot_do(args: tuple[str, ...], message: str) -> None:
    User.objects.create_superuser("root", password="x" * 12)
    users = User.objects.count()
    with pytest.raises(CommandError, match=message):
        add_researcher(*args)
    assert User.objects.count() == users


def test_a_researcher_uses_the_catalogue_pages_and_changes_only_its_own(owner: User) -> None:
    units = factories.unit_set("channels", n_units=2)
    unit = units.units.first()
    assert unit is not None
    bare = Client()
    bare.force_login(owner)  # staff, no group: the catalogue's pages are closed
    assert bare.get(f"/admin/stimuli/unit/{unit.pk}/change/").status_code == 403

    add_researcher("ada")
    ada = User.objects.get(username="ada")
    client = Client()
    client.force_login(ada)
    for url in (
        f"/admin/stimuli/unit/{unit.pk}/change/",
        "/admin/stimuli/unitset/",
        "/admin/stimuli/imageset/add/",
        "/admin/stimuli/network/add/",
        "/admin/stimuli/job/",
        "/admin/atlas/measure/",
        "/admin/atlas/observer/add/",
    ):
        assert client.get(url).status_code == 200, url  # fmt: skip

    mine = ImageSet.objects.create(name="mine", origin=ImageSet.Origin.ZIP, owner=ada)
    theirs = ImageSet.objects.create(name="theirs", origin=ImageSet.Origin.ZIP, owner=owner)
    shared = Network.objects.get(name="net")  # the shared catalogue: seen, not changed
    assert (
        client.post(f"/admin/stimuli/imageset/{mine.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    assert not ImageSet.objects.filter(pk=mine.pk).exists()
    assert client.get(f"/admin/stimuli/imageset/{theirs.pk}/change/").status_code == 404
    page = client.get(f"/admin/stimuli/network/{shared.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert (
        client.post(f"/admin/stimuli/network/{shared.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Network.objects.filter(pk=shared.pk).exists()
