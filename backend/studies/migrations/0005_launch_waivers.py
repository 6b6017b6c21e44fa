"""A study may launch without a consent page, instructions or practice trials only where the
researcher waives them explicitly (backend/studies/readiness.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('studies', '0004_block_schedule_unit_groups'),
    ]

    operations = [
        migrations.AddField(
            model_name='study',
            name='consent_waived',
            field=models.BooleanField(default=False, help_text='consent is collected elsewhere: an empty consent text shows no page', verbose_name='launch without a consent page'),
        ),
        migrations.AddField(
            model_name='study',
            name='instructions_waived',
            field=models.BooleanField(default=False, help_text='an empty instructions text shows no page (no reading time is recorded)', verbose_name='launch without instructions'),
        ),
        migrations.AddField(
            model_name='study',
            name='practice_waived',
            field=models.BooleanField(default=False, help_text='the design loops practice, but this study runs without any', verbose_name='launch without practice trials'),
        ),
    ]
