# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FastGAN networks, the skip-layer excitation block and DiffAugment."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from monai_gan_aug.networks.blocks.diffaugment import (
    DiffAugment,
    diff_augment,
    parse_policy,
)
from monai_gan_aug.networks.blocks.sle import SkipLayerExcitation
from monai_gan_aug.networks.nets.fastgan import (
    FastGANDiscriminator,
    FastGANGenerator,
    crop_quarter,
)


# ---------------------------------------------------------------------------------------------- SLE
def test_sle_gates_high_resolution_channels_by_low_resolution_map():
    torch.manual_seed(0)
    sle = SkipLayerExcitation(2, in_channels=6, out_channels=3)
    x_low = torch.randn(2, 6, 8, 8)
    x_high = torch.randn(2, 3, 64, 64)
    y = sle(x_low, x_high)
    assert y.shape == x_high.shape
    gate = y / x_high  # one value per (sample, channel), constant over space, in (0, 1)
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)
    assert ((gate > 0) & (gate < 1)).all()
    # the gate depends on x_low only: another x_high gets the same gate
    other = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(sle(x_low, other) / other, gate, rtol=1e-4, atol=1e-5)
    # and it changes with x_low
    assert not torch.allclose(sle(torch.randn(2, 6, 8, 8), x_high), y)
    # gradients reach x_low and the block's weights
    x_low.requires_grad_(True)
    sle(x_low, x_high).sum().backward()
    assert x_low.grad is not None and x_low.grad.abs().sum() > 0
    assert all(p.grad is not None for p in sle.parameters())


def test_sle_3d_and_errors():
    sle = SkipLayerExcitation(3, 4, 2, activation="swish", spectral_norm=True)
    assert sle(torch.randn(1, 4, 4, 4, 4), torch.randn(1, 2, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    with pytest.raises(ValueError, match="channels"):
        sle(torch.randn(1, 3, 4, 4, 4), torch.randn(1, 2, 16, 16, 16))
    with pytest.raises(ValueError, match="activation"):
        SkipLayerExcitation(2, 4, 2, activation="relu6")


# ---------------------------------------------------------------------------------------------- DiffAugment
def test_policy_parsing():
    assert parse_policy("color,translation") == ("brightness", "saturation", "contrast", "translation")
    assert parse_policy(["cutout", "cutout"]) == ("cutout",)
    assert parse_policy("") == () and parse_policy(None) == ()
    with pytest.raises(ValueError, match="unknown operation"):
        parse_policy("color,rotate")


def test_diffaugment_same_draw_for_a_pair():
    """One call augments several tensors with one random draw: identical inputs give identical outputs, and a
    2x nearest-upsampled twin is augmented exactly like its low-resolution original."""
    torch.manual_seed(0)
    x = torch.randn(4, 1, 16, 16)
    a, b = diff_augment(x, x.clone(), policy="color,translation,cutout")
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, x)
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    small, big = diff_augment(x, up, policy="color,translation")
    torch.testing.assert_close(big, F.interpolate(small, scale_factor=2, mode="nearest"), rtol=1e-5, atol=1e-5)
    # a second call draws new parameters
    assert not torch.allclose(diff_augment(x, policy="color,translation")[0], small)


def test_translation_is_a_zero_filled_integer_shift():
    torch.manual_seed(1)
    x = torch.rand(6, 2, 16, 16) + 1.0  # strictly positive: zeros mark the fill
    (out,) = diff_augment(x, policy="translation")
    for i in range(6):
        matches = []
        for s0, s1 in itertools.product(range(-2, 3), repeat=2):
            shifted = torch.zeros_like(x[i])
            src = x[i][:, max(s0, 0) : 16 + min(s0, 0), max(s1, 0) : 16 + min(s1, 0)]
            shifted[:, max(-s0, 0) : 16 + min(-s0, 0), max(-s1, 0) : 16 + min(-s1, 0)] = src
            matches.append(torch.equal(shifted, out[i]))
        assert sum(matches) == 1


def test_colour_spares_mask_channels_and_is_per_sample():
    torch.manual_seed(2)
    x = torch.randn(5, 2, 8, 8)
    out = DiffAugment("brightness", color_channels=1)(x)
    torch.testing.assert_close(out[:, 1], x[:, 1])  # mask channel untouched
    shift = (out[:, 0] - x[:, 0]).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)  # one brightness shift per sample
    assert shift[:, 0].unique().numel() == 5 and shift.abs().max() <= 0.5


def test_cutout_zeroes_one_box_per_sample():
    torch.manual_seed(3)
    x = torch.ones(8, 1, 16, 16)
    (out,) = diff_augment(x, policy="cutout", cutout_ratio=0.5)
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 64).all()  # a (clipped) 8 x 8 box


def test_diffaugment_is_differentiable_and_3d():
    x = torch.randn(2, 1, 8, 8, 8, requires_grad=True)
    out = DiffAugment("color,translation,cutout")(x)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="batch size"):
        diff_augment(torch.randn(2, 1, 8, 8), torch.randn(3, 1, 8, 8))


# ---------------------------------------------------------------------------------------------- networks
def test_generator_shapes_sle_and_noise():
    torch.manual_seed(0)
    g = FastGANGenerator(latent_size=8, out_channels=2, image_size=32, base_channels=4, sle_ratio=4)
    assert sorted(int(k) for k in g.sle) == [16, 32]  # 4 -> 16, 8 -> 32
    z = torch.randn(3, 8)
    big, small = g(z, return_small=True)
    assert big.shape == (3, 2, 32, 32) and small.shape == (3, 2, 16, 16)
    assert big.abs().max() <= 1 and small.abs().max() <= 1
    # noise injection: explicit maps make the output a function of (z, maps)
    for m in g.modules():
        if hasattr(m, "weight") and m.__class__.__name__ == "NoiseInjection":
            m.weight.data.fill_(0.5)
    g.eval()
    maps = [torch.randn(3, *s) for s in g.noise_shapes]
    assert len(maps) == 4  # two noisy layers in each "comp" block (8 and 32)
    torch.testing.assert_close(g(z, noises=maps), g(z, noises=[m.clone() for m in maps]))
    assert not torch.allclose(g(z, noises=maps), g(z, noises=[torch.randn_like(m) for m in maps]))
    with pytest.raises(ValueError, match="noise maps"):
        g(z, noises=maps[:1])


def test_generator_paper_sle_layout():
    g = FastGANGenerator(latent_size=8, out_channels=1, image_size=256, base_channels=2)
    assert g.sle_sources == {64: 4, 128: 8, 256: 16}
    assert g.small_size == 128


def test_discriminator_logits_and_reconstructions():
    torch.manual_seed(0)
    d = FastGANDiscriminator(in_channels=2, image_size=32, base_channels=4, sle_ratio=2, decoder_channels=4)
    x = torch.randn(2, 2, 32, 32)
    d.eval()  # no spectral-norm power iteration, running BN statistics: the same logits with or without decoders
    logits = d(x)
    assert logits.shape == (2, 50)  # 5 x 5 patches per path
    logits2, (rec_big, rec_small, rec_part) = d(x, part=3)
    assert rec_big.shape == rec_small.shape == rec_part.shape == (2, 2, 16, 16)
    torch.testing.assert_close(logits, logits2)
    d.train()
    # decoders only get gradients from the reconstruction branch
    d.zero_grad()
    d(x).sum().backward()
    assert all(p.grad is None for p in d.decoder_big.parameters())
    d.zero_grad()
    sum(r.sum() for r in d(x, part=0)[1]).backward()
    assert all(p.grad is not None for p in d.decoder_part.parameters())
    with pytest.raises(ValueError, match="in_channels"):
        d(torch.randn(2, 1, 32, 32))


def test_discriminator_paper_layout_256():
    d = FastGANDiscriminator(in_channels=1, image_size=256, base_channels=2, decoder_channels=2)
    assert d.sle_sources == {32: 256, 16: 128, 8: 64}
    assert d.decoder_size == 128 and d.small_size == 128


def test_crop_quarter():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert crop_quarter(x, 0).flatten().tolist() == [0, 1, 4, 5]
    assert crop_quarter(x, 3).flatten().tolist() == [10, 11, 14, 15]
    with pytest.raises(ValueError, match="part"):
        crop_quarter(x, 4)


def test_size_errors():
    with pytest.raises(ValueError, match="power of two"):
        FastGANGenerator(image_size=48)
    with pytest.raises(ValueError, match="power of two"):
        FastGANDiscriminator(image_size=16)
