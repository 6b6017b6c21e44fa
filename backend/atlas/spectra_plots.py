"""Figures of spectra, drawn on the server with matplotlib (Agg) as SVG text (as the results
page's figures are): one layer's log–log spectrum with its fitted power law and the criterion's
slope, its random-projection curves along the path, and α, participation ratio and energy
against depth for the layers of one or more networks, one line per network, basis and
sampling."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from backend.analysis.plots import no_data_figure, svg  # noqa: E402
from backend.atlas.models import Spectrum  # noqa: E402

SIZE = (5.0, 3.2)  # inches


def spectrum_figure(spectrum: Spectrum) -> Figure:
    """λₙ against n on log–log axes, the fit over its rank range, and the slope 1 + 2/d."""
    values = [(n, v) for n, v in enumerate(spectrum.eigenvalues, start=1) if v > 0]
    if not values:
        return no_data_figure("Eigenspectrum", "every eigenvalue is zero")
    figure, axes = plt.subplots(figsize=SIZE)
    axes.loglog([n for n, _ in values], [v for _, v in values], ".", markersize=3,
                color="#4c78a8", label="eigenvalues")  # fmt: skip
    intercept = spectrum.details.get("intercept")
    if spectrum.alpha is not None and intercept is not None and spectrum.fit_first:
        ranks = [spectrum.fit_first, spectrum.fit_last or spectrum.fit_first]
        fitted = [math.exp(intercept - spectrum.alpha * math.log(n)) for n in ranks]
        r2, span = spectrum.alpha_r2 or 0.0, f"ranks {ranks[0]}–{ranks[1]}"
        label = f"α = {spectrum.alpha:.2f} (R² {r2:.2f}, {span})"
        axes.loglog(ranks, fitted, "-", color="#e45756", linewidth=2, label=label)
        anchor = fitted[0]
        slope = [anchor * (n / ranks[0]) ** -spectrum.criterion for n in ranks]
        axes.loglog(ranks, slope, "--", color="#888", linewidth=1,
                    label=f"criterion 1 + 2/d = {spectrum.criterion:.2f}")  # fmt: skip
    axes.set_xlabel("rank n")
    axes.set_ylabel("eigenvalue λₙ")
    title = f"{spectrum.layer.name} ({spectrum.basis}, {spectrum.sampling})"
    if spectrum.fit_error:
        title += " — no fit"
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def projection_figure(spectrum: Spectrum) -> Figure:
    """The layer's responses along the path projected on each random direction (one line per
    direction), so a smooth code shows as smooth curves."""
    curves = spectrum.details.get("projections") or []
    if not curves:
        return no_data_figure("Random projections", "no stimulus path was run for this row")
    figure, axes = plt.subplots(figsize=SIZE)
    steps = list(range(len(curves)))
    for direction in range(len(curves[0])):
        axes.plot(steps, [row[direction] for row in curves], linewidth=1)
    path = spectrum.details.get("path") or {}
    axes.set_xlabel(f"path step ({path.get('kind', '?')})")
    axes.set_ylabel("projection")
    energy = "—" if spectrum.energy is None else f"{spectrum.energy:.3f}"
    shuffled = "—" if spectrum.energy_shuffled is None else f"{spectrum.energy_shuffled:.3f}"
    axes.set_title(f"energy {energy} (shuffled {shuffled})", fontsize=10)
    figure.tight_layout()
    return figure


METRICS = {
    "alpha": ("α (power-law exponent)", lambda s: s.alpha),
    "participation_ratio": ("participation ratio / dimension", lambda s: s.pr_fraction),
    "energy": ("random-projection energy", lambda s: s.energy),
}


def series_of(spectra: Iterable[Spectrum]) -> dict[str, list[Spectrum]]:
    """Rows grouped into lines: network, basis, sampling and image set, in depth order."""
    lines: dict[str, list[Spectrum]] = {}
    for row in sorted(spectra, key=lambda s: (s.layer.network_id, s.layer.position)):
        label = f"{row.layer.network.name} · {row.basis} · {row.sampling} · {row.image_set.name}"
        lines.setdefault(label, []).append(row)
    return lines


def depth_figure(spectra: list[Spectrum], metric: str) -> Figure:
    """One metric against relative depth (the layer's place among the network's layers)."""
    title, value = METRICS[metric]
    if not spectra:
        return no_data_figure(title, "no spectra yet: compute some")
    figure, axes = plt.subplots(figsize=SIZE)
    depth = _relative_depths(spectra)
    for label, rows in series_of(spectra).items():
        points = [(depth[row.pk], value(row)) for row in rows if value(row) is not None]
        if points:
            axes.plot(*zip(*points, strict=True), "o-", markersize=4, label=label)
    if metric == "alpha":
        criteria = sorted({row.criterion for row in spectra})
        for criterion in criteria:
            axes.axhline(criterion, color="#888", linestyle="--", linewidth=1)
    if metric == "energy":
        shuffled = [row.energy_shuffled for row in spectra if row.energy_shuffled is not None]
        if shuffled:
            axes.axhline(sum(shuffled) / len(shuffled), color="#888", linestyle=":", linewidth=1,
                         label="shuffled path (mean)")  # fmt: skip
        pixels = [row.energy_pixels for row in spectra if row.energy_pixels is not None]
        if pixels:
            axes.axhline(pixels[0], color="#bbb", linestyle="--", linewidth=1, label="pixels")
    axes.set_xlabel("relative depth")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=6)
    figure.tight_layout()
    return figure


def _relative_depths(spectra: list[Spectrum]) -> dict[int, float]:
    """Each row's layer position over the deepest position of its network's layers."""
    from django.db.models import Max

    from backend.stimuli.models import Layer

    networks = {row.layer.network_id for row in spectra}
    deepest = dict(
        Layer.objects.filter(network_id__in=networks)
        .values_list("network_id")
        .annotate(Max("position"))
    )
    return {row.pk: row.layer.position / max(deepest[row.layer.network_id], 1) for row in spectra}


def inline_svg(figure: Figure) -> str:
    """The figure as an <svg> element to put inside a page (no XML prologue)."""
    text = svg(figure)
    return text[text.index("<svg") :]


def svgs(figures: dict[str, Any]) -> dict[str, str]:
    return {name: inline_svg(figure) for name, figure in figures.items()}
