"""The machine observer's work on a worker: per shard, embed the images not embedded yet under
the observer (once per image, kept), then answer tasks with matrix products
(`worker/analyses/observer.py`); the shard's save writes the new embeddings and its rows (MIS
Measures, ObserverAnswers) in the transaction that ends it.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction

from backend.atlas import observers
from backend.atlas.models import Measure, Observer, ObserverAnswer, ObserverEmbedding
from backend.stimuli.jobs import JobFailed, KindWork, ProgressReporter, ShardOutput
from backend.stimuli.models import ExemplarSet, Image, Job, Shard
from backend.stimuli.work import batch_size_for, load_network
from backend.studies.models import Trial

MAX_GRAM_IMAGES = 8192  # a shard's similarity matrix: at most 256 MiB of float32


def observer_config(observer: Observer) -> Any:
    from worker.analyses import observer as analysis

    try:
        return analysis.ObserverConfig(alpha=observer.alpha, similarity=observer.similarity)
    except analysis.ObserverError as err:
        raise JobFailed(f"{observer}: {err}") from None


class Embeddings:
    """The observer's embeddings of some images: the kept ones, and those this shard adds
    (`new_rows`, saved with the shard)."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.vectors: dict[int, Any] = {}
        self.new_rows: list[ObserverEmbedding] = []
        self.skipped: list[int] = []
        self.embedded = 0

    def ensure(self, image_ids: set[int], job: Job, progress: ProgressReporter) -> None:
        import numpy as np
        import torch

        wanted = image_ids - set(self.vectors)
        kept = ObserverEmbedding.objects.filter(observer=self.observer, image_id__in=wanted)
        for row in kept.only("image_id", "vector"):
            self.vectors[row.image_id] = torch.from_numpy(
                np.frombuffer(bytes(row.vector), dtype="<f4").copy()
            )
        missing = sorted(wanted - set(self.vectors))
        if missing:
            self._embed(missing, job, progress)

    def _embed(self, image_ids: list[int], job: Job, progress: ProgressReporter) -> None:
        from worker.analyses import observer as analysis
        from worker.pipelines import exemplars, loading, networks

        network = load_network(self.observer.network)
        files = dict(Image.objects.filter(pk__in=image_ids).values_list("pk", "file"))
        refs = [
            loading.ImageRef(image_id=i, path=default_storage.path(files[i])) for i in image_ids
        ]

        def run(batch_size: int) -> Any:
            batches = loading.image_batches(refs, network.preprocess, batch_size)
            return analysis.embed(network, self.observer.layer, batches, progress, len(refs))

        try:
            ids, skipped, vectors = exemplars.oom_fallback(run, batch_size_for(job))
        except (networks.NetworkError, analysis.ObserverError) as err:
            raise JobFailed(f"{self.observer}: {err}") from None
        self.skipped.extend(skipped)
        self.embedded += len(ids)
        for image_id, vector in zip(ids, vectors, strict=True):
            self.vectors[image_id] = vector
            data = vector.numpy().astype("<f4").tobytes()
            self.new_rows.append(
                ObserverEmbedding(
                    observer=self.observer, image_id=image_id, vector=data, dim=len(vector)
                )
            )

    def stack(self, image_ids: list[int], similarity: str) -> Any:
        """`[len(ids), dim]` of the embedded ones among `image_ids` (prepared), in order."""
        import torch

        from worker.analyses import observer as analysis

        rows = [self.vectors[i] for i in image_ids if i in self.vectors]
        if not rows:
            return torch.empty(0, self._dim())
        return analysis.prepared(torch.stack(rows), similarity)

    def gram(self, image_ids: list[int], similarity: str) -> tuple[Any, dict[int, int]]:
        """The similarity of every pair of the embedded ones among `image_ids` (one matrix
        product) and each image's row."""
        from worker.analyses import observer as analysis

        rows = [i for i in image_ids if i in self.vectors]
        return analysis.gram(self.stack(rows, similarity), similarity), {
            image: row for row, image in enumerate(rows)
        }

    def _dim(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0

    def save(self) -> None:
        ObserverEmbedding.objects.bulk_create(self.new_rows, ignore_conflicts=True)


# --- MIS per unit ---------------------------------------------------------------------------


def mis_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """MIS of the shard's units, each from its exemplar set's top and bottom pools: one
    similarity matrix over the shard's distinct pool images, then indexing per unit."""
    import torch

    from worker.analyses import observer as analysis

    observer = Observer.objects.select_related("network").get(pk=job.params["observer"])
    config = observer_config(observer)
    settings = observers.mis_settings(job.params)
    mis_config = analysis.MisConfig(
        k=settings["k"], n_tasks=settings["n_tasks"], quantile=settings["quantile"]
    )
    exemplar_sets = list(
        ExemplarSet.objects.filter(unit_id__in=shard.covers["units"])
        .select_related("unit__unit_set", "image_set")
        .order_by("unit__unit_set", "unit__index", "pk")
    )
    sizes: dict[tuple[int, bool], int] = {}  # (image set, one per photo) -> n
    for e in exemplar_sets:
        key = (e.image_set_id, e.distinct_sources)
        if key not in sizes:
            sizes[key] = pool_base(e)
    pools = {
        e.pk: unit_pools(e, mis_config, sizes[(e.image_set_id, e.distinct_sources)])
        for e in exemplar_sets
    }
    embeddings = Embeddings(observer)
    needed = {i for top, bottom, _ in pools.values() for i in top + bottom}
    embeddings.ensure(needed, job, progress)
    # One matrix over the shard's distinct images while it fits (n² floats); beyond, per unit.
    small = len(needed) <= MAX_GRAM_IMAGES
    sims, rows = embeddings.gram(sorted(needed), config.similarity) if small else (None, {})
    results: list[tuple[ExemplarSet, float | None, dict[str, Any]]] = []
    for done, exemplar_set in enumerate(exemplar_sets):
        top_ids, bottom_ids, pool = pools[exemplar_set.pk]
        top = torch.tensor([rows[i] for i in top_ids if i in rows], dtype=torch.long)
        bottom = torch.tensor([rows[i] for i in bottom_ids if i in rows], dtype=torch.long)
        seed = analysis.unit_seed(settings["seed"], f"{exemplar_set.unit_id}")
        details = {
            "observer": observer.name, "alpha": observer.alpha, **settings, "pool": pool,
            "pool_top": len(top), "pool_bottom": len(bottom),
        }  # fmt: skip
        try:
            if sims is not None:
                result = analysis.unit_mis_from_gram(sims, top, bottom, mis_config, config, seed)
            else:
                top_e = embeddings.stack(top_ids, config.similarity)
                bottom_e = embeddings.stack(bottom_ids, config.similarity)
                details |= {"pool_top": len(top_e), "pool_bottom": len(bottom_e)}
                result = analysis.unit_mis(top_e, bottom_e, mis_config, config, seed)
        except analysis.ObserverError as err:
            results.append((exemplar_set, None, {**details, "undefined": str(err)}))
            continue
        details |= {"hard_accuracy": result.hard_accuracy, "probabilities": result.probabilities}
        results.append((exemplar_set, result.mis, details))
        progress(
            (done + 1) / len(exemplar_sets), f"MIS of {done + 1} of {len(exemplar_sets)} units"
        )

    def save() -> None:
        embeddings.save()
        rows = [
            Measure(unit_id=e.unit_id, image_set_id=e.image_set_id, name=observer.measure_name,
                    value=value, details=details, job=job)
            for e, value, details in results
        ]  # fmt: skip
        Measure.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["unit", "image_set", "name"],
            update_fields=["value", "details", "job", "computed_at"],
        )  # fmt: skip

    scored = [r for r in results if r[1] is not None]
    return ShardOutput(
        {"units": len(scored), "undefined": len(results) - len(scored),
         "embedded": embeddings.embedded, "skipped_images": embeddings.skipped},
        save=save,
    )  # fmt: skip


def pool_base(exemplar_set: ExemplarSet) -> int:
    """The n of ⌈quantile · n⌉: the set's images, or its distinct source photos where the
    exemplars keep one image per photo (their lists then rank photos, not crops)."""
    members = exemplar_set.image_set.members
    if not exemplar_set.distinct_sources:
        return int(members.count())
    photos = members.exclude(source="").values("source").distinct().count()
    return int(photos + members.filter(source="").count())


def unit_pools(
    exemplar_set: ExemplarSet, config: Any, n_images: int
) -> tuple[list[int], list[int], int]:
    """The unit's top and bottom pools (image ids, most extreme first): ⌈quantile · n⌉ images
    of the set's n, or the exemplar set's whole top/bottom lists where those are shorter."""
    pool = math.ceil(config.quantile * n_images)
    top = [int(e["image"]) for e in exemplar_set.top[:pool]]
    bottom = [int(e["image"]) for e in exemplar_set.bottom[:pool]]
    return top, bottom, pool


def mis_summary(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    def total(key: str) -> int:
        return sum(int(s.result.get(key, 0)) for s in shards)

    return ShardOutput(
        {"units": total("units"), "undefined": total("undefined"), "embedded": total("embedded"),
         "measure": Observer.objects.get(pk=job.params["observer"]).measure_name}
    )  # fmt: skip


# --- The machine pilot ----------------------------------------------------------------------


def pilot_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Answer every trial of the shard's task lists (catch trials included) from the images."""
    from worker.analyses import observer as analysis

    observer = Observer.objects.select_related("network").get(pk=job.params["observer"])
    config = observer_config(observer)
    trials = list(
        Trial.objects.filter(task_list_id__in=shard.covers["task_lists"]).order_by(
            "task_list__index", "index"
        )
    )
    embeddings = Embeddings(observer)
    needed = {i for t in trials for i in [*t.references_max, *t.references_min, *t.queries]}
    embeddings.ensure(needed, job, progress)
    sims, rows = embeddings.gram(sorted(needed), config.similarity)
    sims = sims.numpy()
    answers = []
    for done, trial in enumerate(trials):
        if any(i not in rows for i in trial.queries):
            raise JobFailed(f"trial {trial}: a query image could not be read")
        result = analysis.answer_from_gram(
            sims, [rows[i] for i in trial.queries],
            [rows[i] for i in trial.references_max if i in rows],
            [rows[i] for i in trial.references_min if i in rows], config,
        )  # fmt: skip
        answers.append(
            ObserverAnswer(observer=observer, trial=trial, p_first=result.p_first,
                           choice=result.choice, gap=result.gap, job=job)
        )  # fmt: skip
        if done % 256 == 0:
            progress(done / max(len(trials), 1), f"answered {done} of {len(trials)} trials")

    def save() -> None:
        embeddings.save()
        ObserverAnswer.objects.bulk_create(
            answers, update_conflicts=True, unique_fields=["observer", "trial"],
            update_fields=["p_first", "choice", "gap", "job"],
        )  # fmt: skip

    return ShardOutput({"trials": len(answers), "embedded": embeddings.embedded}, save=save)


def pilot_report(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    from backend.studies.models import Study

    observer = Observer.objects.get(pk=job.params["observer"])
    study = Study.objects.get(pk=job.params["study"])
    with transaction.atomic():
        summary = observers.pilot_summary(observer, study)
    summary.pop("unit")  # per unit: the API's pilot page, not the job's result
    summary["embedded"] = sum(int(s.result.get("embedded", 0)) for s in shards)
    return ShardOutput(summary)


# --- Calibration ----------------------------------------------------------------------------


def calibration_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    """Fit α to the study's trial-level human responses; report the agreement."""
    from backend.atlas import calibration

    observer = Observer.objects.select_related("network").get(pk=job.params["observer"])
    if "dataset" in shard.covers:
        report = imported_calibration(job, observer, int(shard.covers["dataset"]), progress)
        embeddings_save = report.pop("_save")
    else:
        report = calibration.calibrate(observer, int(job.params["study"]))
        embeddings_save = None

    def save() -> None:
        if embeddings_save is not None:
            embeddings_save()
        calibration.do_save_calibration(observer, report)

    return ShardOutput(report, save=save)


def imported_calibration(
    job: Job, observer: Observer, dataset_id: int, progress: ProgressReporter
) -> dict[str, Any]:
    """The imported dataset's report (`observer_imported`), embedding its images once; `_save`
    keeps the new embeddings with the shard."""
    from backend.analysis.models import ImportedDataset
    from backend.atlas import observer_imported

    embeddings = Embeddings(observer)
    dataset = ImportedDataset.objects.get(pk=dataset_id)
    report = observer_imported.calibrate_dataset(
        observer, dataset, embeddings, lambda ids: embeddings.ensure(ids, job, progress)
    )
    return {**report, "embedded": embeddings.embedded, "_save": embeddings.save}


def calibration_report(job: Job, shards: list[Shard], progress: ProgressReporter) -> ShardOutput:
    return ShardOutput(dict(shards[0].result))


WORK: dict[str, KindWork] = {
    observers.MIS_KIND: KindWork(mis_shard, mis_summary),
    observers.PILOT_KIND: KindWork(pilot_shard, pilot_report),
    observers.CALIBRATION_KIND: KindWork(calibration_shard, calibration_report),
}
