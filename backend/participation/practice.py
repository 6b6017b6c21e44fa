"""A session's practice: the practice blocks of its task list (`TaskList.practice_blocks`, laid
out by the trial builder), each looped until an attempt is all correct where the design asks.

A practice trial's index in the participant API is its position in the list's practice,
flattened over the blocks; attempts (rounds) are counted per block. The session keeps the
summary the results use: `practice_attempts` is the most rounds any block needed and
`practice_passed` says every block is passed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from backend.participation.models import PracticeResponse, Session
from backend.studies.models import PracticeTrial, TaskList


@dataclass(frozen=True)
class PracticeSlot:
    index: int  # position in the list's practice (the API's practice index)
    block: int  # which practice block
    trial: PracticeTrial


@dataclass(frozen=True)
class BlockState:
    block: int  # the block's number (a practice trial's `block` in the timeline)
    before: int  # index of the first main trial after the block
    indexes: tuple[int, ...]
    attempts: int  # rounds started (answered at least once)
    passed: bool

    def payload(self) -> dict[str, Any]:
        return {"block": self.block, "before": self.before, "size": len(self.indexes),
                "attempts": self.attempts, "passed": self.passed}  # fmt: skip


def practice_slots(task_list: TaskList) -> list[PracticeSlot]:
    """The list's practice trials in display order, block by block."""
    blocks = task_list.practice_blocks or []
    ids = {pk for block in blocks for pk in block["trials"]}
    trials = PracticeTrial.objects.in_bulk(ids)
    slots: list[PracticeSlot] = []
    for number, block in enumerate(blocks):
        for pk in block["trials"]:
            if pk in trials:  # a practice trial deleted after the build is left out
                slots.append(PracticeSlot(len(slots), number, trials[pk]))
    return slots


def block_states(
    session: Session, slots: list[PracticeSlot], until_correct: bool
) -> list[BlockState]:
    """Each practice block's attempts and whether it is passed, from the stored answers."""
    answers: dict[int, dict[int, bool]] = defaultdict(dict)  # attempt → practice index → correct
    rows = PracticeResponse.objects.filter(session=session).values_list(
        "attempt", "practice_index", "correct"
    )
    for attempt, index, correct in rows:
        answers[attempt][index] = correct
    states = []
    blocks = session.task_list.practice_blocks or []
    for number, block in enumerate(blocks):
        indexes = tuple(slot.index for slot in slots if slot.block == number)
        if not indexes:
            continue
        attempts = [a for a, given in answers.items() if any(i in given for i in indexes)]
        passed = any(
            all(i in answers[a] for i in indexes)
            and (not until_correct or all(answers[a][i] for i in indexes))
            for a in attempts
        )
        states.append(
            BlockState(number, block["before"], indexes, max(attempts, default=0), passed)
        )
    return states
