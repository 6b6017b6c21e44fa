"""The trial export (`trials.csv`): one row per trial of a study's task lists, with what it
showed that the tidy response export does not carry: its paradigm (the trial's kind) and the
unit's description it showed (docs/descriptions.md). Joins the response export on
(`task_list`, `trial_index`). No answer key: that is in the design JSON.

The tidy response row stays the shape imports share (`tidy.ResponseRow`); these columns belong
to PsyLens's own trials, so they are a table of their own (docs/data-dictionary.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from backend.core import csvcells
from backend.studies.models import Study, Trial

TRIAL_COLUMNS = ("study", "task_list", "trial_index", "block", "condition", "unit_set", "unit",
                 "is_catch", "paradigm", "description")  # fmt: skip
CHUNK_ROWS = 2_000


def iter_trials_csv(study: Study) -> Iterator[str]:
    """The study's trials in task-list order, streamed in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRIAL_COLUMNS)
    trials = (
        Trial.objects.filter(task_list__study=study)
        .order_by("task_list__index", "index")
        .values_list("task_list__index", "index", "block", "condition__name",
                     "unit__unit_set__name", "unit__index", "is_catch", "kind", "description")
    )  # fmt: skip
    for n, (list_index, index, block, condition, unit_set, unit, catch, kind, words) in enumerate(
        trials.iterator(chunk_size=CHUNK_ROWS), start=1
    ):
        writer.writerow(csvcells.safe_row([
            study.slug, f"tl-{list_index}", index, block, condition, unit_set, str(unit),
            "true" if catch else "false", kind, words,
        ]))  # fmt: skip
        if n % CHUNK_ROWS == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
