"""Activation measures as a sharded Job: planned and refused on the web side, run here or on a
real worker, stored as Measure rows that equal the pure pass, safe to run twice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from backend.atlas import services
from backend.atlas.models import Measure
from backend.stimuli.models import ImageSet, Job, Shard, UnitSet
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def measure_column(unit_set: UnitSet, image_set: ImageSet, name: str) -> list[float | None]:
    rows = Measure.objects.filter(unit__unit_set=unit_set, image_set=image_set, name=name)
    return [m.value for m in rows.order_by("unit__index")]


def test_a_sharded_activity_job_stores_every_measure_of_every_unit(
    stimuli: dict[str, Any],
) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    job = services.do_queue_activity_job([channels], image_set, send=False, images_per_shard=10)
    assert job.shards.filter(role=Shard.Role.WORK).count() == 3
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["classes"] == "network top-1" and job.result["images"] == 30
    assert Measure.objects.filter(unit__unit_set=channels).count() == 24 * 7
    means = measure_column(channels, image_set, "mean")
    one_pass = services_single_pass_means(stimuli)
    np.testing.assert_allclose(means, one_pass, rtol=1e-4, atol=1e-6)
    csi = Measure.objects.get(unit__unit_set=channels, unit__index=0, name="csi")
    assert csi.details["classes"] == "network top-1"
    assert csi.details.get("preferred_class_name")  # an ImageNet class name
    assert csi.job_id == job.pk


def services_single_pass_means(stimuli: dict[str, Any]) -> np.ndarray:
    """The channel means over all 30 images in one unsharded pass of the pure code."""
    from backend.stimuli.work import image_refs, load_network, load_projector
    from worker.analyses.activity import ClassSource, activity_states
    from worker.pipelines.loading import image_batches

    network = load_network(stimuli["network"])
    refs = image_refs(stimuli["image_set"])
    batches = image_batches(refs, network.preprocess, 30)
    projector = load_projector(stimuli["channels"])
    state = activity_states(network, {"c": projector}, batches, ClassSource({}, 1))["c"]
    return state.finish()["mean"]


def test_running_it_twice_replaces_rather_than_duplicates(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    params = {"send": False, "measures": ["mean", "max"]}
    run_job_here(services.do_queue_activity_job([channels], image_set, **params))
    second = run_job_here(services.do_queue_activity_job([channels], image_set, **params))
    assert Measure.objects.filter(unit__unit_set=channels).count() == 24 * 2
    assert set(Measure.objects.values_list("job", flat=True)) == {second.pk}


def test_classes_come_from_the_labels_where_every_image_has_one(
    stimuli: dict[str, Any], labelled_set: ImageSet
) -> None:
    job = run_job_here(
        services.do_queue_activity_job([stimuli["channels"]], labelled_set, send=False)
    )
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["classes"] == "image-set labels"
    csi = Measure.objects.filter(name="csi", image_set=labelled_set)
    assert csi.count() == 24
    assert {m.details["preferred_class_name"] for m in csi} <= {"cat", "dog"}
    assert all(m.details["n_classes"] == 2 for m in csi)


BAD_PARAMETERS = [
    ({"measures": ["mean", "loudness"]}, "unknown measure(s) 'loudness'"),
    ({"measures": []}, "unknown measure(s) (none chosen)"),
    ({"classes": "astrology"}, "classes must be one of"),
    ({"classes": "labels"}, "30 images of the set have no label"),
    ({"images_per_shard": 0}, "images_per_shard must be a whole number"),
]


def test_bad_parameters_get_a_clear_error_and_queue_nothing(stimuli: dict[str, Any]) -> None:
    for params, message in BAD_PARAMETERS:
        with pytest.raises(ValidationError) as caught:
            services.do_queue_activity_job(
                [stimuli["channels"]], stimuli["image_set"], send=False, **params
            )
        assert message in " ".join(caught.value.messages), params
    assert not Job.objects.exists()


def test_an_unfitted_unit_set_is_refused(stimuli: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="fit these unit sets first: nmf"):
        services.do_queue_activity_job([stimuli["nmf"]], stimuli["image_set"], send=False)
    assert not Job.objects.exists()
