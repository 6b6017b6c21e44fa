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


# Borowski et al. 2021, Experiment I (lab): every participant sees each of 45 units once in each
# of the three conditions (45 main trials per condition, in blocks of 15 with breaks), 3 catch
# trials per block of natural or synthetic references; after each answer the correct image is
# shown after 500 ms for 1.5 s; 10 participants. The lab study excluded nobody; the rules are
# those of its online replication (catch accuracy at least 0.6, instructions read for 15 s).
BOROWSKI_FIELDS: dict[str, Any] = {
    "paradigm": "reference_choice",
    "question": REFERENCE_QUESTION,
    "condition_design": "within",
    "unit_repeats": "condition",
    "main_trials_per_list": 135,
    "catch_trials_per_list": 18,
    "target_valid_responses_per_unit": 10,
    "feedback": True,
    "feedback_delay_ms": 500,
    "feedback_duration_ms": 1500,
    "show_counter": False,
    "lockout_ms": 0,
    "break_every": 15,
    "practice_until_correct": False,
    "min_instruction_seconds": 0,
    "fullscreen": True,
    "exclusion_rules": _rules(
        dataclasses.replace(NO_RULES, min_catch_accuracy=0.6, min_instruction_seconds=15.0)
    ),
}

# Experiment II: the four reference conditions (1 or 9 references, max only or min + max), each
# with natural and with synthetic references, over 20 units: 20 trials of each of the 8
# conditions, in blocks of 10 main and 2 catch trials.
BOROWSKI_REFERENCES_FIELDS: dict[str, Any] = {
    **BOROWSKI_FIELDS,
    "main_trials_per_list": 160,
    "catch_trials_per_list": 32,
    "break_every": 10,
}
BOROWSKI_REFERENCE_CONDITIONS = [
    make(f"{name}-{n}-{sides.replace('_', '-')}", n=n, sides=sides)
    for n in (1, 9)
    for sides in ("max_only", "min_max")
    for name, make in (("synthetic", _synthetic), ("natural", _natural))
]

IMI_FIELDS: dict[str, Any] = {
    "paradigm": "reference_choice",
    "question": REFERENCE_QUESTION,
    "condition_design": "between",
    "unit_repeats": "list",
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
            _none(sides="max_only"),
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
}

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
