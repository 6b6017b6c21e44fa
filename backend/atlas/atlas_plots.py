"""Figures of the atlas, drawn on the server with matplotlib (Agg) as inline SVG (as the results
page and the spectra pages draw theirs): the Spearman matrix between a unit set's measures, the
cumulative ablation curves against size-matched random groups, a populations dendrogram, the
basis comparison (dictionary directions against channels of the same layer), and human
accuracy per unit against a measure."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from backend.analysis.plots import no_data_figure  # noqa: E402
from backend.atlas.compare import RankCorrelation  # noqa: E402
from backend.atlas.models import AblationCurve  # noqa: E402
from backend.atlas.spectra_plots import inline_svg  # noqa: E402

SIZE = (5.0, 3.2)  # inches
COLOURS = ["#4c78a8", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2", "#9d755d"]

__all__ = ["inline_svg"]


def spearman_figure(names: list[str], matrix: list[list[float | None]]) -> Figure:
    """ρ between every two measures as a heat map (blank: fewer than 3 units with both)."""
    if len(names) < 2:
        return no_data_figure("Spearman ρ between measures", "needs two measures or more")
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], float)
    side = max(3.2, 0.45 * len(names) + 1.6)
    figure, axes = plt.subplots(figsize=(side + 1.0, side))
    image = axes.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axes, shrink=0.8, label="Spearman ρ")
    axes.set_title("Spearman ρ between measures (over units)", fontsize=10)
    figure.tight_layout()
    return figure


def ablation_curves_figure(curves: list[AblationCurve]) -> Figure:
    """Accuracy drop against k for each ranking, with the random groups' mean ± sd."""
    if not curves:
        return no_data_figure("Cumulative ablations", "no group ablations computed yet")
    figure, axes = plt.subplots(figsize=SIZE)
    first = curves[0]
    mean = [float("nan") if v is None else v for v in first.random_mean]
    sd = [0.0 if v is None else v for v in first.random_sd]
    axes.fill_between(first.ks, [m - s for m, s in zip(mean, sd, strict=True)],
                      [m + s for m, s in zip(mean, sd, strict=True)], color="#ccc",
                      label="random groups (mean ± sd)")  # fmt: skip
    axes.plot(first.ks, mean, color="#888", linestyle="--", linewidth=1)
    for colour, curve in zip(COLOURS * 3, curves, strict=False):
        ranked = [float("nan") if v is None else v for v in curve.ranked]
        axes.plot(curve.ks, ranked, "o-", color=colour, markersize=3,
                  label=f"ranked by {curve.ranked_by}")  # fmt: skip
    axes.set_xscale("log", base=2)
    axes.set_xlabel("units removed together (k)")
    axes.set_ylabel("top-1 accuracy drop")
    axes.set_title("Cumulative ablations (Morcos et al. 2018)", fontsize=10)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def dendrogram_figure(linkage: list[list[float]], units: list[int], title: str) -> Figure:
    """scipy's dendrogram of the clustering, leaves named by unit index."""
    if len(units) < 2 or not linkage:
        return no_data_figure(title, "no clustering stored")
    import numpy as np
    from scipy.cluster.hierarchy import dendrogram

    figure, axes = plt.subplots(figsize=(max(5.0, 0.12 * len(units)), 3.2))
    dendrogram(np.asarray(linkage, float), labels=[str(u) for u in units], ax=axes,
               leaf_font_size=6, color_threshold=None)  # fmt: skip
    axes.set_ylabel("1 − r (average linkage)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def basis_figure(rows: list[dict[str, Any]]) -> Figure:
    """Per measure, the mean over units of each unit set (dictionary vs channels), ± sem."""
    if not rows:
        return no_data_figure("Basis comparison", "no measures on both bases")
    figure, panels = plt.subplots(1, len(rows), figsize=(2.4 * len(rows) + 0.6, 3.0))
    panels = panels if len(rows) > 1 else [panels]
    for axes, row in zip(panels, rows, strict=True):
        labels = [side["label"] for side in row["sides"]]
        means = [side["mean"] for side in row["sides"]]
        errors = [side["sem"] for side in row["sides"]]
        axes.bar(labels, means, yerr=errors, capsize=4, color=COLOURS[: len(labels)])
        axes.set_title(row["measure"], fontsize=9)
        axes.tick_params(axis="x", labelrotation=20, labelsize=7)
    figure.suptitle("Dictionary directions against channels (matched in count)", fontsize=10)
    figure.tight_layout()
    return figure


def human_scatter_figure(
    measure: str, points: dict[str, list[tuple[float, float]]],
    correlations: dict[str, RankCorrelation],
) -> Figure:  # fmt: skip
    """Human accuracy per unit (y) against a measure (x), one colour per condition."""
    if not any(points.values()):
        return no_data_figure(f"Accuracy against {measure}", "no unit has both")
    figure, axes = plt.subplots(figsize=(4.2, 3.0))
    for colour, (condition, pairs) in zip(COLOURS * 3, sorted(points.items()), strict=False):
        rho = correlations[condition]
        shown = "ρ n/a" if rho.statistic is None else f"ρ = {rho.statistic:.2f}"
        axes.scatter([x for x, _ in pairs], [y for _, y in pairs], s=10, color=colour,
                     label=f"{condition} ({shown}, n = {rho.n})")  # fmt: skip
    axes.set_xlabel(measure)
    axes.set_ylabel("human accuracy per unit")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f"Accuracy against {measure}", fontsize=10)
    axes.legend(fontsize=6)
    figure.tight_layout()
    return figure
