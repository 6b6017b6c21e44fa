"""soft-WPMI (CLIP-Dissect) against a direct re-implementation of the published formula, in
plain Python loops, on a small hand-made matrix; and the mergeable pass against one pass."""

from __future__ import annotations

import math

import pytest
import torch

from worker.analyses import describe
from worker.analyses.describe import DescribeState, SoftWpmiConfig

# 6 images x 3 units (activations) and 6 images x 4 concepts (cosine similarities).
ACTS = [
    [9.0, 0.1, 1.0],
    [8.0, 0.2, 2.0],
    [0.5, 7.0, 3.0],
    [0.4, 6.0, 4.0],
    [0.3, 0.3, 5.0],
    [0.2, 0.4, 6.0],
]
COS = [
    [0.9, 0.1, 0.1, 0.2],
    [0.8, 0.2, 0.1, 0.1],
    [0.1, 0.9, 0.2, 0.1],
    [0.2, 0.7, 0.1, 0.3],
    [0.1, 0.2, 0.8, 0.3],
    [0.3, 0.1, 0.9, 0.2],
]


def reference_soft_wpmi(acts, cos, top_k, a, lam, p_start, p_end, min_prob):  # type: ignore[no-untyped-def]
    """Oikarinen & Weng (2023), Eq. for soft-WPMI, written out with loops."""
    n_images, n_units, n_concepts = len(acts), len(acts[0]), len(cos[0])
    probs = []
    for row in cos:  # P(t | x) = softmax(a * cos)
        exps = [math.exp(a * v) for v in row]
        probs.append([e / sum(exps) for e in exps])
    k = min(top_k, n_images)
    log_cond = []
    for unit in range(n_units):
        ranked = sorted(range(n_images), key=lambda i: (-acts[i][unit], i))[:k]
        row = []
        for t in range(n_concepts):
            total = 0.0
            for rank, image in enumerate(ranked):
                p = p_start - rank / k * (p_start - p_end)
                total += math.log(1 - p + p * probs[image][t] + min_prob)
            row.append(total)
        log_cond.append(row)
    out = []
    for unit in range(n_units):
        row = []
        for t in range(n_concepts):
            mean = sum(math.exp(log_cond[u][t]) for u in range(n_units)) / n_units
            row.append(log_cond[unit][t] - lam * math.log(mean))
        out.append(row)
    return out


@pytest.mark.parametrize(
    "config",
    [
        SoftWpmiConfig(top_k=2),
        SoftWpmiConfig(top_k=3, lam=0.5, p_start=0.99, p_end=0.8),
        SoftWpmiConfig(),  # top_k=100 > 6 images: every image, the schedule over 6 ranks
    ],
)
def test_soft_wpmi_matches_the_published_formula(config: SoftWpmiConfig) -> None:
    a = 10.0
    probs = describe.concept_probabilities(torch.tensor(COS), a)
    got = describe.soft_wpmi(torch.tensor(ACTS), probs, config)
    want = reference_soft_wpmi(
        ACTS, COS, config.top_k, a, config.lam, config.p_start, config.p_end, config.min_prob
    )
    assert got.shape == (3, 4)
    assert torch.allclose(got, torch.tensor(want), atol=1e-4, rtol=1e-5)


def test_the_defaults_are_clip_dissects() -> None:
    c = SoftWpmiConfig()
    assert (c.top_k, c.lam, c.p_start, c.p_end, c.min_prob) == (100, 1.0, 0.998, 0.97, 1e-7)


def test_units_get_the_concept_of_their_top_images() -> None:
    probs = describe.concept_probabilities(torch.tensor(COS), 10.0)
    scores = describe.soft_wpmi(torch.tensor(ACTS), probs, SoftWpmiConfig(top_k=2))
    names = ["dog", "car", "sky", "tree"]
    found = describe.top_concepts(scores, names, n_top=2)
    assert [d.text for d in found] == ["dog", "car", "sky"]
    assert all(len(d.concepts) == 2 and d.scores[0] >= d.scores[1] for d in found)


def test_a_sharded_pass_equals_one_pass() -> None:
    gen = torch.Generator().manual_seed(0)
    acts = torch.randn(50, 7, generator=gen)
    probs = torch.softmax(torch.randn(50, 11, generator=gen), dim=1)
    config = SoftWpmiConfig(top_k=8)
    whole = describe.soft_wpmi(acts, probs, config)
    state = DescribeState.from_batch(acts[:20], probs[:20], config.top_k)
    for start, stop in [(20, 23), (23, 50)]:
        part = DescribeState.from_batch(acts[start:stop], probs[start:stop], config.top_k)
        state = state.merge(DescribeState.from_state_dict(part.state_dict()), config.top_k)
    assert torch.allclose(state.scores(config), whole, atol=1e-5)
    assert state.n_images == 50 and state.probs.shape[0] <= 50


def test_mismatched_inputs_are_refused_with_a_message() -> None:
    with pytest.raises(describe.DescribeError, match="same images"):
        describe.soft_wpmi(torch.zeros(5, 2), torch.zeros(4, 3))
    with pytest.raises(describe.DescribeError):
        SoftWpmiConfig(p_start=0.5, p_end=0.9)
