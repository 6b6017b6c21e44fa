"""Imported trials keep the two image-loading columns of the tidy export (may be missing)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('analysis', '0002_imported_block'),
    ]

    operations = [
        migrations.AddField(
            model_name='importedresponse',
            name='image_load_ms',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importedresponse',
            name='image_retries',
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
