"""`manage.py confound_report UNIT_SET UNIT IMAGE_SET [--bands 10] [--now|--wait]`: one Job for
the confound report of a unit (for a logit: the class index on a channels unit set of the
network's output layer); `--csv FILE` writes its candidate table when it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.atlas import confounds
from backend.stimuli import cli
from backend.stimuli.models import ImageSet, Job, UnitSet


class Command(BaseCommand):
    help = "Compute a unit's confound report: bands, distributions, enrichment tests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("unit_set", help="the unit set's name")
        parser.add_argument("unit", type=int, help="the unit's index (a logit: the class)")
        parser.add_argument("image_set", help="the image set's name")
        parser.add_argument("--bands", type=int, default=confounds.DEFAULTS["n_bands"])
        parser.add_argument("--alpha", type=float, default=confounds.DEFAULTS["alpha"])
        parser.add_argument("--grid", type=int, default=confounds.DEFAULTS["grid"])
        parser.add_argument("--images-per-shard", type=int, default=None)
        parser.add_argument("--csv", type=Path, default=None, help="write the candidates here")
        cli.add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        unit_set = UnitSet.objects.filter(name=options["unit_set"]).first()
        image_set = ImageSet.objects.filter(name=options["image_set"]).first()
        if unit_set is None or image_set is None:
            raise CommandError(f"no unit set {options['unit_set']!r} or image set "
                               f"{options['image_set']!r}")  # fmt: skip
        params = {"unit_set": unit_set.pk, "unit": options["unit"], "image_set": image_set.pk,
                  "n_bands": options["bands"], "alpha": options["alpha"],
                  "grid": options["grid"]}  # fmt: skip
        if options["images_per_shard"]:
            params["images_per_shard"] = options["images_per_shard"]
        try:
            job = confounds.do_queue_confound_report(params, send=not options["now"])
        except ValidationError as err:
            raise CommandError(" ".join(err.messages)) from None
        job = cli.follow(self, job, options)
        if options["csv"] and job.state == Job.State.SUCCEEDED:
            row = confounds.reports_of(unit_set.pk, image_set.pk, options["unit"]).filter(
                n_bands=options["bands"]
            ).first()  # fmt: skip
            if row is not None:
                options["csv"].write_text(confounds.candidates_csv(row))
                self.stdout.write(f"Wrote {options['csv']}")
