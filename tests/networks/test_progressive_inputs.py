# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The critic's inputs of a progressive map-conditioned GAN: reals at a stage's resolution with the fade-in, and
DiffAugment of images with their condition maps in one shared draw."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.networks.blocks.diffaugment import parse_policy
from monai_gan_aug.networks.blocks.progressive import area_downsample, nearest_upsample
from monai_gan_aug.networks.blocks.progressive_inputs import diff_augment_with_maps, real_at_resolution


@pytest.mark.parametrize("dims", [2, 3])
def test_real_at_resolution_fades_between_the_coarser_version_and_itself(dims):
    x = torch.rand((2, 1) + (16,) * dims)
    x8 = area_downsample(x, 2)
    torch.testing.assert_close(real_at_resolution(x, 8, 1.0), x8)
    torch.testing.assert_close(real_at_resolution(x, 8, 0.25), torch.lerp(nearest_upsample(area_downsample(x8, 2), 2), x8, 0.25))
    assert real_at_resolution(x, 16, 1.0) is x


def test_one_draw_for_all_images_and_maps():
    img = torch.rand(4, 1, 8, 8) * 2 - 1
    cond = (torch.rand(4, 1, 16, 16) > 0.5).float()
    torch.manual_seed(0)
    (a, b), (cmap,) = diff_augment_with_maps([img, img.clone()], cond, policy=parse_policy("color,translation,cutout"))
    assert torch.equal(a, b) and a.shape == img.shape and cmap.shape == (4, 1, 8, 8)
    torch.manual_seed(0)
    (alone,), (cmap_alone,) = diff_augment_with_maps([img], cond, policy=parse_policy("color,translation,cutout"))
    assert torch.equal(alone, a) and torch.equal(cmap_alone, cmap)
    (same,), (same_map,) = diff_augment_with_maps([img], cond, policy=())
    assert same is img and same_map is cond


def test_colour_leaves_the_maps_and_geometry_moves_them():
    img = torch.zeros(2, 1, 8, 8, 8)
    cond = torch.zeros(2, 2, 8, 8, 8)
    cond[:, :, 4, 4, 4] = 1.0
    (out,), (cmap,) = diff_augment_with_maps([img], cond, policy=parse_policy("color"))
    assert torch.equal(cmap, cond) and not torch.equal(out, img)
    torch.manual_seed(1)
    (_,), (moved,) = diff_augment_with_maps([img], cond, policy=parse_policy("translation"))
    assert moved.shape == cond.shape and torch.equal(moved[:, 0], moved[:, 1])


def test_maps_that_do_not_pool_to_the_images_are_refused():
    with pytest.raises(ValueError, match="does not pool"):
        diff_augment_with_maps([torch.zeros(2, 1, 8, 8)], torch.zeros(2, 1, 12, 12), policy=parse_policy("translation"))
    with pytest.raises(ValueError, match="does not pool"):
        diff_augment_with_maps([torch.zeros(2, 1, 8, 8)], torch.zeros(3, 1, 16, 16), policy=parse_policy("translation"))
