"""Test data for the analysis suite: tidy response rows, one at a time or as a stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from backend.analysis.tidy import COLUMNS, ResponseRow

STARTED = datetime(2024, 5, 17, 9, 30, 0, 123456, tzinfo=UTC)
CONDITIONS = ("natural", "synthetic", "none")
BASES = ("channels", "sae", "random")


def make_row(**overrides: Any) -> ResponseRow:
    """One main-trial row of a PsyLens session; override any column."""
    row = ResponseRow(
        study="imi-replication",
        condition="natural",
        unit="17",
        unit_index=17,
        unit_set="efficientnet_lite0/blocks.5/channels",
        layer="blocks.5",
        basis="channels",
        network="builtin:efficientnet_lite0",
        trial_index=0,
        block=0,
        is_catch=False,
        is_practice=False,
        query_images=("3f2a9c.webp", "b71e04.webp"),
        reference_images=("aa01.webp", "aa02.webp", "aa03.webp"),
        choice=1,
        correct=True,
        confidence=3,
        rt_ms=1834.5,
        client_started_at=STARTED,
        client_answered_at=STARTED + timedelta(milliseconds=1834.5),
        server_received_at=STARTED + timedelta(milliseconds=1901),
        participant="p-0001",
        session="s-0001",
        task_list="tl-03",
        excluded=False,
        exclusion_reasons=(),
        source="psylens",
    )
    return replace(row, **overrides)


def synthetic_rows(count: int, *, seed: int = 0, units: int = 40) -> Iterator[ResponseRow]:
    """A stream of varied rows (generated lazily, so memory tests see only the consumer)."""
    generator = np.random.default_rng(seed)
    template = make_row()
    skill = generator.uniform(0.5, 0.95, size=units)  # per-unit chance of a correct answer
    for index in range(count):
        unit = int(generator.integers(units))
        participant = int(generator.integers(25))
        yield replace(
            template,
            condition=CONDITIONS[unit % len(CONDITIONS)],
            basis=BASES[unit % len(BASES)],
            unit=str(unit),
            unit_index=unit,
            trial_index=index % 60,
            is_catch=index % 20 == 0,
            choice=int(generator.integers(2)),
            correct=bool(generator.random() < skill[unit]),
            confidence=int(generator.integers(1, 4)),
            rt_ms=float(np.round(generator.gamma(4.0, 400.0), 3)),
            participant=f"p-{participant:04d}",
            session=f"s-{participant:04d}",
            exclusion_reasons=("catch_accuracy_low",) if participant == 7 else (),
            excluded=participant == 7,
        )


def fresh_rows(count: int) -> Iterator[ResponseRow]:
    """A cheap stream of newly allocated rows, for memory tests of the consumers."""
    template = [getattr(make_row(), column) for column in COLUMNS]
    trial_index, participant = COLUMNS.index("trial_index"), COLUMNS.index("participant")
    for index in range(count):
        values = template.copy()
        values[trial_index] = index
        values[participant] = f"p-{index % 997:04d}"
        yield ResponseRow(*values)
