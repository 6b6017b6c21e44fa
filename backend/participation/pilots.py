"""The researcher's own pilot session: "Preview as a participant" gives each researcher one
pilot identity per study (`preview-<user id>-<n>`), so that previewing again resumes that pilot
session instead of adding one to the Sessions list each time; once it is completed, the next
preview starts the researcher's next one (n + 1), from the consent page again.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from backend.participation.models import Participant, Session
from backend.studies.models import Study


def preview_participant_id(study: Study, user: AbstractBaseUser) -> str:
    """The pilot identity the researcher's next preview of the study uses."""
    prefix = f"preview-{user.pk}-"
    states = dict(
        Session.objects.filter(
            study=study,
            participant__platform=Participant.Platform.PILOT,
            participant__platform_id__startswith=prefix,
        ).values_list("participant__platform_id", "state")
    )
    numbers = {
        int(pid.removeprefix(prefix)): state
        for pid, state in states.items()
        if pid.removeprefix(prefix).isdigit()
    }
    latest = max(numbers, default=0)
    if latest and numbers[latest] != Session.State.COMPLETED:
        return f"{prefix}{latest}"
    return f"{prefix}{latest + 1}"
