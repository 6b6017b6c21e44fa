"""Recruitment adapters: who a participant is, from the platform's query parameters, and where
they go when they finish.

- Prolific: identity ("prolific", PROLIFIC_PID); back to Prolific with the completion code.
- MTurk (external question): identity ("mturk", workerId); MTurk's preview
  (assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE) is refused; back through the externalSubmit form.
- Plain link: a new anonymous identity per session (the page may re-send its token to resume).
- Pilot (`pilot=<Study.pilot_token>`): identity ("pilot", the PID/worker id given, else new);
  never redirected to a platform.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from backend.core.errors import ApiError
from backend.participation.models import Participant
from backend.studies.models import Study

PROLIFIC_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_KEYS = ("assignmentId", "hitId", "workerId", "turkSubmitTo")
KNOWN_KEYS = (*PROLIFIC_KEYS, *MTURK_KEYS, "pilot")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_SUBMIT_HOSTS = frozenset({"www.mturk.com", "workersandbox.mturk.com"})
MTURK_DEFAULT_SUBMIT = "https://www.mturk.com"
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
PLATFORM_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,100}$")
PILOT_STATES = frozenset({Study.State.DRAFT, Study.State.PILOT, Study.State.LIVE})
# The platform's id of one submission: what binds a resumed session to the participant who
# started it (docs/participant-api.md §1).
SUBMISSION_KEYS: dict[str, str] = {Participant.Platform.PROLIFIC: "SESSION_ID",
                   Participant.Platform.MTURK: "assignmentId"}  # fmt: skip


@dataclass(frozen=True)
class Arrival:
    """Who arrives, as the platform says: `platform_id` None means a new anonymous identity."""

    platform: str
    platform_id: str | None
    is_pilot: bool
    params: dict[str, str] = field(default_factory=dict)

    def identity(self) -> tuple[str, str]:
        return (self.platform, self.platform_id or "anon-" + secrets.token_hex(12))


def known_params(platform: dict[str, Any]) -> dict[str, str]:
    """The platform parameters PsyLens knows, as strings; unknown keys are ignored."""
    params = {}
    for key in KNOWN_KEYS:
        value = platform.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 500:
            raise ApiError("invalid_platform", f"platform.{key} must be a short string.")
        params[key] = value.strip()
    return params


def arrival_from(study: Study, platform: dict[str, Any]) -> Arrival:
    """The arriving identity for this study, or a 4xx the page shows as it is."""
    params = known_params(platform)
    if "pilot" in params:
        return _pilot_arrival(study, params)
    if study.platform == Study.Platform.PROLIFIC:
        pid = _platform_id(params, "PROLIFIC_PID", "Prolific")
        return Arrival(Participant.Platform.PROLIFIC, pid, False, _subset(params, PROLIFIC_KEYS))
    if study.platform == Study.Platform.MTURK:
        return _mturk_arrival(params)
    return Arrival(Participant.Platform.LINK, None, False, {})


def _pilot_arrival(study: Study, params: dict[str, str]) -> Arrival:
    if not secrets.compare_digest(params["pilot"].encode(), study.pilot_token.encode()):
        raise ApiError("pilot_invalid", "This pilot link is not valid for this study.", 403)
    if study.state not in PILOT_STATES:
        raise ApiError("study_not_live", "This study is not open for pilot sessions.", 403)
    given = params.get("PROLIFIC_PID") or params.get("workerId")
    if given is not None and not PLATFORM_ID.match(given):
        raise ApiError("invalid_platform", "The participant id in the link is not valid.")
    kept = _subset(params, (*PROLIFIC_KEYS, *MTURK_KEYS))
    return Arrival(Participant.Platform.PILOT, given, True, kept)


def _mturk_arrival(params: dict[str, str]) -> Arrival:
    if params.get("assignmentId") == MTURK_PREVIEW:
        raise ApiError("preview", "Please accept the HIT to begin the study.", 403)
    worker = _platform_id(params, "workerId", "Amazon Mechanical Turk")
    if "assignmentId" not in params:
        raise ApiError("missing_platform_id", "The link lacks MTurk's assignmentId.")
    submit_to = params.get("turkSubmitTo", MTURK_DEFAULT_SUBMIT).rstrip("/")
    parts = urlsplit(submit_to)
    if parts.scheme != "https" or parts.hostname not in MTURK_SUBMIT_HOSTS:
        raise ApiError("invalid_platform", "turkSubmitTo is not an MTurk address.")
    kept = {**_subset(params, MTURK_KEYS), "turkSubmitTo": submit_to}
    return Arrival(Participant.Platform.MTURK, worker, False, kept)


def _platform_id(params: dict[str, str], key: str, platform_name: str) -> str:
    value = params.get(key)
    if value is None:
        raise ApiError(
            "missing_platform_id",
            f"Please open this study from {platform_name}: the link lacks your {key}.",
        )
    if not PLATFORM_ID.match(value):
        raise ApiError("invalid_platform", f"The {key} in the link is not valid.")
    return value


def resume_refused_message(platform: str) -> str:
    names: dict[str, str] = {Participant.Platform.PROLIFIC: "Prolific submission",
                             Participant.Platform.MTURK: "MTurk assignment"}  # fmt: skip
    where = names.get(platform, "link")
    return (
        "This study was already started with your participant ID from another "
        f"{where}. To continue, open the study again from the same {where}, in the browser "
        "you started it in; if you did not start it, please contact the researcher."
    )


def _subset(params: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {key: params[key] for key in keys if key in params}


def completion(study: Study, platform: str, params: dict[str, str]) -> dict[str, Any]:
    """The §6 payload: the code and where the page sends the participant."""
    code = study.completion_code
    if platform == Participant.Platform.PROLIFIC:
        return {
            "completion_code": code,
            "redirect_url": PROLIFIC_COMPLETE + quote(code, safe=""),
            "mturk_form": None,
            "message": "Thank you! Your answers are saved. Taking you back to Prolific…",
        }
    if platform == Participant.Platform.MTURK:
        submit_to = params.get("turkSubmitTo", MTURK_DEFAULT_SUBMIT)
        fields = {"assignmentId": params.get("assignmentId", ""), "completion_code": code}
        return {
            "completion_code": code,
            "redirect_url": None,
            "mturk_form": {"action": f"{submit_to}/mturk/externalSubmit", "fields": fields},
            "message": "Thank you! Your answers are saved. Submitting the HIT…",
        }
    return {
        "completion_code": code,
        "redirect_url": None,
        "mturk_form": None,
        "message": f"Thank you! Your answers are saved. Your completion code is {code}.",
    }
