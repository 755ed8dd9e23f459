# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix U-Net generator and PatchGAN discriminator: shapes (2D, 3D), depth, dropout, receptive fields."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_gan_aug.networks.blocks.patchgan import (
    PATCHGAN_RECEPTIVE_FIELDS,
    PatchGANDiscriminator,
    patchgan_layer_strides,
    patchgan_receptive_field,
    receptive_field,
)
from monai_gan_aug.networks.nets.pix2pix import Pix2PixGenerator, unet_num_downs


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("size", [16, 32])
def test_unet_shapes_and_depth(size):
    g = Pix2PixGenerator(2, in_channels=5, out_channels=1, image_size=size, base_channels=4)
    assert g.num_downs == unet_num_downs(size) == {16: 4, 32: 5}[size]
    x = torch.randn(3, 5, size, size)
    y = g(x)
    assert y.shape == (3, 1, size, size)
    assert y.abs().max() <= 1.0  # tanh output
    # the bottleneck is one pixel wide: log2(size) stride-2 layers
    feats = x
    for down in g.downs:
        feats = down(feats)
    assert feats.shape[2:] == (1, 1)


def test_unet_channels_follow_paper_at_256():
    g = Pix2PixGenerator(2, 3, 3, image_size=256)
    convs = [m for m in g.downs.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]  # C64-C128-C256-C512 x 5
    ups = [m for m in g.ups.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [u.out_channels for u in ups] == [512, 512, 512, 512, 256, 128, 64]  # CD512 x 3 - C512-C256-C128-C64
    assert [u.in_channels for u in ups] == [512, 1024, 1024, 1024, 1024, 512, 256]  # skips double the inputs
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs + ups)
    # no norm on the first (C64) and innermost encoder layers
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.downs[0].modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.downs[-1].modules())
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in d.modules()) for d in g.downs[1:-1])


def test_dropout_in_first_three_decoder_blocks():
    g = Pix2PixGenerator(2, 1, 1, image_size=32, base_channels=4)
    has_dropout = [any(isinstance(m, nn.Dropout) for m in up.modules()) for up in g.ups]
    assert has_dropout == [True, True, True, False]
    x = torch.randn(2, 1, 32, 32)
    g.train()
    assert not torch.equal(g(x), g(x))  # dropout is the noise source (Isola et al.)
    g.eval()
    torch.testing.assert_close(g(x), g(x))


def test_unet_3d_smoke():
    g = Pix2PixGenerator(3, in_channels=2, out_channels=1, image_size=16, base_channels=2, max_channels=8)
    y = g(torch.randn(2, 2, 16, 16, 16))
    assert y.shape == (2, 1, 16, 16, 16) and torch.isfinite(y).all()
    assert any(isinstance(m, nn.Conv3d) for m in g.modules())


def test_unet_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        Pix2PixGenerator(2, 1, 1, image_size=24)
    with pytest.raises(ValueError, match="spatial_dims"):
        Pix2PixGenerator(4, 1, 1, image_size=16)
    g = Pix2PixGenerator(2, 3, 1, image_size=16, base_channels=2)
    with pytest.raises(ValueError, match="in_channels"):
        g(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        g(torch.randn(1, 3, 24, 24))


@pytest.mark.parametrize("field", PATCHGAN_RECEPTIVE_FIELDS)
def test_patchgan_receptive_field_is_the_configured_one(field):
    d = PatchGANDiscriminator(2, in_channels=2, receptive_field=field, base_channels=2)
    assert patchgan_receptive_field(d) == field
    assert patchgan_receptive_field({"_target_": "x", "spatial_dims": 2, "in_channels": 2, "receptive_field": field}) == field
    n_stride2 = sum(s == 2 for s in d.strides)
    assert n_stride2 == {10: 1, 22: 2, 46: 3, 70: 3}[field]  # thesis C64 / C64-C128 / C64-C128-C256; Isola + C512 s1
    assert len(d.strides) == {10: 2, 22: 3, 46: 4, 70: 5}[field]


@pytest.mark.parametrize("field", PATCHGAN_RECEPTIVE_FIELDS)
def test_patchgan_receptive_field_measured_by_gradient(field):
    """The input pixels that influence one interior output logit span exactly ``field`` pixels per axis."""
    torch.manual_seed(0)
    d = PatchGANDiscriminator(2, in_channels=1, receptive_field=field, base_channels=2, norm=None)
    size = 2 * field + 16
    x = torch.randn(1, 1, size, size, requires_grad=True)
    out = d(x)
    assert out.shape[2:] == (d.output_sizes(size)[-1],) * 2
    c = out.shape[-1] // 2
    out[0, 0, c, c].backward()
    support = x.grad[0, 0].abs() > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    assert int(rows.max() - rows.min() + 1) == field
    assert int(cols.max() - cols.min() + 1) == field


def test_patchgan_isola_output_grid_and_3d():
    d = PatchGANDiscriminator(2, in_channels=6, receptive_field=70, base_channels=4)
    assert d(torch.randn(1, 6, 64, 64)).shape == (1, 1, 6, 6)
    assert d.output_sizes(256)[-1] == 30  # 30 x 30 patches for 256 x 256 (Isola et al.)
    d3 = PatchGANDiscriminator(3, in_channels=2, receptive_field=22, base_channels=2)
    assert d3(torch.randn(2, 2, 16, 16, 16)).shape == (2, 1, 3, 3, 3)
    assert patchgan_receptive_field(d3) == 22


def test_patchgan_errors():
    with pytest.raises(ValueError, match="choose one of"):
        PatchGANDiscriminator(2, 2, receptive_field=50)
    with pytest.raises(ValueError, match="too small"):
        PatchGANDiscriminator(2, 1, receptive_field=70, base_channels=2)(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="in_channels"):
        PatchGANDiscriminator(2, 2, receptive_field=10, base_channels=2)(torch.randn(1, 3, 16, 16))
    with pytest.raises(TypeError):
        patchgan_receptive_field(70)
    with pytest.raises(TypeError, match="no convolution"):
        patchgan_receptive_field(nn.Linear(2, 2))


def test_receptive_field_arithmetic_matches_thesis():
    # thesis eq. 4.2-4.10: 4 -> 10 -> 22 -> 46 going backwards through stride-2 kernel-4 layers
    assert receptive_field([(4, 1, 1)]) == 4
    assert receptive_field([(4, 2, 1), (4, 1, 1)]) == 10
    assert receptive_field([(4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 1, 1)]) == 46
    assert patchgan_layer_strides(70) == (2, 2, 2, 1, 1)
