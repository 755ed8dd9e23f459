# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os

import pytest
import torch

from monai_gan_aug.engines import AdversarialTrainer, NonFiniteLossError, find_latest_checkpoint
from monai_gan_aug.handlers import GanCheckpointHandler
from monai_gan_aug.losses.objectives import DCGANObjective, Phase, WGANGPObjective
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator


def make_trainer(loader, objective=None, max_epochs=1, handlers=None, seed=0, lr=2e-3, **kw):
    torch.manual_seed(seed)
    g = DCGANGenerator(2, 8, 1, 16, 8)
    d = DCGANDiscriminator(2, 1, 16, 8, norm=None)
    objective = objective or WGANGPObjective(latent_size=8, latent_spatial=2, n_critic=2)
    return AdversarialTrainer(
        "cpu",
        max_epochs,
        loader,
        {"generator": g, "discriminator": d},
        {
            "generator": torch.optim.Adam(g.parameters(), lr, betas=(0.5, 0.9)),
            "discriminator": torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.9)),
        },
        objective,
        handlers=handlers,
        **kw,
    )


def test_training_moves_generator_towards_data(tiny_image_loader):
    """Reals are ~0.5 everywhere; the untrained generator's mean is ~0. Training must close most of the gap."""
    trainer = make_trainer(tiny_image_loader, DCGANObjective(8, 2), max_epochs=30)
    before = trainer.generate(32, seeds=list(range(32)), use_ema=False)["image"].mean().item()
    trainer.run()
    after = trainer.generate(32, seeds=list(range(32)), use_ema=False)["image"].mean().item()
    assert abs(after - 0.5) < 0.5 * abs(before - 0.5), (before, after)
    assert trainer.state.iteration == 60


def test_output_has_losses_on_device_and_no_nan(tiny_image_loader):
    trainer = make_trainer(tiny_image_loader)
    trainer.run()
    losses = trainer.state.output["losses"]
    assert {"d_loss", "d_gp", "d_wasserstein", "g_loss"} <= set(losses)
    assert all(isinstance(v, torch.Tensor) and torch.isfinite(v) for v in losses.values())


def test_critic_steps_use_fresh_fakes(tiny_image_loader):
    obj = WGANGPObjective(latent_size=8, latent_spatial=2, n_critic=3)
    seen = []
    orig = obj.sample_latents

    def spy(n, device):
        z = orig(n, device)
        seen.append(z.clone())
        return z

    obj.sample_latents = spy
    trainer = make_trainer(tiny_image_loader, obj, max_iterations=1)
    trainer.run()
    assert len(seen) == 4  # 3 critic steps + 1 generator step
    assert all(not torch.equal(seen[0], z) for z in seen[1:])


def test_only_phase_networks_receive_gradients(tiny_image_loader):
    grads = {}

    class Spy(DCGANObjective):
        def d_loss(self, ctx):
            out = super().d_loss(ctx)
            grads["d_phase_g_requires_grad"] = any(p.requires_grad for p in ctx.nets["generator"].parameters())
            return out

        def g_loss(self, ctx):
            out = super().g_loss(ctx)
            grads["g_phase_d_requires_grad"] = any(p.requires_grad for p in ctx.nets["discriminator"].parameters())
            return out

    trainer = make_trainer(tiny_image_loader, Spy(8, 2), max_iterations=1)
    trainer.run()
    assert grads == {"d_phase_g_requires_grad": False, "g_phase_d_requires_grad": False}
    assert all(p.grad is None for p in trainer.networks["discriminator"].parameters()) is False


def test_ema_follows_exponential_average(tiny_image_loader):
    from ignite.engine import Events

    trainer = make_trainer(tiny_image_loader, ema={"generator": 0.5}, max_iterations=3)
    history = [[p.detach().clone() for p in trainer.networks["generator"].parameters()]]
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: history.append([p.detach().clone() for p in e.networks["generator"].parameters()]),
    )
    trainer.run()
    expected = history[0]
    for it, weights in enumerate(history[1:], start=1):
        d = min(0.5, (1 + it) / (10 + it))  # decay ramp-up
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    for e, got in zip(expected, trainer.ema_networks["generator"].parameters()):
        torch.testing.assert_close(got, e, rtol=1e-5, atol=1e-7)
    assert not all(torch.equal(a, b) for a, b in zip(history[-1], trainer.ema_networks["generator"].parameters()))


def test_exact_resume(tiny_image_loader, tmp_path):
    straight = make_trainer(tiny_image_loader, max_epochs=2, ema={"generator": 0.9})
    torch.manual_seed(123)
    straight.run()

    first = make_trainer(tiny_image_loader, max_epochs=1, ema={"generator": 0.9},
                         handlers=[GanCheckpointHandler(tmp_path, save_interval=2)])
    torch.manual_seed(123)
    first.run()
    assert find_latest_checkpoint(tmp_path).endswith("checkpoint_2.pt")
    torch.manual_seed(999)  # a fresh process would start from other random streams: the checkpoint restores them
    handler = GanCheckpointHandler(tmp_path, save_interval=2)
    second = make_trainer(tiny_image_loader, max_epochs=2, ema={"generator": 0.9}, handlers=[handler], seed=7)
    second.run()
    assert handler.resumed_from.endswith("checkpoint_2.pt")
    assert second.state.iteration == straight.state.iteration == 4
    for name in ("generator", "discriminator"):
        for a, b in zip(straight.networks[name].parameters(), second.networks[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(straight.ema_networks["generator"].parameters(), second.ema_networks["generator"].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_refuses_to_mix_runs_without_resume(tiny_image_loader, tmp_path):
    make_trainer(tiny_image_loader, handlers=[GanCheckpointHandler(tmp_path, save_interval=1)], max_iterations=1).run()
    with pytest.raises(FileExistsError, match="resume"):
        make_trainer(tiny_image_loader, handlers=[GanCheckpointHandler(tmp_path, resume=False)], max_iterations=1).run()


def test_nonfinite_loss_stops_with_checkpoint(tiny_image_loader, tmp_path):
    class Exploding(DCGANObjective):
        def d_loss(self, ctx):
            loss, terms = super().d_loss(ctx)
            if ctx.iteration >= 2:
                loss = loss * float("nan")
            return loss, terms

    trainer = make_trainer(tiny_image_loader, Exploding(8, 2), max_epochs=3,
                           handlers=[GanCheckpointHandler(tmp_path, save_interval=1)])
    with pytest.raises(NonFiniteLossError, match="iteration 2"):
        trainer.run()
    files = sorted(os.listdir(tmp_path))
    assert "checkpoint_1.pt" in files and "nonfinite_2.pt" in files
    assert "checkpoint_2.pt" not in files  # no regular checkpoint holds NaNs
    ok = torch.load(tmp_path / "checkpoint_1.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ok["networks"].values() if v.is_floating_point())


def test_bad_configuration_errors(tiny_image_loader):
    obj = DCGANObjective(8, 2)
    obj._phases = [Phase("d", ["critic"], obj.d_loss)]
    with pytest.raises(ValueError, match="critic"):
        make_trainer(tiny_image_loader, obj)
    with pytest.raises(ValueError, match="ema"):
        make_trainer(tiny_image_loader, ema={"nope": 0.9})
    with pytest.raises(TypeError, match="GanObjective"):
        AdversarialTrainer("cpu", 1, tiny_image_loader, {"generator": torch.nn.Linear(1, 1)}, {}, objective=object())


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_matches_default_layout(dims):
    """channels_last (2D) / channels_last_3d (3D) changes the memory layout only: same losses and weights."""
    from monai.data import DataLoader, Dataset

    g = torch.Generator().manual_seed(0)
    shape = (1,) + (8,) * dims
    data = [{"image": (0.5 + 0.05 * torch.randn(*shape, generator=g)).clamp(-1, 1)} for _ in range(4)]
    results = []
    for cl in (False, True):
        torch.manual_seed(0)
        gen = DCGANGenerator(dims, 8, 1, 8, 8)
        disc = DCGANDiscriminator(dims, 1, 8, 8, norm=None)
        trainer = AdversarialTrainer(
            "cpu", 1, DataLoader(Dataset(data), batch_size=2, shuffle=False), {"generator": gen, "discriminator": disc},
            {"generator": torch.optim.Adam(gen.parameters(), 1e-3), "discriminator": torch.optim.Adam(disc.parameters(), 1e-3)},
            DCGANObjective(8, dims), channels_last=cl,
        )
        trainer.run()
        conv = next(p for p in gen.parameters() if p.ndim == dims + 2)
        fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
        assert conv.is_contiguous(memory_format=fmt) == cl or conv.shape[-1] == 1
        results.append((trainer.state.output["losses"]["g_loss"].item(), [p.detach().clone() for p in gen.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4, abs=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_named_networks_and_clear_error_for_gradient_penalty(tiny_image_loader):
    """torch.compile cannot differentiate twice: compiling the critic of a gradient-penalty family must fail with
    an error that says what to do; compiling the generator only trains."""
    torch._dynamo.reset()
    trainer = make_trainer(tiny_image_loader, compile=["generator"])
    assert trainer.compiled == {"generator"}
    trainer.run()
    assert torch.isfinite(trainer.state.output["losses"]["g_loss"])
    with pytest.raises(RuntimeError, match=r"compile=\['generator'\]"):
        make_trainer(tiny_image_loader, compile=True).run()
    with pytest.raises(ValueError, match="compile names networks"):
        make_trainer(tiny_image_loader, compile=["critic"])


def test_old_engine_name_is_a_deprecated_alias():
    """``GanTrainer`` (MONAI has a different class of that name) still builds, with a FutureWarning naming the new one."""
    import warnings

    from monai_gan_aug.engines import AdversarialTrainer, GanTrainer

    assert issubclass(GanTrainer, AdversarialTrainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            GanTrainer(device="cpu", max_epochs=1, train_data_loader=[], networks={}, optimizers={}, objective=None)
        except Exception:  # the warning comes first, whatever the arguments make of the rest
            pass
    assert any(issubclass(w.category, FutureWarning) and "AdversarialTrainer" in str(w.message) for w in caught)
