"""Study test data: a network with unit sets whose units have exemplars (top, bottom, bands,
IMI batches), visualizations and occlusion maps made of tiny real images; studies and users."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from backend.stimuli.models import (
    ExemplarSet,
    Image,
    ImageSet,
    Layer,
    Network,
    OcclusionMap,
    Unit,
    UnitSet,
    Visualization,
)
from backend.stimuli.services import store_image
from backend.studies import services
from backend.studies.models import PracticeTrial, Study
from tests.stimuli.factories import png_bytes

POOL_SIZE = 80
BANDS = ("q01", "q99", "q05", "q95", "q15", "q85")


def image_pool(kind: str = Image.Kind.NATURAL, offset: int = 0) -> list[int]:
    return [
        store_image(png_bytes(offset + seed, size=32), kind=kind).pk for seed in range(POOL_SIZE)
    ]


def entries(ids: list[int]) -> list[dict[str, Any]]:
    return [{"image": image, "value": float(len(ids) - i)} for i, image in enumerate(ids)]


def unit_set(name: str = "channels", n_units: int = 12, network: str = "net") -> UnitSet:
    net, _ = Network.objects.get_or_create(name=network, defaults={"source": "builtin:test"})
    layer, _ = Layer.objects.get_or_create(
        network=net, name="features.3", defaults={"shape": [n_units, 7, 7]}
    )
    units = UnitSet.objects.create(
        name=name, layer=layer, kind=UnitSet.Kind.CHANNELS, n_units=n_units
    )
    Unit.objects.bulk_create([Unit(unit_set=units, index=i) for i in range(n_units)])
    return units


def natural_image_set() -> ImageSet:
    image_set, _ = ImageSet.objects.get_or_create(name="demo", defaults={"origin": "demo"})
    return image_set


def add_exemplars(units: UnitSet, pool: list[int], batches: int = 3) -> None:
    image_set = natural_image_set()
    for unit in units.units.all():
        start = unit.index % 10
        ids = pool[start:] + pool[:start]
        top, bottom = ids[:30], ids[30:60]
        bands = {name: {"low": 0.0, "high": 1.0, "images": entries(ids[60 + 3 * i : 63 + 3 * i])}
                 for i, name in enumerate(BANDS)}  # fmt: skip
        imi = {
            side: [{"query": entries(src[10 * b : 10 * b + 1])[0],
                    "references": entries(src[10 * b + 1 : 10 * b + 10])} for b in range(batches)]
            for side, src in (("max", top), ("min", bottom))
        }  # fmt: skip
        ExemplarSet.objects.create(
            unit=unit, image_set=image_set, k=30, top=entries(top), bottom=entries(bottom),
            bands=bands, imi_batches=imi,
        )  # fmt: skip


def add_visualizations(units: UnitSet, pool: list[int], preset: str = "", n: int = 9) -> None:
    rows = []
    for unit in units.units.all():
        for sign, offset in ((1, 0), (-1, 40)):
            for index in range(n):
                rows.append(Visualization(
                    unit=unit, image_id=pool[(offset + index + unit.index) % POOL_SIZE],
                    method="fft", preset=preset, params={"sign": sign}, seed=sign, index=index,
                    steps=10, final_activation=1.0,
                ))  # fmt: skip
    Visualization.objects.bulk_create(rows)


def add_occlusion_maps(
    units: UnitSet, pool: list[int], derived: list[int], per_unit: int = 12
) -> None:
    rows = []
    for unit in units.units.all():
        top = [entry["image"] for entry in unit.exemplar_sets.get().top]
        for i, base in enumerate(top[:per_unit]):
            rows.append(OcclusionMap(
                unit=unit, base_image_id=base, occluder_fraction=0.4, stride=2, grid=[[0.0]],
                base_activation=1.0, argmax=[0, 0], argmin=[1, 1], max_activation=2.0,
                min_activation=0.0, occluded_at_max_id=derived[(2 * i) % POOL_SIZE],
                occluded_at_min_id=derived[(2 * i + 1) % POOL_SIZE],
                blurred_id=derived[(40 + i) % POOL_SIZE],
            ))  # fmt: skip
    OcclusionMap.objects.bulk_create(rows)


def stimulated_unit_set(n_units: int = 12, name: str = "channels", network: str = "net") -> UnitSet:
    """A unit set whose units have every kind of stimulus."""
    units = unit_set(name, n_units, network)
    natural, synthetic = image_pool(), image_pool(Image.Kind.SYNTHETIC, 1000)
    add_exemplars(units, natural)
    add_visualizations(units, synthetic)
    add_visualizations(units, synthetic, preset="imi")
    add_visualizations(units, synthetic, preset="lucent")
    add_occlusion_maps(units, natural, image_pool(Image.Kind.DERIVED, 2000))
    return units


def study(
    owner: User, preset: str = "imi2023", units: UnitSet | None = None, **fields: Any
) -> Study:
    created = services.do_create_study(
        owner, {"slug": fields.pop("slug", "s1"), "title": "A study", **fields}, preset
    )
    if units is not None:
        services.do_set_relations(created, unit_sets=[units])
        created.image_set = natural_image_set()
        created.save()
    return created


def practice_per_condition(study: Study, units: UnitSet, n: int) -> None:
    """`n` hand-picked practice trials for each of the study's conditions."""
    chosen = list(units.units.order_by("index"))
    index = 0
    for condition in study.conditions.order_by("position"):
        for _ in range(n):
            unit = chosen[index % len(chosen)]
            PracticeTrial.objects.create(study=study, index=index, unit=unit, condition=condition)
            index += 1


def ready_to_launch(study: Study) -> Study:
    """Consent and instructions written and one hand-picked practice trial (the presets loop
    practice until correct), as launching asks (backend/studies/readiness.py)."""
    study.consent_markdown = "You agree to take part."
    study.instructions_markdown = "Pick the image that also activates the unit."
    study.save()
    unit = next(iter(study.unit_sets.order_by("pk"))).units.order_by("index").first()
    PracticeTrial.objects.create(study=study, index=0, unit=unit)
    return study
