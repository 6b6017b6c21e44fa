"""Who may see and change the catalogue: networks, image sets, unit sets, and what hangs off them
(layers, units, images, exemplar sets, visualizations, occlusion maps, the atlas's rows).

The rule (docs/architecture.md, "Who sees what"):

- an item with an owner is the owner's: they see it and change it (and superusers);
- an item without an owner is the shared catalogue (the demo's and the built-in ones): every
  researcher sees it, read-only; only superusers change it;
- a study's collaborators see, read-only, the items the study uses (its unit sets, catch units,
  image set, and the networks and image sets under them), through `visible_studies`;
- whatever hangs off an item follows it (a unit its unit set, a layer its network, an image the
  image sets that hold it or the unit sets whose visualizations and occlusion maps made it).

Anything else is a 404 in the admin and the researcher API, as if it did not exist, and a job or
a study that names it is refused with the same words as for an id that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet

from backend.stimuli.models import (
    Image,
    ImageSet,
    Layer,
    Network,
    OcclusionMap,
    Unit,
    UnitSet,
    Visualization,
)
from backend.studies.permissions import visible_studies


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _everything(user: Any) -> bool:
    return bool(_active(user) and user.is_superuser)


def _own_or_shared(user: Any) -> Q:
    return Q(owner__isnull=True) | Q(owner=user)


def visible_unit_sets(user: Any) -> QuerySet[UnitSet]:
    if not _active(user):
        return UnitSet.objects.none()
    if _everything(user):
        return UnitSet.objects.all()
    studies = visible_studies(user)
    used = UnitSet.objects.filter(
        Q(studies__in=studies) | Q(units__catch_in_studies__in=studies)
    ).values("pk")
    return UnitSet.objects.filter(_own_or_shared(user) | Q(pk__in=used))


def visible_image_sets(user: Any) -> QuerySet[ImageSet]:
    if not _active(user):
        return ImageSet.objects.none()
    if _everything(user):
        return ImageSet.objects.all()
    used_by_studies = visible_studies(user).exclude(image_set=None).values("image_set")
    under_unit_sets = visible_unit_sets(user).exclude(image_set=None).values("image_set")
    return ImageSet.objects.filter(
        _own_or_shared(user) | Q(pk__in=used_by_studies) | Q(pk__in=under_unit_sets)
    )


def visible_networks(user: Any) -> QuerySet[Network]:
    if not _active(user):
        return Network.objects.none()
    if _everything(user):
        return Network.objects.all()
    under_unit_sets = visible_unit_sets(user).values("layer__network")
    return Network.objects.filter(_own_or_shared(user) | Q(pk__in=under_unit_sets))


def visible_layers(user: Any) -> QuerySet[Layer]:
    return Layer.objects.filter(network__in=visible_networks(user))


def visible_units(user: Any) -> QuerySet[Unit]:
    return Unit.objects.filter(unit_set__in=visible_unit_sets(user))


def visible_images(user: Any) -> QuerySet[Image]:
    """Images of a visible image set, and the synthetic and derived images of visible units."""
    if not _active(user):
        return Image.objects.none()
    if _everything(user):
        return Image.objects.all()
    units = visible_units(user)
    in_sets = Image.objects.filter(image_sets__in=visible_image_sets(user)).values("pk")
    drawn = Visualization.objects.filter(unit__in=units)
    occluded = OcclusionMap.objects.filter(unit__in=units)
    return Image.objects.filter(
        Q(pk__in=in_sets)
        | Q(pk__in=drawn.values("image"))
        | Q(pk__in=drawn.exclude(attribution=None).values("attribution"))
        | Q(pk__in=occluded.values("base_image"))
        | Q(pk__in=occluded.exclude(occluded_at_max=None).values("occluded_at_max"))
        | Q(pk__in=occluded.exclude(occluded_at_min=None).values("occluded_at_min"))
        | Q(pk__in=occluded.exclude(blurred=None).values("blurred"))
    )


def owner_id_of(item: Any) -> int | None:
    """The owner of a catalogue item, or of the item a row hangs off (a unit's unit set's)."""
    for path in ("", "unit_set", "unit.unit_set", "network"):
        target = item
        for name in filter(None, path.split(".")):
            target = getattr(target, name, None)
        if target is not None and hasattr(target, "owner_id"):
            return target.owner_id  # type: ignore[no-any-return]
    return None


def can_change(user: Any, item: Any) -> bool:
    """The owner and superusers change an item; the shared catalogue (no owner) is the
    superusers' to change; what is seen through a study is read-only."""
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    owner_id = owner_id_of(item)
    return owner_id is not None and owner_id == user.pk


def scoped(
    rows: QuerySet[Any], user: Any, through: dict[str, type[Model]] | None = None
) -> QuerySet[Any]:
    """`rows` narrowed to what the user may see: a catalogue model by its own rule; another
    model (`through`: field → catalogue model) by every catalogue item it names (blank: none)."""
    if not _active(user):
        return rows.none()
    if _everything(user):
        return rows
    if through is None:
        scope = visible(rows.model, user)
        assert scope is not None, f"{rows.model.__name__} is not a catalogue model"
        return rows.filter(pk__in=scope.values("pk"))
    for field, model in through.items():
        scope = visible(model, user)
        assert scope is not None, f"{model.__name__} is not a catalogue model"
        rows = rows.filter(Q(**{f"{field}__in": scope.values("pk")}) | Q(**{f"{field}": None}))
    return rows


VISIBLE = {
    Network: visible_networks,
    Layer: visible_layers,
    ImageSet: visible_image_sets,
    UnitSet: visible_unit_sets,
    Unit: visible_units,
    Image: visible_images,
}


def visible(model: type[Model], user: Any) -> QuerySet[Any] | None:
    """The rows of a catalogue model the user may see (None: not a catalogue model)."""
    scope = VISIBLE.get(model)
    return scope(user) if scope is not None else None


# --- What a job's parameters name ----------------------------------------------------------

# Parameter → (model, its name in a message).
JOB_REFERENCES: dict[str, tuple[type[Model], str]] = {
    "image_set": (ImageSet, "image set"),
    "unit_set": (UnitSet, "unit set"),
    "unit_sets": (UnitSet, "unit set"),
    "source_unit_set": (UnitSet, "unit set"),
    "units": (Unit, "unit"),
    "network": (Network, "network"),
    "base": (Network, "network"),
    "layers": (Layer, "layer"),
    "base_images": (Image, "image"),
    "train_set": (ImageSet, "image set"),  # last-layer retraining (backend/atlas/retrain.py)
    "eval_set": (ImageSet, "image set"),
}
# Kinds that change the item they name, not only compute from it: the owner's (or a superuser's).
CHANGING_KINDS = {"import_images": "image_set", "fit_unit_set": "unit_set",
                  "inspect_network": "network"}  # fmt: skip


def _ids(value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def check_job_params(user: Any, kind: str, params: dict[str, Any]) -> None:
    """Refuse (ValidationError) a job that names a catalogue item the user may not see, or that
    would change one they may not change. No user (the demo, management commands): no check."""
    if user is None or not getattr(user, "is_authenticated", False) or _everything(user):
        return
    if not isinstance(params, dict):
        return
    for key, (model, label) in JOB_REFERENCES.items():
        ids = _ids(params.get(key))
        if not ids:
            continue
        scope = visible(model, user)
        assert scope is not None
        seen = set(scope.filter(pk__in=ids).values_list("pk", flat=True))
        hidden = [i for i in ids if i not in seen]
        if hidden:
            raise ValidationError(f"{label} {hidden[0]} does not exist")
    changed = CHANGING_KINDS.get(kind)
    if changed is not None:
        model, label = JOB_REFERENCES[changed]
        for pk in _ids(params.get(changed)):
            item = model._default_manager.filter(pk=pk).first()
            if item is not None and not can_change(user, item):
                raise ValidationError(
                    f"{label} {item} is shared or another researcher's: only its owner (or an "
                    f"administrator) may run this on it"
                )


# --- What a study may use --------------------------------------------------------------------


def check_study_items(
    owner: Any,
    image_set: ImageSet | None = None,
    unit_sets: list[UnitSet] | None = None,
    catch_units: list[Unit] | None = None,
) -> None:
    """A study uses only catalogue items its owner may see; raises ValidationError by field."""
    errors: dict[str, str] = {}
    if image_set is not None and not visible_image_sets(owner).filter(pk=image_set.pk).exists():
        errors["image_set"] = f"Image set {image_set.pk} does not exist."
    if unit_sets:
        hidden = _hidden(visible_unit_sets(owner), [u.pk for u in unit_sets])
        if hidden:
            errors["unit_sets"] = f"Unit set {hidden[0]} does not exist."
    if catch_units:
        hidden = _hidden(visible_units(owner), [u.pk for u in catch_units])
        if hidden:
            errors["catch_units"] = f"Unit {hidden[0]} does not exist."
    if errors:
        raise ValidationError(errors)


def _hidden(scope: QuerySet[Any], ids: list[int]) -> list[int]:
    seen = set(scope.filter(pk__in=ids).values_list("pk", flat=True))
    return [i for i in ids if i not in seen]
