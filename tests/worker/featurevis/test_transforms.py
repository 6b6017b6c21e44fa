"""The sampling grid, the warp with the network's normalisation, the colour decorrelation and
the diversity penalty: each replaces a slower formulation and must give its results."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worker.featurevis import diversity_penalty, rng, transforms
from worker.featurevis.config import TransformConfig
from worker.featurevis.param import COLOR_CORRELATION_NORMALIZED, decorrelated_to_rgb

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def random_thetas(batch: int = 5, size: int = 40) -> torch.Tensor:
    keys = rng.element_keys(3, list(range(batch)), [0] * batch)
    return transforms.sample_affine(keys, 2, size, TransformConfig())


def test_the_grid_is_torchs_affine_grid() -> None:
    theta = random_thetas()
    for out_size in (48, 224):
        expected = F.affine_grid(theta, [len(theta), 3, out_size, out_size], align_corners=False)
        grid = transforms.affine_grid(theta, out_size)
        assert grid.shape == expected.shape
        torch.testing.assert_close(grid, expected, rtol=0, atol=1e-6)


def test_warping_with_the_normalisation_gives_the_normalised_views() -> None:
    images = torch.rand(5, 3, 40, 40)
    theta = random_thetas()
    views = transforms.warp(images, theta, 48)
    inputs = transforms.warp(images, theta, 48, (MEAN, STD))
    torch.testing.assert_close(inputs, (views - MEAN) / STD, rtol=0, atol=1e-5)
    # outside the image: Lucent's grey, normalised
    far = theta.clone()
    far[:, :, 2] = 5.0
    torch.testing.assert_close(
        transforms.warp(images, far, 8, (MEAN, STD)),
        ((0.5 - MEAN) / STD).expand(5, 3, 8, 8),
        rtol=0,
        atol=1e-6,
    )


def test_the_normalised_warps_input_gradient_matches_the_two_step_one() -> None:
    images = torch.rand(5, 3, 40, 40)
    theta = random_thetas()
    weights = torch.randn(5, 3, 48, 48)
    fused = images.clone().requires_grad_(True)
    (transforms.warp(fused, theta, 48, (MEAN, STD)) * weights).sum().backward()
    plain = images.clone().requires_grad_(True)
    (((transforms.warp(plain, theta, 48) - MEAN) / STD) * weights).sum().backward()
    assert fused.grad is not None and plain.grad is not None
    torch.testing.assert_close(fused.grad, plain.grad, rtol=1e-5, atol=1e-5)


def test_colour_decorrelation_is_the_matrix_applied_to_every_pixel() -> None:
    image = torch.randn(4, 3, 16, 16)
    expected = torch.sigmoid(torch.einsum("bchw,dc->bdhw", image, COLOR_CORRELATION_NORMALIZED))
    torch.testing.assert_close(decorrelated_to_rgb(image), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(decorrelated_to_rgb(image, False), torch.sigmoid(image))


def test_a_groups_diversity_penalty_is_bit_for_bit_the_same_in_any_batch() -> None:
    torch.manual_seed(0)
    for acts in (torch.randn(9, 12, 5, 5), torch.randn(9, 40, 2, 2)):  # both Gram paths
        whole = diversity_penalty(acts, [3, 3, 3])
        for start in (0, 3, 6):
            alone = diversity_penalty(acts[start : start + 3], [3])
            assert torch.equal(whole[start : start + 3], alone)
        # what it is: mean cosine similarity of Gram matrices with the group's other images
        grams = torch.einsum("bcp,bdp->bcd", acts[:3].flatten(2), acts[:3].flatten(2)).flatten(1)
        cosine = F.cosine_similarity(grams[:, None], grams[None, :], dim=-1)
        expected = (cosine.sum(1) - cosine.diagonal()) / 3
        torch.testing.assert_close(whole[:3], expected, rtol=1e-4, atol=1e-5)
    # a group of one has no other image to be like
    assert diversity_penalty(torch.randn(1, 4, 3, 3), [1]).tolist() == [0.0]
