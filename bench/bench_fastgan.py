# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Benchmark of FastGAN at its paper setting: 256 x 256, batch 8, ngf = ndf = 64, DiffAugment "color,translation",
L1 reconstruction (instead of LPIPS, which needs downloaded weights), image + one mask channel. Times one training
iteration (D step with the three decoders, G step) through :class:`~monai_gan_aug.engines.GanTrainer`, generation
throughput (images/s), peak memory and GFLOP per training step (``torch.utils.flop_counter``).

    python -m bench.bench_fastgan [--device cuda] [--steps 5] [--mask_channels 0]

Writes ``bench/results/bench_fastgan.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import ClassVar, Self

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "main", "run"]

RESULTS = Path(__file__).resolve().parent / "results"


class _GlobalOnly:
    """Stand-in for FlopCounterMode's module tracker: its autograd hooks break ``torch.autograd.grad`` on leaf inputs
    (the gradient penalty), and only the global count is needed here."""

    parents: ClassVar[set[str]] = {"Global"}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args) -> None:
        return None


def count_flops(fn) -> int:
    """Total FLOPs of ``fn()`` (forward, backward and double backward) by ``torch.utils.flop_counter``."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(
    device: str = "cpu",
    image_size: int = 256,
    batch_size: int = 8,
    base_channels: int = 64,
    latent_size: int = 256,
    mask_channels: int = 1,
    policy: str = "color,translation",
    warmup: int = 1,
    steps: int = 3,
    gen_batch: int = 8,
    gen_batches: int = 3,
    amp: bool = False,
) -> dict:
    """Time ``steps`` training iterations after ``warmup`` and ``gen_batches`` generation batches; return a report."""
    from ignite.engine import Events

    from monai_gan_aug.engines import GanTrainer
    from monai_gan_aug.losses.objectives.fastgan import FastGANObjective
    from monai_gan_aug.networks.nets.fastgan import (
        FastGANDiscriminator,
        FastGANGenerator,
    )

    dev = torch.device(device)
    channels = 1 + mask_channels
    total = warmup + steps

    def build(target: torch.device, iterations: int) -> tuple[GanTrainer, FastGANObjective, dict, list]:
        torch.manual_seed(0)
        nets = {
            "generator": FastGANGenerator(latent_size, channels, image_size, base_channels),
            "discriminator": FastGANDiscriminator(channels, image_size, base_channels),
        }
        for net in nets.values():
            net.to(target)
        opts = {k: torch.optim.Adam(v.parameters(), 2e-4, betas=(0.5, 0.999)) for k, v in nets.items()}
        data = []
        for _ in range(batch_size if target.type != "meta" else 0):
            item = {"image": torch.rand(1, image_size, image_size) * 2 - 1}
            if mask_channels:
                item["label"] = (torch.rand(1, image_size, image_size) > 0.9).float()
            data.append(item)
        loader = torch.utils.data.DataLoader(data or [{}], batch_size=batch_size)
        objective = FastGANObjective(latent_size, 1, mask_channels, policy=policy, recon_loss="l1")
        trainer = GanTrainer(target, iterations, loader, nets, opts, objective, max_iterations=iterations, amp=amp)
        return trainer, objective, nets, data

    # FLOPs of one iteration, counted on the meta device (same shapes, no compute)
    meta, _, _, _ = build(torch.device("meta"), 1)
    meta_batch = {"image": torch.empty(batch_size, channels, image_size, image_size, device="meta")}
    flops = count_flops(lambda: meta._iteration(meta, meta_batch))

    trainer, _, nets, _ = build(dev, total)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    stamps: list[float] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _stamp(engine) -> None:
        _sync(dev)
        stamps.append(time.perf_counter())

    _sync(dev)
    t0 = time.perf_counter()
    trainer.run()
    times = [b - a for a, b in zip([t0] + stamps[:-1], stamps)][warmup:]
    memory = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if dev.type == "cuda":
        memory["device_peak_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        memory["device_peak_reserved_mb"] = torch.cuda.max_memory_reserved(dev) / 2**20

    seeds = list(range(gen_batch))
    if warmup:
        trainer.generate(gen_batch, seeds=seeds)
    _sync(dev)
    t1 = time.perf_counter()
    for b in range(gen_batches):
        trainer.generate(gen_batch, seeds=[s + b * gen_batch for s in seeds])
    _sync(dev)
    gen_time = time.perf_counter() - t1

    step_s = sum(times) / len(times)
    return {
        "benchmark": "fastgan training step and generation",
        "config": {"image_size": image_size, "batch_size": batch_size, "ngf": base_channels, "ndf": base_channels,
                   "latent_size": latent_size, "mask_channels": mask_channels, "policy": policy, "recon_loss": "l1",
                   "amp": amp, "warmup": warmup, "steps": steps},
        "device": _device_name(dev),
        "torch": torch.__version__,
        "parameters_m": {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 3) for k, m in nets.items()},
        "train_step_s": round(step_s, 4),
        "train_step_s_all": [round(t, 4) for t in times],
        "train_images_per_s": round(batch_size / step_s, 3),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_tflops": round(flops / step_s / 1e12, 4),
        "generation_images_per_s": round(gen_batch * gen_batches / gen_time, 3),
        "memory": {k: round(v, 1) for k, v in memory.items()},
        "final_losses": {k: round(float(v), 4) for k, v in trainer.state.output["losses"].items()},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_fastgan", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--base_channels", type=int, default=64, help="ngf = ndf")
    p.add_argument("--latent_size", type=int, default=256)
    p.add_argument("--mask_channels", type=int, default=1)
    p.add_argument("--policy", default="color,translation")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--gen_batch", type=int, default=8)
    p.add_argument("--gen_batches", type=int, default=3)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "bench_fastgan.json"))
    args = vars(p.parse_args(argv))
    out = Path(args.pop("out"))
    report = run(**args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
