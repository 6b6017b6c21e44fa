"""The machine observer on the web side: creating observers, planning and queueing their jobs
(MIS per unit, the machine pilot of a study, the calibration against people), and reading their
results (a pilot's predicted accuracy per condition, layer, unit set and unit, with the designs
it finds trivial or impossible). The arithmetic runs on workers (`worker/analyses/observer.py`,
through `backend/atlas/observer_work.py`); nothing here imports worker code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from backend.atlas.models import Observer, ObserverAnswer
from backend.stimuli import jobkinds, services
from backend.stimuli.jobkinds import ShardPlan, positive_int
from backend.stimuli.models import ExemplarSet, Job, Network, Unit, UnitSet
from backend.studies.models import Study, TaskList

MIS_KIND = "observer_mis"
PILOT_KIND = "observer_pilot"
CALIBRATION_KIND = "observer_calibration"

UNITS_PER_SHARD = 256  # MIS: after the embeddings, a unit is a few small matrix products
TASK_LISTS_PER_SHARD = 16  # the pilot: a few hundred trials per shard
# A design the observer finds trivial or impossible (its hard choices, which do not depend on
# α): flagged before launch when a condition has at least FLAG_MIN_TRIALS trials.
TRIVIAL_ACCURACY = 0.95
IMPOSSIBLE_ACCURACY = 0.6
FLAG_MIN_TRIALS = 10
DEFAULT_OBSERVER = {"name": "lite0-pooled", "layer": "global_pool"}


@transaction.atomic
def do_create_observer(
    name: str,
    network: Network,
    layer: str = "global_pool",
    similarity: str = Observer.Similarity.COSINE,
    alpha: float = 0.16,
    description: str = "",
) -> Observer:
    """Save an observer after checking its layer exists on its network (ValidationError)."""
    known = set(network.layers.values_list("name", flat=True))
    base = layer.partition(":")[0]
    if base not in known:
        raise ValidationError(f"{network} has no layer {base!r}")
    observer = Observer(
        name=name, network=network, layer=layer, similarity=similarity, alpha=alpha,
        description=description,
    )  # fmt: skip
    observer.full_clean()
    if not alpha > 0:
        raise ValidationError("alpha must be positive")
    observer.save()
    return observer


def default_observer(network: Network) -> Observer:
    """The built-in observer: the network's pooled penultimate features, cosine, α = 0.16."""
    existing = Observer.objects.filter(name=DEFAULT_OBSERVER["name"]).first()
    return existing or do_create_observer(
        DEFAULT_OBSERVER["name"], network, DEFAULT_OBSERVER["layer"],
        description="EfficientNet-Lite0's pooled penultimate features, cosine similarity",
    )  # fmt: skip


# --- Planners -------------------------------------------------------------------------------


def _observer(params: dict[str, Any]) -> Observer:
    value = params.get("observer")
    observer = Observer.objects.filter(pk=value).first() if isinstance(value, int) else None
    if observer is None:
        raise ValidationError(f"observer {value!r} does not exist")
    return observer


def mis_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The MIS settings of a job, checked (every shard reads the same ones)."""
    quantile = params.get("quantile", 0.25)
    if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0 < quantile <= 1:
        raise ValidationError(f"quantile must be in (0, 1] (got {quantile!r})")
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed must be a whole number (got {seed!r})")
    return {
        "k": positive_int(params, "k", 9),
        "n_tasks": positive_int(params, "n_tasks", 20),
        "quantile": float(quantile),
        "seed": seed,
    }


def plan_mis(params: dict[str, Any]) -> list[ShardPlan]:
    """Groups of units that have exemplars (weight: their count)."""
    _observer(params)
    mis_settings(params)
    ids = params.get("unit_sets") or []
    unit_sets = list(UnitSet.objects.filter(pk__in=ids))
    if not unit_sets or len(unit_sets) != len(set(ids)):
        raise ValidationError("name existing unit sets to score")
    units = list(
        Unit.objects.filter(unit_set__in=unit_sets, exemplar_sets__isnull=False)
        .distinct()
        .order_by("unit_set", "index")
        .values_list("pk", flat=True)
    )
    if not units:
        raise ValidationError("these unit sets have no exemplars yet: compute them first")
    size = positive_int(params, "units_per_shard", UNITS_PER_SHARD)
    return [
        ShardPlan({"units": units[i : i + size]}, float(len(units[i : i + size])))
        for i in range(0, len(units), size)
    ]


def plan_pilot(params: dict[str, Any]) -> list[ShardPlan]:
    """Groups of the study's task lists (weight: their trials)."""
    _observer(params)
    study = _study(params)
    lists = list(TaskList.objects.filter(study=study).order_by("index"))
    if not lists:
        raise ValidationError(f"{study.slug} has no task lists: build it first")
    size = positive_int(params, "task_lists_per_shard", TASK_LISTS_PER_SHARD)
    plans = []
    for start in range(0, len(lists), size):
        chunk = lists[start : start + size]
        trials = sum(task_list.trials.count() for task_list in chunk)
        plans.append(ShardPlan({"task_lists": [t.pk for t in chunk]}, float(max(trials, 1))))
    return plans


def plan_calibration(params: dict[str, Any]) -> list[ShardPlan]:
    """One shard: a fit over a study's responses (or an imported dataset's trials) is seconds."""
    observer = _observer(params)
    if "dataset" in params:
        dataset = _dataset(params)
        if not dataset.responses.exists():
            raise ValidationError(f"dataset {dataset} has no trials")
        return [ShardPlan({"dataset": dataset.pk})]
    study = _study(params)
    if not ObserverAnswer.objects.filter(observer=observer, trial__task_list__study=study).exists():
        raise ValidationError(f"run the machine pilot of {study.slug} with {observer} first")
    return [ShardPlan({"study": study.pk})]


def _dataset(params: dict[str, Any]) -> Any:
    from backend.analysis.models import ImportedDataset

    value = params.get("dataset")
    dataset = None
    if isinstance(value, int) and not isinstance(value, bool):
        dataset = ImportedDataset.objects.filter(pk=value).first()
    if dataset is None:
        raise ValidationError(f"imported dataset {value!r} does not exist")
    return dataset


def _study(params: dict[str, Any]) -> Study:
    value = params.get("study")
    study = Study.objects.filter(pk=value).first() if isinstance(value, int) else None
    if study is None:
        raise ValidationError(f"study {value!r} does not exist")
    return study


jobkinds.register(jobkinds.JobKind(MIS_KIND, "gpu", plan_mis, "machine observer: MIS per unit"))
jobkinds.register(
    jobkinds.JobKind(PILOT_KIND, "gpu", plan_pilot, "machine observer: pilot of a study")
)
jobkinds.register(
    jobkinds.JobKind(CALIBRATION_KIND, "default", plan_calibration, "machine observer: calibration")
)


# --- Queueing -------------------------------------------------------------------------------


def do_queue_mis(
    observer: Observer, unit_sets: Iterable[UnitSet], user: Any = None, send: bool = True,
    **settings: Any,
) -> Job:  # fmt: skip
    params = {"observer": observer.pk, "unit_sets": [u.pk for u in unit_sets], **settings}
    return services.do_queue_job(MIS_KIND, params, user, send)


def do_queue_pilot(
    observer: Observer, study: Study, user: Any = None, send: bool = True, **settings: Any
) -> Job:
    params = {"observer": observer.pk, "study": study.pk, **settings}
    return services.do_queue_job(PILOT_KIND, params, user, send)


def do_queue_calibration(
    observer: Observer, study: Study | None = None, user: Any = None, send: bool = True,
    dataset: Any = None,
) -> Job:  # fmt: skip
    """Calibrate against a study's human data, or an imported dataset's (`dataset`)."""
    params: dict[str, Any] = {"observer": observer.pk}
    if dataset is not None:
        params["dataset"] = dataset.pk
    else:
        params["study"] = study.pk if study is not None else None
    return services.do_queue_job(CALIBRATION_KIND, params, user, send)


# --- Reading a pilot ------------------------------------------------------------------------


def pilot_summary(observer: Observer, study: Study) -> dict[str, Any]:
    """The machine pilot's predicted accuracy (mean probability correct, and the hard choices'
    accuracy) per condition, layer, unit set and unit, catch trials apart, with flags."""
    answers = list(
        ObserverAnswer.objects.filter(observer=observer, trial__task_list__study=study)
        .select_related("trial__condition", "trial__unit__unit_set__layer")
        .order_by("trial__task_list__index", "trial__index")
    )
    groups: dict[str, dict[str, list[ObserverAnswer]]] = defaultdict(lambda: defaultdict(list))
    for answer in answers:
        trial = answer.trial
        if trial.is_catch:
            groups["catch"]["catch"].append(answer)
            continue
        groups["condition"][trial.condition.name].append(answer)
        groups["layer"][trial.unit.unit_set.layer.name].append(answer)
        groups["unit_set"][trial.unit.unit_set.name].append(answer)
        groups["basis"][trial.unit.unit_set.kind].append(answer)
        groups["unit"][f"{trial.unit.unit_set.name}:{trial.unit.index}"].append(answer)
    summary = {
        kind: {name: accuracy(members) for name, members in sorted(by_name.items())}
        for kind, by_name in groups.items()
    }
    return {
        "observer": observer.name,
        "alpha": observer.alpha,
        "trials": len(answers),
        **{kind: summary.get(kind, {}) for kind in GROUPINGS},
        "catch": summary.get("catch", {}).get("catch"),
        "flags": design_flags(summary.get("condition", {})),
    }


GROUPINGS = ("condition", "layer", "basis", "unit_set", "unit")  # a pilot summary's tables


def accuracy(answers: list[ObserverAnswer]) -> dict[str, Any]:
    predicted = [a.p_correct for a in answers]
    hard = [0.5 if a.choice is None else float(a.choice == a.trial.correct_query) for a in answers]
    return {
        "trials": len(answers),
        "predicted_accuracy": sum(predicted) / len(predicted),
        "hard_accuracy": sum(hard) / len(hard),
    }


def design_flags(conditions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose trials the observer finds trivial (≈ 100 %) or impossible (≈ 50 %)."""
    flags = []
    for name, cell in conditions.items():
        if cell["trials"] < FLAG_MIN_TRIALS:
            continue
        if cell["hard_accuracy"] >= TRIVIAL_ACCURACY:
            flags.append({"condition": name, "flag": "trivial", **cell})
        elif cell["hard_accuracy"] <= IMPOSSIBLE_ACCURACY:
            flags.append({"condition": name, "flag": "impossible", **cell})
    return flags


PILOT_COLUMNS = (
    "study", "task_list", "trial_index", "condition", "unit_set", "layer", "basis", "unit",
    "is_catch", "correct_query", "observer", "alpha", "p_first", "choice", "gap", "p_correct",
    "hard_correct",
)  # fmt: skip


def pilot_rows(observer: Observer, study: Study) -> Iterable[list[Any]]:
    """The machine pilot, one row per trial in task-list order (`PILOT_COLUMNS`;
    docs/data-dictionary.md, "Machine observer")."""
    answers = (
        ObserverAnswer.objects.filter(observer=observer, trial__task_list__study=study)
        .select_related("trial__condition", "trial__unit__unit_set__layer", "trial__task_list")
        .order_by("trial__task_list__index", "trial__index")
    )
    for answer in answers.iterator(chunk_size=2000):
        trial = answer.trial
        unit_set = trial.unit.unit_set
        hard = "" if answer.choice is None else int(answer.choice == trial.correct_query)
        yield [
            study.slug, trial.task_list.index, trial.index, trial.condition.name, unit_set.name,
            unit_set.layer.name, unit_set.kind, trial.unit.index, int(trial.is_catch),
            trial.correct_query, observer.name, observer.alpha, answer.p_first,
            "" if answer.choice is None else answer.choice, answer.gap, answer.p_correct, hard,
        ]  # fmt: skip


def observer_mis(observer: Observer, unit_set: UnitSet) -> dict[int, float | None]:
    """The unit set's MIS under the observer, by unit index (the Measure rows)."""
    from backend.atlas.models import Measure

    rows = Measure.objects.filter(name=observer.measure_name, unit__unit_set=unit_set)
    return dict(rows.values_list("unit__index", "value"))


def has_exemplars(unit_set: UnitSet) -> bool:
    return ExemplarSet.objects.filter(unit__unit_set=unit_set).exists()
