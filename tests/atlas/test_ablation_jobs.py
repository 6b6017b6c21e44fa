"""Single-unit ablations as a sharded Job (shards: groups of units): the stored impact equals a
forward-hook run that zeroes the channel; mean-ablation needs the means first; bad parameters
queue nothing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from django.core.exceptions import ValidationError

from backend.atlas import services
from backend.atlas.models import Measure
from backend.stimuli.models import ImageSet, Job, Shard
from tests.atlas.conftest import LAYER
from worker.tasks import run_job_here

pytestmark = pytest.mark.django_db(transaction=True)


def hooked_kl(image_set: ImageSet, channel: int) -> float:
    """The baseline a researcher would write: a hook that zeroes the channel, the whole net."""
    from backend.stimuli.work import image_refs
    from worker.pipelines.loading import image_batches
    from worker.pipelines.networks import load_network

    network = load_network("builtin:efficientnet_lite0", device="cpu")
    pixels = next(iter(image_batches(image_refs(image_set), network.preprocess, 8))).pixels
    layer = dict(network.module.named_modules())[LAYER]
    with torch.no_grad():
        base = network.module(pixels)

        def zero(_m: Any, _i: Any, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            output[:, channel] = 0
            return output

        handle = layer.register_forward_hook(zero)
        ablated = network.module(pixels)
        handle.remove()
    log_p, log_q = torch.log_softmax(base, 1), torch.log_softmax(ablated, 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


def test_an_ablation_job_stores_each_units_impact_as_a_hooked_run_measures_it(
    stimuli: dict[str, Any], few_images: ImageSet
) -> None:
    channels = stimuli["channels"]
    job = services.do_queue_ablation_job(channels, few_images, send=False, units_per_shard=12)
    assert job.shards.filter(role=Shard.Role.WORK).count() == 2
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["units"] == 24
    rows = Measure.objects.filter(unit__unit_set=channels, image_set=few_images)
    assert rows.filter(name="ablation_kl").count() == 24
    kl = rows.get(name="ablation_kl", unit__index=7)
    assert kl.value == pytest.approx(hooked_kl(few_images, 7), rel=1e-3, abs=1e-6)
    drop = rows.get(name="ablation_accuracy_drop", unit__index=7)
    assert drop.details["reference"] == "agreement with the unablated top-1"
    assert drop.details["removal"] == "set to 0 at every position"
    assert drop.details["class_profile"] and drop.details["class_profile"][0]["name"]


def test_mean_ablation_needs_the_means_then_uses_them(
    stimuli: dict[str, Any], few_images: ImageSet
) -> None:
    channels = stimuli["channels"]
    with pytest.raises(ValidationError, match="compute activation measures first"):
        services.do_queue_ablation_job(channels, few_images, mode="mean", send=False)
    assert not Job.objects.exists()
    run_job_here(
        services.do_queue_activity_job([channels], few_images, send=False, measures=["mean"])
    )
    job = run_job_here(
        services.do_queue_ablation_job(
            channels, few_images, mode="mean", send=False, units_per_shard=24
        )
    )
    assert job.state == Job.State.SUCCEEDED, job.error
    drop = Measure.objects.get(name="ablation_kl", unit__index=0, image_set=few_images)
    assert drop.details["mode"] == "mean" and drop.value is not None


def test_bad_ablation_parameters_queue_nothing(stimuli: dict[str, Any]) -> None:
    cases = [
        ({"mode": "scramble"}, "mode must be one of zero, mean"),
        ({"units_per_shard": 0}, "units_per_shard must be a whole number"),
        ({"classes": "tea leaves"}, "classes must be one of"),
    ]
    for params, message in cases:
        with pytest.raises(ValidationError) as caught:
            services.do_queue_ablation_job(
                stimuli["channels"], stimuli["image_set"], send=False, **params
            )
        assert message in " ".join(caught.value.messages), params
    with pytest.raises(ValidationError, match="fit these unit sets first"):
        services.do_queue_ablation_job(stimuli["nmf"], stimuli["image_set"], send=False)
    assert not Job.objects.exists()


def test_group_ablation_curves_rank_by_a_measure_against_random_groups(
    stimuli: dict[str, Any], few_images: ImageSet
) -> None:
    from backend.atlas.models import AblationCurve

    channels = stimuli["channels"]
    run_job_here(
        services.do_queue_activity_job([channels], few_images, send=False, measures=["mean"])
    )
    job = services.do_queue_ablation_curves_job(
        channels, few_images, ["mean"], send=False, repeats=2
    )
    assert job.shards.filter(role=Shard.Role.WORK).count() == 2  # the ranking, the random groups
    job = run_job_here(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    curve = AblationCurve.objects.get(unit_set=channels, ranked_by="mean")
    assert curve.ks == [1, 2, 4, 8, 16, 24]
    assert len(curve.ranked) == len(curve.random_mean) == 6
    # all 24 units removed: every group is the same group
    assert curve.ranked[-1] == pytest.approx(curve.random_mean[-1])
    assert curve.random_sd[-1] == pytest.approx(0.0)
    assert curve.details["kl"][-1] == pytest.approx(curve.details["random_kl"][-1], rel=1e-5)


def test_bad_curve_parameters_queue_nothing(stimuli: dict[str, Any]) -> None:
    channels, image_set = stimuli["channels"], stimuli["image_set"]
    cases = [
        (["loudness"], {}, "unknown or uncomputed measure 'loudness'"),
        ([], {}, "rank_by: name the measures"),
        (["mean"], {"ks": [1, 25]}, "ks must be whole numbers from 1 to the unit set's 24"),
    ]
    for rank_by, params, message in cases:
        with pytest.raises(ValidationError) as caught:
            services.do_queue_ablation_curves_job(
                channels, image_set, rank_by, send=False, **params
            )
        assert message in " ".join(caught.value.messages), rank_by
    assert not Job.objects.exists()
