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


# --- Ablations (#15) ---------------------------------------------------------------------------

COMPUTE_ABLATION = "compute_ablation"
ABLATION_MODES = ("zero", "mean")
# Single-unit ablations per shard: each shard reads every image once and runs the rest of the
# network for all its units at once.
UNITS_PER_SHARD = 32


def plan_ablation(params: dict[str, Any]) -> list[ShardPlan]:
    """Groups of `units_per_shard` units of one unit set; each shard writes its units' rows."""
    from backend.atlas.models import Measure
    from backend.stimuli.models import ImageSet

    (unit_set,) = activity_unit_sets({"unit_sets": [params.get("unit_set")]})
    image_set = jobkinds._row(ImageSet, params, "image_set")
    if not image_set.members.exists():
        raise ValidationError(f"image set {image_set} has no images: import some first")
    mode = params.get("mode", "zero")
    if mode not in ABLATION_MODES:
        raise ValidationError(f"mode must be one of {', '.join(ABLATION_MODES)} (got {mode!r})")
    if params.get("classes", "auto") not in CLASS_SOURCES:
        raise ValidationError(f"classes must be one of {', '.join(CLASS_SOURCES)}")
    indices = sorted(unit_set.units.values_list("index", flat=True))
    if mode == "mean":
        if unit_set.kind not in (UnitSet.Kind.CHANNELS, UnitSet.Kind.NEURONS):
            raise ValidationError(
                "mean-ablation is for channels and neurons; directions are removed"
            )
        known = Measure.objects.filter(unit__unit_set=unit_set, image_set=image_set, name="mean")
        if known.count() < len(indices):
            raise ValidationError(
                f"mean-ablation needs the units' means on {image_set}: compute activation "
                "measures first"
            )
    size = jobkinds.positive_int(params, "units_per_shard", UNITS_PER_SHARD)
    return [
        ShardPlan({"units": chunk}, float(len(chunk))) for chunk in jobkinds._chunks(indices, size)
    ]


register(JobKind(COMPUTE_ABLATION, "gpu", plan_ablation, "compute ablations"))


# --- Group ablations: cumulative curves (#15) ------------------------------------------------

COMPUTE_ABLATION_CURVES = "compute_ablation_curves"
RANDOM_RANKING = "random"


def plan_ablation_curves(params: dict[str, Any]) -> list[ShardPlan]:
    """One shard per ranking measure, one for the size-matched random groups."""
    from backend.atlas.models import Measure

    (unit_set,) = activity_unit_sets({"unit_sets": [params.get("unit_set")]})
    plan_ablation({**params, "mode": params.get("mode", "zero"), "units_per_shard": 1})
    n_units = unit_set.units.count()
    ks = params.get("ks") or doubling(n_units)
    if not isinstance(ks, list) or not all(isinstance(k, int) and 1 <= k <= n_units for k in ks):
        raise ValidationError(f"ks must be whole numbers from 1 to the unit set's {n_units} units")
    rank_by = params.get("rank_by")
    if not isinstance(rank_by, list) or not rank_by:
        raise ValidationError("rank_by: name the measures to rank the units by, e.g. ['mean']")
    for name in rank_by:
        found = Measure.objects.filter(
            unit__unit_set=unit_set, image_set=params["image_set"], name=name
        ).count()
        if found < n_units:
            raise ValidationError(
                f"unknown or uncomputed measure {name!r} on {unit_set} for this image set "
                f"({found} of {n_units} units have it)"
            )
    jobkinds.positive_int(params, "repeats", 3)
    weight = float(len(ks))
    return [ShardPlan({"ranking": name}, weight) for name in rank_by] + [
        ShardPlan({"ranking": RANDOM_RANKING}, weight * int(params.get("repeats", 3)))
    ]


def doubling(n_units: int) -> list[int]:
    """k = 1, 2, 4, … below n_units, then n_units (worker/analyses/ablation.doubling_ks)."""
    ks, k = [], 1
    while k < n_units:
        ks.append(k)
        k *= 2
    return [*ks, n_units]


register(
    JobKind(COMPUTE_ABLATION_CURVES, "gpu", plan_ablation_curves, "compute group ablation curves")
)


# --- Populations (#15) -----------------------------------------------------------------------

COMPUTE_POPULATIONS = "compute_populations"
POPULATION_BASES = ("activity", "ablation")


def plan_populations(params: dict[str, Any]) -> list[ShardPlan]:
    """Activity: ranges of images streaming the units' correlation; ablation: one shard that
    reads the stored class profiles (compute ablations first)."""
    from backend.atlas.models import Measure

    (unit_set,) = activity_unit_sets({"unit_sets": [params.get("unit_set")]})
    basis = params.get("basis", "activity")
    if basis not in POPULATION_BASES:
        raise ValidationError(f"basis must be one of {', '.join(POPULATION_BASES)}")
    threshold = params.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 2
    ):  # fmt: skip
        raise ValidationError("threshold must be a distance 1 - r between 0 and 2 (or absent)")
    jobkinds.positive_int(params, "max_populations", 20)
    n_units = unit_set.units.count()
    if n_units < 3:
        raise ValidationError(f"{unit_set} has {n_units} units: clustering needs at least three")
    if basis == "activity":
        return jobkinds.image_ranges(params.get("image_set"), params)
    profiles = Measure.objects.filter(
        unit__unit_set=unit_set, image_set=params.get("image_set"), name="ablation_accuracy_drop"
    ).count()
    if profiles < n_units:
        raise ValidationError(
            f"populations by ablation need every unit's ablation profile ({profiles} of "
            f"{n_units}): compute ablations first"
        )
    return [ShardPlan({"profiles": unit_set.pk})]


register(JobKind(COMPUTE_POPULATIONS, "gpu", plan_populations, "find populations"))

from backend.atlas import spectra  # noqa: E402

# Spectra (issue 16): covariance eigenspectra and random projections per layer and basis.
register(JobKind(spectra.KIND, "gpu", spectra.plan_spectra, "compute spectra"))

# The machine observer: MIS per unit, the machine pilot of a study, calibration (docs/observer.md),
# and descriptions (#18): soft-WPMI over a probe image set, sharded by image ranges.
from backend.atlas import descriptions as _descriptions  # noqa: E402
from backend.atlas import observers  # noqa: E402, F401 - registers its three kinds

register(JobKind(_descriptions.KIND, "gpu", _descriptions.plan_describe, "describe units"))


# LWTA networks (#19): fine-tuning by distillation, one resumable shard.
from backend.atlas import lwta  # noqa: E402

register(JobKind(lwta.KIND, "gpu", lwta.plan_lwta, "fine-tune an LWTA network"))


# The confound report (#20): a unit's bands over an image set, sharded by image ranges.
from backend.atlas import confounds  # noqa: E402

register(JobKind(confounds.KIND, "gpu", confounds.plan_confound_report, "confound report"))


# Last-layer retraining (#20): deep feature reweighting on a curated set, one shard.
from backend.atlas import retrain  # noqa: E402

register(JobKind(retrain.KIND, "gpu", retrain.plan_retrain, "retrain a network's last layer"))
