# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet objective: one WGAN-GP step on same-class pairs, gradients per phase, and generation that is diverse
across noise seeds and deterministic for one seed (the pair datasets: tests/data/test_same_class.py)."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureTyped

from monai_gan_aug.data import SameClassPairDataset
from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.ga_unet import GAUNetObjective
from monai_gan_aug.networks.nets.ga_unet import GAUNetCritic, GAUNetGenerator

NOISE = 8


def _nets():
    torch.manual_seed(0)
    return {
        "generator": GAUNetGenerator(2, 1, 1, 2, 16, NOISE, base_channels=4, layers_per_block=1, noise_channels=2, class_channels=2),
        "discriminator": GAUNetCritic(2, 1, 2, 16, base_channels=4, growth_rate=4, layers_per_block=1),
    }


def test_training_step_and_phase_gradients():
    nets = _nets()
    data = [{"image": torch.rand(1, 16, 16) * 2 - 1, "class": i % 2} for i in range(4)]
    ds = SameClassPairDataset(data, Compose([EnsureTyped(keys="image", track_meta=False)]), progress=False)
    loader = DataLoader(ds, batch_size=2, shuffle=False)
    opts = {k: torch.optim.Adam(v.parameters(), 1e-4, betas=(0.0, 0.9)) for k, v in nets.items()}
    obj = GAUNetObjective(NOISE, 2, n_critic=2)
    trainer = AdversarialTrainer("cpu", 1, loader, nets, opts, obj, max_iterations=1)
    trainer.run()
    losses = trainer.state.output["losses"]
    assert set(losses) == {"d_loss", "d_wasserstein", "d_gp", "g_loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert trainer.state.output["fakes"].shape == (2, 1, 16, 16)

    batch = obj.prepare_batch(next(iter(loader)), torch.device("cpu"))
    for phase, owner in zip(obj.phases(), ("discriminator", "generator")):
        for name, m in nets.items():
            m.zero_grad(set_to_none=True)
            m.requires_grad_(name == owner)
        ctx = PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))
        loss, _ = phase.loss(ctx)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[owner].parameters())
        other = "generator" if owner == "discriminator" else "discriminator"
        assert all(p.grad is None for p in nets[other].parameters())


def test_generation_diversity_and_determinism():
    nets = _nets()
    nets["generator"].eval()
    obj = GAUNetObjective(NOISE, 2)
    x_j = torch.rand(1, 1, 16, 16).repeat(3, 1, 1, 1)  # the same reference three times
    batch = {"reference": x_j, "class": torch.tensor([1, 1, 1])}
    out = obj.generate(nets, 3, batch=batch, seeds=[1, 2, 3])
    assert out["image"].shape == (3, 1, 16, 16) and out["class"].tolist() == [1, 1, 1]
    imgs = out["image"]
    assert not torch.allclose(imgs[0], imgs[1]) and not torch.allclose(imgs[1], imgs[2])  # other noise, other image
    again = obj.generate(nets, 3, batch=batch, seeds=[1, 2, 3])["image"]
    torch.testing.assert_close(again, imgs)  # same noise, same image
    alone = obj.generate(nets, 1, batch={"reference": x_j[:1], "class": torch.tensor([1])}, seeds=[2])["image"]
    torch.testing.assert_close(alone[0], imgs[1])  # independent of the batch it is generated in


def test_errors():
    obj = GAUNetObjective(NOISE, 2)
    with pytest.raises(ValueError, match="reference"):
        obj.generate(_nets(), 2)
    with pytest.raises(ValueError, match="0..1"):
        obj.prepare_batch({"image": torch.zeros(2, 1, 16, 16), "class": torch.tensor([0, 3])}, torch.device("cpu"))
    ctx = PhaseContext(nets=_nets(), batch={"image": torch.zeros(2, 1, 16, 16)}, iteration=1, repeat=0, outputs={},
                       device=torch.device("cpu"))
    with pytest.raises(ValueError, match="SameClassPairDataset"):
        obj.d_loss(ctx)
    with pytest.raises(ValueError, match="n_critic"):
        GAUNetObjective(n_critic=0)
