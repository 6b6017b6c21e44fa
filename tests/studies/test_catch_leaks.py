"""Nothing a script can read predicts a trial's answer: within a trial no image can be matched
with another by its URL or its bytes (a catch trial's correct query, one of its references,
is shown as a copy of the same picture under other bytes), media carry no validators (a
file's time is its import order), and over a built study's trials no single feature of the
queries (position, URL order, file size) picks the answer above chance. The answer key stays
in Postgres: the copy still shows the reference's picture."""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from PIL import Image as PILImage

from backend.stimuli.models import Image
from backend.studies import services
from backend.studies.models import Study, Trial
from tests.studies import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def built(owner: User) -> Study:
    study = factories.study(owner, "imi2023", factories.stimulated_unit_set(44))
    services.do_build_task_lists(study)
    return study


def pixels(image_id: int) -> bytes:
    with Image.objects.get(pk=image_id).file.open("rb") as handle:
        return PILImage.open(io.BytesIO(handle.read())).convert("RGB").tobytes()


def timeline(client: Client, study: Study) -> list[dict[str, Any]]:
    body = {"platform": {"pilot": study.pilot_token}, "browser": {"user_agent": "pytest"}}
    started = client.post(f"/api/v1/studies/{study.slug}/sessions", json.dumps(body),
                          content_type="application/json")  # fmt: skip
    assert started.status_code == 201, started.content
    return list(started.json()["trials"])


def shown_urls(trial: dict[str, Any]) -> list[str]:
    refs = trial["references"]
    return [
        *refs["left"],
        *refs["right"],
        *trial["queries"],
        *([trial["base"]] if "base" in trial else []),
    ]


def test_a_catch_trial_s_answer_is_the_same_picture_as_a_reference_under_other_bytes(
    built: Study,
) -> None:
    catch_trials = list(Trial.objects.filter(task_list__study=built, is_catch=True))
    assert catch_trials
    for trial in catch_trials:
        correct = trial.queries[trial.correct_query]
        assert correct not in trial.references_max + trial.references_min
        assert pixels(correct) in {pixels(i) for i in trial.references_max}
        other = trial.queries[1 - trial.correct_query]
        assert other not in trial.references_min
        assert pixels(other) in {pixels(i) for i in trial.references_min}


def test_no_image_of_a_trial_matches_another_by_url_or_bytes(client: Client, built: Study) -> None:
    files: dict[str, bytes] = {}
    for trial in timeline(client, built):
        urls = shown_urls(trial)
        assert len(set(urls)) == len(urls), trial["index"]
        for url in urls:
            if url not in files:
                response = client.get(url)
                assert response.status_code == 200, url
                files[url] = b"".join(response.streaming_content)
        digests = [hashlib.sha256(files[url]).hexdigest() for url in urls]
        assert len(set(digests)) == len(digests), trial["index"]


def test_media_carry_no_validators_and_ignore_if_modified_since(
    client: Client, built: Study
) -> None:
    url = timeline(client, built)[0]["queries"][0]
    response = client.get(url)
    assert response.status_code == 200
    assert "Last-Modified" not in response and "ETag" not in response
    assert "immutable" in response["Cache-Control"]
    later = client.get(url, HTTP_IF_MODIFIED_SINCE="Thu, 31 Dec 2099 23:59:59 GMT")
    assert later.status_code == 200


def test_no_single_feature_of_the_queries_predicts_the_answer(client: Client, built: Study) -> None:
    trials = timeline(client, built)
    keys = dict(
        Trial.objects.filter(task_list__study=built, task_list__sessions__isnull=False).values_list(
            "index", "correct_query"
        )
    )
    sizes: dict[str, int] = {}
    for trial in trials:
        for url in trial["queries"]:
            sizes[url] = sizes.get(url) or len(b"".join(client.get(url).streaming_content))
    features = {
        "first position": lambda q: (1, 0),
        "url order": lambda q: (q[0], q[1]),
        "file size": lambda q: (sizes[q[0]], sizes[q[1]]),
    }
    n = len(trials)
    chance_band = 0.5 + 3 * math.sqrt(0.25 / n)  # three standard errors above chance
    for name, feature in features.items():
        a, b = zip(*(feature(t["queries"]) for t in trials), strict=True)
        picks_larger = sum((x > y) == (keys[t["index"]] == 0)
                           for t, x, y in zip(trials, a, b, strict=True) if x != y)  # fmt: skip
        decided = sum(x != y for x, y in zip(a, b, strict=True))
        if decided:
            best = max(picks_larger, decided - picks_larger) / decided
            assert best < chance_band, (name, best, decided)
