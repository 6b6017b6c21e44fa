"""The work of the atlas's job kinds on a worker: per shard, load rows and call the pure
analyses in `worker/analyses/`; per job, merge the shards' state and write the rows. `WORK`
maps each kind (registered in `backend/atlas/jobkinds.py`) to its two functions; `worker/tasks.py`
collects it with the stimuli's."""

from __future__ import annotations

from backend.stimuli.jobs import KindWork

WORK: dict[str, KindWork] = {}

from backend.atlas import lwta  # noqa: E402 - each analysis adds its block below

WORK[lwta.KIND] = KindWork(lwta.finetune_shard, lwta.register_lwta_network)
