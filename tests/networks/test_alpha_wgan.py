# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""alpha-WGAN-GP networks: shapes in 2D/3D, the layer layout of Liang & Chen (7 layers at 256) and of Kwon et al.,
and argument errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_gan_aug.networks.nets.alpha_wgan import (
    AlphaWGANDiscriminator,
    AlphaWGANEncoder,
    AlphaWGANGenerator,
    CodeDiscriminator,
    alpha_wgan_networks,
)


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d))]


def _count(module: nn.Module, kinds) -> int:
    return sum(isinstance(m, kinds) for m in module.modules())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shapes(spatial_dims):
    torch.manual_seed(0)
    nets = alpha_wgan_networks("improved", spatial_dims, 1, 16, latent_size=8, base_channels=4, code_hidden_size=16)
    assert set(nets) == {"generator", "discriminator", "encoder", "code_discriminator"}
    z = torch.randn(3, 8)
    x = nets["generator"](z)
    assert x.shape == (3, 1) + (16,) * spatial_dims
    assert x.min() >= -1 and x.max() <= 1
    assert nets["generator"](z.reshape(3, 8, *([1] * spatial_dims))).shape == x.shape
    assert nets["discriminator"](x).shape == (3, 1)
    code = nets["encoder"](x)
    assert code.shape == (3, 8)
    assert nets["code_discriminator"](code).shape == (3, 1)


def test_liang_chen_layout_at_256():
    """Seven convolution layers in G, D and E; G: 4x4 transposed conv then 3x3 convs, BN+ReLU on layers 1-6;
    D: 4x4 convs, IN on layers 2-6, LeakyReLU on 1-6; E: BN on 1-6; CD: 3 linear layers, LeakyReLU on 1-2."""
    nets = alpha_wgan_networks("improved", 2, 1, 256, latent_size=256, base_channels=4, max_channels=8)
    g, d, e, cd = nets["generator"], nets["discriminator"], nets["encoder"], nets["code_discriminator"]
    g_convs = _convs(g)
    assert len(g_convs) == 7 and g.num_layers == 7
    assert isinstance(g_convs[0], nn.ConvTranspose2d) and g_convs[0].kernel_size == (4, 4)
    assert all(c.kernel_size == (3, 3) for c in g_convs[1:])
    assert _count(g, nn.BatchNorm2d) == 6 and _count(g, nn.ReLU) == 6 and _count(g, nn.Tanh) == 1
    assert len(_convs(d)) == 7 and all(c.kernel_size == (4, 4) for c in _convs(d))
    assert _count(d, nn.InstanceNorm2d) == 5 and _count(d, nn.LeakyReLU) == 6 and _count(d, nn.BatchNorm2d) == 0
    assert len(_convs(e)) == 7 and _count(e, nn.BatchNorm2d) == 6 and _count(e, nn.InstanceNorm2d) == 0
    assert _count(cd, nn.Linear) == 3 and _count(cd, nn.LeakyReLU) == 2 and _count(cd, nn.BatchNorm1d) == 0
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert g.latent_size == e.latent_size == cd.latent_size == 256


def test_kwon_original_layout_3d_64():
    """Kwon et al.: 5 layers at 64^3, G channels 512-256-128-64, batch-norm critic (layers 2-4), E = D layout,
    CD with batch norm."""
    nets = alpha_wgan_networks("original", 3, 1, 64, latent_size=16, base_channels=64)
    g, d, e, cd = nets["generator"], nets["discriminator"], nets["encoder"], nets["code_discriminator"]
    assert [c.out_channels for c in _convs(g)] == [512, 256, 128, 64, 1]
    assert [c.out_channels for c in _convs(d)] == [64, 128, 256, 512, 1]
    assert _count(d, nn.BatchNorm3d) == 3 and _count(d, nn.InstanceNorm3d) == 0
    assert _count(e, nn.BatchNorm3d) == 3
    assert _count(cd, nn.BatchNorm1d) == 2


def test_wgan_gp_variant_has_no_encoder():
    nets = alpha_wgan_networks("wgan_gp", 2, 1, 16, latent_size=8, base_channels=4)
    assert set(nets) == {"generator", "discriminator"}
    assert _count(nets["discriminator"], nn.InstanceNorm2d) > 0
    assert _count(alpha_wgan_networks("wgan_gp", 2, 1, 16, 8, 4, critic_norm=None)["discriminator"], nn.InstanceNorm2d) == 0


def test_critic_gradient_is_per_sample():
    """Instance norm keeps the critic's output of one sample independent of the others (needed by the GP)."""
    torch.manual_seed(0)
    d = AlphaWGANDiscriminator(2, 1, 16, 4).train()
    x = torch.randn(4, 1, 16, 16)
    full = d(x)
    alone = d(x[:1])
    torch.testing.assert_close(full[:1], alone, rtol=1e-4, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="power of two"):
        AlphaWGANGenerator(2, 8, 1, 48)
    with pytest.raises(ValueError, match="spatial_dims"):
        AlphaWGANDiscriminator(4)
    with pytest.raises(ValueError, match="variant"):
        alpha_wgan_networks("beta")
    with pytest.raises(ValueError, match="latents"):
        AlphaWGANGenerator(2, 8, 1, 16, 4)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="image_size"):
        AlphaWGANEncoder(2, 1, 16, 8, 4)(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="codes"):
        CodeDiscriminator(8, 16)(torch.randn(2, 9))
    with pytest.raises(ValueError, match="norm"):
        CodeDiscriminator(8, 16, norm="instance")
