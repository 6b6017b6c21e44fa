"""What a researcher pastes into a recruitment platform, and the texts as HTML.

Prolific fills `{{%PROLIFIC_PID%}}`, `{{%STUDY_ID%}}` and `{{%SESSION_ID%}}`; MTurk shows the
page in an ExternalQuestion and appends assignmentId, hitId, workerId and turkSubmitTo itself.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import markdown
from django.conf import settings

from backend.studies.models import Study

PROLIFIC_PARAMETERS = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
MTURK_FRAME_HEIGHT = 0  # 0: MTurk sizes the frame to the window
EXTERNAL_QUESTION = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/'
    'AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd">\n'
    "  <ExternalURL>{url}</ExternalURL>\n"
    "  <FrameHeight>{height}</FrameHeight>\n"
    "</ExternalQuestion>"
)


def page_url(study: Study) -> str:
    return f"{settings.PSYLENS_BASE_URL.rstrip('/')}/s/{study.slug}/"


def pilot_url(study: Study, participant_id: str | None = None) -> str:
    """The preview link; with `participant_id`, a pilot identity of its own, whose session a
    later preview resumes (the participant API takes it as PROLIFIC_PID in pilot mode)."""
    url = f"{page_url(study)}?pilot={study.pilot_token}"
    return f"{url}&PROLIFIC_PID={participant_id}" if participant_id else url


def prolific_url(study: Study) -> str:
    return f"{page_url(study)}?{PROLIFIC_PARAMETERS}"


def mturk_external_question(study: Study) -> str:
    return EXTERNAL_QUESTION.format(url=escape(page_url(study)), height=MTURK_FRAME_HEIGHT)


def recruitment_links(study: Study) -> dict[str, str]:
    return {
        "prolific": prolific_url(study),
        "mturk_external_question": mturk_external_question(study),
        "plain": page_url(study),
        "pilot": pilot_url(study),
    }


def render_markdown(text: str) -> str:
    """Consent and instructions as HTML (tables, lists and images allowed)."""
    return markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
