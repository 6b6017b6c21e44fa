"""Owners for the catalogue (networks, image sets, unit sets): blank is the shared catalogue.
An image set imported by a researcher's job becomes theirs; everything else stays shared until a
superuser gives it an owner (docs/architecture.md, "Who sees what")."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def owners_from_import_jobs(apps, schema_editor):
    ImageSet = apps.get_model("stimuli", "ImageSet")
    Job = apps.get_model("stimuli", "Job")
    imports = Job.objects.filter(kind="import_images").exclude(created_by=None).order_by("pk")
    for job in imports:
        image_set = (job.params or {}).get("image_set")
        if isinstance(image_set, int):
            ImageSet.objects.filter(pk=image_set, owner=None).update(owner=job.created_by_id)


class Migration(migrations.Migration):
    dependencies = [
        ("stimuli", "0007_population_unit_sets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="imageset",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="blank: the shared catalogue (seen by all, changed by superusers)",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="network",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="blank: the shared catalogue (seen by all, changed by superusers)",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="unitset",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="blank: the shared catalogue (seen by all, changed by superusers)",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(owners_from_import_jobs, migrations.RunPython.noop),
    ]
