"""What a researcher stumbled on in the study admin (issue #21): the preset comes first, a study
cannot exclude itself, an MTurk study's page does not speak of a Prolific code, and "Preview as a
participant" resumes the researcher's own pilot session instead of adding one each time."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.participation.models import Session
from backend.studies import services
from backend.studies.models import Study
from tests.participation.conftest import Api
from tests.studies import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(owner: User) -> Study:
    return factories.ready_to_launch(
        factories.study(owner, "imi2023", factories.stimulated_unit_set(44), slug="admin-study")
    )


def change_page(client: Client, study: Study) -> str:
    return client.get(f"/admin/studies/study/{study.pk}/change/").content.decode()


def sections(html: str) -> list[str]:
    return re.findall(r'<h2 id="[^"]*-heading" class="fieldset-heading">([^<]+)</h2>', html)


def test_the_preset_is_the_first_section_of_the_study_form(
    client: Client, owner: User, study: Study
) -> None:
    client.force_login(owner)
    for html in (
        client.get("/admin/studies/study/add/").content.decode(),
        change_page(client, study),
    ):
        assert sections(html)[:3] == ["Preset and paradigm", "Study", "Texts"]
        assert html.index('name="apply_preset"') < html.index('name="slug"')


def test_a_study_cannot_list_itself_under_excluded_studies(
    client: Client, owner: User, study: Study
) -> None:
    other = factories.study(owner, "imi2023", slug="other-study")
    client.force_login(owner)
    html = change_page(client, study)
    choices = re.search(r'<select name="excluded_studies".*?</select>', html, re.S)
    assert choices is not None
    assert f'value="{other.pk}"' in choices.group(0)
    assert f'value="{study.pk}"' not in choices.group(0)

    form = {"slug": study.slug, "title": study.title, "excluded_studies": [study.pk]}
    refused = client.post(f"/admin/studies/study/{study.pk}/change/", form)
    assert refused.status_code == 200  # the form again, with the error
    assert "excluded_studies" in refused.context["adminform"].form.errors
    assert not study.excluded_studies.exists()


@pytest.mark.parametrize(
    ("platform", "says", "never"),
    [
        ("mturk", "submits the HIT to MTurk", "Prolific completion code"),
        ("prolific", "Prolific completion code", "submits the HIT"),
        ("link", "shows the participant the code", "Prolific"),
    ],
)
def test_the_completion_note_speaks_of_the_studys_own_platform(
    client: Client, owner: User, study: Study, platform: str, says: str, never: str
) -> None:
    Study.objects.filter(pk=study.pk).update(platform=platform)
    client.force_login(owner)
    completion = re.search(r"<p id='completion'>.*?</p>", change_page(client, study), re.S)
    assert completion is not None
    assert says in completion.group(0) and never not in completion.group(0)


def test_previewing_again_resumes_the_researchers_own_pilot_session(
    client: Client, owner: User, study: Study
) -> None:
    services.do_build_task_lists(study)
    client.force_login(owner)
    participant = Api(Client())

    def preview() -> dict[str, str]:
        location = client.get(f"/admin/studies/study/{study.pk}/preview/")["Location"]
        query = parse_qs(urlsplit(location).query)
        started = participant.start(study.slug, {key: values[0] for key, values in query.items()})
        assert started.status_code in (200, 201), started.content
        return {"token": started.json()["token"], "id": query["PROLIFIC_PID"][0]}

    first, again = preview(), preview()
    assert first == again
    assert Session.objects.filter(study=study, is_pilot=True).count() == 1
    Session.objects.filter(token=first["token"]).update(state=Session.State.COMPLETED)
    fresh = preview()
    assert fresh["token"] != first["token"] and fresh["id"] == f"preview-{owner.pk}-2"
    assert Session.objects.filter(study=study, is_pilot=True).count() == 2
