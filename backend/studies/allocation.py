"""Which unit, in which condition, at which position of which task list: the pure part of the
trial builder (no database, no images). Seeded and deterministic.

Guarantees, for a `Design` that `check_design` accepts:
- every (unit, condition) gets `responses_per_unit` main trials, or one more where the lists
  must be filled up (then every condition of that unit gets the extra one, so balance holds);
- each unit appears at most once among a task list's main trials (catch trials use the
  hand-picked `catch_units`, or other units of the study whenever it has enough), or, where the
  design asks for it (within participants only, as in Borowski et al. 2021), at most once per
  condition block, so that one participant sees a unit once in every condition;
- within participants: every list has the same number of trials per condition, one block per
  condition, block orders from a balanced Latin square (Williams) cycled over the lists;
  between participants: each list holds one condition and consecutive lists cycle through them;
- with a `schedule` (within participants), the blocks follow it instead: sequences of blocks,
  one per group of task lists (cycled), in which a condition named several times has its trials
  split over those blocks as evenly as possible (where they do not split evenly, which blocks
  get one more rotates with the list), and practice blocks sit where the sequence puts them;
- catch trials sit at seeded random positions, in the blocks of the conditions named in
  `catch_conditions` (the builder names those that show references, so a "none" block is
  never interrupted by reference images), shared out over those blocks in proportion to their
  length, each taking the condition of the trial it precedes.

Membership (which units share a list) is filled greedily, always taking the units with the most
responses still to place, which never gets stuck (the Gale–Ryser argument). Conditions are then
assigned by successive maximum flows, which always exist because giving every edge 1/k of each
of the k remaining conditions is a fractional solution.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow


class DesignError(ValueError):
    """The design cannot be laid out; the message says why and what to change."""


@dataclass(frozen=True)
class Design:
    units: tuple[int, ...]  # unit ids, in a stable order
    n_conditions: int
    responses_per_unit: int  # per unit and condition
    main_trials_per_list: int
    catch_trials_per_list: int
    within: bool  # within participants (blocks) or between (one condition per list)
    seed: int
    once_per_condition: bool = False  # within only: a unit may recur, once per condition block
    catch_conditions: tuple[int, ...] | None = None  # where catch trials may go; None: anywhere
    catch_units: tuple[int, ...] = ()  # hand-picked units for catch trials; (): the study's own
    # Block sequences, one per group of task lists (cycled): (condition, is_practice) per block;
    # (): one block per condition in a balanced Latin-square order, practice first.
    schedule: tuple[tuple[tuple[int, bool], ...], ...] = ()
    # Per condition, the units it draws from (once per condition only); (): all units.
    condition_units: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class Slot:
    unit: int
    condition: int  # position of the condition in the study
    response_number: int  # 0-based count of this (unit, condition) over the lists
    is_catch: bool
    block: int


@dataclass(frozen=True)
class PlannedList:
    index: int
    seed: int
    condition_order: tuple[int, ...]  # the condition of each main block, in order
    slots: tuple[Slot, ...]
    # (condition, position of the first slot after it) per practice block of the schedule
    practice: tuple[tuple[int, int], ...] = ()


def check_design(design: Design) -> None:
    n_units, length = len(design.units), design.main_trials_per_list
    if design.n_conditions < 1:
        raise DesignError("Add at least one condition.")
    if len(set(design.units)) != n_units:
        raise DesignError("A unit is listed twice.")
    if design.within and length % design.n_conditions:
        raise DesignError(
            f"Within participants, the {length} main trials per task list must split evenly "
            f"over the {design.n_conditions} conditions: use a multiple of {design.n_conditions}."
        )
    if design.schedule:
        _check_schedule(design)
    if design.condition_units:
        _check_condition_units(design)
    if design.once_per_condition:
        _check_once_per_condition(design)
    elif n_units < length:
        raise DesignError(
            f"Each unit may appear at most once per task list, so {length} main trials per list "
            f"need at least {length} units; the study has {n_units}. Add units or shorten the "
            "task lists."
        )


def _check_once_per_condition(design: Design) -> None:
    if not design.within:
        raise DesignError(
            "A unit can be shown once per condition only within participants; between "
            "participants each task list has one condition."
        )
    per_condition = design.main_trials_per_list // design.n_conditions
    pool = min((len(units) for units in design.condition_units), default=len(design.units))
    if pool < per_condition:
        whose = "each condition's unit group has" if design.condition_units else "the study has"
        raise DesignError(
            f"Each unit may appear at most once per condition block, so {per_condition} main "
            f"trials per condition need at least {per_condition} units; {whose} "
            f"{pool}. Add units or shorten the task lists."
        )


def _check_schedule(design: Design) -> None:
    if not design.within:
        raise DesignError(
            "A block schedule orders the blocks of one task list: it needs conditions within "
            "participants."
        )
    per_condition = design.main_trials_per_list // design.n_conditions
    for number, sequence in enumerate(design.schedule, start=1):
        main = [condition for condition, practice in sequence if not practice]
        missing = sorted(set(range(design.n_conditions)) - set(main))
        if missing:
            raise DesignError(
                f"Block sequence {number} has no block of condition(s) "
                f"{', '.join(str(c + 1) for c in missing)}: every sequence needs a block of "
                "every condition."
            )
        too_many = [c for c in set(main) if main.count(c) > per_condition]
        if too_many:
            raise DesignError(
                f"Block sequence {number} splits condition {too_many[0] + 1} into "
                f"{main.count(too_many[0])} blocks, more than its {per_condition} trials per list."
            )
        for position, (condition, practice) in enumerate(sequence):
            later = [c for c, p in sequence[position + 1 :] if not p]
            if practice and condition not in later:
                raise DesignError(
                    f"Block sequence {number}: the practice of condition {condition + 1} must "
                    "come before one of that condition's blocks."
                )


def _check_condition_units(design: Design) -> None:
    if len(design.condition_units) != design.n_conditions:
        raise DesignError("Give every condition its units, or none of them.")
    if not design.once_per_condition:
        raise DesignError(
            "Conditions with units of their own need each unit shown once per condition block "
            "(within participants)."
        )
    sizes = {len(units) for units in design.condition_units}
    if len(sizes) > 1:
        raise DesignError(
            "The conditions' unit groups must be equally large (they are "
            f"{', '.join(str(len(units)) for units in design.condition_units)} units): use a "
            "number of units that splits evenly over the groups."
        )


def plan_task_lists(design: Design) -> list[PlannedList]:
    check_design(design)
    groups = _within_lists(design) if design.within else _between_lists(design)
    planned = []
    for index, (order, blocks) in enumerate(groups):
        rng = random.Random(f"{design.seed}:list:{index}")
        slots = _ordered_slots(order, blocks, rng)
        slots = _with_catch_trials(slots, design, rng, index)
        practice = _practice_positions(design, index, slots)
        planned.append(
            PlannedList(index, rng.randrange(2**31), tuple(order), tuple(slots), practice)
        )
    return _number_responses(planned)


def _practice_positions(
    design: Design, list_index: int, slots: list[Slot]
) -> tuple[tuple[int, int], ...]:
    """(condition, index of the first slot after it) for each practice block of the list's
    sequence: a practice block sits just before the main block that follows it."""
    if not design.schedule:
        return ()
    sequence = design.schedule[list_index % len(design.schedule)]
    first_of_block: dict[int, int] = {}
    for position, slot in enumerate(slots):
        first_of_block.setdefault(slot.block, position)
    practice, main_blocks = [], 0
    for condition, is_practice in sequence:
        if is_practice:
            practice.append((condition, first_of_block[main_blocks]))
        else:
            main_blocks += 1
    return tuple(practice)


# --- membership ----------------------------------------------------------------------------


def _demands(
    units: tuple[int, ...], responses: int, n_lists: int, per_list: int, seed: str
) -> dict[int, int]:
    """Responses per unit: `responses`, plus one for some units where the lists need filling."""
    extra = n_lists * per_list - len(units) * responses
    padded = random.Random(seed).sample(list(units), extra)
    return {unit: responses + (unit in padded) for unit in units}


def _fill_lists(
    demand: dict[int, int], n_lists: int, per_list: int, rng: random.Random
) -> list[list[int]]:
    """`n_lists` sets of `per_list` distinct units; unit u in exactly `demand[u]` of them."""
    remaining = dict(demand)
    lists = []
    for _ in range(n_lists):
        ties = {unit: rng.random() for unit in remaining}
        chosen = sorted(remaining, key=lambda unit: (-remaining[unit], ties[unit]))[:per_list]
        for unit in chosen:
            remaining[unit] -= 1
        lists.append(chosen)
    assert all(count == 0 for count in remaining.values()), "membership left responses"
    return lists


def _within_lists(design: Design) -> list[tuple[list[int], list[list[int]]]]:
    k = design.n_conditions
    per_condition = design.main_trials_per_list // k
    pools = design.condition_units or (design.units,) * k
    n_lists = math.ceil(len(pools[0]) * design.responses_per_unit / per_condition)
    if design.once_per_condition:
        colours = _blocks_filled_apart(design, pools, n_lists, per_condition)
    else:
        demand = _demands(
            design.units, design.responses_per_unit, n_lists, per_condition, f"{design.seed}:pad"
        )
        colours = _blocks_split_from_members(design, demand, n_lists, per_condition)
    if design.schedule:
        return [
            _scheduled_blocks(design, index, colouring) for index, colouring in enumerate(colours)
        ]
    orders = williams_orders(k)
    groups = []
    for index, colouring in enumerate(colours):
        order = list(orders[index % len(orders)])
        groups.append((order, [colouring[c] for c in order]))
    return groups


def _scheduled_blocks(
    design: Design, index: int, colouring: list[list[int]]
) -> tuple[list[int], list[list[int]]]:
    """The list's main blocks in its sequence's order: each condition's units, shuffled, split
    over that condition's blocks; where they do not split evenly, the blocks that get one more
    rotate with the list index (Borowski et al. 2021's 12-trial none block)."""
    sequence = design.schedule[index % len(design.schedule)]
    order = [condition for condition, practice in sequence if not practice]
    rng = random.Random(f"{design.seed}:split:{index}")
    chunks: dict[int, list[list[int]]] = {}
    for condition in sorted(set(order)):
        units = list(colouring[condition])
        rng.shuffle(units)
        n_blocks = order.count(condition)
        base, extra = divmod(len(units), n_blocks)
        sizes = [base + ((block - index) % n_blocks < extra) for block in range(n_blocks)]
        starts = [sum(sizes[:block]) for block in range(n_blocks)]
        chunks[condition] = [
            sorted(units[start : start + size]) for start, size in zip(starts, sizes, strict=True)
        ]
    return order, [chunks[condition].pop(0) for condition in order]


def _blocks_split_from_members(
    design: Design, demand: dict[int, int], n_lists: int, per_condition: int
) -> list[list[list[int]]]:
    """Each list's distinct units first, then split into its condition blocks (max flows)."""
    k = design.n_conditions
    if max(demand.values()) * k > n_lists:
        raise DesignError(_uneven_message(design, per_condition))
    rng = random.Random(f"{design.seed}:members")
    members = _fill_lists(
        {u: d * k for u, d in demand.items()}, n_lists, design.main_trials_per_list, rng
    )
    return _equitable_colours(members, demand, per_condition, k)


def _blocks_filled_apart(
    design: Design, pools: tuple[tuple[int, ...], ...], n_lists: int, per_condition: int
) -> list[list[list[int]]]:
    """Each condition's blocks filled on their own, from its pool of units: distinct units
    within a condition's trials of a list only."""
    by_condition = []
    for c, pool in enumerate(pools):
        pad = f"{design.seed}:pad" + (f":{c}" if design.condition_units else "")
        demand = _demands(pool, design.responses_per_unit, n_lists, per_condition, pad)
        rng = random.Random(f"{design.seed}:members:{c}")
        by_condition.append(_fill_lists(demand, n_lists, per_condition, rng))
    return [
        [sorted(by_condition[c][index]) for c in range(design.n_conditions)]
        for index in range(n_lists)
    ]


def _uneven_message(design: Design, per_condition: int) -> str:
    n, r = len(design.units), design.responses_per_unit
    return (
        f"{n} units × {r} responses do not fill whole task lists of {per_condition} trials per "
        "condition, and topping them up would show a unit twice in one list: use a number of "
        f"units × responses divisible by {per_condition}, or more units."
    )


def _between_lists(design: Design) -> list[tuple[list[int], list[list[int]]]]:
    length = design.main_trials_per_list
    n_per_condition = math.ceil(len(design.units) * design.responses_per_unit / length)
    by_condition = []
    for condition in range(design.n_conditions):
        demand = _demands(
            design.units, design.responses_per_unit, n_per_condition, length,
            f"{design.seed}:pad",
        )  # fmt: skip
        rng = random.Random(f"{design.seed}:members:{condition}")
        by_condition.append(_fill_lists(demand, n_per_condition, length, rng))
    return [
        ([condition], [by_condition[condition][index]])
        for index in range(n_per_condition)
        for condition in range(design.n_conditions)
    ]


# --- conditions ----------------------------------------------------------------------------


def _equitable_colours(
    members: list[list[int]], demand: dict[int, int], per_condition: int, k: int
) -> list[list[list[int]]]:
    """For each list, the units of each condition: m per list, demand[u] per unit and condition."""
    remaining = [set(units) for units in members]
    colours: list[list[list[int]]] = [[[] for _ in range(k)] for _ in members]
    for colour in range(k - 1):
        taken = _one_factor(remaining, demand, per_condition)
        for index, units in enumerate(taken):
            colours[index][colour] = sorted(units)
            remaining[index] -= units
    for index, units in enumerate(remaining):
        colours[index][k - 1] = sorted(units)
    return colours


def _one_factor(
    remaining: list[set[int]], demand: dict[int, int], per_condition: int
) -> list[set[int]]:
    """A sub-selection with `per_condition` units per list and `demand[u]` lists per unit."""
    units = sorted(demand)
    unit_node = {unit: len(remaining) + 1 + i for i, unit in enumerate(units)}
    n_nodes = len(remaining) + len(units) + 2
    sink = n_nodes - 1
    edges: list[tuple[int, int, int]] = []
    for index, members in enumerate(remaining):
        edges.append((0, index + 1, per_condition))
        edges += [(index + 1, unit_node[unit], 1) for unit in sorted(members)]
    edges += [(unit_node[unit], sink, demand[unit]) for unit in units]
    rows, cols, caps = (list(column) for column in zip(*edges, strict=True))
    graph = csr_matrix((np.array(caps, dtype=np.int32), (rows, cols)), shape=(n_nodes, n_nodes))
    result = maximum_flow(graph, 0, sink)
    if result.flow_value != len(remaining) * per_condition:  # pragma: no cover - see docstring
        raise DesignError("The conditions could not be balanced; report this design as a bug.")
    flow = result.flow.tocoo()
    node_unit = {node: unit for unit, node in unit_node.items()}
    taken: list[set[int]] = [set() for _ in remaining]
    for source, target, value in zip(flow.row, flow.col, flow.data, strict=True):
        if value > 0 and 1 <= source <= len(remaining) and target in node_unit:
            taken[source - 1].add(node_unit[int(target)])
    return taken


def williams_orders(k: int) -> list[tuple[int, ...]]:
    """Rows of a balanced Latin square: each condition follows each other equally often."""
    first = [0]
    low, high = 1, k - 1
    for step in range(1, k):
        first.append(low if step % 2 else high)
        low, high = (low + 1, high) if step % 2 else (low, high - 1)
    rows = [tuple((c + shift) % k for c in first) for shift in range(k)]
    if k % 2:
        rows += [tuple(reversed(row)) for row in rows]
    return rows


# --- positions -----------------------------------------------------------------------------


def _ordered_slots(order: list[int], blocks: list[list[int]], rng: random.Random) -> list[Slot]:
    slots = []
    for block, (condition, units) in enumerate(zip(order, blocks, strict=True)):
        shuffled = list(units)
        rng.shuffle(shuffled)
        slots += [Slot(unit, condition, -1, False, block) for unit in shuffled]
    return slots


def _with_catch_trials(
    slots: list[Slot], design: Design, rng: random.Random, list_index: int
) -> list[Slot]:
    n_catch = design.catch_trials_per_list
    if n_catch == 0:
        return slots
    pool = _catch_units(slots, design, rng, n_catch)
    hosts = Counter(_catch_hosts(slots, design, rng, n_catch))  # main-slot position → catches
    result: list[Slot] = []
    for position, slot in enumerate(slots):
        for _ in range(hosts[position]):  # a catch trial just before its host
            result.append(Slot(pool.pop(), slot.condition, list_index, True, slot.block))
        result.append(slot)
    return result


def _catch_units(slots: list[Slot], design: Design, rng: random.Random, n_catch: int) -> list[int]:
    """The units of the list's catch trials: the hand-picked ones when the design has them, in a
    seeded order, each used before any repeats; else the study's units outside the list
    whenever there are enough."""
    if design.catch_units:
        order = rng.sample(design.catch_units, len(design.catch_units))
        return [order[i % len(order)] for i in range(n_catch)]
    in_list = {slot.unit for slot in slots}
    spare = [unit for unit in design.units if unit not in in_list]
    if len(spare) >= n_catch:
        return rng.sample(spare, n_catch)
    return rng.choices(design.units, k=n_catch)


def _catch_hosts(slots: list[Slot], design: Design, rng: random.Random, n_catch: int) -> list[int]:
    """Positions of the main slots that catch trials precede, among the slots of
    `design.catch_conditions` (all slots when none of those is in the list): shared out over
    those blocks in proportion to their length (largest remainders, ties by the seed), then
    distinct within a block while it has enough slots."""
    allowed = design.catch_conditions
    eligible = [i for i, slot in enumerate(slots) if allowed is None or slot.condition in allowed]
    eligible = eligible or list(range(len(slots)))
    by_block: dict[int, list[int]] = {}
    for position in eligible:
        by_block.setdefault(slots[position].block, []).append(position)
    quotas = _shares(n_catch, {block: len(positions) for block, positions in by_block.items()}, rng)
    hosts = []
    for block, positions in by_block.items():
        quota = quotas[block]
        if len(positions) >= quota:
            hosts += rng.sample(positions, quota)
        else:
            hosts += rng.choices(positions, k=quota)
    return hosts


def _shares(total: int, weights: dict[int, int], rng: random.Random) -> dict[int, int]:
    """`total` split over the keys in proportion to the weights (largest remainders)."""
    whole = sum(weights.values())
    exact = {key: total * weight / whole for key, weight in weights.items()}
    shares = {key: math.floor(value) for key, value in exact.items()}
    ties = {key: rng.random() for key in weights}
    by_remainder = sorted(weights, key=lambda key: (-(exact[key] - shares[key]), ties[key]))
    for key in by_remainder[: total - sum(shares.values())]:
        shares[key] += 1
    return shares


def _number_responses(planned: list[PlannedList]) -> list[PlannedList]:
    """Give each main slot its response number: how many times the (unit, condition) came before."""
    seen: dict[tuple[int, int], int] = {}
    numbered = []
    for task_list in planned:
        slots = []
        for slot in task_list.slots:
            if slot.is_catch:
                slots.append(slot)
                continue
            key = (slot.unit, slot.condition)
            slots.append(Slot(slot.unit, slot.condition, seen.get(key, 0), False, slot.block))
            seen[key] = seen.get(key, 0) + 1
        numbered.append(dataclasses.replace(task_list, slots=tuple(slots)))
    return numbered
