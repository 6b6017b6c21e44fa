"""Every write of the atlas, each in one transaction: queueing its jobs and storing the rows
their merge steps computed. Views and admin actions call these; nothing else writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from backend.atlas import jobkinds
from backend.atlas.models import AblationCurve, Measure, Population
from backend.stimuli import services as stimuli_services
from backend.stimuli.jobs import JobFailed, ShardOutput
from backend.stimuli.models import ImageSet, ImageSetMember, Job, Network, Unit, UnitSet


def do_queue_activity_job(
    unit_sets: list[UnitSet],
    image_set: ImageSet,
    user: Any = None,
    classes: str = "auto",
    send: bool = True,
    **params: Any,
) -> Job:
    """One streaming pass over `image_set` for all `unit_sets` (one network). Raises
    ValidationError, queueing nothing, for parameters that cannot run."""
    return stimuli_services.do_queue_job(
        jobkinds.COMPUTE_ACTIVITY,
        {"unit_sets": [u.pk for u in unit_sets], "image_set": image_set.pk, "classes": classes,
         **params},
        user,
        send,
    )  # fmt: skip


def class_source(image_set: ImageSet, classes: str) -> tuple[dict[int, int] | None, list[str]]:
    """(image id → class index, class names) from the set's labels, or (None, []) when the
    classes are the network's own top-1 (`classes` "network", or "auto" on a set whose images
    are not all labelled)."""
    members = ImageSetMember.objects.filter(image_set=image_set)
    labelled = not members.filter(label="").exists() and members.exists()
    if classes == "network" or (classes == "auto" and not labelled):
        return None, []
    names = sorted(set(members.values_list("label", flat=True)))
    index = {name: i for i, name in enumerate(names)}
    return {m.image_id: index[m.label] for m in members.only("image_id", "label")}, names


@transaction.atomic
def do_save_measures(
    unit_set: UnitSet,
    image_set: ImageSet,
    values: dict[str, dict[int, float | None]],
    details: dict[str, dict[int, dict[str, Any]]],
    job: Job | None,
) -> int:
    """Store one Measure per unit and name (replacing an earlier value of the same unit, image
    set and name). `values[name][i]` is unit index i's value (None: undefined); units not
    named keep their rows."""
    units = {u.index: u for u in Unit.objects.filter(unit_set=unit_set)}
    now = timezone.now()
    rows = [
        Measure(unit=units[index], image_set=image_set, name=name, value=value,
                details=details.get(name, {}).get(index, {}), job=job, computed_at=now)
        for name, column in values.items()
        for index, value in column.items()
        if index in units
    ]  # fmt: skip
    Measure.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["unit", "image_set", "name"],
        update_fields=["value", "details", "job", "computed_at"],
    )
    return len(rows)


def do_queue_ablation_job(
    unit_set: UnitSet, image_set: ImageSet, user: Any = None, mode: str = "zero",
    send: bool = True, **params: Any,
) -> Job:  # fmt: skip
    """Every unit of `unit_set` ablated alone over `image_set`, cut into groups of units.
    Raises ValidationError, queueing nothing, for parameters that cannot run."""
    return stimuli_services.do_queue_job(
        jobkinds.COMPUTE_ABLATION,
        {"unit_set": unit_set.pk, "image_set": image_set.pk, "mode": mode, **params},
        user,
        send,
    )


@transaction.atomic
def do_save_ablation_curves(
    unit_set_id: int, image_set_id: int, curves: dict[str, dict[str, Any]], job: Job | None
) -> None:
    """One AblationCurve per ranking measure (replacing an earlier one)."""
    for ranked_by, curve in curves.items():
        AblationCurve.objects.update_or_create(
            unit_set_id=unit_set_id, image_set_id=image_set_id, ranked_by=ranked_by,
            defaults={**curve, "job": job},
        )  # fmt: skip


def do_queue_ablation_curves_job(
    unit_set: UnitSet, image_set: ImageSet, rank_by: list[str], user: Any = None,
    send: bool = True, **params: Any,
) -> Job:  # fmt: skip
    """Cumulative group ablations ranked by each of `rank_by`, against random groups."""
    return stimuli_services.do_queue_job(
        jobkinds.COMPUTE_ABLATION_CURVES,
        {"unit_set": unit_set.pk, "image_set": image_set.pk, "rank_by": rank_by, **params},
        user,
        send,
    )


@transaction.atomic
def do_save_populations(
    unit_set: UnitSet, image_set: ImageSet, basis: str, members: list[list[int]],
    details: dict[str, Any], job: Job | None,
) -> list[Population]:  # fmt: skip
    """Replace the unit set's populations of this basis and image set by `members`."""
    Population.objects.filter(unit_set=unit_set, image_set=image_set, basis=basis).delete()
    return Population.objects.bulk_create(
        Population(unit_set=unit_set, image_set=image_set, basis=basis, index=i,
                   members=group, details=details, job=job)
        for i, group in enumerate(members)
    )  # fmt: skip


def do_queue_populations_job(
    unit_set: UnitSet, image_set: ImageSet, basis: str = "activity", user: Any = None,
    send: bool = True, **params: Any,
) -> Job:  # fmt: skip
    """Cluster the unit set's units by `basis` (activity or ablation profiles)."""
    return stimuli_services.do_queue_job(
        jobkinds.COMPUTE_POPULATIONS,
        {"unit_set": unit_set.pk, "image_set": image_set.pk, "basis": basis, **params},
        user,
        send,
    )


@transaction.atomic
def do_create_population_unit_set(
    unit_set: UnitSet, image_set: ImageSet, basis: str = "activity", name: str = ""
) -> UnitSet:
    """A unit set of kind `population` on the same layer: unit p is population p of
    `unit_set` (by `basis` on `image_set`), the equal-weight mean of its members."""
    from django.core.exceptions import ValidationError

    populations = list(
        Population.objects.filter(unit_set=unit_set, image_set=image_set, basis=basis)
    )
    if not populations:
        raise ValidationError(f"{unit_set} has no {basis} populations on {image_set}: find them")
    population_set = UnitSet(
        name=name or f"{unit_set.name}-populations-{basis}"[:80], layer=unit_set.layer,
        kind=UnitSet.Kind.POPULATION, point=unit_set.point, n_units=len(populations),
        image_set=image_set, owner=unit_set.owner,  # it is the source unit set's owner's
        params={"source_unit_set": unit_set.pk, "basis": basis, "image_set": image_set.pk,
                "members": [p.members for p in populations]},
    )  # fmt: skip
    population_set.full_clean(exclude=["state_file"])
    population_set.save()
    stimuli_services.do_ensure_units(population_set, len(populations))
    return population_set


def derived_network_output(
    job: Job,
    source: str,
    description: str,
    make_row: Callable[[Network], Any],
    summary: dict[str, Any],
    what: str,
) -> ShardOutput:
    """The merge of a job that derives a network from `job.params["base"]` (an LWTA version, a
    refitted last layer): `source` inspected on this worker (one that does not load fails the
    job: "`what` does not load: …"), then, in the merge's save, the Network named
    `job.params["name"]` (owned by whoever queued the job) with its layers and its own row
    (`make_row(network)`), in one transaction."""
    try:
        preprocess, layers = stimuli_services.inspect_network(source)
    except ValidationError as err:
        raise JobFailed(f"{what} does not load: {err.messages[0]}") from None
    name = job.params["name"]

    def save() -> None:
        with transaction.atomic():
            network = Network(
                name=name, source=source, description=description, owner=job.created_by
            )
            make_row(stimuli_services.do_save_network(network, preprocess, layers))

    return ShardOutput({"network": name, "source": source, **summary}, save=save)
