"""Test data for the participant side: a small study built directly through the studies models.

Images are real PNGs stored by content hash (`store_image`); the answer key is drawn with a
fixed seed so both 0 and 1 occur.
"""

from __future__ import annotations

import io
import random
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from PIL import Image as PILImage

from backend.participation.models import Participant, Session
from backend.stimuli.models import Image, Layer, Network, Unit, UnitSet
from backend.stimuli.services import store_image
from backend.studies.models import Condition, PracticeTrial, Study, TaskList, Trial

N_REFERENCES = 2


def png_image() -> Image:
    """A new 32×32 PNG of random colour, stored by content hash."""
    colour = tuple(secrets.randbelow(256) for _ in range(3))
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return store_image(buffer.getvalue())


def make_unit() -> Unit:
    suffix = secrets.token_hex(4)
    network = Network.objects.create(name=f"net-{suffix}", source="builtin:efficientnet_lite0")
    layer = Layer.objects.create(network=network, name="blocks.6", shape=[320, 7, 7])
    unit_set = UnitSet.objects.create(name=f"units-{suffix}", layer=layer, kind="channels")
    return Unit.objects.create(unit_set=unit_set, index=3)


@dataclass
class StudyFixture:
    study: Study
    task_lists: list[TaskList]
    images: list[Image]

    def answer_keys(self) -> dict[int, dict[int, int]]:
        """task list id → trial index → correct query."""
        return {
            task_list.pk: dict(task_list.trials.values_list("index", "correct_query"))
            for task_list in self.task_lists
        }


def trial_images(pool: list[Image]) -> dict[str, Any]:
    images = [png_image() for _ in range(2 * N_REFERENCES + 2)]
    pool.extend(images)
    ids = [image.pk for image in images]
    return {
        "references_min": ids[:N_REFERENCES],
        "references_max": ids[N_REFERENCES : 2 * N_REFERENCES],
        "queries": ids[2 * N_REFERENCES :],
    }


def make_study(
    owner: User,
    *,
    n_main: int = 6,
    n_catch: int = 1,
    n_lists: int = 1,
    n_practice: int = 0,
    seed: int = 7,
    **fields: Any,
) -> StudyFixture:
    """A live Prolific study with `n_lists` task lists of n_main + n_catch trials."""
    rng = random.Random(seed)
    defaults: dict[str, Any] = {
        "slug": f"study-{secrets.token_hex(4)}",
        "title": "Which image?",
        "state": Study.State.LIVE,
        "owner": owner,
        "platform": Study.Platform.PROLIFIC,
        "completion_code": "C0FFEE12",
        "fullscreen": False,
        "min_window_width": 300,
        "min_window_height": 200,
        "consent_markdown": "You agree **to take part**.",
        "instructions_markdown": "Choose the image.",
        "catch_trials_per_list": n_catch,
        "main_trials_per_list": n_main,
    }
    study = Study.objects.create(**{**defaults, **fields})
    condition = Condition.objects.create(study=study, name="natural", n_references=N_REFERENCES)
    unit = make_unit()
    images: list[Image] = []
    lists = []
    for list_index in range(n_lists):
        task_list = TaskList.objects.create(study=study, index=list_index, seed=list_index)
        for index in range(n_main + n_catch):
            Trial.objects.create(
                task_list=task_list,
                index=index,
                kind="reference_choice",
                unit=unit,
                condition=condition,
                is_catch=index == n_main + n_catch - 1 and n_catch > 0,
                correct_query=rng.randrange(2),
                query_source={"max": "q99", "min": "q01"},
                **trial_images(images),
            )
        lists.append(task_list)
    practice = [
        PracticeTrial.objects.create(
            study=study,
            index=index,
            unit=unit,
            condition=condition,
            correct_query=index % 2,
            kind="reference_choice",
            **trial_images(images),
        ).pk
        for index in range(n_practice)
    ]
    if practice:  # as the trial builder lays it out without a block schedule: all first
        block = {"before": 0, "condition": condition.name, "trials": practice}
        TaskList.objects.filter(study=study).update(practice_blocks=[block])
        for task_list in lists:
            task_list.practice_blocks = [block]
    return StudyFixture(study, lists, images)


def prolific(pid: str = "5f0c2a9e8b1d4c3a2b1e0f9d") -> dict[str, Any]:
    return {"PROLIFIC_PID": pid, "STUDY_ID": "S1", "SESSION_ID": "X1"}


BROWSER = {
    "user_agent": "pytest",
    "screen_w": 1920,
    "screen_h": 1080,
    "window_w": 1280,
    "window_h": 800,
    "pixel_ratio": 1,
    "touch": False,
    "language": "en",
}


def answer(choice: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "choice": choice,
        "confidence": 2,
        "rt_ms": 1234.5,
        "client_started_at": "2026-11-22T10:00:00.000Z",
        "client_answered_at": "2026-11-22T10:00:01.234Z",
        "raw": {"rt": 1234.5, "trial_type": "reference-choice"},
        **fields,
    }


def bulk_completed_sessions(fixture: StudyFixture, count: int, *, batch: int = 5_000) -> int:
    """`count` more completed sessions spread over the fixture's task lists, every trial
    answered, written in bulk (the answers in one INSERT … SELECT): for exports and memory at
    scale, not for the participant path. Returns the number of responses written."""
    study, lists = fixture.study, fixture.task_lists
    now = timezone.now()
    first = Session.objects.filter(study=study).count()
    for start in range(first, first + count, batch):
        numbers = range(start, min(start + batch, first + count))
        participants = Participant.objects.bulk_create(
            Participant(platform=Participant.Platform.PROLIFIC, platform_id=f"bulk-{study.pk}-{n}")
            for n in numbers
        )
        Session.objects.bulk_create(
            Session(study=study, participant=participant, task_list=lists[n % len(lists)],
                    state=Session.State.COMPLETED, last_activity_at=now, completed_at=now)
            for n, participant in zip(numbers, participants, strict=True)
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(BULK_ANSWERS_SQL, [study.pk])
        return int(cursor.rowcount)


# Every trial of every session's list answered; choice, confidence and rt vary with the ids
# (`%%` is the modulo operator, escaped for the parameter style).
BULK_ANSWERS_SQL = """
INSERT INTO participation_response (session_id, trial_id, trial_index, choice, confidence,
    rt_ms, client_started_at, client_answered_at, received_at, raw, correct)
SELECT s.id, t.id, t.index, (s.id + t.index) %% 2, 1 + (s.id * 3 + t.index) %% 3,
    600 + (s.id * 7 + t.index * 13) %% 2000, now(), now(), now(), '{}'::jsonb,
    (s.id + t.index) %% 2 = t.correct_query
FROM participation_session s JOIN studies_trial t ON t.task_list_id = s.task_list_id
WHERE s.study_id = %s
    AND NOT EXISTS (SELECT 1 FROM participation_response r WHERE r.session_id = s.id)
"""
