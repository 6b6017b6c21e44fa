"""The machine observer's researcher API: administrators create observers, researchers queue
MIS, pilots and calibrations (202 with the Job), read a pilot; bad input is a 400 that queues
nothing; another researcher's study is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.atlas import observers
from backend.atlas.models import Observer
from backend.stimuli.models import Job, Layer, Network
from tests.studies import factories

pytestmark = pytest.mark.django_db
BASE = "/api/v1/researcher/atlas/observers/"


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def network() -> Network:
    network = Network.objects.create(name="net", source="builtin:test")
    Layer.objects.create(network=network, name="global_pool", shape=[16])
    return network


def test_an_administrator_creates_an_observer_and_a_researcher_may_not(
    superuser: User, owner: User, network: Network
) -> None:
    body = {"name": "pooled", "network": "net", "layer": "global_pool", "alpha": 2.5}
    assert api_client(owner).post(BASE, body, format="json").status_code == 403
    created = api_client(superuser).post(BASE, body, format="json")
    assert created.status_code == 201, created.json()
    observer = Observer.objects.get(name="pooled")
    assert (observer.alpha, observer.similarity, observer.layer) == (2.5, "cosine", "global_pool")
    listed = api_client(owner).get(BASE).json()
    assert [o["name"] for o in listed] == ["pooled"]


def test_an_unknown_layer_is_refused(superuser: User, network: Network) -> None:
    body = {"name": "bad", "network": "net", "layer": "blocks.9"}
    response = api_client(superuser).post(BASE, body, format="json")
    assert response.status_code == 400 and "no layer 'blocks.9'" in response.json()["message"]
    assert not Observer.objects.exists()


def test_a_researcher_queues_mis_and_bad_settings_queue_nothing(
    owner: User, network: Network
) -> None:
    observer = observers.do_create_observer("pooled", network)
    units = factories.unit_set(n_units=3)
    factories.add_exemplars(units, factories.image_pool())
    client = api_client(owner)
    bad = client.post(f"{BASE}{observer.pk}/mis", {"unit_sets": [units.pk], "quantile": 2},
                      format="json")  # fmt: skip
    assert bad.status_code == 400 and "quantile" in bad.json()["message"]
    assert not Job.objects.exists()
    response = client.post(f"{BASE}{observer.pk}/mis", {"unit_sets": [units.pk], "k": 5},
                           format="json")  # fmt: skip
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == observers.MIS_KIND and job.params["k"] == 5 and job.created_by == owner
    read = client.get(f"{BASE}{observer.pk}/mis?unit_set={units.pk}").json()
    assert read["measure"] == "mis:pooled" and read["units"] == []


def test_the_pilot_of_another_researchers_study_is_not_found(
    owner: User, django_user_model: type[User], network: Network
) -> None:
    observer = observers.do_create_observer("pooled", network)
    study = factories.study(owner, units=factories.stimulated_unit_set(n_units=3))
    outsider = django_user_model.objects.create_user("outsider", password="x", is_staff=True)
    client = api_client(outsider)
    assert (
        client.post(f"{BASE}{observer.pk}/pilot", {"study": study.pk}, format="json").status_code
        == 404
    )
    assert client.get(f"{BASE}{observer.pk}/pilot/{study.pk}").status_code == 404
    assert not Job.objects.exists()
    unbuilt = api_client(owner).post(
        f"{BASE}{observer.pk}/pilot", {"study": study.pk}, format="json"
    )
    assert unbuilt.status_code == 400 and "build it first" in unbuilt.json()["message"]
    summary: dict[str, Any] = api_client(owner).get(f"{BASE}{observer.pk}/pilot/{study.pk}").json()
    assert summary["trials"] == 0 and summary["flags"] == []
