"""Feature visualizations and occlusion maps as Jobs: stored with their recipe under content
hashes, for maximally and minimally activating images, and safe to run twice."""

from __future__ import annotations

from typing import Any

import pytest

from backend.stimuli import services
from backend.stimuli.models import Image, Job, OcclusionMap, Visualization
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)
QUICK = {"max_steps": 8, "image_size": 64, "batch_size": 8}


def run_job(kind: str, params: dict[str, Any]) -> Job:
    job = services.do_queue_job(kind, params, send=False)
    run_job_here(job)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def test_visualizations_are_stored_for_both_signs_with_their_recipe(
    stimuli: dict[str, Any],
) -> None:
    units = list(stimuli["channels"].units.filter(index__in=[0, 3]))
    params = {"units": [u.pk for u in units], "preset": "lucent", "overrides": QUICK}
    run_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    rows = Visualization.objects.all()
    assert rows.count() == 4
    for row in rows:
        assert row.steps == 8 and row.preset == "lucent" and row.params["sign"] == row.sign
        assert row.image.kind == Image.Kind.SYNTHETIC and row.image.url.endswith(".png")
        assert row.image.sha256 in row.image.file.name
    for unit in units:
        maximal = unit.visualizations.get(sign=1).final_activation
        minimal = unit.visualizations.get(sign=-1).final_activation
        assert maximal > minimal


def test_rendering_the_same_recipe_twice_adds_no_rows(stimuli: dict[str, Any]) -> None:
    unit = stimuli["channels"].units.get(index=1)
    params = {"units": [unit.pk], "preset": "lucent", "overrides": QUICK, "signs": [1]}
    run_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    first = list(Visualization.objects.values_list("pk", "image_id"))
    run_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    assert list(Visualization.objects.values_list("pk", "image_id")) == first


def test_a_sparse_autoencoder_unit_is_visualized_through_its_code(
    stimuli: dict[str, Any],
) -> None:
    sae = stimuli["sae"]
    run_job(Job.Kind.FIT_UNIT_SET, {"unit_set": sae.pk})
    unit = sae.units.get(index=0)
    params = {"units": [unit.pk], "preset": "lucent", "overrides": QUICK}
    run_job(Job.Kind.RENDER_VISUALIZATIONS, params)
    assert (
        unit.visualizations.get(sign=1).final_activation
        > unit.visualizations.get(sign=-1).final_activation
    )


def test_occlusion_maps_are_stored_with_their_extremes_and_derived_images(
    stimuli: dict[str, Any],
) -> None:
    unit = stimuli["channels"].units.get(index=2)
    exemplar_params = {
        "network": stimuli["network"].pk,
        "image_set": stimuli["image_set"].pk,
        "unit_sets": [stimuli["channels"].pk],
        "k": 5,
    }
    run_job(Job.Kind.COMPUTE_EXEMPLARS, exemplar_params)
    params = {"units": [unit.pk], "occluder_fraction": 0.4, "stride": 32, "n_base": 2}
    run_job(Job.Kind.COMPUTE_OCCLUSION, params)
    maps = OcclusionMap.objects.filter(unit=unit)
    top_images = [entry["image"] for entry in unit.exemplar_sets.get().top[:2]]
    assert sorted(m.base_image_id for m in maps) == sorted(top_images)
    for occlusion_map in maps:
        grid = occlusion_map.grid  # 224 px, occluder 90 px, stride 32: 5 × 5 positions
        assert len(grid) == 5 and all(len(row) == 5 for row in grid)
        values = [value for row in grid for value in row]
        assert max(values) == pytest.approx(occlusion_map.max_activation, abs=1e-5)
        assert min(values) == pytest.approx(occlusion_map.min_activation, abs=1e-5)
        top, left = occlusion_map.argmax
        assert grid[top // 32][left // 32] == pytest.approx(occlusion_map.max_activation, abs=1e-5)
        derived = [occlusion_map.occluded_at_max, occlusion_map.occluded_at_min]
        derived.append(occlusion_map.blurred)
        assert all(image is not None and image.kind == Image.Kind.DERIVED for image in derived)
        assert len({image.pk for image in derived if image}) == 3
    run_job(Job.Kind.COMPUTE_OCCLUSION, params)  # a second run updates, never duplicates
    assert OcclusionMap.objects.filter(unit=unit).count() == 2
