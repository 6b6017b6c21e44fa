"""Design export and import: a study's design JSON recreates the same study (draft, same task
lists trial by trial) on a server that stores its images, and is refused, naming what is
missing, on one that does not."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from backend.studies.models import Study, Trial
from tests.participation.factories import make_study, make_unit

pytestmark = pytest.mark.django_db


def trial_shapes(study: Study) -> list[tuple[Any, ...]]:
    trials = Trial.objects.filter(task_list__study=study).order_by("task_list__index", "index")
    return [
        (t.task_list.index, t.index, t.is_catch, t.condition.name, t.unit.index,
         t.unit.unit_set.layer.network.source, t.correct_query,
         [(i.sha256) for i in _images(t.queries)], [i.sha256 for i in _images(t.references_max)])
        for t in trials.select_related("task_list", "condition", "unit__unit_set__layer__network")
    ]  # fmt: skip


def unit_shape(unit: Any) -> tuple[Any, ...]:
    """What identifies a unit across servers: network source, layer, kind and index."""
    layer = unit.unit_set.layer
    return (layer.network.source, layer.name, unit.unit_set.kind, unit.index)


def _images(ids: list[int]) -> list[Any]:
    from backend.stimuli.models import Image

    found = Image.objects.in_bulk(ids)
    return [found[pk] for pk in ids]


def exported(client: Client, study: Study) -> dict[str, Any]:
    response = client.get(f"/admin/studies/study/{study.pk}/results/design.json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_an_exported_design_imports_as_the_same_draft_study(
    client: Client, owner: User, tmp_path: Path
) -> None:
    fixture = make_study(
        owner, n_lists=2, n_practice=1, exclusion_rules={"max_practice_attempts": 2}
    )
    easy = make_unit()
    fixture.study.catch_units.set([easy])
    client.force_login(owner)
    path = tmp_path / "design.json"
    path.write_text(json.dumps(exported(client, fixture.study)))

    call_command("import_study_design", str(path), owner="owner", slug="replication")

    copy = Study.objects.get(slug="replication")
    assert copy.state == Study.State.DRAFT and copy.owner == owner
    assert copy.exclusion_rules == {"max_practice_attempts": 2}
    assert copy.pilot_token != fixture.study.pilot_token
    assert trial_shapes(copy) == trial_shapes(fixture.study)
    assert copy.practice_trials.get().queries == fixture.study.practice_trials.get().queries
    assert [unit_shape(unit) for unit in copy.catch_units.all()] == [unit_shape(easy)]
    practice = copy.practice_trials.get().pk  # the lists' practice blocks name the copy's trial
    assert [t.practice_blocks for t in copy.task_lists.order_by("index")] == [
        [{"before": 0, "condition": "natural", "trials": [practice]}]
    ] * 2


def test_a_design_whose_images_are_missing_is_refused_with_their_hashes(
    client: Client, owner: User, tmp_path: Path
) -> None:
    fixture = make_study(owner)
    client.force_login(owner)
    document = exported(client, fixture.study)
    document["images"].append({"sha256": "f" * 64, "kind": "natural", "width": 1, "height": 1})
    path = tmp_path / "design.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="f" * 64):
        call_command("import_study_design", str(path), owner="owner", slug="elsewhere")
    assert not Study.objects.filter(slug="elsewhere").exists()


def test_the_admin_upload_imports_a_design_and_refuses_a_foreign_file(
    client: Client, owner: User
) -> None:
    fixture = make_study(owner)
    client.force_login(owner)
    document = json.dumps(exported(client, fixture.study)).encode()
    url = "/admin/studies/import-design/"
    upload = io.BytesIO(document)
    upload.name = "design.json"
    response = client.post(url, {"design": upload, "slug": "uploaded"})
    assert response.status_code == 302
    assert Study.objects.get(slug="uploaded").task_lists.count() == 1
    foreign = io.BytesIO(b'{"hello": 1}')
    foreign.name = "other.json"
    refused = client.post(url, {"design": foreign, "slug": "nope"})
    assert refused.status_code == 400 and b"not a PsyLens study design" in refused.content
    assert not Study.objects.filter(slug="nope").exists()


def test_a_design_whose_practice_blocks_name_a_missing_practice_trial_is_refused(
    client: Client, owner: User, tmp_path: Path
) -> None:
    fixture = make_study(owner, n_practice=1)
    client.force_login(owner)
    document = exported(client, fixture.study)
    document["task_lists"][0]["practice_blocks"][0]["trials"] = [0, 5]
    path = tmp_path / "design.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="name practice trial 5, which the design does not have"):
        call_command("import_study_design", str(path), owner="owner", slug="broken")
    assert not Study.objects.filter(slug="broken").exists()
