"""Presets: every parameter of a published study, filled in one click.

Each preset sets the study's paradigm, design, timing, practice, catch trials and exclusion
rules, and replaces its conditions. Texts a researcher has written are kept; an empty question
gets the study's. The figures come from the studies' published experiment code (configs, launch
scripts and jsPsych tasks); docs/study-design.md names the source of each and where PsyLens
differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from backend.analysis.exclusion_rules import IMI_RULES, NO_RULES, ExclusionRules
from backend.studies.allocation import williams_orders

REFERENCE_QUESTION = "Which image at the centre also strongly activates the unit?"
OCCLUSION_QUESTION = "Which of the two images does the network favour?"


@dataclass(frozen=True)
class Preset:
    title: str
    fields: dict[str, Any]
    conditions: list[dict[str, Any]] = field(default_factory=list)


def _natural(
    name: str = "natural", n: int = 9, sides: str = "min_max", rule: str = "extreme"
) -> dict[str, Any]:
    return {
        "name": name,
        "explanation": "natural",
        "n_references": n,
        "sides": sides,
        "query_selection": rule,
    }


def _synthetic(
    name: str = "synthetic", n: int = 9, sides: str = "min_max", preset: str = ""
) -> dict[str, Any]:
    return {"name": name, "explanation": "synthetic", "n_references": n, "sides": sides,
            "query_selection": "extreme", "visualization_preset": preset}  # fmt: skip


def _none(name: str = "none", sides: str = "min_max") -> dict[str, Any]:
    return {"name": name, "explanation": "none", "n_references": 0, "sides": sides}


def _rules(rules: ExclusionRules) -> dict[str, Any]:
    return dataclasses.asdict(rules)


def _borowski_sequence(first: str, second: str) -> list[str]:
    """Borowski et al. 2021, Exp. I: two none blocks (after their practice), the practice of
    both reference conditions, their main blocks alternating three times, two more none blocks."""
    return [
        "practice:none", "none", "none", f"practice:{first}", f"practice:{second}",
        *[first, second] * 3, "none", "none",
    ]  # fmt: skip


def _references_sequence(order: tuple[int, ...]) -> list[str]:
    """Borowski et al. 2021, Exp. II: per reference condition, in `order`, the practice of its
    synthetic and natural references, then their main blocks alternating twice."""
    sequence = []
    for group in order:
        synthetic, natural = (
            c["name"] for c in BOROWSKI_REFERENCE_CONDITIONS[2 * group : 2 * group + 2]
        )
        sequence += [f"practice:{synthetic}", f"practice:{natural}", *[synthetic, natural] * 2]
    return sequence


# Borowski et al. 2021, Experiment I (lab): every participant sees each of 45 units once in each
# of the three conditions: none in four blocks (11, 11, 11 and 12 trials, the 12 rotating over
# participants), synthetic and natural in three blocks of 15 each, alternating, with 3 catch
# trials per block; odd and even participants swap synthetic and natural. Each condition's
# practice comes just before its first block. After each answer the correct image is shown after
# 500 ms for 1.5 s; breaks between blocks; 10 participants. The lab study excluded nobody; the
# rules are those of its online replication (catch accuracy at least 0.6, instructions 15 s).
BOROWSKI_FIELDS: dict[str, Any] = {
    "paradigm": "reference_choice",
    "question": REFERENCE_QUESTION,
    "condition_design": "within",
    "unit_repeats": "condition",
    "main_trials_per_list": 135,
    "catch_trials_per_list": 18,
    "block_schedule": [
        _borowski_sequence("synthetic", "natural"),
        _borowski_sequence("natural", "synthetic"),
    ],
    "target_valid_responses_per_unit": 10,
    "feedback": True,
    "feedback_delay_ms": 500,
    "feedback_duration_ms": 1500,
    "show_counter": False,
    "block_feedback": True,
    "lockout_ms": 0,
    "break_every": 0,
    "practice_until_correct": False,
    "min_instruction_seconds": 0,
    "fullscreen": True,
    "exclusion_rules": _rules(
        dataclasses.replace(NO_RULES, min_catch_accuracy=0.6, min_instruction_seconds=15.0)
    ),
}

# Experiment II: the four reference conditions (1 or 9 references, max only or min + max), each
# with synthetic and with natural references, each over its own 20 units (unit groups 0–3, 80
# units in all): per reference condition, in an order balanced over four groups of participants,
# the practice of both, then synthetic and natural blocks of 10 main and 2 catch trials
# alternating twice (160 + 32 trials).
BOROWSKI_REFERENCE_CONDITIONS = [
    {**make(f"{name}-{n}-{sides.replace('_', '-')}", n=n, sides=sides), "unit_group": group}
    for group, (n, sides) in enumerate(
        (n, sides) for n in (1, 9) for sides in ("max_only", "min_max")
    )
    for name, make in (("synthetic", _synthetic), ("natural", _natural))
]
BOROWSKI_REFERENCES_FIELDS: dict[str, Any] = {
    **BOROWSKI_FIELDS,
    "main_trials_per_list": 160,
    "catch_trials_per_list": 32,
    "block_schedule": [_references_sequence(order) for order in williams_orders(4)],
}

IMI_FIELDS: dict[str, Any] = {
    "paradigm": "reference_choice",
    "question": REFERENCE_QUESTION,
    "condition_design": "between",
    "unit_repeats": "list",
    "block_schedule": [],
    "block_feedback": False,
    "main_trials_per_list": 40,
    "catch_trials_per_list": 5,
    "target_valid_responses_per_unit": 30,
    "lockout_ms": 1500,
    "feedback": True,
    "feedback_delay_ms": 350,
    "feedback_duration_ms": 1150,
    "show_counter": True,
    "break_every": 0,
    "practice_until_correct": True,
    "min_instruction_seconds": 15,
    "fullscreen": True,
    "exclusion_rules": _rules(IMI_RULES),
}

# Zimmermann et al. 2021: one HIT per worker, 18 units once each plus 3 catch trials; feedback in
# practice only (looped until all correct); 50 tasks posted per condition.
OCCLUSION_FIELDS: dict[str, Any] = {
    "paradigm": "occlusion_choice",
    "question": OCCLUSION_QUESTION,
    "condition_design": "between",
    "unit_repeats": "list",
    "block_schedule": [],
    "block_feedback": False,
    "main_trials_per_list": 18,
    "catch_trials_per_list": 3,
    "target_valid_responses_per_unit": 50,
    "feedback": False,
    "feedback_delay_ms": 350,
    "feedback_duration_ms": 1150,
    "show_counter": False,
    "lockout_ms": 0,
    "break_every": 0,
    "practice_until_correct": True,
    "min_instruction_seconds": 0,
    "fullscreen": True,
    "exclusion_rules": _rules(
        dataclasses.replace(
            NO_RULES,
            min_catch_accuracy=0.6,
            min_instruction_seconds=20.0,
            min_total_seconds=90.0,
            max_total_seconds=900.0,
            max_practice_attempts=5,
        )
    ),
}

# Its none condition ran without practice and with laxer thresholds.
ZIMMERMANN_NONE_RULES = _rules(
    dataclasses.replace(
        NO_RULES,
        min_catch_accuracy=0.6,
        min_instruction_seconds=15.0,
        min_total_seconds=40.0,
        max_total_seconds=900.0,
    )
)

PRESETS: dict[str, Preset] = {
    "borowski2021": Preset(
        "Borowski et al. 2021 (ICLR): natural vs synthetic vs none, min+max",
        BOROWSKI_FIELDS,
        [_natural(), _synthetic(), _none()],
    ),
    "borowski2021-references": Preset(
        "Borowski et al. 2021 (ICLR): 1 vs 9 references, max-only vs min+max",
        BOROWSKI_REFERENCES_FIELDS,
        BOROWSKI_REFERENCE_CONDITIONS,
    ),
    "imi2023": Preset("Zimmermann et al. 2023 (IMI): natural", IMI_FIELDS, [_natural()]),
    "imi2023-synthetic": Preset(
        "Zimmermann et al. 2023 (IMI): natural and synthetic",
        IMI_FIELDS,
        [_natural(), _synthetic(preset="imi")],
    ),
    **{
        f"imi2023-{low}-{high}": Preset(
            f"Zimmermann et al. 2023 (IMI), harder: queries at the {low}/{high} percentiles",
            IMI_FIELDS,
            [_natural(f"natural-{low}-{high}", rule=f"{low}/{high}")],
        )
        for low, high in [("q01", "q99"), ("q05", "q95"), ("q15", "q85")]
    },
    "zimmermann2021": Preset(
        "Zimmermann et al. 2021 (NeurIPS): counterfactual occlusion",
        OCCLUSION_FIELDS,
        [
            {**_none(sides="max_only"), "exclusion_rules": ZIMMERMANN_NONE_RULES},
            _natural(sides="max_only"),
            _synthetic(sides="max_only", preset="lucent"),
            {**_synthetic("mixed", sides="max_only", preset="lucent"), "explanation": "mixed"},
            {**_natural("blurred", sides="max_only"), "explanation": "blurred"},
        ],
    ),
    "colin2024": Preset(
        "Colin et al. 2024: channel basis vs dictionary basis (pick both unit sets)",
        IMI_FIELDS,
        [_natural()],
    ),
    # Colin et al.'s design with networks instead of bases: channels of one layer of a network
    # and of its LWTA version (Panousis & Chatzis 2023; docs/lwta.md).
    "discover2023-dense-vs-sparse": Preset(
        "Dense vs sparse (DISCOVER): channels of a network and of its LWTA version "
        "(pick both unit sets)",
        IMI_FIELDS,
        [_natural()],
    ),
}

# O'Mahony, Nikolov & O'Sullivan 2025 (WACV; arXiv 2411.10019): a unit's non-extremal
# activations show associations its extremes hide. IMI's design, between participants, with
# maximally activating references only so the two conditions differ in nothing but where the
# references come from: the top of the unit's range, or its 40-60 % band. The queries are
# IMI's in both (the most extreme image of a batch). Exemplars need the band: the builder
# refuses (and queues the exemplar pass with it) until they have it. docs/midrange.md.
PRESETS["omahony2025-extremal-vs-midrange"] = Preset(
    "O'Mahony et al. 2025: extremal vs mid-range (40–60 %) natural references, IMI's trial",
    IMI_FIELDS,
    [
        _natural("extremal", sides="max_only"),
        {**_natural("midrange", sides="max_only"), "reference_band": "40-60"},
    ],
)

PRESET_CHOICES = [("", "— none —")] + [(name, preset.title) for name, preset in PRESETS.items()]


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def apply_fields(study: Any, name: str) -> None:
    """Set the preset's fields on an unsaved or draft study (conditions are set by services)."""
    for field_name, value in get(name).fields.items():
        setattr(study, field_name, value)
    study.preset = name


def conditions_of(name: str) -> list[dict[str, Any]]:
    return [dict(condition) for condition in get(name).conditions]


# --- Descriptions against exemplars (issue 18; docs/descriptions.md) ------------------------
# Are words as informative as exemplars? The description_choice paradigm with IMI's settings,
# between participants: the unit's soft-WPMI description alone (Panousis & Chatzis 2023's
# DISCOVER descriptions, CLIP-Dissect's score), the description beside the natural exemplars,
# and the natural exemplars alone (the reference trial). Queries as in IMI: the most extreme
# image of an IMI batch, strongly against weakly activating.
DESCRIPTION_QUESTION = "Which image at the centre strongly activates the unit?"
DESCRIPTION_FIELDS: dict[str, Any] = {
    **IMI_FIELDS,
    "paradigm": "description_choice",
    "question": DESCRIPTION_QUESTION,
}
DESCRIPTION_CONDITIONS: list[dict[str, Any]] = [
    {**_none("description"), "shows_description": True},
    {**_natural("description-natural"), "shows_description": True},
    _natural(),
]
PRESETS["descriptions2023"] = Preset(
    "Descriptions vs exemplars (DISCOVER words): description, description + natural, natural",
    DESCRIPTION_FIELDS,
    DESCRIPTION_CONDITIONS,
)
PRESET_CHOICES.append(("descriptions2023", PRESETS["descriptions2023"].title))
