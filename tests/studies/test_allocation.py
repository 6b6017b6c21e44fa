"""The trial builder's layout, for any design: counts per unit and condition, each unit at most
once per task list (or once per condition block, where the design says so), balanced conditions
and block orders, catch trials, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend.studies.allocation import (
    Design,
    DesignError,
    PlannedList,
    plan_task_lists,
    williams_orders,
)


@st.composite
def designs(draw: st.DrawFn, scheduled: bool = False) -> Design:
    """Any design; `scheduled`: always within participants with a block schedule."""
    n_conditions = draw(st.integers(1, 4))
    within = scheduled or draw(st.booleans())
    per_condition = draw(st.integers(1, 6))
    length = per_condition * n_conditions if within else draw(st.integers(1, 12))
    once_per_condition = within and draw(st.booleans())
    fewest = per_condition if once_per_condition else length
    n_units = draw(st.integers(fewest, fewest + 15))
    units = tuple(range(100, 100 + n_units))
    schedule = draw(schedules(n_conditions, per_condition, scheduled)) if within else ()
    condition_units: tuple[tuple[int, ...], ...] = ()
    if once_per_condition and draw(st.booleans()):
        n_groups = draw(st.integers(1, n_conditions))
        size = draw(st.integers(per_condition, per_condition + 5))
        groups = [tuple(range(100 + g * size, 100 + (g + 1) * size)) for g in range(n_groups)]
        units = tuple(u for group in groups for u in group)
        condition_units = tuple(groups[c % n_groups] for c in range(n_conditions))
    return Design(
        units=units,
        n_conditions=n_conditions,
        responses_per_unit=draw(st.integers(1, 6)),
        main_trials_per_list=length,
        catch_trials_per_list=draw(st.integers(0, 3)),
        within=within,
        seed=draw(st.integers(0, 2**31)),
        once_per_condition=once_per_condition,
        catch_conditions=draw(
            st.none() | st.sets(st.integers(0, n_conditions - 1), min_size=1).map(tuple)
        ),
        schedule=schedule,
        condition_units=condition_units,
    )


@st.composite
def schedules(
    draw: st.DrawFn, n_conditions: int, per_condition: int, always: bool = False
) -> tuple[tuple[tuple[int, bool], ...], ...]:
    """() (unless `always`) or block sequences: every condition in 1..per_condition blocks, in
    any order, with practice blocks before some condition's block."""
    if not always and not draw(st.booleans()):
        return ()
    sequences = []
    for _ in range(draw(st.integers(1, 3))):
        counts = [draw(st.integers(1, min(per_condition, 3))) for _ in range(n_conditions)]
        main = [c for c in range(n_conditions) for _ in range(counts[c])]
        main = draw(st.permutations(main))
        sequence: list[tuple[int, bool]] = []
        for condition in main:
            if draw(st.integers(0, 3)) == 0:
                sequence.append((condition, True))
            sequence.append((condition, False))
        sequences.append(tuple(sequence))
    return tuple(sequences)


def planned_or_skip(design: Design) -> list[PlannedList]:
    """The plan; designs refused for uneven top-up (few units, few responses) are skipped."""
    try:
        return plan_task_lists(design)
    except DesignError as err:
        assert "topping them up" in str(err)
        assume(False)
        raise


def main_slots(design: Design) -> list[list[tuple[int, int]]]:
    return [
        [(slot.unit, slot.condition) for slot in task_list.slots if not slot.is_catch]
        for task_list in planned_or_skip(design)
    ]


@settings(max_examples=60, deadline=None)
@given(designs())
def test_every_unit_gets_the_target_responses_in_every_condition(design: Design) -> None:
    counts = Counter(pair for task_list in main_slots(design) for pair in task_list)
    target = design.responses_per_unit
    if design.condition_units:  # each condition shows its own group's units, each as often
        for condition, pool in enumerate(design.condition_units):
            shown = {unit for unit, c in counts if c == condition}
            assert shown == set(pool)
            assert {counts[(unit, condition)] for unit in pool} <= {target, target + 1}
        return
    for unit in design.units:
        got = {counts[(unit, c)] for c in range(design.n_conditions)}
        assert len(got) == 1, f"unit {unit} is unbalanced over conditions: {got}"
        assert got.pop() in {target, target + 1}
    total = len(design.units) * design.n_conditions * target
    assert sum(counts.values()) - total < design.main_trials_per_list * design.n_conditions


@settings(max_examples=60, deadline=None)
@given(designs())
def test_a_unit_appears_at_most_once_per_task_list_or_per_condition_block(design: Design) -> None:
    for task_list in main_slots(design):
        assert len(task_list) == design.main_trials_per_list
        if design.once_per_condition:
            assert len(task_list) == len(set(task_list))
        else:
            units = [unit for unit, _ in task_list]
            assert len(units) == len(set(units))


@settings(max_examples=60, deadline=None)
@given(designs())
def test_conditions_are_balanced_within_each_task_list(design: Design) -> None:
    planned = planned_or_skip(design)
    for task_list in planned:
        per_condition = Counter(s.condition for s in task_list.slots if not s.is_catch)
        if design.within:
            assert set(per_condition) == set(range(design.n_conditions))
            assert len(set(per_condition.values())) == 1
            blocks = [s.block for s in task_list.slots]
            assert blocks == sorted(blocks), "blocks follow each other"
        else:
            assert len(per_condition) == 1
    if design.schedule:
        return  # the schedule, not the Latin square, orders the blocks
    first = Counter(task_list.condition_order[0] for task_list in planned)
    assert max(first.values()) - min(first.values()) <= 1 or len(planned) % design.n_conditions


@settings(max_examples=60, deadline=None)
@given(designs(scheduled=True))
def test_a_schedule_orders_blocks_splits_conditions_evenly_and_places_practice(
    design: Design,
) -> None:
    for task_list in planned_or_skip(design):
        sequence = design.schedule[task_list.index % len(design.schedule)]
        main = [condition for condition, practice in sequence if not practice]
        assert list(task_list.condition_order) == main
        sizes: Counter[int] = Counter(s.block for s in task_list.slots if not s.is_catch)
        assert sorted(sizes) == list(range(len(main)))
        for block, condition in enumerate(main):
            assert {s.condition for s in task_list.slots if s.block == block} == {condition}
        for condition in set(main):
            of_condition = [sizes[b] for b, c in enumerate(main) if c == condition]
            assert max(of_condition) - min(of_condition) <= 1
        practice = [c for c, p in sequence if p]
        assert [c for c, _ in task_list.practice] == practice
        for condition, before in task_list.practice:
            slot = task_list.slots[before]
            assert slot.condition == condition  # just before a block of its condition
            assert before == 0 or task_list.slots[before - 1].block != slot.block


@settings(max_examples=60, deadline=None)
@given(designs())
def test_catch_trials_are_shared_over_their_blocks_in_proportion_to_length(
    design: Design,
) -> None:
    for task_list in planned_or_skip(design):
        main = [s for s in task_list.slots if not s.is_catch]
        allowed = set(design.catch_conditions or range(design.n_conditions))
        eligible = Counter(s.block for s in main if s.condition in allowed)
        if not eligible:
            continue
        catch = Counter(s.block for s in task_list.slots if s.is_catch)
        total = sum(eligible.values())
        for block, size in eligible.items():
            share = design.catch_trials_per_list * size / total
            assert abs(catch[block] - share) < 1


@settings(max_examples=40, deadline=None)
@given(designs())
def test_catch_trials_are_counted_and_the_same_seed_gives_the_same_lists(design: Design) -> None:
    planned = planned_or_skip(design)
    for task_list in planned:
        assert sum(s.is_catch for s in task_list.slots) == design.catch_trials_per_list
    assert plan_task_lists(design) == planned


@settings(max_examples=40, deadline=None)
@given(designs())
def test_catch_trials_sit_in_the_blocks_of_the_catch_conditions(design: Design) -> None:
    for task_list in planned_or_skip(design):
        main_conditions = {s.condition for s in task_list.slots if not s.is_catch}
        allowed = set(design.catch_conditions or range(design.n_conditions))
        if allowed & main_conditions:
            catch = [s for s in task_list.slots if s.is_catch]
            assert {s.condition for s in catch} <= allowed
        for before, after in zip(task_list.slots, task_list.slots[1:], strict=False):
            if before.is_catch:  # a catch trial takes the condition and block of the next trial
                assert (before.condition, before.block) == (after.condition, after.block)


def test_another_seed_gives_other_lists() -> None:
    design = Design(tuple(range(40)), 2, 4, 20, 2, True, seed=1)
    other = Design(tuple(range(40)), 2, 4, 20, 2, True, seed=2)
    assert plan_task_lists(design) != plan_task_lists(other)


def test_catch_trials_use_the_hand_picked_catch_units_when_there_are_some() -> None:
    design = Design(tuple(range(50)), 1, 3, 40, 5, False, seed=3, catch_units=(900, 901, 902))
    for task_list in plan_task_lists(design):
        catch = [s.unit for s in task_list.slots if s.is_catch]
        assert len(catch) == 5 and set(catch) <= {900, 901, 902}
        assert len(set(catch)) == 3  # each easy unit at least once: drawn evenly while possible


def test_catch_trials_use_units_outside_the_list_when_there_are_enough() -> None:
    design = Design(tuple(range(50)), 1, 3, 40, 5, False, seed=3)
    for task_list in plan_task_lists(design):
        main = {s.unit for s in task_list.slots if not s.is_catch}
        catch = [s.unit for s in task_list.slots if s.is_catch]
        assert not main & set(catch) and len(set(catch)) == 5


def test_block_orders_are_a_balanced_latin_square() -> None:
    for k in range(2, 6):
        orders = williams_orders(k)
        follows = Counter((row[i], row[i + 1]) for row in orders for i in range(k - 1))
        assert len(set(follows.values())) == 1 and len(follows) == k * (k - 1)
        positions = Counter((c, row.index(c)) for row in orders for c in row)
        assert len(set(positions.values())) == 1


def test_once_per_condition_shows_every_unit_in_every_condition_when_the_blocks_hold_them_all() -> (
    None
):
    design = Design(tuple(range(45)), 3, 10, 135, 18, True, seed=5, once_per_condition=True)
    planned = plan_task_lists(design)
    assert len(planned) == 10
    for task_list in planned:
        main = [(s.unit, s.condition) for s in task_list.slots if not s.is_catch]
        assert sorted(main) == sorted((u, c) for u in range(45) for c in range(3))
        assert sum(s.is_catch for s in task_list.slots) == 18


def test_once_per_condition_needs_units_for_one_block_and_a_within_design() -> None:
    with pytest.raises(DesignError, match="45 main trials per condition need at least 45 units"):
        plan_task_lists(Design(tuple(range(44)), 3, 10, 135, 0, True, 0, once_per_condition=True))
    with pytest.raises(DesignError, match="only within participants"):
        plan_task_lists(Design(tuple(range(44)), 3, 10, 20, 0, False, 0, once_per_condition=True))


def test_too_few_units_for_a_task_list_is_refused_with_the_numbers() -> None:
    with pytest.raises(DesignError, match="need at least 40 units; the study has 30"):
        plan_task_lists(Design(tuple(range(30)), 1, 30, 40, 5, False, seed=0))


def test_trials_that_do_not_split_over_the_conditions_are_refused() -> None:
    with pytest.raises(DesignError, match="multiple of 3"):
        plan_task_lists(Design(tuple(range(60)), 3, 30, 40, 5, True, seed=0))


def test_a_hundred_units_with_thirty_responses_in_four_conditions_lay_out_quickly() -> None:
    import time

    started = time.monotonic()
    planned = plan_task_lists(Design(tuple(range(100)), 4, 30, 40, 5, True, seed=0))
    assert len(planned) == 300
    assert time.monotonic() - started < 3
