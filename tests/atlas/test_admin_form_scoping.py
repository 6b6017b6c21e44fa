"""The atlas's own admin forms (retraining, curated export, LWTA fine-tune, confound report,
spectra) offer only the networks, image sets and unit sets the researcher may see: another
researcher's private items are not listed by name, and their ids posted anyway are refused on the
form (400) with nothing queued (`backend.stimuli.admin_access.ScopedChoicesForm`)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.stimuli import services
from backend.stimuli.models import ImageSet, Job, Network

pytestmark = pytest.mark.django_db

FORMS = {
    "/admin/atlas/retrainednetwork/retrain/": ("base", "train_set", "eval_set"),
    "/admin/atlas/retrainednetwork/curated-export/": ("image_set",),
    "/admin/atlas/lwtanetwork/fine-tune/": ("base", "image_set"),
    "/admin/atlas/confoundreport/compute/": ("image_set",),
    "/admin/atlas/spectrum/compute/": ("image_set",),
}


@pytest.fixture
def private(owner: User) -> dict[str, int]:
    network = services.do_create_network("secret-net", "builtin:efficientnet_lite0")
    Network.objects.filter(pk=network.pk).update(owner=owner)
    image_set = ImageSet.objects.create(name="secret-set", origin=ImageSet.Origin.ZIP, owner=owner)
    return {"network": network.pk, "image_set": image_set.pk}


@pytest.mark.parametrize("url", list(FORMS))
def test_another_researchers_private_items_are_neither_offered_nor_accepted(
    url: str, owner: User, private: dict[str, int]
) -> None:
    outsider = User.objects.create_user("outsider", password="x" * 12, is_staff=True)
    mine, theirs = Client(), Client()
    mine.force_login(owner)
    theirs.force_login(outsider)
    own_page = mine.get(url).content.decode()
    assert "secret-set" in own_page
    page = theirs.get(url)
    assert page.status_code == 200
    assert "secret-set" not in page.content.decode() and "secret-net" not in page.content.decode()

    jobs = Job.objects.count()
    posted = {field: private["network" if field == "base" else "image_set"]
              for field in FORMS[url]}  # fmt: skip
    refused = theirs.post(url, posted)
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    assert Job.objects.count() == jobs
