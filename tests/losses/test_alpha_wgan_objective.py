# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""alpha-WGAN-GP objective: phase order CD, E, D, G with one optimizer step each, gradients only where intended,
finite losses in 2D and 3D, the WGAN-GP baseline and seeded generation."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.alpha_wgan import AlphaWGANObjective
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.networks.nets.alpha_wgan import alpha_wgan_networks

LATENT = 8


def _nets(variant="improved", spatial_dims=2, size=16):
    torch.manual_seed(0)
    return alpha_wgan_networks(variant, spatial_dims, 1, size, latent_size=LATENT, base_channels=4, code_hidden_size=16)


def _trainer(loader, variant="improved", **kw):
    nets = _nets(variant)
    opts = {k: torch.optim.Adam(v.parameters(), 1e-3, betas=(0.5, 0.9)) for k, v in nets.items()}
    return AdversarialTrainer("cpu", 1, loader, nets, opts, AlphaWGANObjective(variant, LATENT, **kw), max_iterations=1)


def test_phase_order_and_one_step_per_network(tiny_image_loader):
    trainer = _trainer(tiny_image_loader)
    calls, steps = [], []
    obj = trainer.objective
    for phase in obj.phases():
        inner = phase.loss

        def spy(ctx, inner=inner, name=phase.name):
            calls.append(name)
            return inner(ctx)

        phase.loss = spy
    for name, opt in trainer.optimizers.items():
        inner_step = opt.step

        def step(*a, inner_step=inner_step, name=name, **k):
            steps.append(name)
            return inner_step(*a, **k)

        opt.step = step
    trainer.run()
    assert calls == ["cd", "e", "d", "g"]
    assert steps == ["code_discriminator", "encoder", "discriminator", "generator"]  # G is stepped once, not twice
    assert [p.networks for p in obj.phases()] == [("code_discriminator",), ("encoder",), ("discriminator",), ("generator",)]
    losses = trainer.state.output["losses"]
    assert {"cd_loss", "cd_gp", "e_loss", "d_loss", "d_gp", "g_loss", "g_l1"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def _ctx(nets, batch):
    return PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))


def _grads(nets):
    return {k: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters()) for k, m in nets.items()}


@pytest.mark.parametrize("variant", ["improved", "original"])
def test_each_phase_reaches_only_its_network(variant):
    """Run each phase's loss with EVERY network trainable: the encoder receives gradients in its own phase only
    (no back-propagation through E for nothing), the phase's own network always does; E's loss reaches G and D only
    when the variant trains the encoder to reconstruct."""
    nets = _nets(variant)
    obj = AlphaWGANObjective(variant, LATENT)
    torch.manual_seed(1)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1}
    expected = {
        "cd": {"code_discriminator"},
        "e": {"encoder"} | ({"generator", "discriminator", "code_discriminator"} if variant == "original" else {"code_discriminator"}),
        "d": {"discriminator"},
        "g": {"generator", "discriminator"},  # G's loss goes through the critic (frozen by the engine)
    }
    for phase in obj.phases():
        for m in nets.values():
            m.zero_grad(set_to_none=True)
            m.requires_grad_(True)
        loss, terms = phase.loss(_ctx(nets, batch))
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
        loss.backward()
        got = {k for k, v in _grads(nets).items() if v}
        assert got == expected[phase.name], (phase.name, got)
        for name in got:
            assert all(torch.isfinite(p.grad).all() for p in nets[name].parameters() if p.grad is not None)


def test_g_phase_reuses_codes_of_the_updated_encoder(tiny_image_loader):
    trainer = _trainer(tiny_image_loader)
    calls = []
    enc = trainer.networks["encoder"]
    enc.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    trainer.run()
    # cd (no graph), e (graph), d (no graph, cached for g): three encoder passes, none in the g phase
    assert calls == [False, True, False]


def test_encoder_reconstruction_switch():
    assert AlphaWGANObjective("improved").encoder_reconstruction is False
    assert AlphaWGANObjective("original").encoder_reconstruction is True
    assert AlphaWGANObjective("improved", encoder_reconstruction=True).encoder_reconstruction is True
    nets = _nets()
    obj = AlphaWGANObjective("improved", LATENT, encoder_reconstruction=True)
    _, terms = obj.e_loss(_ctx(nets, {"image": torch.rand(2, 1, 16, 16)}))
    assert "l1" in terms


def test_wgan_gp_baseline(tiny_image_loader):
    obj = AlphaWGANObjective("wgan_gp", LATENT)
    assert [(p.name, p.repeats) for p in obj.phases()] == [("d", 5), ("g", 1)]
    assert obj.network_names == ("discriminator", "generator")
    trainer = _trainer(tiny_image_loader, "wgan_gp", n_critic=2)
    trainer.run()
    losses = trainer.state.output["losses"]
    assert set(losses) == {"d_loss", "d_wasserstein", "d_gp", "g_loss"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_3d_training_step():
    nets = _nets("original", spatial_dims=3)
    data = [{"image": torch.rand(1, 16, 16, 16) * 2 - 1} for _ in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    opts = {k: torch.optim.Adam(v.parameters(), 1e-3) for k, v in nets.items()}
    trainer = AdversarialTrainer("cpu", 1, loader, nets, opts, AlphaWGANObjective("original", LATENT), max_iterations=1)
    trainer.run()
    assert all(torch.isfinite(v) for v in trainer.state.output["losses"].values())
    out = trainer.generate(3, seeds=[5, 6, 7])["image"]
    assert out.shape == (3, 1, 16, 16, 16)


def test_generate_is_seeded(tiny_image_loader):
    trainer = _trainer(tiny_image_loader)
    a = trainer.generate(3, seeds=[1, 2, 3])
    assert a["image"].shape == (3, 1, 16, 16) and a["latents"].shape == (3, LATENT)
    b = trainer.generate(1, seeds=[2])
    torch.testing.assert_close(b["image"][0], a["image"][1])
    assert not torch.allclose(a["image"][0], a["image"][1])


def test_errors():
    with pytest.raises(ValueError, match="variant"):
        AlphaWGANObjective("gamma")
    with pytest.raises(ValueError, match="n_critic"):
        AlphaWGANObjective(n_critic=0)
    with pytest.raises(ValueError, match="lambda"):
        AlphaWGANObjective(lambda_gp=-1)


@pytest.mark.parametrize("variant", ["improved", "original"])
def test_generator_running_stats_follow_the_prior_path_only(tiny_image_loader, variant):
    """G's batch-norm running statistics (what eval() generation uses) must come from prior samples only: decoding
    the encoder's codes, far from the prior early in training, once made every eval-mode sample saturate to -1."""
    trainer = _trainer(tiny_image_loader, variant)
    g, e = trainer.networks["generator"], trainer.networks["encoder"]
    bn = next(m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    codes, calls = set(), []
    e.register_forward_hook(lambda m, i, out: codes.add(out.data_ptr()))
    g.register_forward_pre_hook(lambda m, args: calls.append((args[0].data_ptr() in codes, bn.momentum)))
    trainer.run()
    assert {rec for rec, _ in calls} == {True, False}  # both paths ran
    assert all(m == 0.0 for rec, m in calls if rec)  # reconstructions: batch statistics, no running update
    assert all(m == 0.1 for rec, m in calls if not rec)  # prior samples: the usual update
    assert bn.momentum == 0.1


def test_frozen_running_stats():
    from monai_gan_aug.networks.blocks.norm import frozen_running_stats

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6)).train()
    bn = net[1]
    x = 5 * torch.randn(16, 4) + 3
    mean, var, n = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    with frozen_running_stats(net):
        y = net(x)
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert int(bn.num_batches_tracked) == n and bn.momentum == 0.1
    # the block still normalised with the batch's own statistics
    torch.testing.assert_close(y.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    net(x)
    assert not torch.allclose(bn.running_mean, mean)  # outside the block the statistics update again
