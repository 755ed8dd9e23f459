# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DF-GAN objective: the Frechet term lowers the Frechet distance of generated batches, its gradient reaches the
generator, real statistics are computed at the start without touching the random streams, and survive resume."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.dfgan import DFGANObjective
from monai_gan_aug.metrics.extractors import RandomConvFeatures
from monai_gan_aug.metrics.frechet import frechet_distance_from_features
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.pix2pix import Pix2PixGenerator
from monai_gan_aug.transforms import mask_to_display


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _extractor():
    return RandomConvFeatures(in_channels=1, dim=8, seed=3, width=4, depth=2)


def _maps(n, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(n, 1, size, size)
    for i in range(n):
        x, y = torch.randint(0, size - 6, (2,), generator=g).tolist()
        maps[i, 0, x : x + 6, y : y + 6] = 1
    return maps


def _reals(n, seed=1, size=16):
    """Bright noisy discs on a dark background: a distribution far from an untrained generator's output."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([6.0, 6.0, 3.0]) + torch.tensor([5.0, 5.0, 3.0])).tolist()
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).float()
        out.append((disc * 1.6 - 0.8 + 0.1 * torch.randn(size, size, generator=g)).clamp(-1, 1))
    return torch.stack(out)[:, None]


def _generator():
    torch.manual_seed(0)
    return Pix2PixGenerator(2, 2, 1, image_size=16, base_channels=4)


def test_fid_loss_lowers_frechet_distance_and_reaches_generator():
    obj = DFGANObjective(extractor=_extractor(), cond_key="label", num_classes=2)
    reals = _reals(64)
    obj.set_real_statistics(reals)
    g = _generator()
    cond = obj.condition({"label": _maps(16)})
    eval_cond = obj.condition({"label": _maps(64, seed=5)})
    real_feats = obj.extractor.extract(reals)

    def measured() -> float:
        g.eval()
        with torch.no_grad():
            fd = frechet_distance_from_features(real_feats, obj.extractor.extract(g(eval_cond)))
        g.train()
        return fd

    before = measured()
    loss = obj.fid_term(g(cond))
    loss.backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    opt = torch.optim.Adam(g.parameters(), 1e-2, betas=(0.5, 0.999))
    for _ in range(25):
        opt.zero_grad()
        obj.fid_term(g(cond)).backward()
        opt.step()
    after = measured()
    assert after < 0.5 * before, (before, after)


def test_g_loss_adds_weighted_fid_term():
    obj = DFGANObjective(extractor=_extractor(), lambda_fid=3.0, cond_key="label", num_classes=2)
    obj.set_real_statistics(_reals(16))
    nets = {"generator": _generator(), "discriminator": PatchGANDiscriminator(2, 3, 10, base_channels=4)}
    nets["discriminator"].requires_grad_(False)
    batch = obj.prepare_batch({"image": _reals(4), "label": _maps(4)}, torch.device("cpu"))
    ctx = PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))
    loss, terms = obj.g_loss(ctx)
    assert set(terms) == {"adv", "l1", "fid"} and terms["fid"] > 0
    torch.testing.assert_close(loss, terms["adv"] + 100 * terms["l1"] + 3 * terms["fid"], rtol=1e-5, atol=1e-5)


def test_small_batches_need_memory():
    obj = DFGANObjective(extractor=_extractor(), cond_key="label", num_classes=2)
    obj.set_real_statistics(_reals(16))
    with pytest.raises(ValueError, match="fid_memory"):
        obj.fid_term(_reals(1))
    mem = DFGANObjective(extractor=_extractor(), fid_memory=3, cond_key="label", num_classes=2)
    mem.set_real_statistics(_reals(16))
    assert float(mem.fid_term(_reals(1, seed=10))) == 0.0  # nothing remembered yet: no term (Algorithm 1)
    for i in range(1, 4):
        x = _reals(1, seed=10 + i).requires_grad_(True)
        value = mem.fid_term(x)
        value.backward()
        assert torch.isfinite(value) and value > 0 and x.grad.abs().sum() > 0
    assert mem.frechet.memory.shape == (3, 8)  # the newest fid_memory feature vectors
    torch.testing.assert_close(mem.frechet.memory[0], mem.extractor(_reals(1, seed=13))[0])


def _loader(n=4):
    data = [{"image": m * 1.6 - 0.8, "label": m} for m in _maps(n)]
    return DataLoader(Dataset(data), batch_size=2, shuffle=False)


def _trainer(obj, loader, **kw):
    torch.manual_seed(0)
    g = Pix2PixGenerator(2, 2, 1, image_size=16, base_channels=4)
    d = PatchGANDiscriminator(2, 3, 10, base_channels=4)
    opts = {"generator": torch.optim.Adam(g.parameters(), 2e-4), "discriminator": torch.optim.Adam(d.parameters(), 2e-4)}
    return AdversarialTrainer("cpu", 1, loader, {"generator": g, "discriminator": d}, opts, obj, **kw)


def test_real_statistics_at_start_keep_random_streams_and_survive_resume():
    loader = _loader()
    obj = DFGANObjective(extractor=_extractor(), cond_key="label", num_classes=2)
    rng = torch.get_rng_state()
    stats = obj.compute_real_statistics(loader)
    assert torch.equal(rng, torch.get_rng_state())  # the pass runs in a forked random state
    assert stats.n == 4

    trainer = _trainer(obj, loader, max_iterations=2)
    trainer.run()
    losses = trainer.state.output["losses"]
    assert "g_fid" in losses and all(torch.isfinite(v) for v in losses.values())
    expected = obj.extractor.extract(torch.cat([b["image"] for b in loader]))
    torch.testing.assert_close(obj.frechet.real_mu, expected.double().mean(0))

    restored = DFGANObjective(extractor=_extractor(), cond_key="label", num_classes=2)
    restored.load_state_dict(obj.state_dict())
    fakes = _reals(4, seed=7)
    torch.testing.assert_close(restored.fid_term(fakes), obj.fid_term(fakes))

    class NoLoader:  # a restored objective must not read the data again
        def __iter__(self):
            raise AssertionError("real statistics recomputed after resume")

    restored.real_loader = NoLoader()
    _trainer(restored, loader, max_iterations=1).run()


def test_bad_real_batches():
    obj = DFGANObjective(extractor=_extractor(), cond_key="label", num_classes=2)
    with pytest.raises(ValueError, match="'image'"):
        obj.compute_real_statistics([{"label": torch.zeros(2, 1, 16, 16)}])
    with pytest.raises(ValueError, match="at least 2"):
        obj.compute_real_statistics([{"image": torch.zeros(1, 1, 16, 16)}])
    with pytest.raises(ValueError, match="no real statistics"):
        obj.fid_term(_reals(2))
    with pytest.raises(TypeError):
        obj.set_real_statistics([1, 2, 3])
    assert mask_to_display(torch.ones(1, 1, 2, 2), 2).eq(1).all()
