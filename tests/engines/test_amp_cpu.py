# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""bf16 autocast on the CPU (``amp=True`` without a GPU): convolutions run in bfloat16, the gradient penalty's
double backward works, training still learns, and what leaves the engine is float32."""

from __future__ import annotations

import logging

import torch

from monai_gan_aug.engines import GanGenerationEvaluator, SeedDataset
from monai_gan_aug.engines.utils import resolve_amp
from monai_gan_aug.losses.objectives import DCGANObjective, WGANGPObjective
from tests.engines.test_gan_trainer import make_trainer


def _record_conv_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_amp_on_cpu_runs_convolutions_in_bf16_with_gradient_penalty(tiny_image_loader):
    trainer = make_trainer(tiny_image_loader, WGANGPObjective(latent_size=8, latent_spatial=2, n_critic=2), amp=True)
    assert trainer.amp and trainer.amp_dtype == torch.bfloat16
    g_dtypes = _record_conv_dtypes(trainer.networks["generator"])
    d_dtypes = _record_conv_dtypes(trainer.networks["discriminator"])
    trainer.run()
    assert g_dtypes and set(g_dtypes) == {torch.bfloat16}
    assert d_dtypes and set(d_dtypes) == {torch.bfloat16}
    losses = trainer.state.output["losses"]
    assert float(losses["d_gp"]) > 0 and all(torch.isfinite(v) for v in losses.values())
    # master weights and optimizer state stay float32
    assert all(p.dtype == torch.float32 for p in trainer.networks.parameters())
    out = trainer.generate(4, seeds=[0, 1, 2, 3])["image"]
    assert out.dtype == torch.float32 and out.shape == (4, 1, 16, 16)


def test_amp_on_cpu_still_learns(tiny_image_loader):
    """Reals are ~0.5 everywhere; with bf16 autocast the generator must still close most of the gap."""
    trainer = make_trainer(tiny_image_loader, DCGANObjective(8, 2), max_epochs=30, amp=True)
    before = trainer.generate(32, seeds=list(range(32)), use_ema=False)["image"].mean().item()
    trainer.run()
    after = trainer.generate(32, seeds=list(range(32)), use_ema=False)["image"].mean().item()
    assert abs(after - 0.5) < 0.5 * abs(before - 0.5), (before, after)


def test_amp_dtype_float16_on_cpu_becomes_bf16(tiny_image_loader, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = make_trainer(tiny_image_loader, amp=True, amp_dtype="float16")
    assert trainer.amp_dtype == torch.bfloat16
    assert all(s is None for s in trainer.scalers.values())  # no GradScaler for bf16
    assert "bfloat16" in caplog.text
    assert resolve_amp(False, "float16", "cpu") == (False, "float16")
    assert resolve_amp(True, "float16", "cuda") == (True, "float16")


def test_generation_evaluator_amp_on_cpu_writes_float32(tiny_image_loader):
    from ignite.engine import Events
    from monai.data import DataLoader

    trainer = make_trainer(tiny_image_loader)
    gen = trainer.networks["generator"]
    dtypes = _record_conv_dtypes(gen)
    loader = DataLoader(SeedDataset(4, seed=3), batch_size=2)
    outs = []
    ev = GanGenerationEvaluator("cpu", loader, gen, trainer.objective, amp=True)
    ev.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outs.append(e.state.output["image"]))
    ev.run()
    assert set(dtypes) == {torch.bfloat16}
    assert len(outs) == 2 and all(o.dtype == torch.float32 and o.shape == (2, 1, 16, 16) for o in outs)
    # same seeds in float32: bf16 changes the values only by rounding
    ref = trainer.generate(4, seeds=[3, 4, 5, 6], use_ema=False)["image"]
    torch.testing.assert_close(torch.cat(outs), ref, atol=0.1, rtol=0.0)
