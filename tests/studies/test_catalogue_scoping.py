"""The catalogue is scoped like the studies: a researcher sees their own networks, image sets,
unit sets (and everything that hangs off them: layers, units, images, visualizations, the
atlas's measures, populations, ablation curves, spectra, observers, descriptions, LWTA
networks); a collaborator sees, read-only, what the shared study uses; an outsider gets a 404
on every admin page and API endpoint of them; the shared catalogue (no owner) is seen by every
researcher and changed only by superusers. The standing users hold every view, change and
delete permission, so what hides an object is the scoping, not a missing permission."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from backend.atlas.models import (
    AblationCurve,
    Description,
    LWTANetwork,
    Measure,
    Observer,
    Population,
    Spectrum,
)
from backend.stimuli.models import (
    Image,
    ImageSet,
    ImageSetMember,
    Job,
    Layer,
    Network,
    Unit,
    UnitSet,
    Visualization,
)
from backend.stimuli.services import store_image
from backend.studies import services as study_services
from backend.studies.models import Study
from tests.stimuli.factories import png_bytes

pytestmark = pytest.mark.django_db

MODELS = ("network", "layer", "imageset", "unitset", "unit", "image", "visualization")
ATLAS_MODELS = (
    "measure",
    "population",
    "ablationcurve",
    "spectrum",
    "observer",
    "description",
    "lwtanetwork",
)


@pytest.fixture
def everyone(owner: User, collaborator: User, outsider: User) -> dict[str, User]:
    perms = Permission.objects.filter(
        content_type__app_label__in=["stimuli", "atlas", "studies", "analysis"]
    )
    for user in (owner, collaborator, outsider):
        user.user_permissions.add(*perms)
    return {"owner": owner, "collaborator": collaborator, "outsider": outsider}


def _image_set(name: str, owner: User | None, seed: int) -> ImageSet:
    image_set = ImageSet.objects.create(name=name, origin="zip", owner=owner)
    photo = store_image(png_bytes(seed, size=32))
    ImageSetMember.objects.create(image_set=image_set, image=photo, position=0, label="cat")
    return image_set


def _unit_set(name: str, layer: Layer, image_set: ImageSet, owner: User | None) -> UnitSet:
    unit_set = UnitSet.objects.create(
        name=name, layer=layer, kind="channels", n_units=2, image_set=image_set, owner=owner
    )
    Unit.objects.bulk_create([Unit(unit_set=unit_set, index=i) for i in range(2)])
    return unit_set


def _atlas_rows(prefix: str, unit_set: UnitSet, image_set: ImageSet) -> dict[str, Any]:
    unit = unit_set.units.get(index=0)
    synthetic = store_image(png_bytes(900 + unit_set.pk, size=32), kind=Image.Kind.SYNTHETIC)
    return {
        "visualization": Visualization.objects.create(
            unit=unit,
            image=synthetic,
            method="fft",
            preset=f"{prefix}preset",
            seed=1,
            steps=1,
            final_activation=1.0,
        ),
        "synthetic": synthetic,
        "measure": Measure.objects.create(
            unit=unit, image_set=image_set, name=f"{prefix}measure", value=0.5
        ),
        "population": Population.objects.create(
            unit_set=unit_set,
            image_set=image_set,
            basis="activity",
            index=0,
            members=[0, 1],
            details={"rule": f"{prefix}population"},
        ),
        "ablationcurve": AblationCurve.objects.create(
            unit_set=unit_set,
            image_set=image_set,
            ranked_by=f"{prefix}ranking",
            ks=[1],
            ranked=[0.1],
            random_mean=[0.0],
            random_sd=[0.0],
        ),
        "description": Description.objects.create(
            unit=unit,
            image_set=image_set,
            source="classifier",
            text=f"{prefix}concept",
            concepts=[{"concept": f"{prefix}concept", "score": 1.0}],
        ),
        "spectrum": Spectrum.objects.create(
            layer=unit_set.layer,
            unit_set=unit_set,
            image_set=image_set,
            n_samples=10,
            dimension=2,
            eigenvalues=[1.0, 0.5],
            participation_ratio=1.8,
            criterion=1.5,
            details={"note": f"{prefix}spectrum"},
        ),
    }


@pytest.fixture
def catalogue(everyone: dict[str, User]) -> dict[str, Any]:
    """The owner's network, image sets and unit sets (one used by a study shared with the
    collaborator, one private), with a row of every kind hanging off each; and a shared one."""
    owner = everyone["owner"]
    network = Network.objects.create(name="owner-net", source="builtin:test", owner=owner)
    layer = Layer.objects.create(network=network, name="features.3", shape=[2, 7, 7])
    photos = _image_set("owner-photos", owner, 1)
    used = _unit_set("owner-used", layer, photos, owner)
    hidden_net = Network.objects.create(name="owner-hidden-net", source="builtin:test", owner=owner)
    hidden_layer = Layer.objects.create(network=hidden_net, name="features.9", shape=[2, 3, 3])
    hidden_photos = _image_set("owner-hidden-photos", owner, 2)
    hidden = _unit_set("owner-hidden-set", hidden_layer, hidden_photos, owner)
    study = study_services.do_create_study(owner, {"slug": "owner-study", "title": "A study"})
    study_services.do_set_relations(study, unit_sets=[used])
    study.image_set = photos
    study.save()
    study.collaborators.add(everyone["collaborator"])
    lwta_net = Network.objects.create(name="owner-hidden-lwta", source="lwta:x", owner=owner)
    shared_net = Network.objects.create(name="shared-net", source="builtin:test")
    shared_layer = Layer.objects.create(network=shared_net, name="features.1", shape=[2, 3, 3])
    shared_photos = _image_set("shared-photos", None, 3)
    return {
        "study": study,
        "used": {
            "network": network,
            "layer": layer,
            "imageset": photos,
            "unitset": used,
            "unit": used.units.get(index=0),
            "image": photos.images.get(),
            "observer": Observer.objects.create(name="owner-observer", network=network),
            **_atlas_rows("used-", used, photos),
        },
        "hidden": {
            "network": hidden_net,
            "layer": hidden_layer,
            "imageset": hidden_photos,
            "unitset": hidden,
            "unit": hidden.units.get(index=0),
            "image": hidden_photos.images.get(),
            "observer": Observer.objects.create(name="owner-hidden-observer", network=hidden_net),
            "lwtanetwork": LWTANetwork.objects.create(
                network=lwta_net,
                base=hidden_net,
                image_set=hidden_photos,
                block_size=2,
                temperature=0.67,
                checkpoint="/x.pt",
            ),
            **_atlas_rows("hidden-", hidden, hidden_photos),
        },
        "shared": {
            "network": shared_net,
            "layer": shared_layer,
            "imageset": shared_photos,
            "unitset": _unit_set("shared-set", shared_layer, shared_photos, None),
        },
    }


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_as(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def app_of(model: str) -> str:
    return "atlas" if model in ATLAS_MODELS else "stimuli"


def change_url(name: str, obj: Any) -> str:
    return f"/admin/{app_of(name)}/{name}/{obj.pk}/change/"


def marker(name: str, obj: Any) -> str:
    """Text of the row that its changelist shows (a name, or what identifies the row)."""
    texts = {
        "visualization": lambda v: f"{v.method}/{v.preset}",
        "image": lambda i: i.sha256,
        "unit": lambda u: f"{u.unit_set.name} #{u.index}",
        "layer": lambda x: x.name,
        "measure": lambda m: m.name,
        "population": lambda p: f"/population/{p.pk}/change/",
        "ablationcurve": lambda c: c.ranked_by,
        "description": lambda d: d.text,
        "spectrum": lambda s: f"/spectrum/{s.pk}/change/",
        "lwtanetwork": lambda n: f"/lwtanetwork/{n.pk}/change/",
    }
    return texts.get(name, lambda o: o.name)(obj)


def rows_of(part: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, obj) for name, obj in part.items() if name in MODELS + ATLAS_MODELS]


def test_an_outsider_gets_404_on_every_page_of_the_owner_s_catalogue(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["outsider"])
    for part in ("used", "hidden"):
        for name, obj in rows_of(catalogue[part]):
            for page in ("change", "history", "delete"):
                url = change_url(name, obj).replace("/change/", f"/{page}/")
                assert client.get(url).status_code == 404, url
            listing = client.get(f"/admin/{app_of(name)}/{name}/")
            assert listing.status_code == 200, name
            assert marker(name, obj) not in listing.content.decode(), (name, part)
    assert Network.objects.filter(name="owner-net").exists()


def test_a_collaborator_sees_what_the_shared_study_uses_and_nothing_else(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["collaborator"])
    for name, obj in rows_of(catalogue["used"]):
        page = client.get(change_url(name, obj))
        assert page.status_code == 200, name
        listing = client.get(f"/admin/{app_of(name)}/{name}/").content.decode()
        assert marker(name, obj) in listing, name
    for name, obj in rows_of(catalogue["hidden"]):
        assert client.get(change_url(name, obj)).status_code == 404, name
        listing = client.get(f"/admin/{app_of(name)}/{name}/").content.decode()
        assert marker(name, obj) not in listing, name


def test_what_a_collaborator_sees_is_read_only(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["collaborator"])
    used = catalogue["used"]["unitset"]
    page = client.get(change_url("unitset", used)).content.decode()
    assert 'name="_save"' not in page and 'name="name"' not in page
    posted = client.post(change_url("unitset", used), {"name": "renamed", "kind": "channels"})
    assert posted.status_code == 403
    assert (
        client.post(
            change_url("network", catalogue["used"]["network"]).replace("/change/", "/delete/"),
            {"post": "yes"},
        ).status_code
        == 403
    )
    used.refresh_from_db()
    assert used.name == "owner-used" and Network.objects.filter(name="owner-net").exists()


def test_the_owner_sees_and_changes_all_of_their_catalogue(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["owner"])
    for part in ("used", "hidden"):
        for name, obj in rows_of(catalogue[part]):
            assert client.get(change_url(name, obj)).status_code == 200, name
            listing = client.get(f"/admin/{app_of(name)}/{name}/").content.decode()
            assert marker(name, obj) in listing, name
    hidden = catalogue["hidden"]["unitset"]
    page = client.get(change_url("unitset", hidden)).content.decode()
    assert 'name="_save"' in page and 'name="name"' in page


@pytest.mark.parametrize("who", ["owner", "collaborator", "outsider"])
def test_the_shared_catalogue_is_seen_by_every_researcher_and_changed_by_none(
    who: str, everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone[who])
    shared = catalogue["shared"]
    for name, obj in shared.items():
        assert client.get(change_url(name, obj)).status_code == 200, name
        assert marker(name, obj) in client.get(f"/admin/stimuli/{name}/").content.decode()
    posted = client.post(change_url("unitset", shared["unitset"]), {"name": "mine"})
    assert posted.status_code == 403
    shared["unitset"].refresh_from_db()
    assert shared["unitset"].name == "shared-set" and shared["unitset"].owner is None


def test_a_superuser_puts_an_item_in_the_shared_catalogue(
    superuser: User, everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    hidden = catalogue["hidden"]["unitset"]
    outsider = as_user(everyone["outsider"])
    shared = outsider.post(
        "/admin/stimuli/unitset/", {"action": "share", "_selected_action": [hidden.pk]}
    )
    hidden.refresh_from_db()
    assert shared.status_code in (200, 302) and hidden.owner == everyone["owner"]
    response = as_user(superuser).post(
        "/admin/stimuli/unitset/", {"action": "share", "_selected_action": [hidden.pk]}
    )
    assert response.status_code == 302
    hidden.refresh_from_db()
    assert hidden.owner is None
    assert outsider.get(change_url("unitset", hidden)).status_code == 200


def test_what_a_researcher_adds_is_theirs(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["outsider"])
    shared_layer = catalogue["shared"]["layer"]
    response = client.post(
        "/admin/stimuli/unitset/add/",
        {
            "name": "outsider-set",
            "layer": shared_layer.pk,
            "kind": "channels",
            "point": "output",
            "params": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = UnitSet.objects.get(name="outsider-set")
    assert created.owner == everyone["outsider"]
    assert as_user(everyone["owner"]).get(change_url("unitset", created)).status_code == 404


def test_the_admin_pickers_offer_only_visible_items(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["outsider"])
    hidden_layer = catalogue["hidden"]["layer"]
    response = client.post(
        "/admin/stimuli/unitset/add/",
        {
            "name": "outsider-set",
            "layer": hidden_layer.pk,
            "kind": "channels",
            "point": "output",
            "params": "{}",
        },
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not UnitSet.objects.filter(name="outsider-set").exists()
    page = client.get("/admin/stimuli/unitset/add/").content.decode()
    assert "owner-hidden-photos" not in page and "owner-photos" not in page
    assert "shared-photos" in page
    filters = client.get("/admin/stimuli/unitset/?kind=channels").content.decode()
    assert "owner-net" not in filters and "owner-hidden-net" not in filters
    for model in ("measure", "description", "population", "spectrum"):
        listing = client.get(f"/admin/atlas/{model}/").content.decode()
        assert "owner-used" not in listing and "owner-photos" not in listing, model


def test_the_autocomplete_and_the_study_pickers_offer_only_visible_items(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["outsider"])
    found = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "studies",
            "model_name": "study",
            "field_name": "catch_units",
            "term": "owner",
        },
    )
    assert found.status_code == 200 and found.json()["results"] == []
    layers = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "stimuli",
            "model_name": "unitset",
            "field_name": "layer",
            "term": "features",
        },
    )
    assert [row["text"] for row in layers.json()["results"]] == [str(catalogue["shared"]["layer"])]
    page = client.get("/admin/studies/study/add/").content.decode()
    assert "owner-used" not in page and "owner-photos" not in page and "shared-set" in page


def test_the_admin_s_spectra_pages_show_only_visible_spectra(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    network = catalogue["used"]["network"]
    outsider = as_user(everyone["outsider"])
    page = outsider.get(f"/admin/atlas/spectrum/network/?network={network.pk}").content.decode()
    assert "owner-net" not in page and "owner-used" not in page
    csv = outsider.get("/admin/atlas/spectrum/export.csv").content.decode()
    assert "owner-used" not in csv and "owner-hidden-set" not in csv
    form = outsider.get("/admin/atlas/spectrum/compute/").content.decode()
    assert "owner-used" not in form and "owner-photos" not in form and "shared-photos" in form
    collaborator_csv = as_user(everyone["collaborator"]).get("/admin/atlas/spectrum/export.csv")
    text = collaborator_csv.content.decode()
    assert "owner-used" in text and "owner-hidden-set" not in text


# --- the researcher API ------------------------------------------------------------------------


def unit_set_urls(unit_set: UnitSet) -> list[str]:
    base = f"/api/v1/researcher/atlas/unit-sets/{unit_set.pk}"
    return [
        f"{base}/measures/",
        f"{base}/measures.csv",
        f"{base}/populations/",
        f"{base}/ablation-curves/",
        f"/api/v1/researcher/atlas/descriptions/?unit_set={unit_set.pk}",
    ]


def test_an_outsider_gets_404_from_every_api_endpoint_of_the_catalogue(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = api_as(everyone["outsider"])
    for part in ("used", "hidden"):
        rows = catalogue[part]
        for url in unit_set_urls(rows["unitset"]):
            assert client.get(url).status_code == 404, url
        spectrum, observer = rows["spectrum"], rows["observer"]
        assert client.get(f"/api/v1/researcher/atlas/spectra/{spectrum.pk}/").status_code == 404
        mis = f"/api/v1/researcher/atlas/observers/{observer.pk}/mis"
        assert client.get(mis, {"unit_set": rows["unitset"].pk}).status_code == 404
    listed = client.get("/api/v1/researcher/atlas/spectra/").json()["spectra"]
    assert listed == []
    assert "owner-used" not in client.get("/api/v1/researcher/atlas/spectra.csv").content.decode()
    assert client.get("/api/v1/researcher/atlas/observers/").json() == []


def test_a_collaborator_reads_the_study_s_unit_set_but_not_the_owner_s_others(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = api_as(everyone["collaborator"])
    for url in unit_set_urls(catalogue["used"]["unitset"]):
        assert client.get(url).status_code == 200, url
    measures = client.get(unit_set_urls(catalogue["used"]["unitset"])[0]).json()
    assert measures["measures"] == ["used-measure"]
    for url in unit_set_urls(catalogue["hidden"]["unitset"]):
        assert client.get(url).status_code == 404, url
    spectra = client.get("/api/v1/researcher/atlas/spectra/").json()["spectra"]
    assert len(spectra) == 1
    names = [o["name"] for o in client.get("/api/v1/researcher/atlas/observers/").json()]
    assert names == ["owner-observer"]
    owner_names = [
        o["name"]
        for o in api_as(everyone["owner"]).get("/api/v1/researcher/atlas/observers/").json()
    ]
    assert owner_names == ["owner-hidden-observer", "owner-observer"]


@pytest.mark.parametrize("who", ["collaborator", "outsider"])
def test_a_job_naming_an_item_the_caller_may_not_see_is_refused(
    who: str, everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = api_as(everyone[who])
    hidden = catalogue["hidden"]
    calls = [
        (
            "/api/v1/researcher/atlas/jobs/",
            {
                "kind": "compute_activity",
                "params": {
                    "unit_sets": [hidden["unitset"].pk],
                    "image_set": catalogue["shared"]["imageset"].pk,
                },
            },
        ),
        (
            "/api/v1/researcher/atlas/spectra/",
            {"layers": [hidden["layer"].pk], "image_set": catalogue["shared"]["imageset"].pk},
        ),
        (
            "/api/v1/researcher/atlas/descriptions/",
            {"unit_sets": [hidden["unitset"].pk], "image_set": hidden["imageset"].pk},
        ),
        (
            f"/api/v1/researcher/atlas/observers/{catalogue['used']['observer'].pk}/mis",
            {"unit_sets": [hidden["unitset"].pk]},
        ),
    ]
    for url, body in calls:
        response = client.post(url, body, format="json")
        expected = 404 if who == "outsider" and "observers" in url else 400
        assert response.status_code == expected, (url, response.content)
        assert "owner-hidden" not in response.content.decode()
    assert Job.objects.count() == 0


def test_only_the_owner_fits_or_imports_into_an_item(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = as_user(everyone["outsider"])
    shared = catalogue["shared"]["unitset"]
    UnitSet.objects.filter(pk=shared.pk).update(kind="pca", n_units=2)
    response = client.post(
        "/admin/stimuli/unitset/", {"action": "fit", "_selected_action": [shared.pk]}
    )
    assert response.status_code == 302
    assert not Job.objects.exists()
    hidden = catalogue["hidden"]["unitset"]
    UnitSet.objects.filter(pk=hidden.pk).update(kind="pca", n_units=2)
    as_user(everyone["owner"]).post(
        "/admin/stimuli/unitset/", {"action": "fit", "_selected_action": [hidden.pk]}
    )
    assert list(Job.objects.values_list("kind", "created_by")) == [
        ("fit_unit_set", everyone["owner"].pk)
    ]


# --- what a study may use ----------------------------------------------------------------------


def test_a_study_cannot_use_another_researcher_s_items_through_the_api(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    client = api_as(everyone["outsider"])
    hidden = catalogue["hidden"]
    for body in (
        {"unit_sets": [hidden["unitset"].pk]},
        {"image_set": hidden["imageset"].pk},
        {"catch_units": [hidden["unit"].pk]},
    ):
        response = client.post(
            "/api/v1/researcher/studies/",
            {"slug": "outsider-study", "title": "Mine", **body},
            format="json",
        )
        assert response.status_code == 400, (body, response.content)
        assert "owner-hidden" not in response.content.decode()
    assert not Study.objects.filter(slug="outsider-study").exists()
    shared = catalogue["shared"]
    response = client.post(
        "/api/v1/researcher/studies/",
        {
            "slug": "outsider-study",
            "title": "Mine",
            "unit_sets": [shared["unitset"].pk],
            "image_set": shared["imageset"].pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.content


def test_a_collaborator_cannot_add_what_the_owner_may_not_see(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    collaborator = everyone["collaborator"]
    photos = _image_set("collaborator-photos", collaborator, 7)
    own = _unit_set("collaborator-set", catalogue["shared"]["layer"], photos, collaborator)
    study = catalogue["study"]
    used = catalogue["used"]["unitset"]
    response = api_as(collaborator).patch(
        f"/api/v1/researcher/studies/{study.slug}/",
        {"unit_sets": [used.pk, own.pk]},
        format="json",
    )
    assert response.status_code == 400 and "unit_sets" in response.json()["message"]
    response = api_as(collaborator).patch(
        f"/api/v1/researcher/studies/{study.slug}/", {"image_set": photos.pk}, format="json"
    )
    assert response.status_code == 400 and "image_set" in response.json()["message"]
    study.refresh_from_db()
    assert list(study.unit_sets.all()) == [used]
    assert study.image_set == catalogue["used"]["imageset"]


def test_the_study_form_refuses_what_the_owner_may_not_see(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    collaborator = everyone["collaborator"]
    photos = _image_set("collaborator-photos", collaborator, 7)
    own = _unit_set("collaborator-set", catalogue["shared"]["layer"], photos, collaborator)
    study = catalogue["study"]
    client = as_user(collaborator)
    page = client.get(f"/admin/studies/study/{study.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data = {k: v for k, v in data.items() if not isinstance(v, bool) or v}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management[n].html_name: management[n].value() for n in management.fields})
        for inline in formset.formset.forms:
            data.update(
                {
                    inline[n].html_name: inline[n].value()
                    for n in inline.fields
                    if inline[n].value() is not None
                }
            )
    data["unit_sets"] = [catalogue["used"]["unitset"].pk, own.pk]
    response = client.post(f"/admin/studies/study/{study.pk}/change/", data)
    assert response.status_code == 200, response.status_code
    errors = response.context["adminform"].form.errors
    assert "unit_sets" in errors, errors
    assert list(study.unit_sets.all()) == [catalogue["used"]["unitset"]]


# --- imported datasets -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["collaborator", "outsider"])
def test_another_researcher_s_imported_dataset_is_hidden_and_a_shared_one_is_not(
    who: str, everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    from backend.analysis.models import ImportedDataset

    mine = ImportedDataset.objects.create(name="owner-secret-trials", imported_by=everyone["owner"])
    shared = ImportedDataset.objects.create(name="published-trials")
    study = (
        catalogue["study"]
        if who == "collaborator"
        else study_services.do_create_study(everyone[who], {"slug": "outsider-own", "title": "Own"})
    )
    client = as_user(everyone[who])
    assert client.get(f"/admin/analysis/importeddataset/{mine.pk}/change/").status_code == 404
    assert client.get(f"/admin/analysis/importeddataset/{shared.pk}/change/").status_code == 200
    listing = client.get("/admin/analysis/importeddataset/").content.decode()
    assert "owner-secret-trials" not in listing and "published-trials" in listing
    results = client.get(f"/admin/studies/study/{study.pk}/results/?with={mine.pk}")
    assert results.status_code == 200
    assert "owner-secret-trials" not in results.content.decode()
    api = api_as(everyone[who]).get(
        f"/api/v1/researcher/studies/{study.slug}/results?with={mine.pk}"
    )
    assert api.status_code == 200 and api.json()["compared"] == []
    owner_page = as_user(everyone["owner"]).get(
        f"/admin/studies/study/{catalogue['study'].pk}/results/?with={mine.pk}"
    )
    assert "owner-secret-trials" in owner_page.content.decode()


def test_a_shared_unit_set_shows_nobody_what_was_computed_on_a_private_image_set(
    everyone: dict[str, User], catalogue: dict[str, Any]
) -> None:
    from backend.stimuli.models import ExemplarSet

    shared, hidden_photos = catalogue["shared"]["unitset"], catalogue["hidden"]["imageset"]
    private_photo = hidden_photos.images.get()
    unit = shared.units.get(index=0)
    entry = [{"image": private_photo.pk, "value": 1.0}]
    ExemplarSet.objects.create(unit=unit, image_set=hidden_photos, k=1, top=entry, bottom=entry)
    Measure.objects.create(unit=unit, image_set=hidden_photos, name="private-measure", value=1.0)
    Description.objects.create(
        unit=unit, image_set=hidden_photos, source="classifier", text="private-concept", concepts=[]
    )
    Population.objects.create(
        unit_set=shared, image_set=hidden_photos, basis="activity", index=0, members=[0]
    )
    outsider = as_user(everyone["outsider"])
    page = outsider.get(change_url("unit", unit)).content.decode()
    assert private_photo.sha256 not in page and "private-concept" not in page
    assert (
        private_photo.sha256
        in as_user(everyone["owner"]).get(change_url("unit", unit)).content.decode()
    )
    api = api_as(everyone["outsider"])
    base = f"/api/v1/researcher/atlas/unit-sets/{shared.pk}"
    assert api.get(f"{base}/measures/").json()["measures"] == []
    assert api.get(f"{base}/populations/").json()["populations"] == []
    described = api.get(f"/api/v1/researcher/atlas/descriptions/?unit_set={shared.pk}").json()
    assert described["descriptions"] == []
    owner_measures = api_as(everyone["owner"]).get(f"{base}/measures/").json()["measures"]
    assert owner_measures == ["private-measure"]
