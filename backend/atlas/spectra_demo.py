"""The demo's spectra: every block of EfficientNet-Lite0 on the demo set (pooled vectors, the
default fit range), and the demo's sparse-autoencoder basis on blocks.4, with the circle path:
one Job, run by the real worker. Idempotent: skipped when the rows exist."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backend.atlas import spectra
from backend.atlas.models import Spectrum
from backend.stimuli import demo
from backend.stimuli.models import ImageSet, Network, UnitSet

BLOCKS = [f"blocks.{i}" for i in range(7)]
BASES = ["lite0-blocks4-sae"]
PATH = {**spectra.DEFAULT_PATH, "steps": 64}


def seed_spectra(command: BaseCommand) -> None:
    network = Network.objects.filter(name=demo.NETWORK[0]).first()
    image_set = ImageSet.objects.filter(name=demo.IMAGE_SET).first()
    if network is None or image_set is None:
        return
    layers = list(network.layers.filter(name__in=BLOCKS))
    bases = [u for u in UnitSet.objects.filter(name__in=BASES) if u.is_ready]
    expected = len(layers) + len(bases)
    if Spectrum.objects.filter(layer__network=network, image_set=image_set).count() >= expected:
        return
    command.stdout.write("Computing the layers' spectra on the worker (one pass)…")
    params = {"layers": [layer.pk for layer in layers], "unit_sets": [u.pk for u in bases],
              "image_set": image_set.pk, "path": PATH}  # fmt: skip
    demo.run_on_worker(command, spectra.do_queue_spectra(params))
