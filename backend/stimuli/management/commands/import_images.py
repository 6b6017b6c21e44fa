"""`manage.py import_images NAME (--folder PATH | --zip FILE | --demo)`: create an image set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.stimuli import cli, services
from backend.stimuli.models import ImageSet, Job


class Command(BaseCommand):
    help = "Import an image set from a server folder, a ZIP archive, or the built-in demo set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder", help="folder in ImageFolder layout")
        source.add_argument("--zip", help="ZIP archive in ImageFolder layout")
        source.add_argument("--demo", action="store_true", help="the built-in demo photos")
        parser.add_argument(
            "--source-rule",
            default="",
            help="regular expression whose first group, searched in each file's path, names the "
            "photo it was derived from (an images.csv with a source column takes precedence)",
        )
        cli.add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if ImageSet.objects.filter(name=options["name"]).exists():
            raise CommandError(f"an image set named {options['name']!r} exists already")
        image_set = ImageSet(
            name=options["name"], source_rule=options["source_rule"], **self.origin(options)
        )
        try:
            image_set.full_clean()
        except ValidationError as err:
            raise CommandError(" ".join(err.messages)) from None
        image_set.save()
        job = services.do_queue_job(
            Job.Kind.IMPORT_IMAGES, {"image_set": image_set.pk}, send=not options["now"]
        )
        cli.follow(self, job, options)

    def origin(self, options: dict[str, Any]) -> dict[str, str]:
        if options["demo"]:
            return {"origin": ImageSet.Origin.DEMO}
        if options["folder"]:
            return {
                "origin": ImageSet.Origin.FOLDER,
                "source": str(Path(options["folder"]).resolve()),
            }
        archive = Path(options["zip"])
        if not archive.is_file():
            raise CommandError(f"{archive} is not a file")
        with archive.open("rb") as handle:
            return {"origin": ImageSet.Origin.ZIP, "source": services.store_upload(File(handle))}
