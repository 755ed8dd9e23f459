# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DCGAN and WGAN-GP (the bundles' networks) on this project's AdversarialTrainer, and the model zoo's mednist_gan set-up
run both on MONAI's own ``monai.engines.GanTrainer`` (from the installed MONAI) and on this engine with the same
networks and loss, so the engines are compared on the same machine in the same run.

Families: ``dcgan`` (64^2, batch 16, reference pytorch_GAN_zoo DCGAN), ``wgan_gp`` (64^2, batch 16, 5 critic steps;
no reference), ``monai_gantrainer`` (64^2, batch 32, 5 D steps, reference model-zoo mednist_gan).

Writes ``bench/results/noise_gans_<tag>.json``. Usage: ``python -m bench.bench_noise_gans [--device cuda] [--quick]``.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from bench.common import (
    bench_main,
    bench_parser,
    engine_config,
    engine_options,
    engine_suffix,
    print_record,
    selected,
    setup_run,
)
from bench.engine_timing import RepeatBatch, measure_engine, param_millions, record_from
from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives import DCGANObjective, Phase, WGANGPObjective
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator

__all__ = ["FAMILIES", "NAME", "main", "run"]

NAME = "noise_gans"
FAMILIES = ("dcgan", "wgan_gp", "monai_gantrainer")


def _adam(params, lr=2e-4):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _trainer(g, d, objective, batch, n, device, **options) -> AdversarialTrainer:
    return AdversarialTrainer(device, 1, RepeatBatch(batch, n), {"generator": g, "discriminator": d},
                      {"generator": _adam(g.parameters()), "discriminator": _adam(d.parameters())}, objective, **options)


def bench_dcgan_like(family: str, args, machine: dict[str, Any]) -> dict[str, Any]:
    """DCGAN (vanilla loss) or WGAN-GP (layer-norm critic, 5 critic steps) at 64^2, batch 16 (quick: 16^2, batch 4)."""
    size, bs, base, gen_batch = (16, 4, 16, 8) if args.quick else (64, 16, 64, 64)
    dev = args.device
    torch.manual_seed(0)
    g = DCGANGenerator(2, 100, 1, size, base)
    if family == "dcgan":
        d, obj, d_steps = DCGANDiscriminator(2, 1, size, base), DCGANObjective(100, 2), 1
    else:
        d, obj, d_steps = DCGANDiscriminator(2, 1, size, base, norm="layer"), WGANGPObjective(100, 2, n_critic=5), 5
    batch = {"image": torch.rand(bs, 1, size, size, device=dev) * 2 - 1}
    tr = _trainer(g, d, obj, batch, args.warmup + args.repeats, dev, **engine_options(args, penalty=family == "wgan_gp"))
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(gen_batch), gen_batch=gen_batch)
    config = {"resolution": size, "spatial_dims": 2, "batch": bs, "in_channels": 1, "latent_size": 100,
              "base_channels": base, "d_steps": d_steps, "loss": "vanilla" if family == "dcgan" else "wgan_gp",
              **engine_config(args, penalty=family == "wgan_gp")}
    label = f"{size}^2, batch {bs}" + (", 5 critic steps" if d_steps == 5 else "") + engine_suffix(args)
    return record_from(m, args, machine, family=family, name=f"{family}_{size}_b{bs}", label=label, config=config,
                       reference_key="dcgan_64_b16" if family == "dcgan" else None,
                       extra={"params_m": {"generator": param_millions(g), "discriminator": param_millions(d)}})


def bench_monai_gantrainer(args, machine: dict[str, Any]) -> list[dict[str, Any]]:
    """mednist_gan networks and loss (BCE, real label 0.9, 5 D steps, latent 64, 64^2, batch 32; quick: batch 4)
    on MONAI's GanTrainer and on ours."""
    from monai.engines import GanTrainer as MonaiGanTrainer
    from monai.engines.utils import default_make_latent
    from monai.networks.nets import Discriminator, Generator

    dev = args.device
    bs, gen_batch = (4, 8) if args.quick else (32, 256)

    def nets():
        torch.manual_seed(0)
        g = Generator(latent_shape=64, start_shape=(64, 8, 8), channels=[32, 16, 8, 1], strides=[2, 2, 2, 1])
        d = Discriminator(in_shape=(1, 64, 64), channels=(8, 16, 32, 64, 1), strides=(2, 2, 2, 2, 1), num_res_units=1,
                          kernel_size=5)
        return g.to(dev), d.to(dev)

    batch = {"image": torch.rand(bs, 1, 64, 64, device=dev) * 2 - 1}
    bce = torch.nn.BCELoss()
    config = {"resolution": 64, "spatial_dims": 2, "batch": bs, "d_steps": 5, "networks": "mednist_gan",
              "latent_size": 64}
    records = []

    # MONAI's engine: the model zoo's set-up (one fake batch reused by all 5 D steps), fp32, no engine options
    g, d = nets()

    def d_loss_fn(gen_images, real_images):
        real = real_images.new_full((real_images.shape[0], 1), 0.9)
        gen = gen_images.new_full((gen_images.shape[0], 1), 0.0)
        return (bce(d(gen_images.detach()), gen) + bce(d(real_images), real)) / 2

    def g_loss_fn(gen_images):
        return bce(d(gen_images), gen_images.new_full((gen_images.shape[0], 1), 0.9))

    monai_tr = MonaiGanTrainer(
        device=torch.device(dev), max_epochs=1,
        train_data_loader=torch.utils.data.DataLoader(
            [{"image": batch["image"][i]} for i in range(bs)] * (args.warmup + args.repeats), batch_size=bs),
        g_network=g, g_optimizer=_adam(g.parameters()), g_loss_function=g_loss_fn,
        d_network=d, d_optimizer=_adam(d.parameters()), d_loss_function=d_loss_fn, d_train_steps=5, latent_shape=64,
        key_train_metric=None, d_prepare_batch=lambda b, device=None, non_blocking=False, **k: b["image"].to(device),
        g_update_latents=True,
    )

    def monai_generate():
        g.eval()
        return g(default_make_latent(gen_batch, 64, dev))

    base = measure_engine(monai_tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                          generate=monai_generate, gen_batch=gen_batch)
    records.append(record_from(
        base, args, machine, family="monai_gantrainer", name=f"monai_gantrainer_64_b{bs}_monai_engine",
        label=f"mednist_gan, 64^2, batch {bs}, 5 D steps, monai.engines.GanTrainer", reference_key="monai_gantrainer_64_b32",
        config={**config, "engine": "monai.engines.GanTrainer", "channels_last": False, "amp": False, "compile": False,
                "dtype": "fp32"},
        extra={"note": "the reference implementation's engine, run here: a same-machine baseline"},
    ))

    class MedNistObjective(DCGANObjective):
        """The same maths as mednist_gan on this engine: BCE on a sigmoid discriminator, real label 0.9, 5 D steps."""

        def __init__(self):
            super().__init__(latent_size=64, latent_spatial=0)
            self._phases = [Phase("d", ["discriminator"], self.d_loss, repeats=5), Phase("g", ["generator"], self.g_loss)]

        def d_loss(self, ctx):
            reals = ctx.batch["image"]
            with torch.no_grad():
                fakes = ctx.nets["generator"](self.sample_latents(reals.shape[0], ctx.device))
            dn = ctx.nets["discriminator"]
            return (bce(dn(fakes), fakes.new_zeros(fakes.shape[0], 1))
                    + bce(dn(reals), reals.new_full((reals.shape[0], 1), 0.9))) / 2, {}

        def g_loss(self, ctx):
            n = ctx.batch["image"].shape[0]
            fakes = ctx.nets["generator"](self.sample_latents(n, ctx.device))
            return bce(ctx.nets["discriminator"](fakes), fakes.new_full((n, 1), 0.9)), {}

    g2, d2 = nets()
    ours = _trainer(g2, d2, MedNistObjective(), batch, args.warmup + args.repeats, dev, **engine_options(args))
    m = measure_engine(ours, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: ours.generate(gen_batch), gen_batch=gen_batch)
    same_run = None
    if m.gflop_per_step and base.gflop_per_step:
        same_run = (m.step_s / m.gflop_per_step) / (base.step_s / base.gflop_per_step)
    records.append(record_from(
        m, args, machine, family="monai_gantrainer", name=f"monai_gantrainer_64_b{bs}_ours",
        label=f"mednist_gan, 64^2, batch {bs}, 5 D steps, this AdversarialTrainer", reference_key="monai_gantrainer_64_b32",
        config={**config, "engine": "monai_gan_aug.engines.AdversarialTrainer", **engine_config(args)},
        extra={"same_run_monai_engine": {"step_s": base.step_s, "gflop_per_step": base.gflop_per_step,
                                          "step_ratio_equal_flops": same_run,
                                          "gen_ratio": (m.gen_images_per_s / base.gen_images_per_s
                                                        if m.gen_images_per_s and base.gen_images_per_s else None)},
               "note": "MONAI's GanTrainer reuses one fake batch for all 5 D steps; this engine draws fresh fakes per D "
                       "step (more generator work), so compare seconds per GFLOP."},
    ))
    return records


def run(args) -> list[dict[str, Any]]:
    machine = setup_run(args)
    records = []
    for family in ("dcgan", "wgan_gp"):
        if selected(args, family):
            records.append(bench_dcgan_like(family, args, machine))
            print_record(records[-1])
    if selected(args, "monai_gantrainer"):
        for r in bench_monai_gantrainer(args, machine):
            records.append(r)
            print_record(r)
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = bench_parser("python -m bench.bench_noise_gans", __doc__.split("\n\n")[0], FAMILIES)
    return bench_main(NAME, parser, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
