"""`manage.py compute_spectra NETWORK IMAGE_SET [--layers …] [--unit-sets …]`: one Job for the
covariance eigenspectra and random projections of every layer and basis named (all blocks of
the network when none is named); `--csv FILE` writes the per-layer figures when it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.atlas import spectra
from backend.stimuli import cli
from backend.stimuli.models import ImageSet, Job, Network, UnitSet


class Command(BaseCommand):
    help = "Compute covariance eigenspectra (α, participation ratio) and path energies per layer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("network", help="the network's name")
        parser.add_argument("image_set", help="the image set's name")
        parser.add_argument("--layers", nargs="*", default=[], help="layer names (default: blocks)")
        parser.add_argument("--unit-sets", nargs="*", default=[], help="bases: unit set names")
        parser.add_argument("--sampling", choices=["pooled", "positions"], default="pooled")
        parser.add_argument("--positions-per-image", type=int, default=16)
        parser.add_argument("--ranks", type=int, nargs=2, default=list(spectra.DEFAULT_RANKS))
        parser.add_argument("--manifold-dim", type=int, default=None, help="d of 1 + 2/d")
        parser.add_argument("--path", choices=[*spectra.PATH_KINDS, "none"], default="circle")
        parser.add_argument("--path-steps", type=int, default=128)
        parser.add_argument("--images-per-shard", type=int, default=None)
        parser.add_argument("--csv", type=Path, default=None, help="write the figures here")
        cli.add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        params = self.params(options)
        try:
            job = spectra.do_queue_spectra(params, send=not options["now"])
        except ValidationError as err:
            raise CommandError(" ".join(err.messages)) from None
        job = cli.follow(self, job, options)
        if options["csv"] and job.state == Job.State.SUCCEEDED:
            rows = spectra.spectra_of(params_network(params), params["image_set"])
            options["csv"].write_text(spectra.spectra_csv(rows))
            self.stdout.write(f"Wrote {options['csv']}")

    def params(self, options: dict[str, Any]) -> dict[str, Any]:
        network = Network.objects.filter(name=options["network"]).first()
        image_set = ImageSet.objects.filter(name=options["image_set"]).first()
        if network is None or image_set is None:
            raise CommandError(f"no network {options['network']!r} or image set "
                               f"{options['image_set']!r}")  # fmt: skip
        layers = network.layers.filter(name__in=options["layers"]) if options["layers"] else (
            network.layers.filter(name__regex=r"^blocks\.\d+$")
        )  # fmt: skip
        unit_sets = UnitSet.objects.filter(name__in=options["unit_sets"], layer__network=network)
        if len(unit_sets) != len(set(options["unit_sets"])):
            raise CommandError(f"unknown unit sets among {options['unit_sets']} on {network}")
        path = None if options["path"] == "none" else {
            **spectra.DEFAULT_PATH, "kind": options["path"], "steps": options["path_steps"]
        }  # fmt: skip
        params = {
            "layers": [layer.pk for layer in layers], "unit_sets": [u.pk for u in unit_sets],
            "image_set": image_set.pk, "sampling": options["sampling"],
            "positions_per_image": options["positions_per_image"], "ranks": options["ranks"],
            "manifold_dim": options["manifold_dim"], "path": path,
        }  # fmt: skip
        if options["images_per_shard"]:
            params["images_per_shard"] = options["images_per_shard"]
        return params


def params_network(params: dict[str, Any]) -> int | None:
    layers, unit_sets = spectra.spectrum_targets(params)
    return (layers[0] if layers else unit_sets[0].layer).network_id
