"""The stimuli pages a researcher reads (issue #21): a unit's page is a page to look at (its
visualizations first, labelled in words, statistics as a table, nothing to change or delete),
and the Job list says what each job works on."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.stimuli.models import ImageSet, Job, Visualization
from tests.studies import factories

pytestmark = pytest.mark.django_db


def test_a_units_page_shows_its_visualizations_first_in_words_and_its_stats_as_a_table(
    client: Client, superuser: User
) -> None:
    units = factories.unit_set(n_units=2)
    factories.add_exemplars(units, factories.image_pool())
    unit = units.units.get(index=0)
    unit.stats = {"mean": 0.1234567, "std": 1.5, "max": 9.87, "fraction_positive": 0.25,
                  "n_images": 560}  # fmt: skip
    unit.save()
    pool = factories.image_pool(offset=500)
    for sign, activation in ((1, 4.47), (-1, -4.47)):
        Visualization.objects.create(
            unit=unit, image_id=pool[sign + 1], method="fft", preset="lucent", params={},
            seed=0, index=0, sign=sign, steps=10, final_activation=activation,
        )  # fmt: skip
    client.force_login(superuser)

    html = client.get(f"/admin/stimuli/unit/{unit.pk}/change/").content.decode()

    assert "View unit" in html and "Change unit" not in html
    assert 'class="deletelink"' not in html and 'name="_save"' not in html
    assert html.index("Feature visualizations") < html.index("Natural exemplars")
    assert "Maximally activating (preset lucent, method fft, seed 0)" in html
    assert "Minimally activating (preset lucent, method fft, seed 0)" in html
    assert "image 1 (non-diverse): activation 4.47" in html
    assert "lucent/lucent" not in html and "fft/lucent" not in html
    assert "<th>mean activation</th><td>0.1235</td>" in html
    assert "<th>images in the pass</th><td>560</td>" in html
    assert '{"mean"' not in html and "&quot;mean&quot;" not in html


def test_the_job_list_says_what_each_job_works_on(client: Client, superuser: User) -> None:
    units = factories.unit_set("sae-units", n_units=3)
    image_set = ImageSet.objects.create(name="photos", origin=ImageSet.Origin.DEMO)
    Job.objects.create(kind=Job.Kind.IMPORT_IMAGES, params={"image_set": image_set.pk})
    Job.objects.create(kind=Job.Kind.FIT_UNIT_SET, params={"unit_set": units.pk})
    Job.objects.create(
        kind=Job.Kind.COMPUTE_EXEMPLARS,
        params={"network": units.layer.network_id, "image_set": image_set.pk,
                "unit_sets": [units.pk], "k": 200},
    )  # fmt: skip
    unit_ids = list(units.units.values_list("pk", flat=True))
    Job.objects.create(
        kind=Job.Kind.RENDER_VISUALIZATIONS, params={"units": unit_ids, "preset": "imi"}
    )
    client.force_login(superuser)

    html = client.get("/admin/stimuli/job/").content.decode()

    assert "works on" in html.lower()
    assert "image set photos" in html
    assert "unit set sae-units" in html
    assert "unit sets sae-units; network net; image set photos" in html
    assert "3 unit(s) of sae-units; preset imi" in html


def test_the_job_list_names_the_atlas_jobs_subjects(client: Client, superuser: User) -> None:
    units = factories.unit_set("sae-units", n_units=3)
    photos = ImageSet.objects.create(name="photos", origin=ImageSet.Origin.DEMO)
    held_out = ImageSet.objects.create(name="held-out", origin=ImageSet.Origin.DEMO)
    Job.objects.create(kind="compute_spectra", params={
        "layers": [units.layer_id], "unit_sets": [units.pk], "image_set": photos.pk})  # fmt: skip
    Job.objects.create(kind="confound_report", params={
        "unit_set": units.pk, "unit": 2, "image_set": photos.pk})  # fmt: skip
    Job.objects.create(kind="retrain_last_layer", params={
        "base": units.layer.network_id, "train_set": photos.pk, "eval_set": held_out.pk,
        "name": "refit"})  # fmt: skip
    client.force_login(superuser)

    html = client.get("/admin/stimuli/job/").content.decode()

    layer = f"{units.layer.network.name} {units.layer.name}"
    assert f"unit sets sae-units; layers {layer}; image set photos" in html
    assert "unit 2 of unit set sae-units; image set photos" in html
    assert "base network net; training set photos; held-out set held-out" in html
