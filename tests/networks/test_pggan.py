# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""PGGAN networks: shapes at every stage, fade-in, equalised learning rate, minibatch std, that the box map
reaches every resolution block of both networks, and the growth state saved in their state dict."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from monai_gan_aug.networks.blocks.progressive import (
    ConditionPyramid,
    EqualizedConv,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    area_downsample,
    channels_per_resolution,
    nearest_upsample,
)
from monai_gan_aug.networks.nets.pggan import (
    PGGANDiscriminator,
    PGGANGenerator,
    pggan_resolutions,
)

CH = {4: 8, 8: 8, 16: 6, 32: 4}


def nets(max_res=32, dims=2, cond=1, channels=None):
    torch.manual_seed(0)
    channels = channels or {r: CH[r] for r in pggan_resolutions(max_res)}
    g = PGGANGenerator(dims, 8, 1, cond, max_res, channels=channels)
    d = PGGANDiscriminator(dims, 1, cond, max_res, channels=channels)
    return g, d


def box_map(n, size, dims=2):
    c = torch.zeros((n, 1) + (size,) * dims)
    c[(slice(None), 0) + (slice(size // 4, size // 2),) * dims] = 1.0
    return c


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_shapes_every_stage_2d(alpha):
    g, d = nets()
    z, c = torch.randn(3, 8), box_map(3, 32)
    for stage, res in enumerate([4, 8, 16, 32]):
        x = g(z, c, stage, alpha)
        assert x.shape == (3, 1, res, res)
        assert x.abs().max() <= 1.0
        assert d(x, c, stage, alpha).shape == (3, 1)
    assert g(z, c).shape == (3, 1, 32, 32)  # default: the last stage


def test_3d_smoke():
    g, d = nets(max_res=8, dims=3, channels={4: 4, 8: 4})
    z, c = torch.randn(2, 8), box_map(2, 8, dims=3)
    for stage, res in enumerate([4, 8]):
        x = g(z, c, stage, 0.5)
        assert x.shape == (2, 1, res, res, res)
        assert d(x, c, stage, 0.5).shape == (2, 1)


def test_fade_in_endpoints():
    """alpha=0 is exactly the previous stage (upsampled for G, on the downsampled input for D)."""
    g, d = nets()
    z, c = torch.randn(4, 8), box_map(4, 32)
    with torch.no_grad():
        for stage in (1, 2, 3):
            prev = g(z, c, stage - 1, 1.0)
            torch.testing.assert_close(g(z, c, stage, 0.0), nearest_upsample(prev, 2))
            x = torch.rand(4, 1, 4 * 2**stage, 4 * 2**stage) * 2 - 1
            torch.testing.assert_close(d(x, c, stage, 0.0), d(area_downsample(x, 2), c, stage - 1, 1.0), rtol=1e-5, atol=1e-5)
            mid = g(z, c, stage, 0.5)
            assert not torch.allclose(mid, g(z, c, stage, 0.0)) and not torch.allclose(mid, g(z, c, stage, 1.0))


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_box_map_reaches_every_block_of_g_and_d(stage):
    """Forward pre-hooks see the area-pooled box map as the last input channel of every block's first convolution
    (G and D), of D's fromRGB and D's head; and the outputs depend on the map through every one of them."""
    g, d = nets()
    z = torch.randn(4, 8)
    c = box_map(4, 32)
    seen = {}

    def hook(name):
        def fn(module, args):
            seen[name] = args[0][:, -1:].detach()

        return fn

    handles = []
    for s in range(stage + 1):
        handles.append(g.blocks[s].conv1.register_forward_pre_hook(hook(f"g{s}")))
        if s > 0:
            handles.append(d.blocks[s].conv1.register_forward_pre_hook(hook(f"d{s}")))
    handles.append(d.from_rgb[stage][0].register_forward_pre_hook(hook("d_from_rgb")))
    handles.append(d.head.conv.register_forward_pre_hook(hook("d_head")))
    x = g(z, c, stage, 1.0)
    d(x.detach(), c, stage, 1.0)
    for h in handles:
        h.remove()
    pyramid = ConditionPyramid(c)
    for s in range(stage + 1):
        r = 4 * 2**s
        torch.testing.assert_close(seen[f"g{s}"], pyramid[r])
        if s > 0:
            torch.testing.assert_close(seen[f"d{s}"], pyramid[r])
    torch.testing.assert_close(seen["d_from_rgb"], pyramid[4 * 2**stage])
    torch.testing.assert_close(seen["d_head"], pyramid[4])

    # gradients of the outputs w.r.t. the map are non-zero at this stage
    cg = c.clone().requires_grad_(True)
    g(z, cg, stage, 1.0).sum().backward()
    assert cg.grad.abs().sum() > 0
    cd = c.clone().requires_grad_(True)
    d(torch.randn(4, 1, 4 * 2**stage, 4 * 2**stage), cd, stage, 1.0).sum().backward()
    assert cd.grad.abs().sum() > 0


def test_condition_changes_output_and_none_means_no_boxes():
    g, _ = nets()
    z = torch.randn(2, 8)
    with torch.no_grad():
        empty = g(z, torch.zeros(2, 1, 32, 32))
        torch.testing.assert_close(g(z, None), empty)
        assert not torch.allclose(g(z, box_map(2, 32)), empty)
        # a map at the current resolution works as well as one at full size (area pooling is exact)
        torch.testing.assert_close(g(z, box_map(2, 32), 2), g(z, area_downsample(box_map(2, 32), 2), 2))


def test_unconditional():
    g = PGGANGenerator(2, 8, 1, 0, 8, channels={4: 4, 8: 4})
    d = PGGANDiscriminator(2, 1, 0, 8, channels={4: 4, 8: 4})
    x = g(torch.randn(2, 8))
    assert d(x).shape == (2, 1)
    with pytest.raises(ValueError, match="cond_channels=0"):
        g(torch.randn(2, 8), torch.zeros(2, 1, 8, 8))


def test_equalized_learning_rate():
    conv = EqualizedConv(2, 16, 8, 3)
    assert abs(conv.conv.weight.std().item() - 1.0) < 0.1
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(16 * 9))
    x = torch.randn(4, 16, 8, 8)
    ref = torch.nn.functional.conv2d(x, conv.conv.weight * conv.scale, conv.conv.bias, padding=1)
    torch.testing.assert_close(conv(x), ref)
    lin = EqualizedLinear(10, 3, gain=1.0)
    torch.testing.assert_close(lin(torch.ones(1, 10)), (lin.weight.sum(1) / math.sqrt(10))[None])
    assert EqualizedConv(3, 2, 2, 3)(torch.randn(1, 2, 4, 4, 4)).shape == (1, 2, 4, 4, 4)


def test_pixel_norm_and_minibatch_std():
    y = PixelNorm()(torch.randn(3, 5, 4, 4) * 7)
    torch.testing.assert_close(y.pow(2).mean(1), torch.ones(3, 4, 4), rtol=1e-4, atol=1e-4)
    mb = MinibatchStdDev(group_size=4)
    same = torch.ones(4, 3, 2, 2)
    out = mb(same)
    assert out.shape == (4, 4, 2, 2) and out[:, -1].abs().max() < 1e-3
    assert mb(torch.randn(1, 3, 2, 2)).shape == (1, 4, 2, 2)  # batch of one works
    x = torch.randn(6, 3, 2, 2)  # 6 is not divisible by 4: groups of 3
    out = mb(x)
    expected = x.reshape(3, 2, 3, 2, 2).std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    torch.testing.assert_close(out[:2, -1, 0, 0], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[2:4, -1, 0, 0], expected, rtol=1e-4, atol=1e-4)


def test_channels_rule_and_errors():
    assert channels_per_resolution([4, 64, 128, 256], None, 8192, 512) == {4: 512, 64: 256, 128: 128, 256: 64}
    assert channels_per_resolution([4, 8], {"4": 3, "8": 2}) == {4: 3, 8: 2}
    with pytest.raises(ValueError, match="resolution 8"):
        channels_per_resolution([4, 8], {"4": 3})
    with pytest.raises(ValueError, match="power of two"):
        PGGANGenerator(max_resolution=48)
    g, d = nets(max_res=8, channels={4: 4, 8: 4})
    with pytest.raises(ValueError, match="stage"):
        g(torch.randn(1, 8), None, 5)
    with pytest.raises(ValueError, match="latents"):
        g(torch.randn(1, 7))
    with pytest.raises(ValueError, match="current resolution"):
        d(torch.randn(1, 1, 8, 8), None, 0)
    with pytest.raises(ValueError, match="smaller than"):
        g(torch.randn(1, 8), torch.zeros(1, 1, 4, 4), 1)


def test_growth_state_lives_in_the_state_dict():
    """stage / alpha are buffers: forward uses them when not given, a loaded state dict restores them (so the
    generator alone generates at the stage it was saved at), and a state dict without them (written before) loads."""
    g, d = nets()
    assert g.growth == d.growth == (3, 1.0) and g.resolution == 32  # new networks are fully grown
    z, c = torch.randn(2, 8), box_map(2, 32)
    assert g.set_growth(1, 0.25) is g and d.set_growth(1, 0.25) is d
    sd = g.state_dict()
    assert int(sd["stage"]) == 1 and float(sd["alpha"]) == 0.25 and int(d.state_dict()["stage"]) == 1
    with torch.no_grad():
        x = g(z, c)
        torch.testing.assert_close(x, g(z, c, 1, 0.25))
        assert x.shape == (2, 1, 8, 8) and g(z, c, 1).shape == (2, 1, 8, 8)  # an explicit stage alone: alpha 1
        assert not torch.allclose(g(z, c, 1), x)
        torch.testing.assert_close(d(x, c), d(x, c, 1, 0.25))
        fresh = nets()[0]
        fresh.load_state_dict(torch.load(_saved(sd), weights_only=True))
        assert fresh.growth == (1, 0.25) and fresh.resolution == 8
        torch.testing.assert_close(fresh(z, c), x)
        old = nets()[0]
        old.load_state_dict({k: v for k, v in sd.items() if k not in ("stage", "alpha")})  # strict: still loads
        assert old.growth == (3, 1.0)
    assert copy.deepcopy(g).growth == (1, 0.25)  # e.g. the trainer's EMA copy
    with pytest.raises(ValueError, match="alpha"):
        g.set_growth(1, 1.5)
    with pytest.raises(ValueError, match="stage"):
        g.set_growth(4)
    bad = dict(sd, stage=torch.tensor(7))
    with pytest.raises(RuntimeError, match="stage 7"):
        nets()[0].load_state_dict(bad)


def _saved(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return buf


def test_export_sees_the_growth_stage_as_a_constant():
    g = PGGANGenerator(2, 8, 1, 1, 8, channels={4: 4, 8: 4}).eval().set_growth(0)
    z, c = torch.randn(1, 8), torch.zeros(1, 1, 8, 8)
    program = torch.export.export(g, (z, c)).module()
    torch.testing.assert_close(program(z, c), g(z, c))
    assert program(z, c).shape == (1, 1, 4, 4)


def test_unfinished_old_checkpoint_generates_at_its_stage():
    """A checkpoint written before the networks stored their stage keeps it in the objective's entry; the
    generation loader gives it back to the weights, so an unfinished run does not generate at the final stage."""
    from monai_gan_aug.engines.generation import generator_state_dict

    g = nets()[0].set_growth(1, 0.5)
    weights = {f"generator.{k}": v for k, v in g.state_dict().items() if k not in ("stage", "alpha")}
    old = {"networks": weights, "objective": {"stage": 1, "alpha": 0.5, "resolution": 8}}
    loaded = nets()[0]
    loaded.load_state_dict(generator_state_dict(old))
    assert loaded.growth == (1, 0.5)
    new = {"networks": {f"generator.{k}": v for k, v in g.state_dict().items()}, "objective": {"stage": 3}}
    assert int(generator_state_dict(new)["stage"]) == 1  # the networks' own buffers win
    assert "stage" not in generator_state_dict({"networks": {"generator.w": torch.ones(1)}})  # other families
