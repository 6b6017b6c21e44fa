"""The results cache is keyed so that a study never gets another's cached results: ids repeat
after a database reset (the demo's, the tests'), so the key carries the study's creation time
beside its id and its latest response. Seen in a CI run whose Redis still held an earlier run's
results under the same study id and response id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from backend.analysis import dashboard
from backend.studies.models import Study
from tests.studies import factories

pytestmark = pytest.mark.django_db


def test_a_study_made_again_under_the_same_id_is_not_served_the_old_results(
    owner: User,
) -> None:
    study = factories.study(owner, "zimmermann2021", slug="again")
    old_version = dashboard.results_version(study)
    assert dashboard.study_results(study, old_version).analysed_trials == 0  # now cached
    assert dashboard.results_version(Study.objects.get(pk=study.pk)) == old_version  # stable
    # The same id, no responses, as after a reset: only the creation time tells them apart.
    study.created_at += timedelta(seconds=1)
    assert dashboard.results_version(study) != old_version
