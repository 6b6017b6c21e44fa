"""The work of the atlas's job kinds on a worker: per shard, load rows and call the pure
analyses in `worker/analyses/`; per job, merge the shards' state and write the rows. `WORK`
maps each kind (registered in `backend/atlas/jobkinds.py`) to its two functions; `worker/tasks.py`
collects it with the stimuli's."""

from __future__ import annotations

from backend.stimuli.jobs import KindWork

WORK: dict[str, KindWork] = {}

# Spectra (issue 16): covariance sums per shard; eigenvalues, fit and random projections at merge.
from backend.atlas import spectra, spectra_work  # noqa: E402

WORK[spectra.KIND] = KindWork(spectra_work.spectrum_shard, spectra_work.compute_spectra)

# The machine observer (backend/atlas/observer_work.py).
from backend.atlas import observer_work  # noqa: E402

WORK.update(observer_work.WORK)
