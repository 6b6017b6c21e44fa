"""The dense-vs-sparse preset: the IMI trial over channels of a network and of its LWTA version."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.studies import services
from backend.studies.models import Trial
from tests.studies import factories

pytestmark = pytest.mark.django_db


def test_the_dense_vs_sparse_preset_builds_imi_trials_over_both_networks(owner: User) -> None:
    dense = factories.stimulated_unit_set(22, "dense-channels", network="dense")
    sparse = factories.stimulated_unit_set(22, "sparse-channels", network="dense-lwta")
    study = factories.study(owner, "discover2023-dense-vs-sparse", dense)
    services.do_set_relations(study, unit_sets=[dense, sparse])
    report = services.do_build_task_lists(study)
    assert report["catch_trials_per_list"] == 5
    study.refresh_from_db()
    assert study.lockout_ms == 1500 and study.exclusion_rules["min_catch_accuracy"] == 0.8
    assert [c.explanation for c in study.conditions.all()] == ["natural"]
    main = Trial.objects.filter(task_list__study=study, is_catch=False)
    networks = set(main.values_list("unit__unit_set__layer__network__name", flat=True))
    assert networks == {"dense", "dense-lwta"}
