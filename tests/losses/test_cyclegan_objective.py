# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN objective and image pool: one step with finite losses, gradients only where expected, pool behaviour,
exact resume with the pools in the checkpoint (the unpaired datalists: tests/data/test_unpaired.py)."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.handlers import GanCheckpointHandler
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.cyclegan import CYCLEGAN_NETWORKS, CycleGANObjective
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.cyclegan import ResNetGenerator
from monai_gan_aug.utils.image_pool import ImagePool


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _nets(seed=0):
    torch.manual_seed(seed)
    gen = lambda: ResNetGenerator(2, 1, 1, base_channels=4, n_blocks=1)
    disc = lambda: PatchGANDiscriminator(2, 1, receptive_field=10, base_channels=4, norm="instance")
    return {"generator_ab": gen(), "generator_ba": gen(), "discriminator_a": disc(), "discriminator_b": disc()}


def _batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image_a": torch.rand(n, 1, 16, 16, generator=g) * 2 - 1, "image_b": torch.rand(n, 1, 16, 16, generator=g) * 2 - 1}


def _ctx(nets, batch, outputs=None):
    return PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs=outputs if outputs is not None else {}, device=torch.device("cpu"))


def test_one_step_gradients_only_where_expected():
    nets = _nets()
    obj = CycleGANObjective(pool_size=4)
    batch = obj.prepare_batch(_batch(), torch.device("cpu"))
    assert batch["image"] is batch["image_b"]  # the engine's reals: the domain of the logged fakes
    for k in ("discriminator_a", "discriminator_b"):
        nets[k].requires_grad_(False)
    outputs: dict = {}
    loss, terms = obj.g_loss(_ctx(nets, batch, outputs))
    assert set(terms) == {"adv_ab", "adv_ba", "cycle_a", "cycle_b", "idt_a", "idt_b"}
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    expected = terms["adv_ab"] + terms["adv_ba"] + 10 * (terms["cycle_a"] + terms["cycle_b"]) + 5 * (terms["idt_a"] + terms["idt_b"])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for k in ("generator_ab", "generator_ba"):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in nets[k].parameters())
    for k in ("discriminator_a", "discriminator_b"):
        assert all(p.grad is None for p in nets[k].parameters())
    assert outputs["fakes"] is outputs["fake_b"] and not outputs["fake_b"].requires_grad

    for net in nets.values():
        net.zero_grad(set_to_none=True)
        net.requires_grad_(True)
    d_loss, d_terms = obj.d_loss(_ctx(nets, batch, outputs))
    assert set(d_terms) == {"a", "b"} and torch.isfinite(d_loss)
    d_loss.backward()
    for k in ("generator_ab", "generator_ba"):
        assert all(p.grad is None for p in nets[k].parameters())
    for k in ("discriminator_a", "discriminator_b"):
        assert all(p.grad is not None for p in nets[k].parameters())
    assert len(obj.pool_a) == len(obj.pool_b) == 2  # the fakes went into the pools


def test_identity_needs_equal_channels_and_generation():
    nets = _nets()
    nets["generator_ab"] = ResNetGenerator(2, 1, 2, base_channels=4, n_blocks=1)  # A: 1 channel, B: 2 channels
    nets["generator_ba"] = ResNetGenerator(2, 2, 1, base_channels=4, n_blocks=1)
    obj = CycleGANObjective()
    batch = {"image_a": torch.zeros(1, 1, 16, 16), "image_b": torch.zeros(1, 2, 16, 16)}
    with pytest.raises(ValueError, match="lambda_identity"):
        obj.g_loss(_ctx(nets, batch))
    with pytest.raises(ValueError, match="lacks"):
        obj.g_loss(_ctx(nets, {"image_a": torch.zeros(1, 1, 16, 16)}))

    nets = _nets()
    for direction, key in (("ab", "image_a"), ("ba", "image_b")):
        obj = CycleGANObjective(direction=direction)
        assert obj.generator_name == f"generator_{direction}"
        label = torch.randint(0, 2, (2, 1, 16, 16)).float()
        with torch.no_grad():
            out = obj.generate(nets, 2, batch={key: _batch()[key], "label": label})
        assert out["image"].shape == (2, 1, 16, 16) and torch.equal(out["label"], label.long())
    with pytest.raises(ValueError, match="neither"):
        CycleGANObjective().generate(nets, 1, batch={"image_b": torch.zeros(1, 1, 16, 16)})


def test_image_pool_behaviour():
    pool = ImagePool(pool_size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4  # filling: the new images come back
    returned_old, n = 0, 400
    for i in range(n):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        returned_old += int(out.item() != new.item())
    assert len(pool) == 4
    assert 0.4 < returned_old / n < 0.6  # half the time a stored image, which the new one replaces
    stored = {float(t) for t in pool.images}
    assert stored <= {100.0 + i for i in range(n)} | {0.0, 1.0, 2.0, 3.0}

    same = torch.ones(3, 1, 1, 1)
    assert torch.equal(ImagePool(0).query(same), same)  # disabled pool
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)
    with pytest.raises(ValueError, match="one pool per image domain"):
        pool.query(torch.zeros(1, 2, 1, 1))


def test_image_pool_state_dict_replays_exactly():
    a = ImagePool(3, seed=5)
    for _ in range(5):
        a.query(torch.randn(2, 1, 4, 4))
    b = ImagePool(3, seed=123)
    b.load_state_dict(a.state_dict())
    for _ in range(6):
        x = torch.randn(2, 1, 4, 4)
        torch.testing.assert_close(a.query(x), b.query(x))
    with pytest.raises(ValueError, match="same pool_size"):
        ImagePool(2).load_state_dict(a.state_dict())


def _trainer(max_epochs, handlers=None):
    nets = _nets(seed=1)
    opts = {k: torch.optim.Adam(nets[k].parameters(), 1e-3, betas=(0.5, 0.999)) for k in CYCLEGAN_NETWORKS}
    data = [{"image_a": b["image_a"][0], "image_b": b["image_b"][0]} for b in (_batch(1, seed=s) for s in range(4))]
    loader = DataLoader(Dataset(data), batch_size=2, shuffle=False)
    return AdversarialTrainer("cpu", max_epochs, loader, nets, opts, CycleGANObjective(pool_size=3, seed=0), handlers=handlers)


def test_exact_resume_with_image_pools(tmp_path):
    straight = _trainer(2)
    torch.manual_seed(11)
    straight.run()
    first = _trainer(1, handlers=[GanCheckpointHandler(tmp_path, save_interval=2)])
    torch.manual_seed(11)
    first.run()
    torch.manual_seed(999)
    handler = GanCheckpointHandler(tmp_path, save_interval=2)
    second = _trainer(2, handlers=[handler])
    second.run()
    assert handler.resumed_from.endswith("checkpoint_2.pt") and second.state.iteration == 4
    assert len(second.objective.pool_b) == 3
    for name in CYCLEGAN_NETWORKS:
        for a, b in zip(straight.networks[name].parameters(), second.networks[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(straight.objective.pool_b.images, second.objective.pool_b.images):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_domain_a_under_image_is_not_replaced_by_domain_b():
    """With key_a='image' the batch's image is domain A (the engine logs it as the reals), never overwritten by B."""
    obj = CycleGANObjective(key_a="image", key_b="image_b")
    a, b = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    batch = obj.prepare_batch({"image": a, "image_b": b}, torch.device("cpu"))
    assert torch.equal(batch["image"], a) and torch.equal(obj._domains(batch)[0], a)
    assert torch.equal(obj._domains(batch)[1], b)
