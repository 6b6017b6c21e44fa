"""The description_choice paradigm (issue 18): a condition may show the unit's stored
description, and a trial keeps the words it showed (docs/descriptions.md)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('studies', '0006_bands'),
    ]

    operations = [
        migrations.AddField(
            model_name='condition',
            name='shows_description',
            field=models.BooleanField(default=False, help_text="description_choice paradigm: show the unit's stored description (atlas Description) above the queries; with explanation 'none' the description is all the participant sees of the unit"),
        ),
        migrations.AddField(
            model_name='practicetrial',
            name='description',
            field=models.CharField(blank=True, help_text="description_choice: the unit's words shown", max_length=300),
        ),
        migrations.AddField(
            model_name='trial',
            name='description',
            field=models.CharField(blank=True, help_text="description_choice: the unit's words shown", max_length=300),
        ),
        migrations.AlterField(
            model_name='practicetrial',
            name='kind',
            field=models.CharField(choices=[('reference_choice', 'Reference Choice'), ('occlusion_choice', 'Occlusion Choice'), ('description_choice', 'Description Choice')], default='reference_choice', max_length=20),
        ),
        migrations.AlterField(
            model_name='study',
            name='paradigm',
            field=models.CharField(choices=[('reference_choice', '2AFC: which query also strongly activates the unit?'), ('occlusion_choice', 'counterfactual: which occluded image is favoured?'), ('description_choice', "2AFC with words: which query fits the unit's description? (docs/descriptions.md)")], default='reference_choice', max_length=20),
        ),
        migrations.AlterField(
            model_name='trial',
            name='kind',
            field=models.CharField(choices=[('reference_choice', 'Reference Choice'), ('occlusion_choice', 'Occlusion Choice'), ('description_choice', 'Description Choice')], max_length=20),
        ),
    ]
