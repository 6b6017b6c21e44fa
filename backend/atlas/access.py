"""Who sees the atlas's rows: each follows the catalogue items it names (backend.stimuli.access)
— a measure its unit and image set, a spectrum its layer, basis and image set, an observer its
network, an LWTA network its network, base and image set, a confound report its unit and image
set, a retrained network its network, base and both image sets. Anything else is a 404 in the
admin and the researcher API."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet

from backend.atlas.models import (
    AblationCurve,
    ConfoundReport,
    Description,
    LWTANetwork,
    Measure,
    Observer,
    Population,
    RetrainedNetwork,
    Spectrum,
)
from backend.stimuli import access
from backend.stimuli.models import ImageSet, Layer, Network, Unit, UnitSet

THROUGH: dict[type[Model], dict[str, type[Model]]] = {
    Measure: {"unit": Unit, "image_set": ImageSet},
    Description: {"unit": Unit, "image_set": ImageSet},
    AblationCurve: {"unit_set": UnitSet, "image_set": ImageSet},
    Population: {"unit_set": UnitSet, "image_set": ImageSet},
    Spectrum: {"layer": Layer, "unit_set": UnitSet, "image_set": ImageSet},
    Observer: {"network": Network},
    LWTANetwork: {"network": Network, "base": Network, "image_set": ImageSet},
    ConfoundReport: {"unit": Unit, "image_set": ImageSet},
    RetrainedNetwork: {
        "network": Network,
        "base": Network,
        "train_set": ImageSet,
        "eval_set": ImageSet,
    },
}


def visible_rows(rows: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """`rows` of an atlas model narrowed to what the user may see."""
    return access.scoped(rows, user, THROUGH[rows.model])


def visible_observers(user: Any) -> QuerySet[Observer]:
    return visible_rows(Observer.objects.all(), user)
