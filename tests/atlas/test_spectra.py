"""Spectra Jobs on the built-in network (blocks.0/1, 30 tiny images): a sharded pass stores
exactly what one pass stores, rows are replaced, never duplicated; a basis too narrow for the
fit range keeps its other figures and says why α is missing; a layer the images cannot fill
is refused before anything is queued (API 400); the API lists, shows and exports the figures;
the management command runs a job and writes the CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from backend.atlas import spectra, spectra_plots
from backend.atlas.models import Spectrum
from backend.stimuli import services
from backend.stimuli.models import Job, UnitSet
from tests.stimuli.conftest import stimuli  # noqa: F401 - the fixture `tiny` uses
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny(stimuli: dict[str, Any]) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """The built-in network, 30 tiny images and a channels unit set on blocks.1."""
    return stimuli


QUICK_PATH = {"kind": "circle", "steps": 12, "directions": 4, "seed": 0}


def run(params: dict[str, Any]) -> Job:
    job = run_job_here(spectra.do_queue_spectra(params, send=False))
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def layer_ids(tiny: dict[str, Any], *names: str) -> list[int]:
    return [tiny["network"].layers.get(name=name).pk for name in names]


def params(tiny: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"layers": layer_ids(tiny, "blocks.0", "blocks.1"),
            "image_set": tiny["image_set"].pk, "path": QUICK_PATH, **extra}  # fmt: skip


def researcher_client(owner: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


def test_a_sharded_spectrum_pass_stores_what_one_pass_stores_and_the_pages_show_it(
    tiny: dict[str, Any], owner: User
) -> None:
    run(params(tiny))
    one_pass = {s.layer.name: s for s in Spectrum.objects.all()}
    sharded = run(params(tiny, images_per_shard=7))
    assert sharded.shards.filter(role="work").count() == 5
    assert Spectrum.objects.count() == 2  # replaced, never duplicated
    for row in Spectrum.objects.all():
        before = one_pass[row.layer.name]
        assert row.job_id == sharded.pk and row.n_samples == 30
        assert row.eigenvalues == pytest.approx(before.eigenvalues, rel=1e-9, abs=1e-15)
        assert row.alpha == pytest.approx(before.alpha, rel=1e-8)
    blocks1 = Spectrum.objects.get(layer__name="blocks.1")
    assert blocks1.dimension == 24 and len(blocks1.eigenvalues) == 24
    assert (blocks1.fit_first, blocks1.fit_last) == (11, 24) and blocks1.alpha_r2 is not None
    assert 1 <= blocks1.participation_ratio <= 24 and blocks1.criterion == 1.0
    assert blocks1.components["50"] <= blocks1.components["90"] <= blocks1.components["99"] <= 24
    assert blocks1.energy is not None and blocks1.energy_shuffled is not None
    assert blocks1.energy_pixels is not None  # 12 steps: too coarse to be smooth; see worker tests
    assert len(blocks1.details["projections"]) == 12 and blocks1.details["path"]["steps"] == 12
    assert sharded.result["spectra"] == 2 and sharded.result["images"] == 30
    pages = Client()
    pages.force_login(owner)
    layer_page = pages.get(f"/admin/atlas/spectrum/{blocks1.pk}/change/").content.decode()
    assert layer_page.count("Matplotlib v") == 2 and f"{blocks1.alpha:.2f}" in layer_page
    network = tiny["network"].pk
    depth_page = pages.get(f"/admin/atlas/spectrum/network/?network={network}").content.decode()
    assert depth_page.count("Matplotlib v") == 3
    assert depth_page.count('href="/admin/atlas/spectrum/') >= 2  # a link per layer
    form = {"layers": layer_ids(tiny, "blocks.0"), "image_set": tiny["image_set"].pk,
            "sampling": "pooled", "positions_per_image": 16, "first_rank": 11,
            "last_rank": 500, "path": "none", "path_steps": 8}  # fmt: skip
    queued = pages.post("/admin/atlas/spectrum/compute/", form)
    job = Job.objects.latest("pk")
    assert queued.status_code == 302 and job.kind == "compute_spectra" and job.pk != sharded.pk
    assert job.params["layers"] == layer_ids(tiny, "blocks.0") and job.params["path"] is None


def test_a_basis_too_narrow_for_the_fit_keeps_its_figures_and_says_why(
    tiny: dict[str, Any],
) -> None:
    layer, image_set = tiny["channels"].layer, tiny["image_set"]
    pca = services.do_save_unit_set(
        UnitSet(name="pca", layer=layer, kind="pca", n_units=5, image_set=image_set,
                params={"max_samples": 2000})
    )  # fmt: skip
    run_job_here(services.do_queue_job(Job.Kind.FIT_UNIT_SET, {"unit_set": pca.pk}, send=False))
    run({"unit_sets": [pca.pk], "image_set": image_set.pk, "sampling": "positions",
         "positions_per_image": 4, "manifold_dim": 1, "path": None})  # fmt: skip
    row = Spectrum.objects.get()
    assert row.unit_set == pca and row.basis == "pca" and row.sampling == "positions"
    assert row.dimension == 5 and row.n_samples == 120
    assert row.alpha is None and "too few for a fit" in row.fit_error
    assert row.participation_ratio > 1 and row.criterion == 3.0 and row.energy is None


def test_the_api_refuses_what_cannot_run_then_queues_lists_shows_and_exports(
    owner: User, tiny: dict[str, Any]
) -> None:
    body = params(tiny, layers=layer_ids(tiny, "blocks.2"))  # 40 channels, 30 images
    answer = researcher_client(owner).post("/api/v1/researcher/atlas/spectra/", body, format="json")
    assert answer.status_code == 400
    assert "blocks.2: 30 samples" in answer.json()["message"]
    assert "use at least 41 samples" in answer.json()["message"]
    assert not Job.objects.exists()
    bad = researcher_client(owner).post(
        "/api/v1/researcher/atlas/spectra/", params(tiny, ranks=[0, 5]), format="json"
    )
    assert bad.status_code == 400 and not Job.objects.exists()
    client = researcher_client(owner)
    translate = {"kind": "translate", "steps": 6, "step": 3.0, "directions": 4, "image": 2}
    body = params(tiny, layers=layer_ids(tiny, "blocks.2"), sampling="positions", path=translate)
    queued = client.post("/api/v1/researcher/atlas/spectra/", body, format="json")
    assert queued.status_code == 202 and queued.json()["kind"] == "compute_spectra"
    job = run_job_here(Job.objects.get(pk=queued.json()["id"]))
    assert job.state == Job.State.SUCCEEDED, job.error
    network = tiny["network"].pk
    listed = client.get(f"/api/v1/researcher/atlas/spectra/?network={network}").json()["spectra"]
    assert [(s["layer"], s["basis"], s["n_samples"]) for s in listed] == [
        ("blocks.2", "channels", 480)
    ]
    detail = client.get(f"/api/v1/researcher/atlas/spectra/{listed[0]['id']}/").json()
    assert len(detail["eigenvalues"]) == 40 and detail["alpha"] == listed[0]["alpha"]
    assert detail["details"]["path"]["kind"] == "translate" and detail["energy"] is not None
    assert len(detail["details"]["projections"]) == 6 and detail["energy_pixels"] is not None
    exported = client.get(f"/api/v1/researcher/atlas/spectra.csv?network={network}")
    lines = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert exported["Content-Type"] == "text/csv" and len(lines) == 1
    assert lines[0]["layer"] == "blocks.2" and float(lines[0]["alpha"]) == detail["alpha"]
    assert client.get("/api/v1/researcher/atlas/spectra/?network=x").status_code == 400
    assert client.get("/api/v1/researcher/atlas/spectra/999999/").status_code == 404


def test_the_command_computes_spectra_and_writes_the_csv(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "spectra.csv"
    call_command("compute_spectra", "lite0", "tiny", "--layers", "blocks.1", "--path", "none",
                 "--now", "--csv", str(out), stdout=io.StringIO())  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [(r["layer"], r["dimension"]) for r in rows] == [("blocks.1", "24")]
    assert Spectrum.objects.get().energy is None  # no path asked for


def test_the_network_page_compares_networks_and_bases_and_exports_what_it_shows(
    tiny: dict[str, Any], owner: User
) -> None:
    """lite0 and lite1 (their own weights) on the same images, and lite0's blocks.1 in an NMF
    basis as well: one line per network × basis on the depth plots, a table row and a CSV row
    per spectrum, and only the networks chosen."""
    lite1 = services.do_create_network("lite1", "builtin:efficientnet_lite1")
    run(params(tiny))
    run({**params(tiny), "layers": [lite1.layers.get(name=n).pk for n in ("blocks.0", "blocks.1")]})
    nmf = tiny["nmf"]
    fit = services.do_queue_job(Job.Kind.FIT_UNIT_SET, {"unit_set": nmf.pk}, send=False)
    assert run_job_here(fit).state == Job.State.SUCCEEDED
    run({"unit_sets": [nmf.pk], "image_set": tiny["image_set"].pk, "path": None})
    assert Spectrum.objects.count() == 5
    lite0 = tiny["network"]
    pages = Client()
    pages.force_login(owner)
    both = f"/admin/atlas/spectrum/network/?network={lite0.pk}&network={lite1.pk}"
    page = pages.get(both).content.decode()
    table = page.split('id="spectra-table"')[1]
    assert table.count("<tr><td>lite0</td>") == 3 and table.count("<tr><td>lite1</td>") == 2
    assert page.count("Matplotlib v") == 3
    assert page.count('<g id="line2d_') >= 3 * 3  # ≥ three lines (lite0, lite0 NMF, lite1) each
    lines = spectra_plots.series_of(Spectrum.objects.select_related("layer__network", "image_set"))
    assert sorted(lines) == [
        "lite0 · channels · pooled · tiny",
        "lite0 · nmf · pooled · tiny",
        "lite1 · channels · pooled · tiny",
    ]
    alpha = {(s.layer.network.name, s.layer.name): s.alpha for s in Spectrum.objects.filter(
        unit_set=None)}  # fmt: skip
    assert alpha[("lite0", "blocks.1")] != pytest.approx(alpha[("lite1", "blocks.1")])
    exported = pages.get(both.replace("network/", "export.csv"))
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert sorted((r["network"], r["layer"], r["basis"]) for r in rows) == [
        ("lite0", "blocks.0", "channels"), ("lite0", "blocks.1", "channels"),
        ("lite0", "blocks.1", "nmf"), ("lite1", "blocks.0", "channels"),
        ("lite1", "blocks.1", "channels"),
    ]  # fmt: skip
    only_lite1 = pages.get(f"/admin/atlas/spectrum/network/?network={lite1.pk}").content.decode()
    assert "<tr><td>lite0</td>" not in only_lite1.split('id="spectra-table"')[1]
