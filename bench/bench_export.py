"""Streamed export of tidy response rows: rows/s and peak memory of the CSV and Parquet writers
at growing sizes; flat memory means the peak does not grow with the row count. Memory is the
process's resident set above its level before the run, sampled every 20 ms (psutil).

    .venv/bin/python bench/bench_export.py [--sizes 100000 1000000]
    .venv/bin/python -m backend.core.stack run -- \\
        .venv/bin/python bench/bench_export.py --database [--sizes 100000 1000000]

Without `--database`, rows are generated lazily (tests.analysis.factories.fresh_rows), so the
peak measured is the writers' own. With it, a study with that many stored responses is written
into the database the stack points at (45-trial task lists, every trial of every session
answered, in bulk) and exported the way the admin and the API do: `study_rows` (server-side
cursor, chunks of 2,000) into the CSV or Parquet writer. The bench study is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backend.analysis.exports import iter_csv, write_parquet  # noqa: E402
from backend.analysis.tidy import ResponseRow  # noqa: E402
from tests.analysis.factories import fresh_rows  # noqa: E402

TRIALS_PER_LIST = 45  # 40 main + 5 catch, as in the IMI preset
RowSource = Callable[[], Iterable[ResponseRow]]


def csv_to_devnull(rows: Iterable[ResponseRow]) -> None:
    with open(os.devnull, "w") as sink:
        for chunk in iter_csv(rows):
            sink.write(chunk)


def parquet_to_file(rows: Iterable[ResponseRow]) -> None:
    with tempfile.TemporaryFile() as sink:
        write_parquet(rows, sink)


WRITERS = (("csv", csv_to_devnull), ("parquet", parquet_to_file))


def measure(
    write: Callable[[Iterable[ResponseRow]], None], source: RowSource, count: int
) -> tuple[float, float]:
    """(rows per second, peak MiB above the level before) of one export."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    write(source())
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return count / seconds, (peak[0] - baseline) / 2**20


@contextmanager
def stored_study(responses: int) -> Iterator[RowSource]:
    """A study with `responses` stored responses (rounded up to whole sessions); deleted after."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from backend.analysis.rows import study_rows
    from tests.participation.factories import bulk_completed_sessions, make_study

    call_command("migrate", verbosity=0)
    owner, _ = User.objects.get_or_create(username="bench-owner")
    fixture = make_study(owner, n_main=40, n_catch=5)
    sessions = -(-responses // TRIALS_PER_LIST)
    started = time.perf_counter()
    written = bulk_completed_sessions(fixture, sessions)
    print(f"# stored {written:,} responses in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        yield lambda: study_rows(fixture.study, include_practice=False)
    finally:
        delete_study(fixture.study.pk)


def delete_study(study_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM participation_response WHERE session_id IN "
            "(SELECT id FROM participation_session WHERE study_id = %s)",
            [study_id],
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_participants AS SELECT participant_id AS id "
            "FROM participation_session WHERE study_id = %s",
            [study_id],
        )
        cursor.execute("DELETE FROM participation_session WHERE study_id = %s", [study_id])
        cursor.execute(
            "DELETE FROM participation_participant WHERE id IN (SELECT id FROM bench_participants)"
        )
        cursor.execute("DROP TABLE bench_participants")
    from backend.studies.models import Condition, Study, TaskList

    TaskList.objects.filter(study_id=study_id).delete()  # and their trials
    Condition.objects.filter(study_id=study_id).delete()
    Study.objects.filter(pk=study_id).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--database", action="store_true", help="export stored responses")
    options = parser.parse_args()
    if options.database:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
        import django

        django.setup()
    source_name = "database" if options.database else "generator"
    print(f"{'source':<10} {'format':<8} {'rows':>10} {'rows/s':>12} {'RSS growth MiB':>15}")
    for count in options.sizes:
        if options.database:
            with stored_study(count) as source:
                report(source_name, source, count)
        else:
            report(source_name, lambda count=count: fresh_rows(count), count)  # type: ignore[misc]


def report(source_name: str, source: RowSource, count: int) -> None:
    for name, write in WRITERS:
        rate, peak = measure(write, source, count)
        print(f"{source_name:<10} {name:<8} {count:>10,} {rate:>12,.0f} {peak:>15.1f}", flush=True)


if __name__ == "__main__":
    main()
