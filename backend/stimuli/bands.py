"""Activation bands of a condition: where its references and queries come from when not from a
unit's extremes (O'Mahony, Nikolov & O'Sullivan 2025: the non-extremal range of a unit shows
what its extremes hide).

A band is a quantile range of the unit's activations over the image set, in percent, written
``"LL-HH"`` (``"40-60"``: the images whose activation quantile lies in [0.40, 0.60], both edges
included, as the exemplar pass defines them). A condition's `reference_band` and `query_band`
are ``"MIN/MAX"`` with either side a band or empty (that side keeps its default: the bottom-k
or top-k for references, the query rule for queries); a single band without a slash is the
max side's. The exemplar pass stores each band under `band_name` (``"p40_60"``).
"""

from __future__ import annotations

from dataclasses import dataclass


class BandError(ValueError):
    """A band written in a way that names no quantile range."""


@dataclass(frozen=True)
class ActivationBand:
    lower: float  # percent, 0 = the lowest activation
    upper: float

    @property
    def name(self) -> str:
        """The key the exemplar pass stores the band under."""
        return f"p{self.lower:g}_{self.upper:g}"

    @property
    def quantiles(self) -> tuple[float, float]:
        return self.lower / 100, self.upper / 100

    def __str__(self) -> str:
        return f"{self.lower:g}–{self.upper:g} %"


@dataclass(frozen=True)
class SideBands:
    """The band of each side of a trial; None: that side's default."""

    min: ActivationBand | None
    max: ActivationBand | None

    def bands(self) -> list[ActivationBand]:
        return [band for band in (self.min, self.max) if band is not None]


def parse_band(text: str) -> ActivationBand:
    """``"40-60"`` → ActivationBand(40, 60); percent in [0, 100], lower below upper."""
    parts = text.strip().split("-")
    if len(parts) != 2:
        raise BandError(f"{text!r} is not a band: write it as LOW-HIGH in percent, e.g. 40-60.")
    try:
        lower, upper = (float(part) for part in parts)
    except ValueError:
        raise BandError(f"{text!r} is not a band: LOW and HIGH must be numbers.") from None
    if not 0 <= lower < upper <= 100:
        raise BandError(f"{text!r}: a band needs 0 <= LOW < HIGH <= 100 (percent).")
    return ActivationBand(lower, upper)


def parse_sides(text: str) -> SideBands:
    """``""`` → no bands; ``"40-60"`` → the max side's; ``"0-10/40-60"`` → min side / max side;
    ``"/40-60"`` or ``"0-10/"``: one side only."""
    text = (text or "").strip()
    if not text:
        return SideBands(None, None)
    if "/" not in text:
        return SideBands(None, parse_band(text))
    low, high, *rest = text.split("/")
    if rest:
        raise BandError(f"{text!r}: write MIN/MAX with one slash, e.g. 0-10/40-60.")
    sides = SideBands(
        parse_band(low) if low.strip() else None, parse_band(high) if high.strip() else None
    )
    if not sides.bands():
        raise BandError(f"{text!r} names no band.")
    return sides


def query_band_error(sides: SideBands) -> str | None:
    """Queries from bands must have a right answer: the max query's band lies wholly above the
    min query's (they may touch)."""
    if sides.min is not None and sides.max is not None and sides.min.upper > sides.max.lower:
        return (
            f"The min query's band ({sides.min}) reaches above the max query's ({sides.max}): "
            "the two queries would not differ in activation. Use bands that do not overlap."
        )
    return None


def exemplar_band_params(texts: list[str]) -> list[list[float]]:
    """The exemplar job's `bands` parameter ([[lower, upper] in percent, …]) for conditions'
    band fields, each band once, in order."""
    seen: dict[str, list[float]] = {}
    for text in texts:
        for band in parse_sides(text).bands():
            seen.setdefault(band.name, [band.lower, band.upper])
    return list(seen.values())
