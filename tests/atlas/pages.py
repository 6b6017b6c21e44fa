"""Test data of the atlas pages: a layer with 8 channels and a 4-direction NMF dictionary,
each with measures over one image set, group-ablation curves, and activity populations whose
populations job kept its linkage (what the dendrogram draws)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import linkage

from backend.atlas import services
from backend.stimuli.models import ImageSet, ImageSetMember, Job, Layer, Network, Unit, UnitSet
from tests.participation.factories import png_image

N_CHANNELS = 8
N_ATOMS = 4
MEANS = [0.5, 2.0, 1.0, 3.5, 0.25, 1.5, 3.0, 0.75]  # unit 3 highest, unit 4 lowest


@dataclass
class AtlasFixture:
    layer: Layer
    image_set: ImageSet
    channels: UnitSet
    nmf: UnitSet
    populations_job: Job


def unit_set_with_units(layer: Layer, name: str, kind: str, n: int) -> UnitSet:
    unit_set = UnitSet.objects.create(name=name, layer=layer, kind=kind, n_units=n)
    Unit.objects.bulk_create(Unit(unit_set=unit_set, index=i) for i in range(n))
    return unit_set


def make_atlas(layer: Layer | None = None, channels: UnitSet | None = None) -> AtlasFixture:
    suffix = secrets.token_hex(3)
    if layer is None:
        network = Network.objects.create(name=f"net-{suffix}", source="builtin:efficientnet_lite0")
        layer = Layer.objects.create(network=network, name="blocks.4", shape=[N_CHANNELS, 7, 7])
    image_set = ImageSet.objects.create(name=f"probe-{suffix}", origin=ImageSet.Origin.DEMO)
    for position in range(2):
        ImageSetMember.objects.create(image_set=image_set, image=png_image(), position=position)
    channels = channels or unit_set_with_units(layer, f"ch-{suffix}", "channels", N_CHANNELS)
    nmf = unit_set_with_units(layer, f"nmf-{suffix}", "nmf", N_ATOMS)
    n = channels.units.count()
    rng = np.random.default_rng(0)
    means = (MEANS * (n // len(MEANS) + 1))[:n]
    services.do_save_measures(
        channels, image_set,
        {"mean": dict(enumerate(means)), "csi": dict(enumerate(rng.uniform(0, 0.4, n))),
         "ablation_kl": dict(enumerate(rng.uniform(0, 0.01, n))),
         "ablation_accuracy_drop": dict(enumerate(rng.uniform(0, 0.05, n)))},
        {"csi": {i: {"classes": "image-set labels", "preferred_class": 1,
                     "preferred_class_name": "cat"} for i in range(n)}},
        None,
    )  # fmt: skip
    services.do_save_measures(
        nmf, image_set,
        {"csi": dict(enumerate([0.6, 0.5, 0.7, 0.4])),
         "ablation_kl": dict(enumerate([0.05, 0.08, 0.02, 0.06])),
         "ablation_accuracy_drop": dict(enumerate([0.2, 0.3, 0.1, 0.25]))},
        {}, None,
    )  # fmt: skip
    services.do_save_ablation_curves(
        channels.pk, image_set.pk,
        {"mean": {"ks": [1, 2, 4, 8], "ranked": [0.1, 0.2, 0.4, 0.9],
                  "random_mean": [0.05, 0.1, 0.3, 0.9], "random_sd": [0.01, 0.02, 0.05, 0.0],
                  "details": {"removal": "zeroed", "kl": [0.1, 0.2, 0.3, 0.4]}}},
        None,
    )  # fmt: skip
    members = [[0, 1, 2], [3, 4], [5, 6, 7]]
    features = rng.normal(size=(N_CHANNELS, 3))
    tree = linkage(features, method="average")
    job = Job.objects.create(
        kind="compute_populations", params={}, state=Job.State.SUCCEEDED,
        result={"linkage": tree.tolist(), "units": list(range(N_CHANNELS)), "rule": "silhouette"},
    )  # fmt: skip
    services.do_save_populations(
        channels, image_set, "activity", members, {"rule": "best silhouette", "silhouette": 0.4},
        job,
    )  # fmt: skip
    return AtlasFixture(layer, image_set, channels, nmf, job)
