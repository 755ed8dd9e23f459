# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix (and DF-GAN's extra Frechet term) on this project's GanTrainer: one training iteration at 256 x 256
with Isola et al.'s ``unet_256`` generator and 70 x 70 PatchGAN, 3 -> 3 channels, batch 1 and 4; GFLOP per step
(``FlopCounterMode``); generation throughput of the generator in eval mode.

Writes ``bench/results/pix2pix_<hostname>.json``. Usage: ``python -m bench.bench_pix2pix [--device cuda]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bench.common import (
    count_gflop,
    machine_info,
    matmul_gflops,
    peak_rss_mb,
    write_result,
)
from bench.engine_timing import (
    RepeatBatch,
    generation_images_per_s,
    time_engine_iterations,
)
from monai_gan_aug.engines import GanTrainer
from monai_gan_aug.losses.objectives.dfgan import DFGANObjective
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.metrics.extractors import RandomConvFeatures
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.pix2pix import Pix2PixGenerator


def _trainer(objective, batch: dict, n: int, device: str, amp: bool = False) -> GanTrainer:
    torch.manual_seed(0)
    g = Pix2PixGenerator(2, 3, 3, image_size=256)  # unet_256: 8 downs, 54.4 M parameters
    d = PatchGANDiscriminator(2, 6, receptive_field=70)  # 70 x 70 PatchGAN on (condition, image)
    opts = {k: torch.optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999)) for k, m in (("generator", g), ("discriminator", d))}
    return GanTrainer(device, 1, RepeatBatch(batch, n), {"generator": g, "discriminator": d}, opts, objective, amp=amp)


def _objective(kind: str, batch: dict) -> Pix2PixObjective:
    if kind == "pix2pix":
        return Pix2PixObjective(cond_key="source", cond_mode="image")
    obj = DFGANObjective(extractor=RandomConvFeatures(in_channels=3, dim=64), cond_key="source", cond_mode="image")
    obj.set_real_statistics({"mu": torch.zeros(64), "sigma": torch.eye(64)})
    return obj


def bench_config(kind: str, bs: int, device: str, warmup: int, repeats: int, amp: bool = False) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(bs, 3, 256, 256, generator=g) * 2 - 1, "source": torch.rand(bs, 3, 256, 256, generator=g) * 2 - 1}
    batch = {k: v.to(device) for k, v in batch.items()}
    if kind == "dfgan" and bs < 2:
        return {"skipped": "the Frechet term needs >= 2 images per batch (or fid_memory)"}
    tr = _trainer(_objective(kind, batch), batch, warmup + repeats, device, amp)
    step = time_engine_iterations(tr, warmup, repeats, device)
    one = _trainer(_objective(kind, batch), batch, 1, device)
    one.state.iteration = 1
    prepared = one.objective.prepare_batch(batch, torch.device(device))
    gflop = count_gflop(lambda: one._iteration(one, prepared))
    gen = one.networks["generator"].eval()
    cond = prepared["cond"][:bs]
    with torch.no_grad():
        gen_img_s = generation_images_per_s(lambda: gen(cond), bs, warmup=1, repeats=3, device=device)
    out = {"config": f"{kind}, unet_256 + 70x70 PatchGAN, 3->3 channels, 256^2, batch {bs}" + (", bf16 autocast" if amp else ""),
           "step_s": step, "gflop_step": gflop, "gflop_per_s": gflop / step, "gen_img_s": gen_img_s,
           "params_g_m": sum(p.numel() for p in tr.networks["generator"].parameters()) / 1e6,
           "params_d_m": sum(p.numel() for p in tr.networks["discriminator"].parameters()) / 1e6}
    if torch.device(device).type == "cuda":
        out["peak_cuda_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"machine": machine_info(args.device), "matmul_gflops": matmul_gflops(device=args.device), "results": {}}
    for kind, bs in (("pix2pix", 1), ("pix2pix", 4), ("dfgan", 4)):
        r = bench_config(kind, bs, args.device, args.warmup, args.repeats)
        out["results"][f"{kind}_256_b{bs}"] = r
        print(kind, bs, {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
    if torch.device(args.device).type == "cuda":
        r = bench_config("pix2pix", 4, args.device, args.warmup, args.repeats, amp=True)
        out["results"]["pix2pix_256_b4_bf16"] = r
        print("pix2pix bf16", r, flush=True)
    out["peak_rss_mb"] = peak_rss_mb()
    write_result("pix2pix", out)
    return out


if __name__ == "__main__":
    main()
