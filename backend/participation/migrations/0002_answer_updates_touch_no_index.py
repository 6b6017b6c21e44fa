"""Answers update a session without writing index entries: the (study, state, last_activity_at)
index becomes (study, state), the table keeps 20 % of each page free so the UPDATE can stay on
its page (a heap-only tuple), and responses lose their session index, which the unique
(session, trial_index) already covers. An existing table's old pages get the free room only when
rewritten (VACUUM FULL); new pages have it at once."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("participation", "0001_initial"),
        ("studies", "0002_unit_repeats"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="session",
            name="participati_study_i_8e88f9_idx",
        ),
        migrations.AlterField(
            model_name="response",
            name="session",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="responses",
                to="participation.session",
            ),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["study", "state"], name="session_study_state"),
        ),
        migrations.RunSQL(
            "ALTER TABLE participation_session SET (fillfactor = 80)",
            reverse_sql="ALTER TABLE participation_session RESET (fillfactor)",
        ),
    ]
