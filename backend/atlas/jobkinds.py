"""The atlas's job kinds, registered with their planners in the one registry of job kinds
(`backend/stimuli/jobkinds.py`; the web side plans and sends them by task name). Their work on
the workers is in `backend/atlas/work.py`."""

from __future__ import annotations

from backend.atlas import lwta  # noqa: E402 - each analysis adds its block below
from backend.stimuli.jobkinds import JobKind, register  # noqa: E402

register(JobKind(lwta.KIND, "gpu", lwta.plan_lwta, "fine-tune an LWTA network"))
