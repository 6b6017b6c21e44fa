"""Confounds in a unit's middle range (O'Mahony, Nikolov & O'Sullivan 2025, arXiv 2411.10019):
split the unit's activations over an image set into quantile bands (deciles by default) and ask
which label or attribute value is over-represented in a band against the top band and against
the base rate.

Per band: its activation range, its images (the most active first, for the exemplar grid) and
the distribution of every attribute (the label is the attribute "label"). Per band below the
top, attribute and value, two 2×2 tables — value / not value in the band against in the top
band, and in the band against the rest of the image set — each tested with Fisher's exact test
(two-sided, as `scipy.stats.fisher_exact`); all p-values of a report are Holm-corrected together
(Holm 1979). A candidate confound is a value over-represented (odds ratio > 1) with a corrected
p below alpha; its effect sizes are the odds ratio (Haldane's +0.5 where a cell is 0) and the
enrichment, the value's share in the band over its share in the image set. Candidates are
ranked by corrected p, then by the larger log odds ratio. Pure numpy; no Django.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "ConfoundReport",
    "FisherResult",
    "confound_report",
    "decile_bands",
    "fisher_exact",
    "holm",
    "unit_values_pass",
]


@dataclass(frozen=True)
class FisherResult:
    statistic: float  # the sample odds ratio a d / (b c) (inf or nan as scipy gives it)
    pvalue: float


def fisher_exact(table: Sequence[Sequence[int]]) -> FisherResult:
    """Fisher's exact test of a 2×2 table [[a, b], [c, d]], two-sided: the sum of the
    hypergeometric probabilities of the tables with the margins that are no more likely than
    the one seen (scipy's definition, with its relative tolerance 1 + 1e-7)."""
    (a, b), (c, d) = table
    row, column, total = a + b, a + c, a + b + c + d
    low, high = max(0, row + column - total), min(row, column)

    def log_p(x: int) -> float:
        return (_log_choose(column, x) + _log_choose(total - column, row - x)
                - _log_choose(total, row))  # fmt: skip

    observed = log_p(a)
    probabilities = [log_p(x) for x in range(low, high + 1)]
    threshold = observed + math.log1p(1e-7)
    pvalue = sum(math.exp(p) for p in probabilities if p <= threshold)
    ratio = (a * d) / (b * c) if b * c else (math.nan if a * d == 0 else math.inf)
    return FisherResult(ratio, min(1.0, pvalue))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def decile_bands(values: np.ndarray, n_bands: int = 10) -> np.ndarray:
    """Per image, its band 0 (lowest) … n_bands − 1 (highest): rank r of n (ties by position)
    goes to band floor(r · n_bands / n), so bands differ in size by at most one."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(len(values))
    return (ranks * n_bands) // max(len(values), 1)


@dataclass
class ConfoundReport:
    n_images: int
    n_bands: int
    bands: list[dict[str, Any]]  # per band: range, size, images, distributions
    tests: list[dict[str, Any]]  # every test with its raw and Holm-corrected p
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"n_images": self.n_images, "n_bands": self.n_bands, "bands": self.bands,
                "tests": self.tests, "candidates": self.candidates}  # fmt: skip


def confound_report(
    values: np.ndarray,
    image_ids: Sequence[int],
    attributes: Mapping[int, Mapping[str, str]],
    n_bands: int = 10,
    alpha: float = 0.05,
    grid: int = 12,
) -> ConfoundReport:
    """The report of one unit: `values[i]` is its activation on image `image_ids[i]`;
    `attributes[image]` the image's label and attributes (absent: none)."""
    if len(values) < 2 * n_bands:
        raise ValueError(f"{len(values)} images are too few for {n_bands} bands")
    values = np.asarray(values, dtype=np.float64)
    band_of = decile_bands(values, n_bands)
    table = [dict(attributes.get(int(image), {})) for image in image_ids]
    columns = sorted({column for row in table for column in row})
    bands = [_band(values, image_ids, band_of, table, columns, b, grid) for b in range(n_bands)]
    tests = [
        t for b in range(n_bands - 1) for t in _band_tests(band_of, table, columns, b, n_bands)
    ]
    for test, adjusted in zip(tests, holm([t["p"] for t in tests]), strict=True):
        test["p_holm"] = adjusted
    return ConfoundReport(len(values), n_bands, bands, tests, _candidates(tests, alpha))


def _band(
    values: np.ndarray,
    image_ids: Sequence[int],
    band_of: np.ndarray,
    table: list[dict[str, str]],
    columns: list[str],
    band: int,
    grid: int,
) -> dict[str, Any]:
    members = np.flatnonzero(band_of == band)
    by_value = members[np.argsort(-values[members], kind="stable")]
    return {
        "band": band,
        "quantiles": [band / len(set(band_of.tolist())), (band + 1) / len(set(band_of.tolist()))],
        "low": float(values[members].min()),
        "high": float(values[members].max()),
        "n_images": int(len(members)),
        "images": [
            {"image": int(image_ids[i]), "value": float(values[i])} for i in by_value[:grid]
        ],
        "distribution": {
            column: dict(Counter(table[i].get(column, "") for i in members).most_common())
            for column in columns
        },
    }


def _band_tests(
    band_of: np.ndarray, table: list[dict[str, str]], columns: list[str], band: int, n_bands: int
) -> list[dict[str, Any]]:
    inside, top = band_of == band, band_of == n_bands - 1
    tests = []
    for column in columns:
        cells = np.array([row.get(column, "") for row in table], dtype=object)
        for value in sorted({v for v in cells if v}):
            has = cells == value
            for against, other in (("top", top), ("base", ~inside)):
                tests.append(_test(column, value, band, against, has, inside, other))
    return tests


def _test(
    column: str, value: str, band: int, against: str, has: np.ndarray, inside: np.ndarray,
    other: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    a, b = int((has & inside).sum()), int((~has & inside).sum())
    c, d = int((has & other).sum()), int((~has & other).sum())
    result = fisher_exact([[a, b], [c, d]])
    haldane = ((a + 0.5) * (d + 0.5)) / ((b + 0.5) * (c + 0.5))
    share_in_band = a / max(a + b, 1)
    share_overall = int(has.sum()) / len(has)
    return {
        "attribute": column, "value": value, "band": band, "against": against,
        "table": [[a, b], [c, d]], "p": result.pvalue, "odds_ratio": haldane,
        "log_odds_ratio": math.log(haldane), "share_in_band": share_in_band,
        "enrichment": share_in_band / share_overall if share_overall else 0.0,
    }  # fmt: skip


def _candidates(tests: list[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """Over-represented values with a corrected p below alpha, the best test of each (attribute,
    value, band), ranked by corrected p then effect."""
    best: dict[tuple[str, str, int], dict[str, Any]] = {}
    for test in tests:
        if test["p_holm"] >= alpha or test["odds_ratio"] <= 1:
            continue
        key = (test["attribute"], test["value"], test["band"])
        if key not in best or _rank(test) < _rank(best[key]):
            best[key] = test
    return sorted(best.values(), key=_rank)


def _rank(test: dict[str, Any]) -> tuple[float, float]:
    return test["p_holm"], -test["log_odds_ratio"]


# --- the activation pass --------------------------------------------------------------------


def unit_values_pass(
    network: Any, projector: Any, batches: Any, unit: int, progress: Any = None, total: int = 0
) -> tuple[list[int], list[float]]:
    """(image ids, the unit's activation on each) over `batches`: n floats, never images × units."""
    from worker.pipelines.networks import autocast_context, inference_network, prepare_batch

    device = network.device
    truncated = inference_network(network, [projector.tap])
    projector = projector.to(device).eval()
    ids: list[int] = []
    values: list[float] = []
    done = 0
    for batch in batches:
        if len(batch):
            with torch.no_grad(), autocast_context(device):
                acts = truncated(prepare_batch(batch.pixels, device))[projector.tap.key]
            codes = projector(acts.float().contiguous()).float()  # [batch, units]
            ids += [int(i) for i in batch.image_ids.tolist()]
            values += codes[:, unit].cpu().tolist()
        done += len(batch) + len(batch.skipped_ids)
        if progress is not None:
            progress(min(done / total, 1.0) if total else 0.0, f"{done} of {total or '?'} images")
    return ids, values
