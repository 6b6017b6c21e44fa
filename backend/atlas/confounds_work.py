"""The work of the `confound_report` job on a worker: per shard (a range of the image set), the
unit's value on each image (`worker/analyses/midrange.unit_values_pass`: n floats, never
images × units); the merge joins the shards in position order (one exact pass over every image),
reads the images' labels and attributes, computes the report and writes its row."""

from __future__ import annotations

from typing import Any

from backend.atlas import confounds
from backend.stimuli.attributes import image_attributes
from backend.stimuli.jobs import JobFailed, KindWork, ProgressReporter, ShardOutput, load_state
from backend.stimuli.models import ImageSet, Job, Shard, UnitSet
from backend.stimuli.work import batch_size_for, image_refs, load_network, load_projector


def confound_shard(job: Job, shard: Shard, progress: ProgressReporter) -> ShardOutput:
    import torch

    from worker.analyses.midrange import unit_values_pass
    from worker.pipelines import exemplars, loading

    unit_set = UnitSet.objects.select_related("layer__network").get(pk=job.params["unit_set"])
    image_set = ImageSet.objects.get(pk=job.params["image_set"])
    network, projector = load_network(unit_set.layer.network), load_projector(unit_set)
    refs = image_refs(image_set, shard.covers)
    unit = int(job.params["unit"])

    def run(batch_size: int) -> tuple[list[int], list[float]]:
        batches = loading.image_batches(refs, network.preprocess, batch_size)
        return unit_values_pass(network, projector, batches, unit, progress, len(refs))

    ids, values = exemplars.oom_fallback(run, batch_size_for(job))
    state = {
        "image_ids": torch.tensor(ids, dtype=torch.int64),  # [images]
        "values": torch.tensor(values, dtype=torch.float64),  # [images]
    }
    return ShardOutput({"images": len(ids), "unreadable": len(refs) - len(ids)}, state=state)


def compute_confound_report(
    job: Job, shards: list[Shard], progress: ProgressReporter
) -> ShardOutput:
    import numpy as np

    from worker.analyses.midrange import confound_report

    ids: list[int] = []
    values: list[float] = []
    for shard in sorted(shards, key=lambda s: s.index):  # position order, as one pass reads
        state = load_state(shard)
        ids += [int(i) for i in state["image_ids"].tolist()]
        values += [float(v) for v in state["values"].tolist()]
    params = job.params
    progress(None, f"enrichment tests over {len(ids)} images")
    try:
        report = confound_report(
            np.array(values, dtype=np.float64), ids, image_attributes(int(params["image_set"])),
            n_bands=int(confounds.option(params, "n_bands")),
            alpha=float(confounds.option(params, "alpha")),
            grid=int(confounds.option(params, "grid")),
        )  # fmt: skip
    except ValueError as err:  # unreadable images left too few for the bands
        raise JobFailed(f"{err}: choose fewer bands or a larger image set") from None
    found = report.as_dict()

    def save() -> None:
        confounds.do_save_confound_report(job, found, {"image_ids": ids, "values": values})

    top = found["candidates"][0] if found["candidates"] else None
    result: dict[str, Any] = {
        "images": len(ids), "n_bands": report.n_bands, "tests": len(found["tests"]),
        "candidates": len(found["candidates"]),
        "top_candidate": {k: top[k] for k in ("attribute", "value", "band", "against",
                                              "odds_ratio", "p_holm")} if top else None,
    }  # fmt: skip
    return ShardOutput(result, save=save)


WORK = {confounds.KIND: KindWork(confound_shard, compute_confound_report)}
