"""The demo study as `make demo` seeds it (the real worker, the built-in photos): it builds, its
exemplars keep one crop per photo, and no trial of any task list shows a query's photo among
its references."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, OutputWrapper

from backend.stimuli.demo import seed_stimuli
from backend.stimuli.models import ExemplarSet, ImageSetMember
from backend.studies.demo import SLUG, seed_study
from backend.studies.models import Study, Trial

# The real demo: import, an SAE fit, three exemplar passes, a few visualizations (minutes).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(1800)]


def test_the_demo_study_shows_no_query_photo_among_its_references(
    celery_worker: Any, django_user_model: type[User]
) -> None:
    django_user_model.objects.create_superuser("admin", password="demo-pass-1")
    command = BaseCommand(stdout=io.StringIO())
    command.stdout = OutputWrapper(io.StringIO())
    seed_stimuli(command)
    seed_study(command)
    study = Study.objects.get(slug=SLUG)
    assert study.state == Study.State.LIVE

    source = dict(ImageSetMember.objects.values_list("image_id", "source"))
    assert len(set(source.values())) == 42  # every photo that ships offline
    for exemplar_set in ExemplarSet.objects.all():
        assert exemplar_set.distinct_sources
        photos = [source[e["image"]] for e in exemplar_set.top]
        assert len(photos) == len(set(photos))
    trials = Trial.objects.filter(task_list__study=study, is_catch=False)
    assert trials.count() >= study.task_lists.count() * 40
    for trial in trials:
        shown = {source[i] for i in trial.references_max + trial.references_min}
        queries = {source[q] for q in trial.queries}
        assert not shown & queries, f"{trial}: a query's photo among its references"
