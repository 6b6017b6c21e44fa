"""The atlas's job kinds, registered with their planners in the one registry of job kinds
(`backend/stimuli/jobkinds.py`; the web side plans and sends them by task name). Their work on
the workers is in `backend/atlas/work.py`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from backend.stimuli import jobkinds
from backend.stimuli.jobkinds import JobKind, ShardPlan, register
from backend.stimuli.models import UnitSet

# --- Activation measures (#15) -----------------------------------------------------------------

COMPUTE_ACTIVITY = "compute_activity"
# The measures of worker/analyses/activity.py (MEASURES); kept here so the web side, which
# never imports worker code, can refuse an unknown one before anything is queued.
ACTIVITY_MEASURES = (
    "mean",
    "sd",
    "max",
    "fraction_active",
    "lifetime_sparsity",
    "kurtosis",
    "csi",
)
CLASS_SOURCES = ("auto", "labels", "network")


def plan_activity(params: dict[str, Any]) -> list[ShardPlan]:
    """Ranges of images; each shard keeps the mergeable sums, the merge writes the Measures."""
    activity_unit_sets(params)
    unknown = [m for m in params.get("measures", ACTIVITY_MEASURES) if m not in ACTIVITY_MEASURES]
    if unknown or not params.get("measures", ACTIVITY_MEASURES):
        raise ValidationError(
            f"unknown measure(s) {', '.join(map(repr, unknown)) or '(none chosen)'}; "
            f"known: {', '.join(ACTIVITY_MEASURES)}"
        )
    if params.get("classes", "auto") not in CLASS_SOURCES:
        raise ValidationError(f"classes must be one of {', '.join(CLASS_SOURCES)}")
    plans = jobkinds.image_ranges(params.get("image_set"), params)
    if params.get("classes") == "labels":
        from backend.stimuli.models import ImageSetMember

        unlabelled = ImageSetMember.objects.filter(image_set=params["image_set"], label="")
        if unlabelled.exists():
            raise ValidationError(
                f"classes from labels: {unlabelled.count()} images of the set have no label"
            )
    return plans


def activity_unit_sets(params: dict[str, Any]) -> list[UnitSet]:
    """The unit sets a job names: existing, ready (fitted), all on one network."""
    ids = params.get("unit_sets")
    if not isinstance(ids, list) or not ids:
        raise ValidationError("name the unit sets to measure (unit_sets: a list of ids)")
    unit_sets = list(UnitSet.objects.select_related("layer").filter(pk__in=ids))
    if len(unit_sets) != len(set(ids)):
        raise ValidationError("name existing unit sets to measure")
    unready = [str(u) for u in unit_sets if not u.is_ready]
    if unready:
        raise ValidationError(f"fit these unit sets first: {', '.join(unready)}")
    if len({u.layer.network_id for u in unit_sets}) > 1:
        raise ValidationError("the unit sets of one job must be on one network")
    return unit_sets


register(JobKind(COMPUTE_ACTIVITY, "gpu", plan_activity, "compute activation measures"))
