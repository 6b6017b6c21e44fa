"""The atlas in the admin: a unit's page shows every measure with its rank in the unit set, its
population and the human accuracy (with CI) of the studies that showed it; the unit set's atlas
page shows the Spearman matrix, the ablation curves, the dendrogram and the basis comparison;
the unit-set list's action leads to a form that queues an atlas job or refuses bad parameters,
queueing nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from scipy import stats

from backend.atlas import atlas_pages, jobkinds
from backend.participation.models import Session
from backend.stimuli.models import Job, Unit
from backend.studies.models import Trial
from tests.analysis.conftest import SMALL_RULES, api, own_rate_limit_counts, take_part  # noqa: F401
from tests.atlas.pages import MEANS, N_ATOMS, make_atlas
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db


def test_a_units_page_ranks_each_measure_and_names_its_population(
    client: Client, superuser: User
) -> None:
    atlas = make_atlas()
    unit = Unit.objects.get(unit_set=atlas.channels, index=3)
    client.force_login(superuser)
    page = client.get(f"/admin/stimuli/unit/{unit.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    section = html[html.index('id="unit-atlas"') :]
    row = re.search(r"<tr><td>mean</td>.*?</tr>", section, re.S)
    assert row is not None
    assert "3.5000" in row.group(0) and "1 of 8" in row.group(0)  # the highest mean
    lowest = Unit.objects.get(unit_set=atlas.channels, index=4)
    ranked = atlas_pages.measure_ranks(lowest)
    assert {r["name"]: (r["rank"], r["of"]) for r in ranked}["mean"] == (8, 8)
    assert "preferred class: 1 (cat)" in section
    assert "population 1</a> by activity" in section and "2 units" in section
    assert "(with 4)" in section
    assert f'href="/admin/atlas/unit-set/{atlas.channels.pk}/"' in section
    assert 'id="no-human"' in section


def test_a_units_page_shows_human_accuracy_with_its_interval(
    client: Client,
    owner: User,
    take_part: Callable[..., Session],  # noqa: F811
) -> None:
    fixture = make_study(owner, n_lists=2, exclusion_rules=SMALL_RULES)
    take_part(fixture, "firstparticipant01")
    take_part(fixture, "secondparticipant2")
    trial = Trial.objects.filter(task_list__study=fixture.study, is_catch=False).first()
    assert trial is not None and trial.unit is not None
    owner.user_permissions.add(Permission.objects.get(codename="view_unit"))
    client.force_login(owner)
    page = client.get(f"/admin/stimuli/unit/{trial.unit.pk}/change/")
    html = page.content.decode()
    row = re.search(r'<table id="unit-human">.*?</table>', html, re.S)
    assert row is not None, html[-3000:]
    cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
    assert fixture.study.slug in cells[0] and cells[1] == "natural"
    assert cells[2] == "12" and cells[3] == "2"  # 6 main trials each, two participants
    low, high = (float(v) for v in cells[5].split("–"))
    assert low <= float(cells[4]) <= high


def test_the_unit_sets_atlas_page_draws_matrix_curves_dendrogram_and_bases(
    client: Client, superuser: User
) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    page = client.get(f"/admin/atlas/unit-set/{atlas.channels.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for figure in ("spearman-figure", "curves-figure"):
        assert re.search(rf'id="{figure}"><svg', html), figure
    matrix = re.search(r'<table class="atlas-table" id="spearman-matrix">.*?</table>', html, re.S)
    assert matrix is not None
    names = re.findall(r"<th>([a-z_]+)</th>", matrix.group(0))
    assert names[:4] == ["ablation_accuracy_drop", "ablation_kl", "csi", "mean"]
    assert "Populations by activity on" in html and "3 populations (best silhouette)" in html
    assert re.search(r'class="atlas-figure dendrogram"><svg', html)
    comparison = re.search(r'<table class="atlas-table basis-table">.*?</table>', html, re.S)
    assert comparison is not None and f"({N_ATOMS} units each)" in html
    # the NMF's mean accuracy drop (0.2125 over 4 atoms) against 4 of the 8 channels
    assert "0.2125" in comparison.group(0) and "(4)</td>" in comparison.group(0)
    assert "ranked by" in html and "0.900" in html


def test_the_spearman_matrix_on_the_page_is_scipys() -> None:
    atlas = make_atlas()
    context = atlas_pages.unit_set_context(atlas.channels)
    names = context["measure_names"]
    mean = [m for m in MEANS]
    csi_row = next(r for r in context["matrix"] if r["name"] == "csi")
    from backend.atlas.models import Measure

    csi = [
        Measure.objects.get(unit__unit_set=atlas.channels, unit__index=i, name="csi").value
        for i in range(8)
    ]
    assert csi_row["values"][names.index("mean")] == pytest.approx(
        stats.spearmanr(csi, mean).statistic
    )


def test_the_dictionarys_page_compares_it_with_the_layers_channels(
    client: Client, superuser: User
) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    html = client.get(f"/admin/atlas/unit-set/{atlas.nmf.pk}/").content.decode()
    assert f"{atlas.nmf.name} against {atlas.channels.name}" in html
    assert 'id="no-dendrogram"' in html  # the NMF has no populations


def test_the_unit_set_action_leads_to_the_queue_form(client: Client, superuser: User) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    response = client.post(
        "/admin/stimuli/unitset/",
        {"action": "queue_atlas_jobs", "_selected_action": [atlas.channels.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/admin/atlas/unit-set/queue/?ids={atlas.channels.pk}"
    form = client.get(response["Location"])
    assert form.status_code == 200 and b'id="queue-form"' in form.content
    change = client.get(f"/admin/stimuli/unitset/{atlas.channels.pk}/change/")
    assert f'href="/admin/atlas/unit-set/{atlas.channels.pk}/"'.encode() in change.content


def _queue(client: Client, ids: str, **fields: Any) -> Any:
    body = {"ids": ids, "classes": "auto", "mode": "zero", "basis": "activity",
            "repeats": "3", **fields}  # fmt: skip
    return client.post("/admin/atlas/unit-set/queue/", body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": jobkinds.COMPUTE_ABLATION_CURVES, "rank_by": "no_such_measure"},
         "unknown or uncomputed measure"),
        ({"kind": jobkinds.COMPUTE_ABLATION_CURVES, "rank_by": "mean", "ks": "1,2,99"},
         "ks must be whole numbers from 1 to the unit set"),
        ({"kind": jobkinds.COMPUTE_ACTIVITY, "measures_extra": "loudness"},
         "unknown measure(s) &#x27;loudness&#x27;"),
        ({"kind": jobkinds.COMPUTE_POPULATIONS, "threshold": "5"},
         "threshold must be a distance"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_and_queue_nothing(
    client: Client, superuser: User, fields: dict[str, str], message: str
) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    jobs_before = Job.objects.count()
    response = _queue(client, str(atlas.channels.pk), image_set=atlas.image_set.pk, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert b"Nothing was queued" in response.content
    assert Job.objects.count() == jobs_before


def test_good_parameters_queue_one_job(client: Client, superuser: User) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    response = _queue(
        client, str(atlas.channels.pk), image_set=atlas.image_set.pk,
        kind=jobkinds.COMPUTE_ABLATION_CURVES, rank_by="mean, csi", ks="1,4",
    )  # fmt: skip
    assert response.status_code == 302
    job = Job.objects.get(kind=jobkinds.COMPUTE_ABLATION_CURVES)
    assert response["Location"] == f"/admin/stimuli/job/{job.pk}/change/"
    assert job.params == {"image_set": atlas.image_set.pk, "unit_set": atlas.channels.pk,
                          "mode": "zero", "rank_by": ["mean", "csi"], "repeats": 3,
                          "ks": [1, 4]}  # fmt: skip
    assert job.shards.count() == 4  # two rankings, the random groups, the merge


def test_an_ablation_job_takes_one_unit_set(client: Client, superuser: User) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    response = _queue(
        client, f"{atlas.channels.pk},{atlas.nmf.pk}", image_set=atlas.image_set.pk,
        kind=jobkinds.COMPUTE_ABLATION,
    )  # fmt: skip
    assert response.status_code == 400 and b"choose one unit set" in response.content
    assert not Job.objects.filter(kind=jobkinds.COMPUTE_ABLATION).exists()


def test_outsiders_of_the_staff_get_no_atlas_page(client: Client, django_user_model: Any) -> None:
    atlas = make_atlas()
    user = django_user_model.objects.create_user("someone", password="x-long-password-1")
    client.force_login(user)
    response = client.get(f"/admin/atlas/unit-set/{atlas.channels.pk}/")
    assert response.status_code == 302  # to the admin's login


def test_a_form_without_an_image_set_is_refused(client: Client, superuser: User) -> None:
    atlas = make_atlas()
    client.force_login(superuser)
    response = _queue(client, str(atlas.channels.pk), kind=jobkinds.COMPUTE_ACTIVITY)
    assert response.status_code == 400
    assert b"Nothing was queued: image_set" in response.content
    assert not Job.objects.filter(kind=jobkinds.COMPUTE_ACTIVITY).exists()
