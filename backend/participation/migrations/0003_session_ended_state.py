"""Sessions the page ends early (a window too small for the study): state `ended`, with when and
why; such a session gives its task list back at once."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('participation', '0002_answer_updates_touch_no_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='session',
            name='end_reason',
            field=models.CharField(blank=True, choices=[('window_too_small', 'window too small (the participant could not make it large enough)')], max_length=20),
        ),
        migrations.AddField(
            model_name='session',
            name='ended_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='session',
            name='state',
            field=models.CharField(choices=[('active', 'Active'), ('completed', 'Completed'), ('abandoned', "abandoned (no activity within the study's time limit)"), ('ended', 'ended early (the page could not run the study: see end_reason)')], default='active', max_length=9),
        ),
    ]
