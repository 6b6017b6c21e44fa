"""The atlas's job kinds, registered with their planners in the one registry of job kinds
(`backend/stimuli/jobkinds.py`; the web side plans and sends them by task name). Their work on
the workers is in `backend/atlas/work.py`."""

from __future__ import annotations

# --- Descriptions (#18): soft-WPMI over a probe image set, sharded by image ranges -------------
from backend.atlas import descriptions as _descriptions  # noqa: E402
from backend.stimuli.jobkinds import JobKind, register  # noqa: E402

register(JobKind(_descriptions.KIND, "gpu", _descriptions.plan_describe, "describe units"))
