"""Concept sources: the classifier's own classes, and open_clip from a checkpoint file end to end
on a small randomly initialised open_clip model (its loading, text and image scoring, the pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.worker.factories import image_refs, tiny_network
from worker.analyses import concepts, describe
from worker.pipelines.loading import image_batches
from worker.pipelines.networks import OUTPUT_LAYER
from worker.pipelines.units import UnitSetSpec, build_projector

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
WORDS = ["dog", "red car", "blue sky", "striped texture", "tree"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    config = folder / "psylens-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP)  # type: ignore[arg-type]
    checkpoint = folder / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    words = folder / "concepts.txt"
    words.write_text("\n".join(WORDS) + "\n\n")
    return f"{config}@{checkpoint}", words


def test_imagenet_names_are_the_1000_classes_each_once() -> None:
    names = concepts.imagenet_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[1] == "goldfish"
    assert concepts.read_concepts(concepts.IMAGENET_CONCEPTS) == names


def test_the_classifier_source_is_its_own_softmax() -> None:
    network = tiny_network()
    source = concepts.classifier_source(network, 10)
    assert source.concepts[3] == "class 3" and source.temperature == 1.0
    logits = torch.randn(4, 10)
    assert torch.allclose(source.probabilities(source.score(logits)), logits.softmax(1))


def test_open_clip_from_a_checkpoint_scores_cosine_similarities(
    tiny_clip: tuple[str, Path],
) -> None:
    import open_clip

    spec, words = tiny_clip
    source = concepts.open_clip_source(spec, concepts.read_concepts(words))
    assert source.concepts == WORDS and source.temperature == 10.0
    assert source.preprocess is not None and source.preprocess.crop == 32
    assert "psylens-tiny-clip" in source.label and "tiny.pt" in source.label
    # the same weights, loaded directly: the scores are its image-text cosines
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()  # type: ignore[arg-type]
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        text = torch.nn.functional.normalize(
            model.encode_text(open_clip.get_tokenizer("psylens-tiny-clip")(WORDS)), dim=-1
        )
    assert torch.allclose(source.score(pixels), image @ text.T, atol=1e-5)


def test_the_pass_with_open_clip_describes_every_unit(tiny_clip: tuple[str, Path]) -> None:
    spec, words = tiny_clip
    source = concepts.open_clip_source(spec, concepts.read_concepts(words))
    network = tiny_network()
    projectors = {"block": build_projector(UnitSetSpec("channels", "block"), (16, 8, 8))}
    refs = image_refs(12)
    config = describe.SoftWpmiConfig(top_k=4)
    states = concepts.describe_states(network, projectors, refs, source, config.top_k, 5)
    state = states["block"]
    assert state.n_images == 12 and state.rows.shape == (4, 16)
    assert state.probs.shape[1] == 5 and state.probs.shape[0] == len(state.rows.unique())
    found = describe.top_concepts(state.scores(config), source.concepts, 3)
    assert len(found) == 16 and all(d.concepts[0] in WORDS for d in found)
    # in two shards, merged: the same descriptions
    first = concepts.describe_states(network, projectors, refs[:7], source, 4, 5)["block"]
    second = concepts.describe_states(network, projectors, refs[7:], source, 4, 5)["block"]
    merged = first.merge(second, 4)
    assert torch.allclose(merged.scores(config), state.scores(config), atol=1e-5)


def test_the_classifier_pass_reads_the_networks_output() -> None:
    network = tiny_network()
    source = concepts.classifier_source(network, 10)
    projectors = {"out": build_projector(UnitSetSpec("channels", OUTPUT_LAYER), (10,))}
    refs = image_refs(9)
    state = concepts.describe_states(network, projectors, refs, source, 3, 4)["out"]
    pixels = torch.cat([b.pixels for b in image_batches(refs, network.preprocess, 9)])
    with torch.no_grad():
        logits = network.module(pixels)
    # every image is some unit's top-3 here; the probabilities kept are the network's softmax
    assert state.n_images == 9 and state.probs.shape == (9, 10)
    assert torch.allclose(state.probs, logits.softmax(1), atol=1e-4)
    # each output unit's activation is its logit: its top image is where that logit is largest
    assert torch.equal(state.rows[0], logits.argmax(0))


def test_bad_open_clip_specs_are_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(describe.DescribeError, match="ARCH@CHECKPOINT"):
        concepts.open_clip_source("ViT-B-32", WORDS)
    with pytest.raises(describe.DescribeError, match="does not exist"):
        concepts.open_clip_source(f"ViT-B-32@{tmp_path}/missing.pt", WORDS)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(describe.DescribeError, match="empty"):
        concepts.read_concepts(tmp_path / "empty.txt")
