# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet networks: residual U-Net generator, DenseNet critic with layer norm, batch renormalisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_gan_aug.networks.nets.ga_unet import (
    BatchRenorm,
    GAUNetCritic,
    GAUNetGenerator,
)


def _tiny_g(**kw):
    args = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "num_classes": 3, "image_size": 16, "noise_size": 8,
            "base_channels": 4, "layers_per_block": 1, "noise_channels": 2, "class_channels": 2}
    args.update(kw)
    return GAUNetGenerator(**args)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_generator_and_critic_shapes(spatial_dims):
    torch.manual_seed(0)
    g = _tiny_g(spatial_dims=spatial_dims)
    c = GAUNetCritic(spatial_dims, 1, 3, 16, base_channels=4, growth_rate=2, layers_per_block=1)
    x = torch.randn(2, 1, *([16] * spatial_dims))
    y = g(x, torch.tensor([0, 2]), torch.randn(2, 8))
    assert y.shape == x.shape and y.abs().max() <= 1
    assert c(x, y, torch.tensor([1, 2])).shape == (2, 1)


def test_paper_layout():
    """8 blocks of four 3x3 convolutions with batch renorm and 1x1 shortcuts, stride-2 down / up layers, leaky ReLU
    0.01; critic: 4 dense blocks of 4 convolutions ending in dropout, 4 transitions, layer norm, no batch norm."""
    g = GAUNetGenerator(2, 1, 1, 2, 64, base_channels=2, max_channels=4)
    assert len(g.enc_blocks) + len(g.dec_blocks) == 8
    for block in list(g.enc_blocks) + list(g.dec_blocks):
        convs = [m for m in block.body if isinstance(m, nn.Conv2d)]
        assert len(convs) == 4 and all(cv.kernel_size == (3, 3) for cv in convs)
        assert sum(isinstance(m, BatchRenorm) for m in block.body) == 4
        assert block.shortcut.kernel_size == (1, 1)
    assert all(layer[0].stride == (2, 2) for layer in g.downs)
    assert all(isinstance(layer[0], nn.ConvTranspose2d) and layer[0].stride == (2, 2) for layer in g.ups)
    assert all(isinstance(layer[-1], nn.Dropout2d) for layer in list(g.downs) + list(g.ups))
    assert {m.negative_slope for m in g.modules() if isinstance(m, nn.LeakyReLU)} == {0.01}
    assert g.bottleneck == (4, 4)

    c = GAUNetCritic(2, 1, 2, 64, base_channels=4, growth_rate=2)
    dense = [m for m in c.modules() if m.__class__.__name__ == "_DenseBlock"]
    assert len(dense) == 4 and all(len(b.layers) == 4 for b in dense)
    assert sum(isinstance(m, nn.AvgPool2d) for m in c.modules()) == 4
    assert not any(isinstance(m, (nn.BatchNorm2d, BatchRenorm)) for m in c.modules())
    assert all(m.num_groups == 1 for m in c.modules() if isinstance(m, nn.GroupNorm))


def test_generator_uses_reference_class_and_noise():
    torch.manual_seed(0)
    g = _tiny_g().eval()
    x, z, cls = torch.randn(2, 1, 16, 16), torch.randn(2, 8), torch.tensor([0, 1])
    y = g(x, cls, z)
    torch.testing.assert_close(g(x, cls, z), y)  # deterministic in eval mode
    assert not torch.allclose(g(x, cls, torch.randn(2, 8)), y)  # noise matters
    assert not torch.allclose(g(x, torch.tensor([2, 2]), z), y)  # class matters
    assert not torch.allclose(g(torch.randn(2, 1, 16, 16), cls, z), y)  # reference matters


def test_critic_is_per_sample():
    """Layer norm, not batch norm: one pair's score does not depend on the rest of the batch (WGAN-GP)."""
    torch.manual_seed(0)
    c = GAUNetCritic(2, 1, 2, 32, base_channels=4, growth_rate=4, layers_per_block=2, dropout=0.0).train()
    a, b, cls = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(c(a, b, cls)[:1], c(a[:1], b[:1], cls[:1]), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(c(a, b, cls), c(a, b, 1 - cls))


def test_batch_renorm():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 3 + 2
    # r_max = 1, d_max = 0: exactly batch norm in training mode
    brn, bn = BatchRenorm(3, r_max=1.0, d_max=0.0), nn.BatchNorm2d(3)
    torch.testing.assert_close(brn(x), bn(x), rtol=1e-4, atol=1e-4)
    # with room for corrections and fresh statistics (mean 0, std 1) the output is the input itself
    brn = BatchRenorm(3, r_max=10.0, d_max=10.0)
    torch.testing.assert_close(brn(x), x, rtol=1e-4, atol=1e-4)
    assert brn.num_batches_tracked.item() == 1 and brn.running_mean.abs().sum() > 0
    # evaluation uses the moving statistics
    brn.eval()
    expected = (x - brn.running_mean.reshape(1, -1, 1, 1)) / brn.running_std.reshape(1, -1, 1, 1)
    torch.testing.assert_close(brn(x), expected)
    with pytest.raises(ValueError, match="BatchRenorm"):
        BatchRenorm(3)(torch.randn(2, 4, 3, 3))


def test_errors():
    with pytest.raises(ValueError, match="multiple"):
        GAUNetGenerator(image_size=24)
    with pytest.raises(ValueError, match="multiple"):
        GAUNetCritic(image_size=8)
    g = _tiny_g()
    with pytest.raises(ValueError, match="noise"):
        g(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]), torch.randn(2, 7))
    with pytest.raises(ValueError, match="reference images"):
        g(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]), torch.randn(2, 8))
    with pytest.raises(ValueError, match="norm"):
        GAUNetGenerator(norm="group")
