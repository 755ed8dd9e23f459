# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Benchmark of the box-conditioned PGGAN (Han et al. 2019): one training iteration (critic step with gradient
penalty, generator step, EMA) through :class:`~monai_gan_aug.engines.GanTrainer` at every resolution stage, in the
stable phase and in the middle of the fade-in, plus generation throughput at full resolution.

    python -m bench.bench_pggan [--max_resolution 128] [--batch_size 16] [--fmap_base 512] [--fmap_max 64]

Writes ``bench/results/pggan_<hostname>.json`` (median seconds per iteration after warm-up, images/s, GFLOP per
iteration counted with ``torch.utils.flop_counter``, and this machine's matmul GFLOP/s as the yardstick).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import torch

from bench.common import (
    count_gflop,
    machine_info,
    matmul_gflops,
    median_seconds,
    peak_rss_mb,
    write_result,
)

__all__ = ["main", "run"]


def _batch(batch_size: int, size: int, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch_size, 1, size, size, generator=g) * 2 - 1
    boxes = []
    for i in range(batch_size):
        k = i % 4
        lo = torch.randint(0, size - size // 8, (k, 2), generator=g).float()
        boxes.append(torch.cat([lo, lo + size // 10 + 1], 1))
    return {"image": image, "boxes": boxes, "box_labels": [torch.zeros(len(b), dtype=torch.int64) for b in boxes]}


def run(
    device: str = "cpu",
    max_resolution: int = 128,
    batch_size: int = 16,
    latent_size: int = 128,
    fmap_base: int = 512,
    fmap_max: int = 64,
    repeats: int = 3,
    gen_batch: int = 16,
    mismatch_weight: float = 0.0,
    flops: bool = True,
) -> dict[str, Any]:
    """Time one iteration per stage and generation; return the report."""
    from monai_gan_aug.engines import GanTrainer
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator

    dev = torch.device(device)
    torch.manual_seed(0)
    g = PGGANGenerator(2, latent_size, 1, 1, max_resolution, fmap_base=fmap_base, fmap_max=fmap_max)
    d = PGGANDiscriminator(2, 1, 1, max_resolution, fmap_base=fmap_base, fmap_max=fmap_max)
    nets = {"generator": g, "discriminator": d}
    opts = {k: torch.optim.Adam(v.parameters(), 1e-3, betas=(0.0, 0.99)) for k, v in nets.items()}
    obj = PGGANBoxObjective(latent_size, max_resolution, images_per_phase=batch_size, batch_size=batch_size,
                            mismatch_weight=mismatch_weight)
    batch = _batch(batch_size, max_resolution)
    trainer = GanTrainer(dev, 1, [batch], nets, opts, obj, ema={"generator": 0.99})
    stages = []
    for res in obj.schedule.resolutions:
        row: dict[str, Any] = {"resolution": res, "channels": g.channels[res]}
        for kind in ("stable", "fade") if res > obj.schedule.resolutions[0] else ("stable",):
            obj.current = obj.schedule.at(obj.schedule.iterations_until(res, kind))
            if kind == "fade":
                obj.current = dataclasses.replace(obj.current, alpha=0.5)

            def step() -> None:
                trainer._iteration(trainer, batch)

            secs = median_seconds(step, warmup=1, repeats=repeats, device=device)
            row[f"{kind}_s"] = round(secs, 4)
            row[f"{kind}_images_per_s"] = round(obj.current.batch_size / secs, 2)
            if flops and kind == "stable":
                row["gflop"] = round(count_gflop(step), 2)
        stages.append(row)
        print(json.dumps(row), flush=True)

    gen = trainer.ema_networks["generator"]
    obj.current = obj._final_state()
    sampler_batch = _batch(gen_batch, max_resolution, seed=1)
    seeds = list(range(gen_batch))

    @torch.no_grad()
    def generate() -> None:
        obj.generate({"generator": gen}, gen_batch, batch=sampler_batch, seeds=seeds, device=dev)

    gen.eval()
    gen_s = median_seconds(generate, warmup=1, repeats=repeats, device=device)
    return {
        "benchmark": "pggan_bbox: one training iteration per stage, generation throughput",
        "machine": machine_info(device),
        "matmul_gflops": round(matmul_gflops(device=device), 1),
        "config": {"max_resolution": max_resolution, "batch_size": batch_size, "latent_size": latent_size,
                   "fmap_base": fmap_base, "fmap_max": fmap_max, "mismatch_weight": mismatch_weight,
                   "repeats": repeats, "n_critic": 1},
        "parameters_m": {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 3) for k, m in nets.items()},
        "stages": stages,
        "generation": {"batch": gen_batch, "seconds": round(gen_s, 4), "images_per_s": round(gen_batch / gen_s, 2)},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.bench_pggan", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max_resolution", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--latent_size", type=int, default=128)
    p.add_argument("--fmap_base", type=int, default=512)
    p.add_argument("--fmap_max", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gen_batch", type=int, default=16)
    p.add_argument("--mismatch_weight", type=float, default=0.0)
    p.add_argument("--no_flops", action="store_true")
    args = vars(p.parse_args(argv))
    args["flops"] = not args.pop("no_flops")
    report = run(**args)
    write_result("pggan", report)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
