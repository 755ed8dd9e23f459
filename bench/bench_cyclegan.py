# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN on this project's GanTrainer: one training iteration (both generators, then both discriminators with
the image pools) with Zhu et al.'s ``resnet_9blocks`` generators and 70 x 70 PatchGANs, 3 -> 3 channels, batch 1,
at 128 x 128 and 256 x 256; GFLOP per step (``FlopCounterMode``); translation throughput.

Writes ``bench/results/cyclegan_<hostname>.json``. Usage: ``python -m bench.bench_cyclegan [--device cuda]``.
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
from monai_gan_aug.losses.objectives.cyclegan import (
    CYCLEGAN_NETWORKS,
    CycleGANObjective,
)
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.cyclegan import ResNetGenerator


def _trainer(batch: dict, n: int, device: str, amp: bool = False) -> GanTrainer:
    torch.manual_seed(0)
    nets = {
        "generator_ab": ResNetGenerator(2, 3, 3, n_blocks=9),
        "generator_ba": ResNetGenerator(2, 3, 3, n_blocks=9),
        "discriminator_a": PatchGANDiscriminator(2, 3, receptive_field=70, norm="instance"),
        "discriminator_b": PatchGANDiscriminator(2, 3, receptive_field=70, norm="instance"),
    }
    opts = {k: torch.optim.Adam(nets[k].parameters(), 2e-4, betas=(0.5, 0.999)) for k in CYCLEGAN_NETWORKS}
    return GanTrainer(device, 1, RepeatBatch(batch, n), nets, opts, CycleGANObjective(pool_size=50), amp=amp)


def bench_config(size: int, device: str, warmup: int, repeats: int, amp: bool = False) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    batch = {k: (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device) for k in ("image_a", "image_b")}
    tr = _trainer(batch, warmup + repeats, device, amp)
    step = time_engine_iterations(tr, warmup, repeats, device)
    one = _trainer(batch, 1, device)
    one.state.iteration = 1
    prepared = one.objective.prepare_batch(batch, torch.device(device))
    gflop = count_gflop(lambda: one._iteration(one, prepared))
    gen = one.networks["generator_ab"].eval()
    src = torch.cat([batch["image_a"]] * 4)
    with torch.no_grad():
        gen_img_s = generation_images_per_s(lambda: gen(src), 4, warmup=1, repeats=3, device=device)
    out = {"config": f"resnet_9blocks x2 + 70x70 PatchGAN x2, 3->3 channels, {size}^2, batch 1" + (", bf16 autocast" if amp else ""),
           "step_s": step, "gflop_step": gflop, "gflop_per_s": gflop / step, "translate_img_s": gen_img_s,
           "params_g_m": sum(p.numel() for p in tr.networks["generator_ab"].parameters()) / 1e6}
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
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"machine": machine_info(args.device), "matmul_gflops": matmul_gflops(device=args.device), "results": {}}
    for size in args.sizes:
        r = bench_config(size, args.device, args.warmup, args.repeats)
        out["results"][f"cyclegan_{size}_b1"] = r
        print(size, {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
    out["peak_rss_mb"] = peak_rss_mb()
    write_result("cyclegan", out)
    return out


if __name__ == "__main__":
    main()
