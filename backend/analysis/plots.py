"""Figures of the results page, drawn on the server with matplotlib (Agg) as SVG text, so the
admin needs no JavaScript library and no CDN. Each figure is cached under the results version
(see `dashboard.results_version`): it is redrawn only after new responses or decisions.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from backend.analysis.dashboard import CACHE_SECONDS, Cell, Results  # noqa: E402
from backend.core import softcache  # noqa: E402

FIGURE_SIZE = (5.0, 2.8)  # inches
# The <img> attributes of a figure: its aspect ratio, so the page keeps the figure's place
# while it is still being drawn (nothing below it moves under the researcher's pointer).
FIGURE_ATTRIBUTES = {"width": round(FIGURE_SIZE[0] * 100), "height": round(FIGURE_SIZE[1] * 100)}


NO_DATA = "No valid sessions yet"


def no_data_figure(title: str, message: str = NO_DATA) -> Figure:
    """A figure with nothing to draw says so, without axes whose ticks would mean nothing."""
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555")
    return figure


def accuracy_figure(cells: list[Cell], chance: float, title: str) -> Figure:
    """Bars of accuracy with their 95 % CI (bootstrap over units) and the chance line."""
    if not cells:
        return no_data_figure(title)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    labels = [cell.label for cell in cells]
    accuracy = [cell.accuracy for cell in cells]
    errors = [
        [max(cell.accuracy - cell.low, 0) for cell in cells],
        [max(cell.high - cell.accuracy, 0) for cell in cells],
    ]
    axes.bar(labels, accuracy, yerr=errors, capsize=4, color="#4c78a8")
    axes.axhline(chance, color="#888", linestyle="--", linewidth=1, label="chance")
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.tight_layout()
    return figure


def rt_figure(results: Results) -> Figure:
    if not results.rt_ms:
        return no_data_figure("Reaction times")
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    for condition, values in sorted(results.rt_ms.items()):
        axes.hist([value / 1000 for value in values], bins=30, alpha=0.5, label=condition)
    axes.set_xlabel("reaction time (s)")
    axes.set_ylabel("responses")
    axes.set_title("Reaction times", fontsize=10)
    if results.rt_ms:
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def confidence_figure(results: Results) -> Figure:
    if not results.confidence:
        return no_data_figure("Confidence")
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    conditions = sorted(results.confidence)
    width = 0.8 / max(len(conditions), 1)
    for offset, condition in enumerate(conditions):
        counts = results.confidence[condition]
        total = sum(counts.values())
        levels = sorted(counts)
        positions = [level + offset * width for level in levels]
        shares = [counts[level] / total for level in levels]
        axes.bar(positions, shares, width=width, label=condition)
    axes.set_xlabel("confidence")
    axes.set_ylabel("fraction of responses")
    axes.set_title("Confidence", fontsize=10)
    if conditions:
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


FIGURES: dict[str, Callable[[Results], Figure]] = {
    "condition": lambda r: accuracy_figure(r.by_condition, r.chance, "Accuracy by condition"),
    "layer": lambda r: accuracy_figure(r.by_layer, r.chance, "Accuracy by layer"),
    "basis": lambda r: accuracy_figure(r.by_basis, r.chance, "Accuracy by basis"),
    "rt": rt_figure,
    "confidence": confidence_figure,
}


def svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    return buffer.getvalue()


def cached_svg(name: str, version: str, results: Results) -> str:
    """The named figure as SVG text, drawn once per results version."""
    key = f"psylens:plot:{name}:{version}"
    return softcache.get_or_compute(key, lambda: svg(FIGURES[name](results)), CACHE_SECONDS)
