"""What the participant page receives (docs/participant-api.md §1–§2): the study's display
settings, the timeline and the session state.

Built field by field from an allow-list, never from a model's fields: the answer key
(`correct_query`), `query_source`, unit ids, catch flags and image ids never appear; images are
given only by their content-hash URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q

from backend.participation import recruitment
from backend.participation.models import Session
from backend.participation.practice import PracticeSlot, block_states, practice_slots
from backend.stimuli.models import Image
from backend.studies.links import render_markdown
from backend.studies.models import Study, TrialDisplay, TrialKind

PRELOAD_AHEAD = 3
LEFT_LABEL = "Minimally activating"
RIGHT_LABEL = "Maximally activating"


def requirements_payload(study: Study) -> dict[str, Any]:
    """What the page checks before a session starts (and takes a task list): the window and
    the platform whose message it shows a participant who cannot meet them."""
    return {
        "slug": study.slug,
        "title": study.title,
        "platform": study.platform,
        "min_window": {"width": study.min_window_width, "height": study.min_window_height},
        "fullscreen": study.fullscreen,
    }


def study_payload(study: Study) -> dict[str, Any]:
    return {
        "slug": study.slug,
        "title": study.title,
        "paradigm": study.paradigm,
        "consent_html": render_markdown(study.consent_markdown),
        "instructions_html": render_markdown(study.instructions_markdown),
        "min_instruction_seconds": study.min_instruction_seconds,
        "min_window": {"width": study.min_window_width, "height": study.min_window_height},
        "fullscreen": study.fullscreen,
        "question": study.question,
        "timing": {
            "lockout_ms": study.lockout_ms,
            "feedback_delay_ms": study.feedback_delay_ms,
            "feedback_duration_ms": study.feedback_duration_ms,
        },
        "feedback": study.feedback,
        "show_counter": study.show_counter,
        "block_feedback": study.block_feedback,
        "break_every": study.break_every,
        "image_size_px": study.image_size_px,
        "preload_ahead": PRELOAD_AHEAD,
    }


def image_urls(trials: Iterable[TrialDisplay]) -> dict[int, str]:
    """Image id → URL for every image of these trials, in one query."""
    ids = {image_id for trial in trials for image_id in trial.image_ids()}
    return {image.pk: image.url for image in Image.objects.filter(pk__in=ids)}


def trial_payload(trial: TrialDisplay, index: int, block: int, urls: dict[int, str]) -> dict:
    left = [urls[i] for i in trial.references_min]
    right = [urls[i] for i in trial.references_max]
    payload: dict[str, Any] = {
        "index": index,
        "kind": trial.kind,
        "block": block,
        "references": {"left": left, "right": right},
        "queries": [urls[i] for i in trial.queries],
    }
    if left:
        payload["left_label"] = LEFT_LABEL
    if right:
        payload["right_label"] = RIGHT_LABEL
    if trial.base_image_id is not None:
        payload["base"] = urls[trial.base_image_id]
    if trial.kind == TrialKind.DESCRIPTION_CHOICE:
        # The unit's words, the same whichever query is right (docs/descriptions.md).
        payload["description"] = trial.description
    return payload


def timeline_payload(session: Session, slots: list[PracticeSlot]) -> tuple[list[dict], list[dict]]:
    """(practice, trials) for the session's task list; a practice trial's `block` is its
    practice block (state_payload's `practice_blocks` says where each block comes)."""
    trials = list(session.task_list.trials.order_by("index"))
    urls = image_urls([*(slot.trial for slot in slots), *trials])
    return (
        [trial_payload(slot.trial, slot.index, slot.block, urls) for slot in slots],
        [trial_payload(trial, trial.index, trial.block, urls) for trial in trials],
    )


def completion_payload(session: Session) -> dict[str, Any]:
    platform = session.participant.platform
    return recruitment.completion(session.study, platform, session.platform_params)


def state_payload(session: Session, slots: list[PracticeSlot] | None = None) -> dict[str, Any]:
    """§2: where the session is. The counter only where the design shows one. `slots`: the
    list's practice, where the caller has it already."""
    if slots is None:
        slots = practice_slots(session.task_list)
    return {
        "next_trial_index": session.next_trial_index,
        "correct_count": session.correct_count if session.study.show_counter else None,
        "n_trials": session.n_trials,
        "practice_passed": session.practice_passed,
        "practice_attempts": session.practice_attempts,
        "practice_blocks": [
            state.payload()
            for state in block_states(session, slots, session.study.practice_until_correct)
        ],
        "completed": session.completed,
        "completion": completion_payload(session) if session.completed else None,
        **({"block_scores": block_scores(session)} if session.study.block_feedback else {}),
    }


def block_scores(session: Session) -> list[dict[str, int]]:
    """Per block, the stored main-trial answers (catch trials included) and how many are
    correct: the page's score after each block resumes from these after a reload."""
    rows = (
        session.responses.values("trial__block")
        .annotate(answered=Count("pk"), correct=Count("pk", filter=Q(correct=True)))
        .order_by("trial__block")
    )
    return [
        {"block": row["trial__block"], "answered": row["answered"], "correct": row["correct"]}
        for row in rows
    ]


def start_payload(session: Session) -> dict[str, Any]:
    """§1: the token, the study, the timeline (empty once completed) and the state."""
    slots = practice_slots(session.task_list)
    practice, trials = ([], []) if session.completed else timeline_payload(session, slots)
    return {
        "token": session.token,
        "study": study_payload(session.study),
        "practice": practice,
        "trials": trials,
        "state": state_payload(session, slots),
    }
