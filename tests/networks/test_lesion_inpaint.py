# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion inpainting networks (MCGAN-style): shapes in 2D and 3D, the output equals the input outside the box (and
its feathered ring), the feathered weights, the conditions, and clear errors."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.networks.nets import LesionInpaintCritic, LesionInpaintGenerator
from monai_gan_aug.networks.nets.lesion_inpaint import feathered_weights


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _mask(shape, region):
    m = torch.zeros(shape)
    m[(slice(None), slice(None), *region)] = 1.0
    return m


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("feather", [0, 2])
def test_generator_changes_only_the_box(dims, feather):
    torch.manual_seed(0)
    size = 16 if dims == 2 else 8
    g = LesionInpaintGenerator(dims, 1, cond_channels=dims, channels=(4, 8, 8) if dims == 2 else (4, 8), feather=feather)
    x = torch.randn(2, 1, *([size] * dims))
    region = (slice(5, 9), slice(6, 10)) if dims == 2 else (slice(2, 5), slice(3, 6), slice(2, 4))
    mask = _mask((2, 1, *([size] * dims)), region)
    y = g(x, mask, torch.rand(2, dims))
    assert y.shape == x.shape and y.dtype == torch.float32
    outside = g.blend_weights(mask) == 0
    assert torch.equal(y[outside], x[outside])  # bit for bit: the context is pasted back
    if feather == 0:
        assert torch.equal(outside, mask == 0)
    else:
        assert outside.sum() < (mask == 0).sum()  # the ring blends
    inside = mask.bool()
    assert not torch.equal(y[inside], x[inside]) and y[inside].abs().max() <= 1  # tanh output in the box
    # the output in the box depends on the noise in it, not only on the context
    x2 = x.clone()
    x2[inside] = torch.randn(int(inside.sum()))
    assert not torch.allclose(g(x2, mask, torch.rand(2, dims))[inside], y[inside])


def test_feathered_weights_fall_off_outside_the_box():
    mask = _mask((1, 1, 12, 12), (slice(4, 7), slice(4, 8)))
    w = feathered_weights(mask, 2)[0, 0]
    assert torch.all(w[4:7, 4:8] == 1)
    assert w[3, 5] == pytest.approx(0.75) and w[2, 5] == pytest.approx(0.25) and w[1, 5] == 0
    assert torch.equal(feathered_weights(mask, 0), mask)
    w3 = feathered_weights(_mask((1, 1, 6, 6, 6), (slice(2, 4),) * 3), 1)
    assert w3[0, 0, 1, 2, 2] == pytest.approx(0.5) and w3[0, 0, 0, 2, 2] == 0


def test_generator_gradients_reach_the_weights_from_the_box():
    torch.manual_seed(0)
    g = LesionInpaintGenerator(2, 1, channels=(4, 8), feather=0)
    x, mask = torch.randn(1, 1, 8, 8), _mask((1, 1, 8, 8), (slice(2, 5), slice(3, 6)))
    g(x, mask)[mask.bool()].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


@pytest.mark.parametrize("dims", [2, 3])
def test_critic_shapes(dims):
    c = LesionInpaintCritic(dims, 2, cond_channels=1, channels=(4, 8), norm="instance")
    out = c(torch.randn(3, 2, *([8] * dims)), torch.rand(3, 1))
    assert out.shape == (3, 1, *([2] * dims))
    assert LesionInpaintCritic(dims, 1, channels=(4,))(torch.randn(2, 1, *([4] * dims))).shape == (2, 1, *([2] * dims))


def test_clear_errors():
    g = LesionInpaintGenerator(2, 1, cond_channels=2, channels=(4, 8, 8))
    x, mask = torch.randn(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="multiples of"):
        g(torch.randn(1, 1, 10, 10), torch.zeros(1, 1, 10, 10), torch.rand(1, 2))
    with pytest.raises(ValueError, match="mask must have shape"):
        g(x, torch.zeros(1, 2, 16, 16), torch.rand(1, 2))
    with pytest.raises(ValueError, match=r"needs a \(1, 2\) condition"):
        g(x, mask)
    with pytest.raises(ValueError, match="cond_channels=0"):
        LesionInpaintGenerator(2, 1, channels=(4, 8))(x, mask, torch.rand(1, 2))
    with pytest.raises(ValueError, match="out_channels == in_channels"):
        LesionInpaintGenerator(2, 1, out_channels=2)
    with pytest.raises(ValueError, match="spatial_dims"):
        LesionInpaintGenerator(1)
    with pytest.raises(ValueError, match="feather"):
        LesionInpaintGenerator(2, feather=-1)
    with pytest.raises(ValueError, match="norm"):
        LesionInpaintGenerator(2, norm=None)
    with pytest.raises(ValueError, match="channels must hold"):
        LesionInpaintGenerator(2, channels=(8,))
    with pytest.raises(ValueError, match="at least 4 voxels"):
        LesionInpaintCritic(2, 1, channels=(4, 8))(torch.randn(1, 1, 2, 8))
    with pytest.raises(ValueError, match=r"expects \(N, 2"):
        LesionInpaintCritic(2, 2)(torch.randn(1, 1, 16, 16))
