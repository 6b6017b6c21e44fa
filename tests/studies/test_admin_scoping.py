"""Every admin page and JSON endpoint shows a researcher only what they may see: the sessions
and participants of their own studies (owner or collaborator), their own jobs, and only their
own studies as studies to exclude. The standing users hold every view permission here, so what
hides an object is the scoping, not a missing permission."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from backend.participation.models import Participant, Session
from backend.stimuli.models import Job
from backend.studies.models import Study
from tests.participation.factories import make_study

pytestmark = pytest.mark.django_db

SECRET_PID = "5f0c2a9e8b1d4c3a2b1e0fOWNER"


@pytest.fixture
def everyone(owner: User, collaborator: User, outsider: User) -> dict[str, User]:
    perms = Permission.objects.filter(codename__startswith="view_")
    for user in (owner, collaborator, outsider):
        user.user_permissions.add(*perms, *Permission.objects.filter(codename="delete_job"))
    return {"owner": owner, "collaborator": collaborator, "outsider": outsider}


@pytest.fixture
def owned(everyone: dict[str, User]) -> dict[str, Any]:
    fixture = make_study(everyone["owner"], title="Owner own study")
    fixture.study.collaborators.add(everyone["collaborator"])
    participant = Participant.objects.create(platform="prolific", platform_id=SECRET_PID)
    session = Session.objects.create(
        study=fixture.study,
        participant=participant,
        task_list=fixture.task_lists[0],
        last_activity_at=timezone.now(),
        platform_params={"PROLIFIC_PID": SECRET_PID},
        browser={"user_agent": "Secret-Browser/1.0"},
    )
    job = Job.objects.create(kind=Job.Kind.IMPORT_IMAGES, created_by=everyone["owner"],
                             error="owner's traceback")  # fmt: skip
    return {"study": fixture.study, "session": session, "participant": participant, "job": job}


@pytest.fixture
def foreign(everyone: dict[str, User]) -> Study:
    return make_study(everyone["outsider"], title="Outsider secret study").study


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_outsider_sees_no_session_or_participant_of_the_study(
    everyone: dict[str, User], owned: dict[str, Any], foreign: Study
) -> None:
    client = as_user(everyone["outsider"])
    session, participant = owned["session"], owned["participant"]
    for url in (f"/admin/participation/session/{session.pk}/change/",
                f"/admin/participation/participant/{participant.pk}/change/",
                f"/admin/participation/session/{session.pk}/history/"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    for url in ("/admin/participation/session/", "/admin/participation/participant/",
                "/admin/studies/tasklist/"):  # fmt: skip
        page = client.get(url)
        assert page.status_code == 200, url
        body = page.content.decode()
        assert participant.pseudonym not in body and "Owner own study" not in body, url
        assert SECRET_PID not in body, url


@pytest.mark.parametrize("who", ["owner", "collaborator"])
def test_the_owner_and_a_collaborator_see_the_study_s_sessions(
    who: str, everyone: dict[str, User], owned: dict[str, Any], foreign: Study
) -> None:
    client = as_user(everyone[who])
    session, participant = owned["session"], owned["participant"]
    listing = client.get("/admin/participation/session/").content.decode()
    assert participant.pseudonym in listing and "Outsider secret study" not in listing
    page = client.get(f"/admin/participation/session/{session.pk}/change/")
    assert page.status_code == 200 and b"Secret-Browser/1.0" in page.content
    participant_page = f"/admin/participation/participant/{participant.pk}/change/"
    assert client.get(participant_page).status_code == 200
    assert "Outsider secret study" not in client.get("/admin/studies/tasklist/").content.decode()


def test_an_outsider_cannot_follow_or_cancel_another_researcher_s_job(
    everyone: dict[str, User], owned: dict[str, Any]
) -> None:
    client, job = as_user(everyone["outsider"]), owned["job"]
    progress = client.get(f"/admin/stimuli/job/progress.json?ids={job.pk}")
    assert progress.status_code == 200 and progress.json() == {"jobs": []}
    assert client.get(f"/admin/stimuli/job/{job.pk}/change/").status_code == 404
    assert client.post(f"/admin/stimuli/job/{job.pk}/cancel/").status_code == 404
    listing = client.get("/admin/stimuli/job/").content.decode()
    assert f'data-job="{job.pk}"' not in listing and f"/job/{job.pk}/change/" not in listing
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    owner = as_user(everyone["owner"])
    followed = owner.get(f"/admin/stimuli/job/progress.json?ids={job.pk}").json()
    assert [row["id"] for row in followed["jobs"]] == [job.pk]
    assert f'data-job="{job.pk}"' in owner.get("/admin/stimuli/job/").content.decode()


def test_the_excluded_studies_picker_lists_only_the_researcher_s_studies(
    everyone: dict[str, User], owned: dict[str, Any], foreign: Study
) -> None:
    other_own = make_study(everyone["owner"], title="Owner earlier study").study
    client = as_user(everyone["owner"])
    page = client.get(f"/admin/studies/study/{owned['study'].pk}/change/").content.decode()
    assert "Owner earlier study" in page
    assert "Outsider secret study" not in page and foreign.slug not in page
    assert other_own.pk != foreign.pk


def test_another_researcher_s_study_cannot_be_excluded_nor_used_as_an_oracle(
    client: Client, everyone: dict[str, User], owned: dict[str, Any], foreign: Study
) -> None:
    foreign_session = Session.objects.create(
        study=foreign, participant=owned["participant"], task_list=foreign.task_lists.first(),
        last_activity_at=timezone.now(),
    )  # fmt: skip
    study = owned["study"]
    study.excluded_studies.add(foreign)  # as it could be set before the picker was narrowed
    Session.objects.filter(pk=owned["session"].pk).delete()
    start = client.post(
        f"/api/v1/studies/{study.slug}/sessions",
        {"platform": {"PROLIFIC_PID": SECRET_PID, "SESSION_ID": "S"}},
        content_type="application/json",
    )
    assert start.status_code == 201, start.content  # not "identity_excluded"
    assert foreign_session.pk
