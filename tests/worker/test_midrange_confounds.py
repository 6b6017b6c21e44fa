"""The confound report's statistics: Fisher's exact test as scipy computes it, Holm's
correction, decile bands, and a confound planted in a unit's middle range found and ranked
first."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from worker.analyses.midrange import confound_report, decile_bands, fisher_exact, holm


@pytest.mark.parametrize("seed", range(8))
def test_fishers_exact_test_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        table = rng.integers(0, 30, size=(2, 2)).tolist()
        if seed == 0:
            table[0][1] = 0  # zero cells: infinite or undefined odds ratios
        ours, theirs = fisher_exact(table), stats.fisher_exact(table)
        assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)
        assert ours.statistic == pytest.approx(theirs.statistic, nan_ok=True)


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_decile_bands_are_equal_sized_and_ordered() -> None:
    values = np.random.default_rng(1).normal(size=1003)
    bands = decile_bands(values)
    sizes = np.bincount(bands)
    assert len(sizes) == 10 and sizes.max() - sizes.min() <= 1
    for b in range(9):
        assert values[bands == b].max() <= values[bands == b + 1].min()


def planted(n: int = 600, seed: int = 0) -> tuple[np.ndarray, list[int], dict[int, dict[str, str]]]:
    """A unit whose 40-60 % band holds mostly 'water' backgrounds (rare elsewhere); labels
    and the other backgrounds at random."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    ids = list(range(1000, 1000 + n))
    bands = decile_bands(values)
    attributes = {}
    for i, image in enumerate(ids):
        middle = bands[i] in (4, 5)
        water = rng.random() < (0.6 if middle else 0.03)
        background = "water" if water else str(rng.choice(["grass", "sand", "snow"]))
        attributes[image] = {"label": str(rng.choice(["dog", "cat"])), "background": background}
    return values, ids, attributes


def test_a_confound_planted_in_the_middle_bands_is_found_and_ranked_first() -> None:
    values, ids, attributes = planted()
    report = confound_report(values, ids, attributes)
    first = report.candidates[0]
    assert (first["attribute"], first["value"]) == ("background", "water")
    assert first["band"] in (4, 5) and first["p_holm"] < 1e-6
    assert first["enrichment"] > 3 and first["odds_ratio"] > 10
    found = {(c["attribute"], c["value"], c["band"]) for c in report.candidates}
    assert {("background", "water", 4), ("background", "water", 5)} <= found
    assert not any(c["attribute"] == "label" for c in report.candidates)  # labels are random
    assert len(report.bands) == 10 and sum(b["n_images"] for b in report.bands) == 600
    top = report.bands[9]
    assert top["images"][0]["value"] == pytest.approx(float(values.max()))
    assert sum(report.bands[4]["distribution"]["background"].values()) == 60


def test_every_p_value_of_a_report_is_holm_corrected_together() -> None:
    values, ids, attributes = planted(seed=3)
    report = confound_report(values, ids, attributes)
    assert [t["p_holm"] for t in report.tests] == pytest.approx(
        holm([t["p"] for t in report.tests])
    )
    test = report.tests[0]
    assert test["p"] == pytest.approx(stats.fisher_exact(test["table"]).pvalue, rel=1e-9)


def test_too_few_images_for_the_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="too few for 10 bands"):
        confound_report(np.zeros(12), list(range(12)), {})
