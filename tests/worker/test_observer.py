"""The machine observer's arithmetic (worker/analyses/observer.py) on hand-made embeddings: the
formula against a direct re-implementation (ties included), seeded MIS, separable and shuffled
units, the α fit on simulated responses, the embedding of images by a small random network."""

from __future__ import annotations

import math
import random

import pytest
import torch

from tests.worker.factories import image_refs, tiny_network
from worker.analyses import observer
from worker.pipelines import loading


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def direct_probability(
    q0: list[float], q1: list[float], e_max: list[list[float]], e_min: list[list[float]],
    alpha: float,
) -> float:  # fmt: skip
    """The paper's formula written out, one number at a time."""

    def s(q: list[float], refs: list[list[float]]) -> float:
        return sum(cosine(q, e) for e in refs) / len(refs)

    def delta(q: list[float]) -> float:
        return (s(q, e_max) if e_max else 0.0) - (s(q, e_min) if e_min else 0.0)

    return 1 / (1 + math.exp(-alpha * (delta(q0) - delta(q1))))


def tensor(rows: list[list[float]], dim: int = 3) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, dim)


def test_the_trial_probability_matches_the_formula_written_out() -> None:
    rng = random.Random(1)
    config = observer.ObserverConfig(alpha=3.0)
    for _ in range(20):
        q = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(2)]
        e_max = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(rng.randint(0, 4))]
        e_min = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(rng.randint(0, 4))]
        got = observer.answer(
            observer.prepared(tensor(q), "cosine"),
            observer.prepared(tensor(e_max), "cosine"),
            observer.prepared(tensor(e_min), "cosine"),
            config,
        )
        assert got.p_first == pytest.approx(direct_probability(*q, e_max, e_min, 3.0), abs=1e-6)
        assert got.p_correct(1) == pytest.approx(1 - got.p_first)


def test_a_tie_is_a_half_and_no_choice() -> None:
    same = tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    got = observer.answer(same, tensor([[0.0, 1.0, 0.0]]), tensor([[0.0, 0.0, 1.0]]),
                          observer.ObserverConfig())  # fmt: skip
    assert got.p_first == 0.5 and got.choice is None and got.hard_correct(0) == 0.5


def test_a_trial_without_references_is_a_coin_flip() -> None:
    queries = tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    got = observer.answer(queries, tensor([]), tensor([]), observer.ObserverConfig())
    assert got.p_first == 0.5 and got.choice is None


def test_one_reference_side_uses_that_side_alone() -> None:
    queries = tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near_first = observer.prepared(tensor([[1.0, 0.1, 0.0]]), "cosine")
    got = observer.answer(queries, near_first, tensor([]), observer.ObserverConfig(1.0))
    assert got.choice == 0
    assert got.p_first == pytest.approx(direct_probability(
        [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [[1.0, 0.1, 0.0]], [], 1.0), abs=1e-6)  # fmt: skip
    only_min = observer.answer(queries, tensor([]), near_first, observer.ObserverConfig())
    assert only_min.choice == 1  # the query like the min side is not the max-side one


def test_the_choice_comes_from_the_images_never_from_the_answer_key() -> None:
    queries = tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    got = observer.answer(queries, tensor([[1.0, 0.0, 0.0]]), tensor([[0.0, 1.0, 0.0]]),
                          observer.ObserverConfig())  # fmt: skip
    assert got.choice == 1
    assert got.hard_correct(1) == 1.0 and got.hard_correct(0) == 0.0
    assert got.p_correct(1) > 0.5 > got.p_correct(0)


def direct_mis(top: torch.Tensor, bottom: torch.Tensor, positions: torch.Tensor, k: int,
               alpha: float) -> float:  # fmt: skip
    total = 0.0
    for task in range(positions.shape[1]):
        plus = [top[i].tolist() for i in positions[0, task]]
        minus = [bottom[i].tolist() for i in positions[1, task]]
        total += direct_probability(plus[k], minus[k], plus[:k], minus[:k], alpha)
    return total / positions.shape[1]


def test_unit_mis_matches_the_formula_written_out_on_its_tasks() -> None:
    generator = torch.Generator().manual_seed(0)
    top, bottom = torch.randn(30, 5, generator=generator), torch.randn(25, 5, generator=generator)
    config, obs = observer.MisConfig(k=4, n_tasks=7), observer.ObserverConfig(alpha=2.0)
    got = observer.unit_mis(observer.prepared(top, "cosine"), observer.prepared(bottom, "cosine"),
                            config, obs, seed=11)  # fmt: skip
    positions = observer.draw_tasks(30, 25, config, seed=11)
    assert positions.shape == (2, 7, 5)
    assert all(len(set(row.tolist())) == 5 for row in positions.reshape(-1, 5))  # distinct
    assert bool((positions.diff(dim=-1) > 0).all())  # most extreme first; the query last
    assert got.mis == pytest.approx(direct_mis(top, bottom, positions, 4, 2.0), abs=1e-6)
    assert got.n_tasks == 7 and len(got.probabilities) == 7


def test_the_same_seed_gives_the_same_mis_and_another_seed_other_tasks() -> None:
    generator = torch.Generator().manual_seed(3)
    top, bottom = torch.randn(40, 8, generator=generator), torch.randn(40, 8, generator=generator)
    config, obs = observer.MisConfig(), observer.ObserverConfig()
    seed = observer.unit_seed(0, "unit-5")
    first = observer.unit_mis(top, bottom, config, obs, seed)
    assert observer.unit_mis(top, bottom, config, obs, seed) == first
    assert observer.unit_mis(top, bottom, config, obs, observer.unit_seed(1, "unit-5")) != first
    assert observer.unit_seed(0, "unit-5") != observer.unit_seed(0, "unit-6")


def test_a_separable_unit_scores_near_1_and_a_shuffled_one_near_a_half() -> None:
    generator = torch.Generator().manual_seed(5)
    cat = torch.tensor([1.0, 0.0, 0.0, 0.0]) + 0.05 * torch.randn(50, 4, generator=generator)
    dog = torch.tensor([0.0, 1.0, 0.0, 0.0]) + 0.05 * torch.randn(50, 4, generator=generator)
    obs = observer.ObserverConfig(alpha=20.0)  # cosine gaps here are ~2: σ(40) ≈ 1
    config = observer.MisConfig(n_tasks=50)
    cat, dog = observer.prepared(cat, "cosine"), observer.prepared(dog, "cosine")
    separable = observer.unit_mis(cat, dog, config, obs, seed=0)
    assert separable.mis > 0.99 and separable.hard_accuracy == 1.0
    mixed = torch.cat([cat, dog])[torch.randperm(100, generator=generator)]
    mixed = observer.prepared(mixed, "cosine")
    shuffled = [
        observer.unit_mis(mixed[:50], mixed[50:], config, obs, seed=s).mis for s in range(8)
    ]
    assert abs(sum(shuffled) / len(shuffled) - 0.5) < 0.1


def test_too_small_pools_are_refused_with_the_number_needed() -> None:
    with pytest.raises(observer.ObserverError, match="needs 10 images per side"):
        observer.draw_tasks(9, 40, observer.MisConfig(), seed=0)
    assert observer.MisConfig(quantile=0.25).pool_size(42) == 11


def test_the_alpha_fit_recovers_a_known_alpha_from_simulated_responses() -> None:
    generator = torch.Generator().manual_seed(0)
    gaps = torch.rand(4000, generator=generator) * 4 - 1
    correct = torch.rand(4000, generator=generator) < torch.sigmoid(1.5 * gaps)
    fit = observer.fit_alpha(gaps, correct)
    assert fit.alpha == pytest.approx(1.5, abs=0.2)
    assert fit.ci_low is not None and fit.ci_high is not None
    assert fit.ci_low < 1.5 < fit.ci_high and fit.ci_low < fit.alpha < fit.ci_high
    assert fit.n == 4000


def test_separable_responses_leave_alpha_unbounded_above() -> None:
    fit = observer.fit_alpha([1.0, 2.0, -1.0], [True, True, False])
    assert fit.alpha == pytest.approx(observer.MAX_LOGIT / 2.0) and fit.ci_high is None


def test_spearman_with_ties_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = [1, 2, 2, 3, 5, 4], [0.1, 0.3, 0.2, 0.2, 0.9, 0.5]
    assert observer.spearman(x, y).statistic == pytest.approx(scipy_stats.spearmanr(x, y)[0])
    assert observer.spearman([1, 2], [2, 1]).statistic is None


def test_it_embeds_each_image_once_with_a_small_random_network() -> None:
    network = tiny_network(seed=0)
    refs = image_refs(5)
    batches = loading.image_batches(refs, network.preprocess, batch_size=2)
    ids, skipped, embeddings = observer.embed(network, "act2", batches, total_images=5)
    assert ids == [0, 1, 2, 3, 4] and skipped == []
    assert embeddings.shape == (5, 16)  # the channels of `block`, spatially pooled
    again = observer.embed(network, "act2", loading.image_batches(refs[2:3], network.preprocess, 1))
    assert torch.allclose(again[2][0], embeddings[2], atol=1e-5)


@pytest.mark.parametrize("similarity", observer.SIMILARITIES)
def test_the_similarity_matrix_gives_the_same_answers_and_mis(similarity: str) -> None:
    generator = torch.Generator().manual_seed(2)
    embeddings = observer.prepared(torch.randn(40, 6, generator=generator), similarity)
    config, obs = observer.MisConfig(k=4, n_tasks=9), observer.ObserverConfig(1.3, similarity)
    sims = observer.gram(embeddings, similarity)
    top, bottom = torch.arange(0, 15), torch.arange(39, 24, -1)
    direct = observer.unit_mis(embeddings[top], embeddings[bottom], config, obs, seed=4)
    indexed = observer.unit_mis_from_gram(sims, top, bottom, config, obs, seed=4)
    assert indexed.mis == pytest.approx(direct.mis, abs=1e-5)
    assert indexed.probabilities == pytest.approx(direct.probabilities, abs=1e-5)
    queries, e_max, e_min = [3, 7], [1, 2, 5], [30, 31]
    one = observer.answer(embeddings[queries], embeddings[e_max], embeddings[e_min], obs)
    two = observer.answer_from_gram(sims.numpy(), queries, e_max, e_min, obs)
    assert two.gap == pytest.approx(one.gap, abs=1e-5) and two.choice == one.choice
    only_max = observer.answer_from_gram(sims.numpy(), queries, e_max, [], obs)
    assert only_max.gap == pytest.approx(observer.answer(
        embeddings[queries], embeddings[e_max], embeddings[[]], obs).gap, abs=1e-5)  # fmt: skip
