"""A study's design and stimuli manifest as JSON, so that another PsyLens server can run the same
study: settings, conditions, the units (networks by source string, layers, unit sets), the image
set and every image shown (by SHA-256 content hash), practice trials and the built task lists.

Import (`do_import_study_design`) creates a draft study owned by the importer with the same task
lists, trial by trial. Images are never shipped: each hash must already be stored on the server
(upload the image set first); otherwise nothing is created and the refusal names what is missing.
Networks are matched by source string, layers by name, unit sets by name and kind (created when
absent); an image set is reused when one with the same name holds the same images.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from backend.analysis.services import Refused
from backend.stimuli import access
from backend.stimuli.models import Image, ImageSet, ImageSetMember, Layer, Network, Unit, UnitSet
from backend.studies import services as study_services
from backend.studies.models import Condition, PracticeTrial, Study, TaskList, Trial

FORMAT = "psylens-study-design"
VERSION = 1
STUDY_SKIPPED = {"id", "owner", "state", "pilot_token", "completion_code", "image_set",
                 "created_at", "updated_at", "launched_at", "built_at", "preset"}  # fmt: skip
CONDITION_FIELDS = ("position", "name", "explanation", "n_references", "sides",
                    "query_selection", "visualization_preset", "unit_group",
                    "exclusion_rules", "shows_description", "reference_band",
                    "query_band")  # fmt: skip
DISPLAY_FIELDS = ("kind", "correct_query", "query_source", "description")
TRIAL_FIELDS = ("index", "is_catch", "block", "response_number")
IMAGE_LISTS = ("references_min", "references_max", "queries")
SHOWN_MISSING = 10


# --- export --------------------------------------------------------------------------------


def export_design(study: Study) -> dict[str, Any]:
    """The JSON document for one study (answer keys included: it is for researchers)."""
    hashes = _ImageHashes()
    units = _units_of(study)
    # A task list's practice blocks name practice trials by position in "practice_trials".
    practice_ids = study.practice_trials.values_list("pk", flat=True)
    practice_positions = {pk: position for position, pk in enumerate(practice_ids)}
    document = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "study": _study_fields(study),
        "conditions": list(study.conditions.values(*CONDITION_FIELDS)),
        "unit_sets": _unit_sets(study, units),
        "units": [
            {"key": f"u{unit.pk}", "unit_set": unit.unit_set.name, "index": unit.index}
            for unit in units
        ],  # fmt: skip
        "catch_units": [
            f"u{pk}" for pk in study.catch_units.order_by("pk").values_list("pk", flat=True)
        ],
        "image_set": _image_set(study.image_set),
        "practice_trials": [
            {
                **_display(practice, hashes),
                "index": practice.index,
                "condition": practice.condition.name if practice.condition else None,
                "is_obvious": practice.is_obvious,
            }
            for practice in study.practice_trials.select_related("condition")
        ],  # fmt: skip
        "task_lists": [
            _task_list(task_list, hashes, practice_positions)
            for task_list in study.task_lists.all()
        ],
    }
    document["images"] = hashes.manifest()
    return document


def _study_fields(study: Study) -> dict[str, Any]:
    fields = {}
    for field in Study._meta.concrete_fields:
        if field.name not in STUDY_SKIPPED:
            fields[field.name] = field.value_from_object(study)
    return fields


def _units_of(study: Study) -> list[Unit]:
    ids = set(Trial.objects.filter(task_list__study=study).values_list("unit_id", flat=True))
    ids |= set(study.practice_trials.values_list("unit_id", flat=True))
    ids |= set(study.catch_units.values_list("pk", flat=True))
    related = Unit.objects.filter(pk__in=ids).select_related("unit_set__layer__network")
    return list(related.order_by("unit_set__name", "index"))


def _unit_sets(study: Study, units: list[Unit]) -> list[dict[str, Any]]:
    unit_sets = {unit.unit_set for unit in units} | set(
        study.unit_sets.select_related("layer__network")
    )
    return [
        {"name": unit_set.name, "kind": unit_set.kind, "point": unit_set.point,
         "n_units": unit_set.n_units, "params": unit_set.params, "in_study": unit_set in
         set(study.unit_sets.all()), "layer": {"name": unit_set.layer.name,
         "shape": unit_set.layer.shape, "position": unit_set.layer.position},
         "network": {"name": unit_set.layer.network.name,
                     "source": unit_set.layer.network.source}}
        for unit_set in sorted(unit_sets, key=lambda u: u.name)
    ]  # fmt: skip


def _image_set(image_set: ImageSet | None) -> dict[str, Any] | None:
    if image_set is None:
        return None
    members = image_set.members.order_by("position").values_list(
        "image__sha256", "position", "label"
    )
    return {
        "name": image_set.name,
        "origin": image_set.origin,
        "description": image_set.description,
        "images": [list(member) for member in members],
    }


def _task_list(
    task_list: TaskList, hashes: _ImageHashes, practice_positions: dict[int, int]
) -> dict[str, Any]:
    trials = task_list.trials.select_related("condition").order_by("index")
    return {
        "index": task_list.index,
        "seed": task_list.seed,
        "condition_order": task_list.condition_order,
        "practice_blocks": [
            {
                **block,
                "trials": [
                    practice_positions[pk] for pk in block["trials"] if pk in practice_positions
                ],
            }
            for block in task_list.practice_blocks
        ],  # fmt: skip
        "trials": [
            {
                **_display(trial, hashes),
                **{name: getattr(trial, name) for name in TRIAL_FIELDS},
                "condition": trial.condition.name,
            }
            for trial in trials
        ],  # fmt: skip
    }


def _display(trial: Trial | PracticeTrial, hashes: _ImageHashes) -> dict[str, Any]:
    shown: dict[str, Any] = {name: getattr(trial, name) for name in DISPLAY_FIELDS}
    shown["unit"] = f"u{trial.unit_id}"
    for name in IMAGE_LISTS:
        shown[name] = hashes.of(getattr(trial, name) or [])
    shown["base_image"] = hashes.of([trial.base_image_id])[0] if trial.base_image_id else None
    return shown


class _ImageHashes:
    """Image id → SHA-256, loaded as met; the manifest lists every image seen."""

    def __init__(self) -> None:
        self.known: dict[int, Image] = {}

    def of(self, ids: Iterable[int]) -> list[str]:
        ids = list(ids)
        missing = [pk for pk in ids if pk not in self.known]
        if missing:
            self.known.update(Image.objects.in_bulk(missing))
        return [self.known[pk].sha256 for pk in ids]

    def manifest(self) -> list[dict[str, Any]]:
        return [
            {"sha256": image.sha256, "kind": image.kind, "width": image.width,
             "height": image.height}
            for image in sorted(self.known.values(), key=lambda image: image.sha256)
        ]  # fmt: skip


# --- import --------------------------------------------------------------------------------


def missing_images(document: dict[str, Any]) -> list[str]:
    """Hashes the document needs that this server does not store, sorted."""
    wanted = {image["sha256"] for image in document.get("images", [])}
    if document.get("image_set"):
        wanted |= {sha256 for sha256, _, _ in document["image_set"]["images"]}
    stored = set(Image.objects.filter(sha256__in=wanted).values_list("sha256", flat=True))
    return sorted(wanted - stored)


def check_document(document: Any) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise Refused(f"This is not a PsyLens study design (its format is not {FORMAT!r}).")
    if document.get("version") != VERSION:
        raise Refused(f"Design version {document.get('version')!r} is not supported ({VERSION}).")
    missing = missing_images(document)
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING])
        more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
        raise Refused(
            f"{len(missing)} image(s) of this design are not stored on this server: {shown}{more}. "
            "Upload the image set (or the images) first, then import again."
        )


@transaction.atomic
def do_import_study_design(document: Any, owner: User, slug: str = "") -> Study:
    """A draft study with the document's design and task lists; refuses (writing nothing)
    when the document is not a design, an image is missing or the slug is taken."""
    check_document(document)
    fields = dict(document["study"])
    fields["slug"] = slug or fields["slug"]
    if Study.objects.filter(slug=fields["slug"]).exists():
        raise Refused(f"A study with the slug {fields['slug']!r} exists: choose another slug.")
    images = dict(Image.objects.filter(
        sha256__in={image["sha256"] for image in document["images"]}
    ).values_list("sha256", "pk"))  # fmt: skip
    fields["image_set"] = _imported_image_set(document.get("image_set"), owner)
    conditions = [{k: v for k, v in c.items() if k != "position"} for c in document["conditions"]]
    study = study_services.do_create_study(owner, fields, conditions=conditions)
    unit_sets = {spec["name"]: _imported_unit_set(spec, owner) for spec in document["unit_sets"]}
    study_services.do_set_relations(
        study, unit_sets=[unit_sets[s["name"]] for s in document["unit_sets"] if s["in_study"]]
    )
    units = {
        spec["key"]: Unit.objects.get_or_create(
            unit_set=unit_sets[spec["unit_set"]], index=spec["index"]
        )[0].pk
        for spec in document["units"]
    }
    study.catch_units.set([units[key] for key in document.get("catch_units", [])])
    _create_trials(study, document, units, images)
    return study


def _imported_image_set(spec: dict[str, Any] | None, owner: User) -> ImageSet | None:
    """The same image set where the owner may see one (backend.stimuli.access), else a new one
    of theirs."""
    if spec is None:
        return None
    wanted = [(sha256, position, label) for sha256, position, label in spec["images"]]
    existing = access.visible_image_sets(owner).filter(name=spec["name"]).first()
    if existing is not None:
        held = list(existing.members.order_by("position").values_list(
            "image__sha256", "position", "label"))  # fmt: skip
        if held == wanted:
            return existing
    image_set = ImageSet.objects.create(
        name=_free_name(ImageSet, spec["name"]), origin=spec["origin"],
        description=spec["description"], source="imported study design", owner=owner,
    )  # fmt: skip
    pks = dict(Image.objects.filter(sha256__in=[w[0] for w in wanted]).values_list("sha256", "pk"))
    ImageSetMember.objects.bulk_create(
        ImageSetMember(image_set=image_set, image_id=pks[sha256], position=position, label=label)
        for sha256, position, label in wanted
    )
    return image_set


def _imported_unit_set(spec: dict[str, Any], owner: User) -> UnitSet:
    networks = access.visible_networks(owner)
    network = networks.filter(source=spec["network"]["source"]).order_by("pk").first()
    if network is None:
        name = _free_name(Network, spec["network"]["name"])
        network = Network.objects.create(name=name, source=spec["network"]["source"], owner=owner)
    layer, _ = Layer.objects.get_or_create(
        network=network, name=spec["layer"]["name"],
        defaults={"shape": spec["layer"]["shape"], "position": spec["layer"]["position"]},
    )  # fmt: skip
    same = (
        access.visible_unit_sets(owner)
        .filter(layer=layer, kind=spec["kind"], name=spec["name"])
        .first()
    )
    if same is not None:
        return same
    return UnitSet.objects.create(
        name=_free_name(UnitSet, spec["name"]), layer=layer, kind=spec["kind"],
        point=spec["point"], n_units=spec["n_units"], params=spec["params"], owner=owner,
    )  # fmt: skip


def _practice_id(practice: list[int], position: Any, list_spec: dict[str, Any]) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        position = -1
    if not 0 <= position < len(practice):
        raise Refused(
            f"Task list {list_spec.get('index')}'s practice blocks name practice trial "
            f"{position}, which the design does not have ({len(practice)} practice trials)."
        )
    return practice[position]


def _free_name(model: Any, base: str) -> str:
    candidate, n = base, 2
    while model.objects.filter(name=candidate).exists():
        candidate, n = f"{base}-{n}"[:80], n + 1
    return candidate


def _create_trials(
    study: Study, document: dict[str, Any], units: dict[str, int], images: dict[str, int]
) -> None:
    conditions = {condition.name: condition for condition in Condition.objects.filter(study=study)}

    def shown(spec: dict[str, Any]) -> dict[str, Any]:
        # A document from before the description column has none: its trials showed no words.
        values = {name: spec.get(name, "") for name in DISPLAY_FIELDS}
        values.update({name: [images[h] for h in spec[name]] for name in IMAGE_LISTS})
        values["base_image_id"] = images[spec["base_image"]] if spec["base_image"] else None
        values["unit_id"] = units[spec["unit"]]
        return values

    practice = [
        PracticeTrial.objects.create(
            study=study, index=spec["index"], is_obvious=spec["is_obvious"],
            condition=conditions.get(spec["condition"] or ""), **shown(spec),
        ).pk
        for spec in document["practice_trials"]
    ]  # fmt: skip
    # Documents from before practice blocks: all practice first, as those builds had it.
    all_first = [{"before": 0, "condition": None, "trials": list(range(len(practice)))}]
    for list_spec in document["task_lists"]:
        blocks = list_spec.get("practice_blocks", all_first if practice else [])
        task_list = TaskList.objects.create(
            study=study, index=list_spec["index"], seed=list_spec["seed"],
            condition_order=list_spec["condition_order"],
            practice_blocks=[
                {**block, "trials": [_practice_id(practice, p, list_spec) for p in block["trials"]]}
                for block in blocks
            ],
        )  # fmt: skip
        Trial.objects.bulk_create(
            Trial(task_list=task_list, condition=conditions[spec["condition"]],
                  **{name: spec[name] for name in TRIAL_FIELDS}, **shown(spec))
            for spec in list_spec["trials"]
        )  # fmt: skip
    if document["task_lists"]:
        study.built_at = timezone.now()
        study.save(update_fields=["built_at", "updated_at"])
