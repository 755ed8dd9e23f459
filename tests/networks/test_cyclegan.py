# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN ResNet generator: layer plan of Zhu et al., shapes (2D, 3D), residual identity, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_gan_aug.networks.nets.cyclegan import (
    PatchGANDiscriminator,
    ResidualBlock,
    ResNetGenerator,
    patchgan_receptive_field,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_layer_plan_of_the_paper():
    """c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3."""
    g = ResNetGenerator(2, 3, 3, base_channels=64, n_blocks=9)
    top = list(g.net)
    convs = [m for m in top if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == [
        (7, 1, 64), (3, 2, 128), (3, 2, 256), (3, 2, 128), (3, 2, 64), (7, 1, 3)
    ]  # fmt: skip
    assert isinstance(convs[3], nn.ConvTranspose2d) and isinstance(convs[4], nn.ConvTranspose2d)
    blocks = [m for m in top if isinstance(m, ResidualBlock)]
    assert len(blocks) == 9
    assert all(c.out_channels == 256 and c.padding_mode == "reflect" for b in blocks for c in b.modules() if isinstance(c, nn.Conv2d))
    assert convs[0].padding_mode == "reflect" and convs[-1].padding_mode == "reflect"
    assert isinstance(top[-1], nn.Tanh)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in g.modules()) == 5 + 2 * 9  # all but the last c7s1


@pytest.mark.parametrize("n_blocks", [0, 2])
def test_shapes_2d(n_blocks):
    g = ResNetGenerator(2, 1, 2, base_channels=4, n_blocks=n_blocks)
    y = g(torch.randn(2, 1, 16, 24))
    assert y.shape == (2, 2, 16, 24) and y.abs().max() <= 1


def test_3d_smoke():
    g = ResNetGenerator(3, 1, 1, base_channels=2, n_blocks=1)
    y = g(torch.randn(1, 1, 8, 8, 12))
    assert y.shape == (1, 1, 8, 8, 12) and torch.isfinite(y).all()
    d = PatchGANDiscriminator(3, 1, receptive_field=10, base_channels=2, norm="instance")
    assert d(y).shape == (1, 1, 3, 3, 5) and patchgan_receptive_field(d) == 10


def test_residual_block_is_identity_plus_branch():
    block = ResidualBlock(2, 4, norm=None)
    x = torch.randn(2, 4, 8, 8)
    last = [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    torch.testing.assert_close(block(x), x)  # zero residual branch -> the skip alone


def test_errors():
    with pytest.raises(ValueError, match="spatial_dims"):
        ResNetGenerator(1, 1, 1)
    with pytest.raises(ValueError, match="n_blocks"):
        ResNetGenerator(2, 1, 1, n_blocks=-1)
    g = ResNetGenerator(2, 1, 1, base_channels=2, n_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        g(torch.randn(1, 1, 10, 10))
    with pytest.raises(ValueError, match="1, \\*2 spatial"):
        g(torch.randn(1, 3, 8, 8))
