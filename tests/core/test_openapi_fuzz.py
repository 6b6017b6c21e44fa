"""Schemathesis against the live OpenAPI schema of the real app (in process, on the test
database): generated requests, valid and invalid, on every operation of the participant and
researcher APIs, with 0 failures allowed for the checks that can hold. Bounded (a few examples
per operation and mode, no shrinking) to fit the suite's time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.wsgi import application

pytestmark = pytest.mark.django_db
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance,
          negative_data_rejection]  # fmt: skip
EXAMPLES = 5
# Where "valid by the schema" cannot mean "accepted", because acceptance depends on data the
# schema cannot name: positive_data_acceptance is not run there (every other check is).
DATA_DEPENDENT = {
    # a study's fields checked together (feedback on needs a duration), pks that must exist,
    # a slug not yet taken
    "POST /api/v1/researcher/studies/",
    "PUT /api/v1/researcher/studies/{slug}/",
    "PATCH /api/v1/researcher/studies/{slug}/",
    # which platform parameters a start needs depends on the study's platform
    "POST /api/v1/studies/{slug}/sessions",
    # event details and an answer's raw data may be any JSON but no NUL character anywhere
    # (Postgres cannot store it)
    "POST /api/v1/sessions/{token}/events",
    "PUT /api/v1/sessions/{token}/responses/{trial_index}",
    "PUT /api/v1/sessions/{token}/practice/{attempt}/{practice_index}",
    # the atlas's jobs: unit sets and image sets that must exist, fitted, on one network, and
    # parameters each job kind checks against them
    "POST /api/v1/researcher/atlas/jobs/",
    "POST /api/v1/researcher/atlas/spectra/",
    "POST /api/v1/researcher/atlas/descriptions/",
    # an LWTA fine-tune: a base network and image set that must exist, modules it must have
    "POST /api/v1/researcher/atlas/lwta/",
    # a confound report: a unit set that must exist, be fitted and have the unit; enough images
    "POST /api/v1/researcher/atlas/confounds/",
    # a last-layer retraining: a base and labelled image sets that must exist; a curated export:
    # an image set and images of it that must exist
    "POST /api/v1/researcher/atlas/retrained/",
    "POST /api/v1/researcher/atlas/curated-export/",
}


@pytest.fixture
def api_schema() -> Iterator[Any]:
    """The schema as the app serves it. Requests go to the WSGI app in this process, inside the
    test's transaction; like Django's test client, the request signals then leave the
    connection open."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def failures_of(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> list[str]:
    found: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck), derandomize=True)  # fmt: skip
    def run(case: Any) -> None:
        checks = CHECKS
        if operation.label in DATA_DEPENDENT:
            checks = [check for check in CHECKS if check is not positive_data_acceptance]
        try:
            case.call_and_validate(headers=headers, checks=checks)
        except (AssertionError, FailureGroup) as failure:
            found.append(f"{operation.label} ({mode}): {str(failure)[:700]}")

    with contextlib.suppress(Unsatisfiable):  # nothing of the operation can be made invalid
        run()
    return found


def test_the_api_keeps_to_its_schema(api_schema: Any, owner: User) -> None:
    headers = {"Authorization": f"Token {Token.objects.create(user=owner).key}"}
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures.extend(failures_of(operation, mode, headers))
    assert not failures, "\n\n".join(failures[:40])


def test_the_schema_says_what_the_api_does(client: Any) -> None:
    document = client.get("/api/schema/?format=json").json()
    paths = document["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path.startswith("/api/v1/researcher/"):
                assert {"400", "403", "404", "409"} <= set(operation["responses"]), (method, path)
            if path.endswith((".csv", ".json", ".parquet")):
                assert all(p["name"] != "format" for p in operation.get("parameters", []))
    design = paths["/api/v1/researcher/studies/{slug}/results/design.json"]["get"]
    assert design["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "object"
    answer = document["components"]["schemas"]["Answer"]["properties"]["choice"]
    assert (answer["minimum"], answer["maximum"]) == (0, 1)


def test_a_string_is_not_an_integer(client: Any, owner: User) -> None:
    from tests.participation.factories import answer, make_study, prolific

    slug = make_study(owner).study.slug
    started = client.post(f"/api/v1/studies/{slug}/sessions", {"platform": prolific()},
                          content_type="application/json")  # fmt: skip
    url = f"/api/v1/sessions/{started.json()['token']}/responses/0"
    for bad in ({"choice": "0"}, {"confidence": "2"}, {"rt_ms": "12.5"}, {"choice": True}):
        response = client.put(url, answer(**{"choice": 0, **bad}), content_type="application/json")
        assert response.status_code == 400, bad
    assert client.put(url, answer(0), content_type="application/json").status_code == 201
