"""The results page shows, per layer, human accuracy beside the layer's code density (α, the
criterion, participation ratio: the atlas's spectra), with Spearman's ρ across layers once
enough layers have a spectrum."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.analysis.dashboard import Cell
from backend.atlas import spectra
from backend.atlas.models import Spectrum
from backend.participation.models import Session
from backend.stimuli.models import ImageSet, Layer, Network
from tests.analysis.conftest import SMALL_RULES
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db


def spectrum_for(layer: Layer, alpha: float, pr: float) -> Spectrum:
    image_set, _ = ImageSet.objects.get_or_create(name="spectra", origin=ImageSet.Origin.DEMO)
    return Spectrum.objects.create(
        layer=layer, image_set=image_set, n_samples=600, dimension=320, eigenvalues=[1.0],
        alpha=alpha, alpha_r2=0.99, fit_first=11, fit_last=320, participation_ratio=pr,
        components={"50": 3, "90": 20, "99": 80}, criterion=1.0,
    )  # fmt: skip


def test_the_results_page_shows_each_layers_alpha_beside_its_accuracy(
    client: Client, owner: User, take_part: Callable[..., Session]
) -> None:
    fixture = make_study(owner, n_lists=1, exclusion_rules=SMALL_RULES)
    take_part(fixture, "validparticipant01")
    layer = Layer.objects.get(network__name__startswith="net-")  # the study's units' layer
    spectrum_for(layer, alpha=1.234, pr=17.5)
    client.force_login(owner)
    html = client.get(f"/admin/studies/study/{fixture.study.pk}/results/").content.decode()
    assert 'id="code-density"' in html and "1.234" in html and "17.5" in html
    assert "/admin/atlas/spectrum/" in html
    assert "needs at least 4 layers" in html  # one layer: no Spearman


def test_spearman_across_layers_needs_enough_layers() -> None:
    network = Network.objects.create(name="net", source="builtin:efficientnet_lite0")
    cells = []
    for depth, (alpha, accuracy) in enumerate([(0.9, 0.6), (1.0, 0.7), (1.2, 0.8), (1.5, 0.9)]):
        layer = Layer.objects.create(network=network, name=f"blocks.{depth}", position=depth)
        spectrum_for(layer, alpha=alpha, pr=10.0 - depth)
        cells.append(Cell(f"net blocks.{depth}", 40, int(40 * accuracy), accuracy, 0.5, 1.0, 4))
    density = spectra.layer_code_density(cells)
    assert [row["alpha"] for row in density["rows"]] == [0.9, 1.0, 1.2, 1.5]
    assert density["spearman"]["alpha"]["rho"] == pytest.approx(1.0)
    assert density["spearman"]["participation_ratio"]["rho"] == pytest.approx(-1.0)
    assert spectra.layer_code_density(cells[:3])["spearman"] == {}
