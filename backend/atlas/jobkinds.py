"""The atlas's job kinds, registered with their planners in the one registry of job kinds
(`backend/stimuli/jobkinds.py`; the web side plans and sends them by task name). Their work on
the workers is in `backend/atlas/work.py`."""

from __future__ import annotations

from backend.atlas import spectra  # noqa: E402
from backend.stimuli.jobkinds import JobKind, register  # noqa: E402

# Spectra (issue 16): covariance eigenspectra and random projections per layer and basis.
register(JobKind(spectra.KIND, "gpu", spectra.plan_spectra, "compute spectra"))

# The machine observer: MIS per unit, the machine pilot of a study, calibration (docs/observer.md).
from backend.atlas import observers  # noqa: E402, F401 - registers its three kinds
