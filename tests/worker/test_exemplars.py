"""The streaming exemplar pass: exact extremes, quantile bands, IMI batches, OOM fallback."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.worker.factories import (
    ValueNet,
    image_refs,
    tiny_network,
    value_network,
)
from worker.pipelines.exemplars import (
    ExemplarConfig,
    compute_exemplars,
    imi_batches,
    oom_fallback,
    run_exemplar_pass,
)
from worker.pipelines.loading import ImageBatch, ImageRef, image_batches
from worker.pipelines.networks import Preprocess, list_layers, truncated_forward, wrap_module
from worker.pipelines.units import UnitSetSpec, build_projector

VALUE_UNITS = {"values": build_projector(UnitSetSpec("channels", "layer"), (3, 1, 1))}


def _value_batches(values: torch.Tensor, ids: list[int], batch_size: int) -> list[ImageBatch]:
    """Batches of 1x1 'images' whose three channel means are ``values: [n, 3]``."""
    batches = []
    for start in range(0, len(ids), batch_size):
        chunk = values[start : start + batch_size]
        batches.append(
            ImageBatch(torch.tensor(ids[start : start + batch_size]), chunk[:, :, None, None])
        )
    return batches


def _run_values(values: torch.Tensor, ids: list[int], batch_size: int, **config):  # type: ignore[no-untyped-def]
    batches = _value_batches(values, ids, batch_size)
    return compute_exemplars(value_network(), VALUE_UNITS, batches, ExemplarConfig(**config))[
        "values"
    ]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_images=st.integers(1, 70),
    k=st.integers(1, 12),
    batch_size=st.integers(1, 17),
)
def test_top_and_bottom_k_equal_a_brute_force_sort(
    data, n_images: int, k: int, batch_size: int
) -> None:  # type: ignore[no-untyped-def]
    # Few distinct values, so ties are common and the id tie-break is exercised.
    raw = data.draw(st.lists(st.integers(-3, 3), min_size=3 * n_images, max_size=3 * n_images))
    values = torch.tensor(raw, dtype=torch.float32).reshape(n_images, 3) / 2
    ids = data.draw(st.permutations(range(1000, 1000 + n_images)))
    result = _run_values(values, list(ids), batch_size, k=k, sketch_size=16)
    for unit in range(3):
        column = [(float(values[i, unit]), ids[i]) for i in range(n_images)]
        top = sorted(column, key=lambda pair: (-pair[0], pair[1]))[:k]
        bottom = sorted(column, key=lambda pair: (pair[0], pair[1]))[:k]
        got_top = zip(result.top_values[unit].tolist(), result.top_ids[unit].tolist(), strict=True)
        got_bottom = zip(
            result.bottom_values[unit].tolist(), result.bottom_ids[unit].tolist(), strict=True
        )
        assert list(got_top) == top
        assert list(got_bottom) == bottom
    assert result.n_images == n_images


def test_unit_statistics_match_the_data() -> None:
    values = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    result = _run_values(values, list(range(500)), 64)
    torch.testing.assert_close(result.mean, values.mean(dim=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(result.std, values.std(dim=0, correction=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(result.maximum, values.max(dim=0).values)
    torch.testing.assert_close(result.fraction_positive, (values > 0).float().mean(dim=0))


def _true_quantiles(values: torch.Tensor, unit: int) -> dict[int, float]:
    """image id (= row) -> quantile of its rank among all images (0 lowest, 1 highest)."""
    order = torch.argsort(values[:, unit], stable=True).tolist()
    return {image_id: rank / (len(order) - 1) for rank, image_id in enumerate(order)}


def test_quantile_bands_are_exact_when_the_sketch_holds_every_image() -> None:
    values = torch.randn(801, 3, generator=torch.Generator().manual_seed(1))
    result = _run_values(values, list(range(801)), 50, sketch_size=1024, band_size=10)
    assert set(result.bands) >= {"q01", "q05", "q15", "q45_55", "q85", "q95", "q99"}
    for unit in range(3):
        quantile = _true_quantiles(values, unit)
        for band in result.bands.values():
            ids = band.image_ids[unit].tolist()
            assert len(ids) == 10 and len(set(ids)) == 10
            for image_id in ids:
                assert band.band.lower_q - 1e-9 <= quantile[image_id] <= band.band.upper_q + 1e-9
            assert band.values[unit].tolist() == sorted(band.values[unit].tolist())
            assert band.lower_threshold[unit] <= band.values[unit].min()
            assert band.upper_threshold[unit] >= band.values[unit].max()


def test_quantile_bands_stay_within_sketch_tolerance_on_large_sets() -> None:
    n, sketch = 6000, 1024
    values = torch.randn(n, 3, generator=torch.Generator().manual_seed(2))
    result = _run_values(values, list(range(n)), 250, sketch_size=sketch, band_size=20)
    # A reservoir quantile's rank error has standard deviation sqrt(q (1 - q) / sketch)
    # <= 0.5 / sqrt(1024) = 1.6 points; allow four of them.
    tolerance = 4 * 0.5 / math.sqrt(sketch)
    for unit in range(3):
        quantile = _true_quantiles(values, unit)
        for band in result.bands.values():
            for image_id in band.image_ids[unit].tolist():
                assert band.band.lower_q - tolerance <= quantile[image_id]
                assert quantile[image_id] <= band.band.upper_q + tolerance


def test_results_do_not_depend_on_the_batch_size() -> None:
    values = torch.randn(300, 3, generator=torch.Generator().manual_seed(3))
    one = _run_values(values, list(range(300)), 7, k=20, sketch_size=128)
    other = _run_values(values, list(range(300)), 64, k=20, sketch_size=128)
    torch.testing.assert_close(one.top_ids, other.top_ids)
    for name in one.bands:
        torch.testing.assert_close(one.bands[name].image_ids, other.bands[name].image_ids)


def test_output_size_is_bounded_whatever_the_number_of_images() -> None:
    sizes = []
    for n in (250, 2500):
        values = torch.randn(n, 3, generator=torch.Generator().manual_seed(n))
        result = _run_values(values, list(range(n)), 100, k=30, sketch_size=200, band_size=5)
        sizes.append(
            (
                result.top_ids.shape,
                result.bottom_ids.shape,
                {b: e.image_ids.shape for b, e in result.bands.items()},
            )
        )
    assert sizes[0] == sizes[1]


def test_imi_batches_interleave_ranks_and_query_the_most_extreme() -> None:
    values = torch.arange(200, 0, -1, dtype=torch.float32)  # already sorted, most extreme first
    ids = torch.arange(200)
    batches = imi_batches(values, ids)
    assert len(batches) == 20
    assert [b.query_id for b in batches] == list(range(20))
    assert batches[3].reference_ids == tuple(range(23, 200, 20))
    assert all(b.query_value > max(b.reference_values) for b in batches)
    assert sorted(i for b in batches for i in (b.query_id, *b.reference_ids)) == list(range(200))


def test_imi_batches_shrink_with_few_images() -> None:
    batches = imi_batches(torch.arange(45.0).flip(0), torch.arange(45))
    assert len(batches) == 4
    assert batches[0].reference_ids == tuple(range(4, 40, 4))


def test_exemplar_set_gives_imi_batches_for_both_sides() -> None:
    values = torch.randn(400, 3, generator=torch.Generator().manual_seed(4))
    result = _run_values(values, list(range(400)), 100)
    top, bottom = result.imi_batches(0, "top"), result.imi_batches(0, "bottom")
    assert len(top) == len(bottom) == 20
    assert top[0].query_id == int(torch.argmax(values[:, 0]))
    assert bottom[0].query_id == int(torch.argmin(values[:, 0]))
    record = result.unit_record(0)
    assert record["imi"]["top"][0]["query"] == top[0].query_id
    assert len(record["top"]) == 200 and record["stats"]["n_images"] == 400


def test_one_pass_serves_several_unit_sets_and_stops_at_the_deepest_layer() -> None:
    network = tiny_network()
    layers = {layer.name: layer.shape for layer in list_layers(network)}
    unit_sets = {
        "stem_channels": build_projector(UnitSetSpec("channels", "stem"), layers["stem"]),
        "block_neurons": build_projector(UnitSetSpec("neurons", "block"), layers["block"]),
        "relu_input": build_projector(
            UnitSetSpec("channels", "act1", point="input"), layers["act1"]
        ),
        "relu_output": build_projector(UnitSetSpec("channels", "act1"), layers["act1"]),
    }
    head_calls: list[int] = []
    network.module.get_submodule("head").register_forward_hook(lambda *_: head_calls.append(1))
    refs = image_refs(30)
    config = ExemplarConfig(k=5, batch_size=8)
    together = run_exemplar_pass(network, unit_sets, refs, config)
    assert head_calls == []
    for name, projector in unit_sets.items():
        alone = run_exemplar_pass(network, {name: projector}, refs, config)[name]
        torch.testing.assert_close(together[name].top_values, alone.top_values)
        torch.testing.assert_close(together[name].top_ids, alone.top_ids)
    # The ReLU's input is the stem's output; its output is never below its input.
    torch.testing.assert_close(
        together["relu_input"].top_values, together["stem_channels"].top_values
    )
    assert (together["relu_output"].maximum >= together["relu_input"].maximum - 1e-6).all()
    assert (together["relu_output"].minimum >= 0).all()


def test_corrupt_images_are_skipped_and_reported() -> None:
    refs = image_refs(10)
    refs[3] = ImageRef(3, data=b"broken")
    refs[7] = ImageRef(7, path="/nonexistent/image.png")
    network = tiny_network()
    units = {"c": build_projector(UnitSetSpec("channels", "stem"), (8, 16, 16))}
    result = run_exemplar_pass(network, units, refs, ExemplarConfig(k=20, batch_size=4))["c"]
    assert sorted(result.skipped_ids) == [3, 7]
    assert result.n_images == 8
    assert set(result.top_ids[0].tolist()) == {0, 1, 2, 4, 5, 6, 8, 9}


def test_progress_is_reported_up_to_one() -> None:
    reports: list[tuple[float, str]] = []
    network = tiny_network()
    units = {"c": build_projector(UnitSetSpec("channels", "stem"), (8, 16, 16))}
    run_exemplar_pass(
        network,
        units,
        image_refs(10),
        ExemplarConfig(batch_size=4),
        lambda f, m: reports.append((f, m)),
    )
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and len(fractions) == 3
    assert reports[-1] == (1.0, "10 of 10 images")


def test_decoding_in_worker_processes_gives_the_same_result() -> None:
    network = tiny_network()
    units = {"c": build_projector(UnitSetSpec("channels", "block"), (16, 8, 8))}
    refs = image_refs(12)
    in_process = run_exemplar_pass(network, units, refs, ExemplarConfig(k=6, batch_size=4))["c"]
    workers = run_exemplar_pass(
        network, units, refs, ExemplarConfig(k=6, batch_size=4, num_workers=2)
    )["c"]
    torch.testing.assert_close(in_process.top_values, workers.top_values)
    torch.testing.assert_close(in_process.top_ids, workers.top_ids)


def test_oom_fallback_halves_the_batch_until_it_fits() -> None:
    tried: list[int] = []

    def fake_pipeline(batch_size: int) -> str:
        tried.append(batch_size)
        if batch_size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return f"done with {batch_size}"

    assert oom_fallback(fake_pipeline, 64) == "done with 8"
    assert tried == [64, 32, 16, 8]


def test_oom_fallback_gives_up_below_the_minimum_batch() -> None:
    def always_out_of_memory(batch_size: int) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        oom_fallback(always_out_of_memory, 4, min_batch_size=2)


class _SmallMemoryNet(ValueNet):
    """Pretends the GPU holds at most four images at once."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return super().forward(x)


def test_the_exemplar_pass_restarts_with_half_the_batch_on_out_of_memory() -> None:
    preprocess = Preprocess(resize=2, crop=2)
    refs = image_refs(20)
    units = {"v": build_projector(UnitSetSpec("channels", "layer"), (3, 2, 2))}
    messages: list[str] = []
    small = wrap_module(_SmallMemoryNet(), preprocess, "test:small", "cpu")
    result = run_exemplar_pass(
        small, units, refs, ExemplarConfig(k=5, batch_size=16), lambda f, m: messages.append(m)
    )["v"]
    reference = run_exemplar_pass(
        wrap_module(ValueNet(), preprocess, "test:big", "cpu"), units, refs, ExemplarConfig(k=5)
    )["v"]
    torch.testing.assert_close(result.top_ids, reference.top_ids)
    assert messages[:2] == [
        "out of GPU memory: restarting with batch size 8",
        "out of GPU memory: restarting with batch size 4",
    ]


@pytest.mark.slow
def test_lite0_channel_exemplars_are_sorted_and_match_a_recomputation(lite0, demo_refs) -> None:  # type: ignore[no-untyped-def]
    refs = demo_refs[::12]  # 47 images across all sources
    units = {"blocks.4": build_projector(UnitSetSpec("channels", "blocks.4"), (112, 14, 14))}
    result = run_exemplar_pass(lite0, units, refs, ExemplarConfig(k=8, batch_size=16))["blocks.4"]
    assert result.n_images == len(refs)
    assert (result.top_values[:, :-1] >= result.top_values[:, 1:]).all()
    assert (result.bottom_values[:, :-1] <= result.bottom_values[:, 1:]).all()
    by_id = {ref.image_id: ref for ref in refs}
    for unit in (0, 57, 111):
        chosen = [by_id[int(i)] for i in result.top_ids[unit]]
        batch = next(iter(image_batches(chosen, lite0.preprocess, batch_size=len(chosen))))
        with torch.no_grad():
            acts = truncated_forward(lite0, batch.pixels, ["blocks.4"])["blocks.4"]
        recomputed = acts[:, unit].mean(dim=(1, 2))
        torch.testing.assert_close(recomputed, result.top_values[unit], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cuts", [[0, 300], [0, 1, 140, 141, 299, 300], [0, 77, 150, 151, 300]])
def test_shards_of_an_image_set_merge_into_exactly_one_pass(cuts: list[int]) -> None:
    from worker.pipelines.exemplars import ExemplarState, exemplar_states, merge_states

    # Few distinct values (ties everywhere) and a sketch far smaller than the set.
    values = torch.randint(-4, 5, (300, 3), generator=torch.Generator().manual_seed(3)) / 2.0
    ids = list(torch.randperm(300, generator=torch.Generator().manual_seed(4)).tolist())
    config = ExemplarConfig(k=25, sketch_size=40, band_size=6)
    one_pass = _run_values(values, ids, 13, k=25, sketch_size=40, band_size=6)

    def shard(start: int, stop: int) -> dict[str, ExemplarState]:
        batches = _value_batches(values[start:stop], ids[start:stop], 9)
        states = exemplar_states(value_network(), VALUE_UNITS, batches, config)
        # As a shard hands its state to the merge: through a state dict, on another device.
        return {
            name: ExemplarState.from_state_dict(s.state_dict(), config, torch.device("cpu"))
            for name, s in states.items()
        }

    shards = [shard(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    merged = merge_states(reversed(shards))["values"].finish()  # any order
    for name in ("top_values", "top_ids", "bottom_values", "bottom_ids", "minimum", "maximum"):
        assert torch.equal(getattr(merged, name), getattr(one_pass, name)), name
    for name, band in one_pass.bands.items():
        assert torch.equal(merged.bands[name].image_ids, band.image_ids), name
        assert torch.equal(merged.bands[name].values, band.values), name
        assert torch.equal(merged.bands[name].lower_threshold, band.lower_threshold), name
    torch.testing.assert_close(merged.mean, one_pass.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged.std, one_pass.std, rtol=1e-6, atol=1e-7)
    assert merged.n_images == one_pass.n_images == 300
    for side in ("top", "bottom"):
        assert merged.imi_batches(0, side) == one_pass.imi_batches(0, side)  # type: ignore[arg-type]


def _distinct_run(values: torch.Tensor, ids: list[int], sources: list[int], cuts: list[int],
                  **config):  # type: ignore[no-untyped-def]  # fmt: skip
    """The pass with distinct sources over shards cut at `cuts`, merged (one shard: one pass)."""
    from worker.pipelines.exemplars import exemplar_states, merge_states

    settings = ExemplarConfig(distinct_sources=True, **config)
    shards = []
    for start, stop in zip(cuts, cuts[1:], strict=False):
        batches = [
            ImageBatch(torch.tensor(ids[i : min(i + 7, stop)]),
                       values[i : min(i + 7, stop), :, None, None], [],
                       torch.tensor(sources[i : min(i + 7, stop)]))
            for i in range(start, stop, 7)
        ]  # fmt: skip
        shards.append(exemplar_states(value_network(), VALUE_UNITS, batches, settings))
    return merge_states(shards)["values"].finish()


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_images=st.integers(1, 60), k=st.integers(1, 10))
def test_distinct_sources_keep_each_photos_best_image_and_merge_exactly(
    data, n_images: int, k: int
) -> None:  # type: ignore[no-untyped-def]
    # Planted duplicates: few photos, each with several crops; few values, so ties are common.
    raw = data.draw(st.lists(st.integers(-3, 3), min_size=3 * n_images, max_size=3 * n_images))
    values = torch.tensor(raw, dtype=torch.float32).reshape(n_images, 3) / 2
    ids = list(data.draw(st.permutations(range(500, 500 + n_images))))
    sources = data.draw(st.lists(st.integers(0, 6), min_size=n_images, max_size=n_images))
    cut = data.draw(st.integers(0, n_images))
    one_pass = _distinct_run(values, ids, sources, [0, n_images], k=k, sketch_size=16)
    sharded = _distinct_run(values, ids, sources, [0, cut, n_images], k=k, sketch_size=16)
    for unit in range(3):
        best: dict[int, tuple[float, int]] = {}
        worst: dict[int, tuple[float, int]] = {}
        for i in range(n_images):
            entry = (float(values[i, unit]), ids[i])
            source = sources[i]
            if source not in best or (-entry[0], entry[1]) < (-best[source][0], best[source][1]):
                best[source] = entry
            if source not in worst or entry < worst[source]:
                worst[source] = entry
        top = sorted(best.values(), key=lambda e: (-e[0], e[1]))[:k]
        bottom = sorted(worst.values())[:k]
        for result in (one_pass, sharded):
            record = result.unit_record(unit)
            assert [(v, i) for i, v in record["top"]] == top
            assert [(v, i) for i, v in record["bottom"]] == bottom
            for band in record["bands"].values():
                shown = [sources[ids.index(i)] for i, _ in band["images"]]
                assert len(shown) == len(set(shown))  # one image per photo in every band
        assert sharded.unit_record(unit) == one_pass.unit_record(unit)


def test_distinct_sources_change_nothing_when_every_image_is_its_own_photo() -> None:
    values = torch.randint(-4, 5, (300, 3), generator=torch.Generator().manual_seed(3)) / 2.0
    ids = list(range(300))
    plain = _run_values(values, ids, 7, k=25, sketch_size=40, band_size=6)
    distinct = _distinct_run(values, ids, ids, [0, 300], k=25, sketch_size=40, band_size=6)
    for unit in range(3):
        assert distinct.unit_record(unit) == plain.unit_record(unit)
