# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DCGAN and WGAN-GP bundles' networks on this project's GanTrainer, and MONAI's own GanTrainer (the model zoo's
mednist_gan set-up, run here from the installed MONAI) with the same networks on our engine, so the engine's
overhead is compared on the same machine at equal work.

Writes ``bench/results/noise_gans_<hostname>.json``. Usage: ``python -m bench.bench_noise_gans [--device cuda]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bench.common import count_gflop, machine_info, matmul_gflops, peak_rss_mb, write_result
from bench.engine_timing import RepeatBatch, generation_images_per_s, time_engine_iterations
from monai_gan_aug.engines import GanTrainer
from monai_gan_aug.losses.objectives import DCGANObjective, Phase, WGANGPObjective
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator

# figures measured by the issue tracker's reference runs on a 2-core machine of this kind (fp32, CPU)
REFERENCE = {
    "dcgan_64_b16": {"impl": "facebookresearch pytorch_GAN_zoo DCGAN", "step_s": 0.27, "gflop_step": 43.1, "gen_img_s": 598},
    "monai_gan_64_b32": {"impl": "MONAI model-zoo mednist_gan (GanTrainer)", "step_s": 0.40, "gflop_step": 15.7, "gen_img_s": 1361},
}


def _adam(params, lr=2e-4):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _our_trainer(g, d, objective, batch, n, device, **kw) -> GanTrainer:
    return GanTrainer(device, 1, RepeatBatch(batch, n), {"generator": g, "discriminator": d},
                      {"generator": _adam(g.parameters()), "discriminator": _adam(d.parameters())}, objective, **kw)


def _one_step_flops(trainer: GanTrainer, batch: dict) -> float:
    trainer.state.iteration = 1
    return count_gflop(lambda: trainer._iteration(trainer, batch))


def bench_family(name: str, size: int, bs: int, device: str, warmup: int, repeats: int, channels_last: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    g = DCGANGenerator(2, 100, 1, size, 64)
    if name == "dcgan":
        d, obj = DCGANDiscriminator(2, 1, size, 64), DCGANObjective(100, 2)
    else:
        d, obj = DCGANDiscriminator(2, 1, size, 64, norm="layer"), WGANGPObjective(100, 2, n_critic=5)
    batch = {"image": torch.rand(bs, 1, size, size, device=device) * 2 - 1}
    tr = _our_trainer(g, d, obj, batch, warmup + repeats, device, channels_last=channels_last)
    step = time_engine_iterations(tr, warmup, repeats, device)
    gflop = _one_step_flops(_our_trainer(g, d, obj, batch, 1, device), batch)
    z = torch.randn(64, 100, 1, 1, device=device)
    g.eval()
    gen = generation_images_per_s(lambda: g(z), 64, device=device)
    return {"config": f"{size}^2, batch {bs}" + (", 5 critic steps" if name == "wgan_gp" else ""), "step_s": step,
            "gflop_step": gflop, "gflop_per_s": gflop / step, "gen_img_s": gen, "channels_last": channels_last}


def bench_monai_gantrainer(device: str, warmup: int, repeats: int) -> dict[str, Any]:
    """mednist_gan networks and loss: MONAI's GanTrainer vs ours (5 D steps, batch 32, 64^2, latent 64)."""
    from monai.engines import GanTrainer as MonaiGanTrainer
    from monai.engines.utils import default_make_latent
    from monai.networks.nets import Discriminator, Generator

    def nets():
        torch.manual_seed(0)
        g = Generator(latent_shape=64, start_shape=(64, 8, 8), channels=[32, 16, 8, 1], strides=[2, 2, 2, 1])
        d = Discriminator(in_shape=(1, 64, 64), channels=(8, 16, 32, 64, 1), strides=(2, 2, 2, 2, 1), num_res_units=1,
                          kernel_size=5)
        return g.to(device), d.to(device)

    bs = 32
    batch = {"image": torch.rand(bs, 1, 64, 64, device=device) * 2 - 1}
    bce = torch.nn.BCELoss()

    def d_loss_fn(gen_images, real_images):
        real = real_images.new_full((real_images.shape[0], 1), 0.9)
        gen = gen_images.new_full((gen_images.shape[0], 1), 0.0)
        return (bce(d(gen_images.detach()), gen) + bce(d(real_images), real)) / 2

    def g_loss_fn(gen_images):
        return bce(d(gen_images), gen_images.new_full((gen_images.shape[0], 1), 0.9))

    g, d = nets()
    monai_tr = MonaiGanTrainer(
        device=torch.device(device), max_epochs=1,
        train_data_loader=torch.utils.data.DataLoader(
            [{"image": batch["image"][i]} for i in range(bs)] * (warmup + repeats), batch_size=bs),
        g_network=g, g_optimizer=_adam(g.parameters()), g_loss_function=g_loss_fn,
        d_network=d, d_optimizer=_adam(d.parameters()), d_loss_function=d_loss_fn, d_train_steps=5, latent_shape=64,
        key_train_metric=None, d_prepare_batch=lambda b, device=None, non_blocking=False, **k: b["image"].to(device),
        g_update_latents=True,
    )
    monai_step = time_engine_iterations(monai_tr, warmup, repeats, device)

    class MedNistObjective(DCGANObjective):
        """The same maths as mednist_gan: BCE on a sigmoid discriminator, real label 0.9, 5 D steps."""

        def __init__(self):
            super().__init__(latent_size=64, latent_spatial=0)
            self._phases = [Phase("d", ["discriminator"], self.d_loss, repeats=5), Phase("g", ["generator"], self.g_loss)]

        def d_loss(self, ctx):
            reals = ctx.batch["image"]
            with torch.no_grad():
                fakes = ctx.nets["generator"](self.sample_latents(reals.shape[0], ctx.device))
            dn = ctx.nets["discriminator"]
            return (bce(dn(fakes), fakes.new_zeros(fakes.shape[0], 1)) + bce(dn(reals), reals.new_full((reals.shape[0], 1), 0.9))) / 2, {}

        def g_loss(self, ctx):
            n = ctx.batch["image"].shape[0]
            fakes = ctx.nets["generator"](self.sample_latents(n, ctx.device))
            return bce(ctx.nets["discriminator"](fakes), fakes.new_full((n, 1), 0.9)), {}

    g2, d2 = nets()
    ours = _our_trainer(g2, d2, MedNistObjective(), batch, warmup + repeats, device)
    our_step = time_engine_iterations(ours, warmup, repeats, device)
    our_gflop = _one_step_flops(_our_trainer(g2, d2, MedNistObjective(), batch, 1, device), batch)
    z = default_make_latent(bs, 64, device)
    monai_gflop = count_gflop(lambda: (lambda f: [d_loss_fn(f, batch["image"]).backward() for _ in range(5)] and g_loss_fn(g(z)).backward())(g(z)))
    g2.eval()
    gen = generation_images_per_s(lambda: g2(torch.randn(256, 64, device=device)), 256, device=device)
    return {
        "config": "mednist_gan networks, 64^2, batch 32, 5 D steps",
        "monai_gantrainer_step_s": monai_step, "monai_gantrainer_gflop_step": monai_gflop,
        "ours_step_s": our_step, "ours_gflop_step": our_gflop,
        "note": "MONAI's GanTrainer reuses one fake batch for all 5 D steps; ours draws fresh fakes per D step (more "
                "generator work), so compare seconds per GFLOP.",
        "monai_s_per_gflop": monai_step / monai_gflop, "ours_s_per_gflop": our_step / our_gflop,
        "ratio_time_per_gflop": (our_step / our_gflop) / (monai_step / monai_gflop),
        "gen_img_s": gen,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mm = matmul_gflops(device=args.device)
    out: dict[str, Any] = {"machine": machine_info(args.device), "matmul_gflops": mm, "reference": REFERENCE, "results": {}}
    for name in ("dcgan", "wgan_gp"):
        for cl in (False, True):
            r = bench_family(name, 64, 16, args.device, args.warmup, args.repeats, cl)
            out["results"][f"{name}_64_b16{'_channels_last' if cl else ''}"] = r
            print(name, "channels_last" if cl else "", {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
    ref = REFERENCE["dcgan_64_b16"]
    best = min((out["results"][k] for k in out["results"] if k.startswith("dcgan")), key=lambda r: r["step_s"] / r["gflop_step"])
    out["results"]["dcgan_vs_reference"] = {
        "ratio_step_time_at_equal_flops": (best["step_s"] / best["gflop_step"]) / (ref["step_s"] / ref["gflop_step"]),
        "ratio_generation_at_equal_flops_approx": best["gen_img_s"] / ref["gen_img_s"],
        "note": "reference measured by the issue on a machine of this kind; same-run matmul GFLOP/s recorded above",
    }
    out["results"]["monai_gantrainer_comparison"] = bench_monai_gantrainer(args.device, args.warmup, args.repeats)
    out["peak_rss_mb"] = peak_rss_mb()
    write_result("noise_gans", out)
    return out


if __name__ == "__main__":
    main()
