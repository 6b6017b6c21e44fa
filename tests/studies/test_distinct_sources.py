"""The trial builder never shows a query's source photo among the trial's references (crops and
flips of one photo share a source); a design the exemplars' photos cannot satisfy is refused
with the number of distinct photos it needs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.stimuli.models import ImageSetMember, UnitSet
from backend.studies import services
from backend.studies.models import Trial
from tests.studies import factories

pytestmark = pytest.mark.django_db


def name_sources(units: UnitSet, photos: int) -> dict[int, str]:
    """Every natural image of the units' exemplars is a crop of one of `photos` photos."""
    image_set = factories.natural_image_set()
    images = sorted({e["image"] for u in units.units.all() for es in u.exemplar_sets.all()
                     for e in es.top + es.bottom})  # fmt: skip
    sources = {image: f"photo{i % photos}" for i, image in enumerate(images)}
    ImageSetMember.objects.bulk_create(
        ImageSetMember(image_set=image_set, image_id=image, position=i, source=source)
        for i, (image, source) in enumerate(sources.items())
    )
    return sources


def test_no_reference_shows_a_querys_photo(owner: User) -> None:
    units = factories.stimulated_unit_set(44)
    sources = name_sources(units, photos=25)  # top and bottom lists share photos everywhere
    study = factories.study(owner, "imi2023", units)
    services.do_build_task_lists(study)
    checked = 0
    for trial in Trial.objects.filter(task_list__study=study, is_catch=False):
        shown = {sources[i] for i in trial.references_max + trial.references_min}
        queries = {sources.get(q, f"own:{q}") for q in trial.queries}
        assert not shown & queries, f"trial {trial.pk}: a query's photo among its references"
        assert len(trial.references_max) == 9 and len(trial.references_min) == 9
        checked += 1
    assert checked > 100


def test_too_few_distinct_photos_are_refused_with_the_number_needed(owner: User) -> None:
    units = factories.stimulated_unit_set(44)
    name_sources(units, photos=8)
    study = factories.study(owner, "imi2023", units)
    with pytest.raises(services.BuildRefused) as refused:
        services.do_build_task_lists(study)
    message = refused.value.message
    assert "too few distinct source photos" in message
    assert "A unit needs 11 distinct source photos" in message and "has 8" in message
    assert not Trial.objects.exists()
