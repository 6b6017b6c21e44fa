"""What a trial shows: reference images per side, the two queries in display order, the answer
key, and how the queries were chosen. Pure over stimuli rows loaded once per build
(`load_stimuli`), and a list of what is missing for a design (`missing_stimuli`).

Conventions (from the published studies):
- reference_choice: the correct query is the one from the top end (the max query).
  "extreme": IMI batch b of the unit (query = the batch's most extreme image, references = the
  other 9); b cycles through a seeded permutation of the batches by response number.
  "qLL/qHH": min query from band qLL, max query from band qHH; references from bottom/top k,
  never repeating a query.
- description_choice: the queries and references of reference_choice; a condition that shows
  the description adds the unit's stored Description (`atlas.Description.text`: the one on the
  study's image set if there is one, else the latest) and makes the trial a description_choice
  trial; a condition that does not is the plain reference_choice trial.
- occlusion_choice: one OcclusionMap per trial (cycled by response number); the queries are the
  copies occluded at the argmax and argmin positions; the argmax copy is favoured (correct).
- synthetic references: Visualization rows of the unit (optionally one preset), index 0 (the
  non-diverse image) first and the rest shuffled; `params["sign"] < 0` marks minimally
  activating visualizations. Mixed: 5 natural then 4 synthetic. Blurred: OcclusionMap.blurred of
  each natural reference.
- catch trial: the correct query is replaced by one of the maximally activating references
  shown (a condition without references then shows 9 natural ones).
- distinct source photos: no natural (or blurred) reference shows the photo a query was derived
  from (crops and flips of one photo share a source, `ImageSetMember.source`; an occluded copy
  or a blurred version has its base image's), so no trial is answered by spotting a copy. The
  references are the usual ones without such images, topped up from the rest of the list in
  rank order; a unit with too few distinct photos is refused (`too_few_sources`).
- activation bands (`Condition.reference_band`, `query_band`; backend/stimuli/bands.py): a
  banded side's natural references are a seeded draw (per unit, band and response number) from
  the exemplar set's band of that name, never topped up from outside it; a banded side's query
  is picked from its band as the band rule does. A band the exemplars lack is missing
  (`activation_bands`); one holding too few images (distinct photos) for the references beside
  the queries is refused with the numbers (`band_too_small`, `band_shortfalls`).
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from backend.atlas.models import Description
from backend.stimuli import bands
from backend.stimuli.models import ExemplarSet, ImageSetMember, OcclusionMap, Visualization
from backend.studies.models import Condition, Paradigm

MIXED_NATURAL, MIXED_SYNTHETIC = 5, 4
CATCH_REFERENCES = 9


@dataclass
class UnitStimuli:
    """Everything the builder may show for one unit, as image ids."""

    exemplar_set: ExemplarSet | None = None
    visualizations: list[tuple[str, bool, int, int]] = field(default_factory=list)
    occlusion_maps: list[OcclusionMap] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)  # image id -> its source photo
    description: Description | None = None

    def source_of(self, image: int) -> str:
        """The photo an image shows: its source, or the image itself."""
        return self.sources.get(image, f"image:{image}")

    def distinct_sources(self, entries: list[dict[str, Any]]) -> int:
        return len({self.source_of(entry["image"]) for entry in entries})

    def synthetic(self, preset: str, maximal: bool) -> list[int]:
        """(index-ordered) image ids of the unit's visualizations of one preset and sign."""
        rows = [
            v for v in self.visualizations if v[1] == maximal and (not preset or v[0] == preset)
        ]
        return [image for _, _, _, image in sorted(rows, key=lambda v: v[2])]

    def blurred(self) -> dict[int, int]:
        return {m.base_image_id: m.blurred_id for m in self.occlusion_maps if m.blurred_id}

    def usable_maps(self) -> list[OcclusionMap]:
        return [m for m in self.occlusion_maps if m.occluded_at_max_id and m.occluded_at_min_id]


@dataclass(frozen=True)
class TrialContent:
    kind: str
    references_min: list[int]
    references_max: list[int]
    base_image: int | None
    queries: list[int]
    correct_query: int
    query_source: dict[str, Any]
    description: str = ""  # description_choice: the words shown


def load_stimuli(unit_ids: Iterable[int], image_set_id: int | None) -> dict[int, UnitStimuli]:
    """One query per kind of stimulus for all units of a build."""
    ids = list(unit_ids)
    stimuli = {unit: UnitStimuli() for unit in ids}
    exemplar_sets = ExemplarSet.objects.filter(unit_id__in=ids).order_by("computed_at")
    if image_set_id is not None:
        exemplar_sets = exemplar_sets.filter(image_set_id=image_set_id)
    for exemplar_set in exemplar_sets:
        stimuli[exemplar_set.unit_id].exemplar_set = exemplar_set
    for viz in Visualization.objects.filter(unit_id__in=ids).order_by("index", "pk"):
        maximal = float((viz.params or {}).get("sign", 1)) >= 0
        stimuli[viz.unit_id].visualizations.append((viz.preset, maximal, viz.index, viz.image_id))
    for occlusion_map in OcclusionMap.objects.filter(unit_id__in=ids).order_by("pk"):
        stimuli[occlusion_map.unit_id].occlusion_maps.append(occlusion_map)
    _load_sources(stimuli)
    _load_descriptions(stimuli, image_set_id)
    return stimuli


def _load_descriptions(stimuli: dict[int, UnitStimuli], image_set_id: int | None) -> None:
    """Each unit's description: the latest on the study's image set, else the latest of any."""
    rows = Description.objects.filter(unit_id__in=list(stimuli)).exclude(text="")
    for description in rows.order_by("computed_at", "pk"):
        held = stimuli[description.unit_id].description
        if (
            held is None
            or held.image_set_id != image_set_id
            or (description.image_set_id == image_set_id)
        ):
            stimuli[description.unit_id].description = description


def _load_sources(stimuli: dict[int, UnitStimuli]) -> None:
    """Each unit's image → source photo, from its exemplar set's image set; derived images
    (occluded copies, blurred versions) have their base image's source."""
    by_set: dict[int, dict[int, str]] = {}
    for unit_stimuli in stimuli.values():
        exemplar_set = unit_stimuli.exemplar_set
        if exemplar_set is None:
            continue
        if exemplar_set.image_set_id not in by_set:
            members = ImageSetMember.objects.filter(image_set_id=exemplar_set.image_set_id)
            by_set[exemplar_set.image_set_id] = dict(
                members.exclude(source="").values_list("image_id", "source")
            )
        sources = by_set[exemplar_set.image_set_id]
        unit_stimuli.sources = sources
        derived = {}
        for occlusion_map in unit_stimuli.occlusion_maps:
            base = sources.get(occlusion_map.base_image_id, f"image:{occlusion_map.base_image_id}")
            for image in (occlusion_map.occluded_at_max_id, occlusion_map.occluded_at_min_id,
                          occlusion_map.blurred_id):  # fmt: skip
                if image:
                    derived[image] = base
        if derived:
            unit_stimuli.sources = {**sources, **derived}


# --- what is missing -----------------------------------------------------------------------


def missing_stimuli(
    paradigm: str, conditions: list[Condition], stimuli: dict[int, UnitStimuli]
) -> dict[str, list[int]]:
    """Kind of stimulus ("exemplars", "imi_batches", "bands", "visualizations:<preset>",
    "occlusion_maps", "blurred") → ids of units that lack it for this design."""
    missing: dict[str, set[int]] = defaultdict(set)
    for unit, unit_stimuli in stimuli.items():
        for need in _needs(paradigm, conditions, unit_stimuli):
            missing[need].add(unit)
    return {need: sorted(units) for need, units in sorted(missing.items())}


def _needs(paradigm: str, conditions: list[Condition], stimuli: UnitStimuli) -> set[str]:
    exemplar_set = stimuli.exemplar_set
    if exemplar_set is None or not exemplar_set.top:
        return {"exemplars"}
    needs: set[str] = set()
    if paradigm == Paradigm.OCCLUSION_CHOICE and not stimuli.usable_maps():
        needs.add("occlusion_maps")
    if stimuli.description is None and any(shows_description(paradigm, c) for c in conditions):
        needs.add("description")
    for condition in conditions:
        needs |= _condition_needs(paradigm, condition, stimuli, exemplar_set)
    return needs


def _condition_needs(
    paradigm: str, condition: Condition, stimuli: UnitStimuli, exemplar_set: ExemplarSet
) -> set[str]:
    needs = set()
    if paradigm in (Paradigm.REFERENCE_CHOICE, Paradigm.DESCRIPTION_CHOICE):
        if condition.query_selection == Condition.QuerySelection.EXTREME:
            batches = exemplar_set.imi_batches or {}
            if not batches.get("max") or not batches.get("min"):
                needs.add("imi_batches")
        elif not all(_band(exemplar_set, name) for name in _band_names(condition)):
            needs.add("bands")
    n_synthetic = _n_synthetic(condition)
    if n_synthetic:
        preset = condition.visualization_preset
        enough = len(stimuli.synthetic(preset, True)) >= n_synthetic
        if condition.sides == Condition.Sides.MIN_MAX:
            enough = enough and len(stimuli.synthetic(preset, False)) >= n_synthetic
        if not enough:
            needs.add(f"visualizations:{preset}")
    if condition.explanation == Condition.Explanation.BLURRED:
        top = {e["image"] for e in exemplar_set.top}
        if len(top & set(stimuli.blurred())) < condition.n_references + 2:
            needs.add("blurred")
    if sources_needed(paradigm, condition) > available_sources(stimuli, condition):
        needs.add("too_few_sources")
    for shortfall in band_shortfalls(paradigm, condition, stimuli):
        needs.add("activation_bands" if shortfall.have is None else "band_too_small")
    return needs


def shows_description(paradigm: str, condition: Condition) -> bool:
    """Whether the condition's trials show the unit's description (description_choice only)."""
    return paradigm == Paradigm.DESCRIPTION_CHOICE and condition.shows_description


@dataclass(frozen=True)
class BandShortfall:
    """A condition's band that cannot serve a unit: absent (`have` None) or too small."""

    band: bands.ActivationBand
    use: str  # "references" or "queries"
    need: int  # images (distinct photos where the image set names them)
    have: int | None


def band_shortfalls(
    paradigm: str, condition: Condition, stimuli: UnitStimuli
) -> list[BandShortfall]:
    """The condition's bands this unit's exemplar set lacks or holds too few images in: a
    reference band needs the references beside the queries' photos, a query band one image."""
    assert stimuli.exemplar_set is not None
    stored = stimuli.exemplar_set.bands or {}
    wanted = [(b, "references", sources_needed(paradigm, condition))
              for b in bands.parse_sides(condition.reference_band).bands()]  # fmt: skip
    if paradigm == Paradigm.REFERENCE_CHOICE:
        wanted += [(b, "queries", 1) for b in bands.parse_sides(condition.query_band).bands()]
    shortfalls = []
    for band, use, need in wanted:
        if band.name not in stored:
            shortfalls.append(BandShortfall(band, use, need, None))
            continue
        have = stimuli.distinct_sources(stored[band.name].get("images", []))
        if have < need:
            shortfalls.append(BandShortfall(band, use, need, have))
    return shortfalls


def sources_needed(paradigm: str, condition: Condition) -> int:
    """Distinct source photos a unit's exemplar list needs for this condition's natural
    references beside the queries' photos (two queries; one base image when occluding)."""
    natural = _n_natural(condition)
    if not natural:
        return 0
    return natural + (1 if paradigm == Paradigm.OCCLUSION_CHOICE else 2)


def available_sources(stimuli: UnitStimuli, condition: Condition) -> int:
    """Distinct source photos in the lists the condition's natural references come from."""
    assert stimuli.exemplar_set is not None
    banded = bands.parse_sides(condition.reference_band)  # bands: see band_shortfalls
    count = stimuli.distinct_sources(stimuli.exemplar_set.top) if banded.max is None else 10**9
    if condition.sides == Condition.Sides.MIN_MAX and banded.min is None:
        count = min(count, stimuli.distinct_sources(stimuli.exemplar_set.bottom))
    return count


def _n_natural(condition: Condition) -> int:
    if condition.explanation in (Condition.Explanation.NATURAL, Condition.Explanation.BLURRED):
        return condition.n_references
    if condition.explanation == Condition.Explanation.MIXED:
        return MIXED_NATURAL
    return 0


def _n_synthetic(condition: Condition) -> int:
    if condition.explanation == Condition.Explanation.SYNTHETIC:
        return condition.n_references
    if condition.explanation == Condition.Explanation.MIXED:
        return MIXED_SYNTHETIC
    return 0


def _band_names(condition: Condition) -> list[str]:
    return str(condition.query_selection).split("/")


def _band(exemplar_set: ExemplarSet, name: str) -> list[int]:
    return [e["image"] for e in (exemplar_set.bands or {}).get(name, {}).get("images", [])]


# --- trial content -------------------------------------------------------------------------


def trial_content(
    paradigm: str,
    condition: Condition,
    stimuli: UnitStimuli,
    response_number: int,
    is_catch: bool,
    rng: random.Random,
) -> TrialContent:
    if paradigm == Paradigm.OCCLUSION_CHOICE:
        content = _occlusion_content(condition, stimuli, response_number, rng)
    else:
        content = _reference_content(condition, stimuli, response_number, rng)
    if shows_description(paradigm, condition):
        content = _with_description(content, stimuli)
    return _as_catch(content, stimuli, condition, rng) if is_catch else content


def _pick(items: list[Any], response_number: int, salt: str) -> tuple[int, Any]:
    """The item for this response: a seeded permutation cycled by response number."""
    order = list(range(len(items)))
    random.Random(salt).shuffle(order)
    position = order[response_number % len(items)]
    return position, items[position]


def _natural_queries(
    condition: Condition, exemplar_set: ExemplarSet, response_number: int
) -> tuple[int, int, list[int], list[int], dict[str, Any]]:
    """(max query, min query, natural max references, natural min references, source)."""
    salt = f"{exemplar_set.pk}:{condition.query_selection}"
    if condition.query_selection == Condition.QuerySelection.EXTREME:
        batches = exemplar_set.imi_batches
        n_batches = min(len(batches["max"]), len(batches["min"]))
        batch, _ = _pick(list(range(n_batches)), response_number, salt)
        top, bottom = batches["max"][batch], batches["min"][batch]
        source = {"rule": "extreme", "batch": batch}
        return (
            top["query"]["image"],
            bottom["query"]["image"],
            [e["image"] for e in top["references"]],
            [e["image"] for e in bottom["references"]],
            source,
        )
    low_name, high_name = _band_names(condition)
    low_at, low = _pick(_band(exemplar_set, low_name), response_number, salt + ":low")
    high_at, high = _pick(_band(exemplar_set, high_name), response_number, salt + ":high")
    source = {
        "rule": "band",
        "band": f"{low_name}/{high_name}",
        "min_at": low_at,
        "max_at": high_at,
    }
    top = [e["image"] for e in exemplar_set.top if e["image"] not in (low, high)]
    bottom = [e["image"] for e in exemplar_set.bottom if e["image"] not in (low, high)]
    return high, low, top, bottom, source


def _band_queries(
    condition: Condition,
    exemplar_set: ExemplarSet,
    response_number: int,
    high: int,
    low: int,
    source: dict[str, Any],
) -> tuple[int, int, dict[str, Any]]:
    """The queries of the condition's banded sides, each picked from its band."""
    sides = bands.parse_sides(condition.query_band)
    if not sides.bands():
        return high, low, source
    salt = f"{exemplar_set.pk}:query-band:{condition.query_band}"
    source = {**source, "query_band": condition.query_band}
    if sides.max is not None:
        source["max_at"], high = _pick(_band(exemplar_set, sides.max.name), response_number, salt)
    if sides.min is not None:
        source["min_at"], low = _pick(
            _band(exemplar_set, sides.min.name), response_number, salt + ":low"
        )
    return high, low, source


def _natural_side(
    stimuli: UnitStimuli,
    condition: Condition,
    side: str,
    candidates: list[int],
    shown: tuple[int, ...],
    response_number: int,
) -> list[int]:
    """One side's natural references in order: from the side's band when the condition names
    one (a seeded draw per response number), else the candidates topped up from the side's
    extremes; never a query or a query's photo."""
    exemplar_set = stimuli.exemplar_set
    assert exemplar_set is not None
    band = getattr(bands.parse_sides(condition.reference_band), side)
    if band is None:
        ranked = exemplar_set.top if side == "max" else exemplar_set.bottom
        return _apart(stimuli, candidates, ranked, shown)
    pool = _band(exemplar_set, band.name)
    random.Random(f"{exemplar_set.pk}:{band.name}:{response_number}").shuffle(pool)
    return _apart(stimuli, pool, [], shown)


def _references(
    condition: Condition,
    stimuli: UnitStimuli,
    natural: list[int],
    maximal: bool,
    rng: random.Random,
    shown: tuple[int, ...] = (),
) -> list[int]:
    n, explanation = condition.n_references, condition.explanation
    if explanation == Condition.Explanation.NONE:
        return []
    if explanation == Condition.Explanation.NATURAL:
        return natural[:n]
    if explanation == Condition.Explanation.BLURRED:
        return _blurred(stimuli, natural, n, shown)
    synthetic = stimuli.synthetic(condition.visualization_preset, maximal)
    rest = synthetic[1:]
    rng.shuffle(rest)  # the non-diverse visualization stays first
    synthetic = synthetic[:1] + rest
    if explanation == Condition.Explanation.MIXED:
        return natural[:MIXED_NATURAL] + synthetic[:MIXED_SYNTHETIC]
    return synthetic[:n]


def _blurred(stimuli: UnitStimuli, natural: list[int], n: int, shown: tuple[int, ...]) -> list[int]:
    """Blurred copies of the natural references, topped up from the rest of the top-k."""
    assert stimuli.exemplar_set is not None
    blurred = stimuli.blurred()
    candidates = _apart(stimuli, natural, stimuli.exemplar_set.top, shown)
    return [blurred[i] for i in candidates if i in blurred][:n]


def _in_order(
    correct: int, wrong: int, rng: random.Random
) -> tuple[list[int], int, dict[str, Any]]:
    correct_query = rng.randrange(2)
    queries = [correct, wrong] if correct_query == 0 else [wrong, correct]
    return queries, correct_query, {"correct_on_top": correct_query == 0}


def _apart(
    stimuli: UnitStimuli,
    candidates: list[int],
    ranked: list[dict[str, Any]],
    shown: tuple[int, ...],
) -> list[int]:
    """The candidates, then the rest of the ranked list as top-ups, without the images shown as
    queries and without any image of their source photos."""
    banned = {stimuli.source_of(image) for image in shown}
    ordered = dict.fromkeys(candidates + [entry["image"] for entry in ranked])
    return [i for i in ordered if i not in shown and stimuli.source_of(i) not in banned]


def _reference_content(
    condition: Condition, stimuli: UnitStimuli, response_number: int, rng: random.Random
) -> TrialContent:
    exemplar_set = stimuli.exemplar_set
    assert exemplar_set is not None
    high, low, top, bottom, source = _natural_queries(condition, exemplar_set, response_number)
    high, low, source = _band_queries(condition, exemplar_set, response_number, high, low, source)
    top = _natural_side(stimuli, condition, "max", top, (high, low), response_number)
    bottom = _natural_side(stimuli, condition, "min", bottom, (high, low), response_number)
    references_max = _references(condition, stimuli, top, True, rng, (high, low))
    references_min: list[int] = []
    if condition.sides == Condition.Sides.MIN_MAX:
        references_min = _references(condition, stimuli, bottom, False, rng, (high, low))
    queries, correct_query, order = _in_order(high, low, rng)
    return TrialContent(
        Paradigm.REFERENCE_CHOICE, references_min, references_max, None, queries,
        correct_query, {**source, **order},
    )  # fmt: skip


def _with_description(content: TrialContent, stimuli: UnitStimuli) -> TrialContent:
    """The reference trial as a description_choice trial: the same queries, with the words."""
    description = stimuli.description
    assert description is not None
    source = {**content.query_source, "description": description.pk,
              "description_source": description.source}  # fmt: skip
    return dataclasses.replace(
        content, kind=Paradigm.DESCRIPTION_CHOICE, description=description.text,
        query_source=source,
    )  # fmt: skip


def _occlusion_content(
    condition: Condition, stimuli: UnitStimuli, response_number: int, rng: random.Random
) -> TrialContent:
    assert stimuli.exemplar_set is not None
    maps = stimuli.usable_maps()
    _, occlusion_map = _pick(maps, response_number, f"occlusion:{stimuli.exemplar_set.unit_id}")
    base = occlusion_map.base_image_id
    natural = _natural_side(stimuli, condition, "max", [], (base,), response_number)
    references_max = _references(condition, stimuli, natural, True, rng, (base,))
    queries, correct_query, order = _in_order(
        occlusion_map.occluded_at_max_id, occlusion_map.occluded_at_min_id, rng
    )
    source = {"rule": "occlusion", "occlusion_map": occlusion_map.pk, **order}
    return TrialContent(
        Paradigm.OCCLUSION_CHOICE, [], references_max, occlusion_map.base_image_id, queries,
        correct_query, source,
    )  # fmt: skip


def _as_catch(
    content: TrialContent, stimuli: UnitStimuli, condition: Condition, rng: random.Random
) -> TrialContent:
    references_max, references_min = content.references_max, content.references_min
    if not references_max:
        assert stimuli.exemplar_set is not None
        shown = set(content.queries)
        natural = [e["image"] for e in stimuli.exemplar_set.top if e["image"] not in shown]
        references_max = natural[:CATCH_REFERENCES]
        if condition.sides == Condition.Sides.MIN_MAX and content.kind != Paradigm.OCCLUSION_CHOICE:
            bottom = [e["image"] for e in stimuli.exemplar_set.bottom if e["image"] not in shown]
            references_min = bottom[:CATCH_REFERENCES]
    queries = list(content.queries)
    repeated = rng.choice(references_max)
    queries[content.correct_query] = repeated
    source = {**content.query_source, "catch": True, "repeats_reference": repeated}
    if references_min and content.kind != Paradigm.OCCLUSION_CHOICE:
        # As Borowski et al. (2021): the other query is one of the minimally activating
        # references shown, so both answers can be read off the references.
        other = rng.choice(references_min)
        queries[1 - content.correct_query] = other
        source["repeats_min_reference"] = other
    return dataclasses.replace(
        content, references_min=references_min, references_max=references_max, queries=queries,
        query_source=source,
    )  # fmt: skip
