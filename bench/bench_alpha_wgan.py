# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Benchmark of alpha-WGAN-GP in 3D (Kwon et al.'s 64^3 volumes): one training iteration (phases CD, E, D, G, each
with its gradient penalty / reconstruction) at batch 4 through :class:`~monai_gan_aug.engines.GanTrainer`,
generation throughput (volumes/s), peak memory and GFLOP per training step (``torch.utils.flop_counter``).

    python -m bench.bench_alpha_wgan [--device cuda] [--steps 5] [--variant improved]

Writes ``bench/results/bench_alpha_wgan.json``.
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


def _peak_memory_mb(device: torch.device) -> dict[str, float]:
    out = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.type == "cuda":
        out["device_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["device_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    return out


def run(
    device: str = "cpu",
    variant: str = "improved",
    spatial_dims: int = 3,
    image_size: int = 64,
    batch_size: int = 4,
    latent_size: int = 256,
    base_channels: int = 64,
    warmup: int = 1,
    steps: int = 3,
    gen_batch: int = 4,
    gen_batches: int = 3,
    amp: bool = False,
) -> dict:
    """Time ``steps`` training iterations after ``warmup`` and ``gen_batches`` generation batches; return a report."""
    from monai_gan_aug.engines import GanTrainer
    from monai_gan_aug.losses.objectives.alpha_wgan import AlphaWGANObjective
    from monai_gan_aug.networks.nets.alpha_wgan import alpha_wgan_networks

    dev = torch.device(device)
    shape = (1,) + (image_size,) * spatial_dims
    total = warmup + steps

    def build(target: torch.device, iterations: int) -> tuple[GanTrainer, dict, list]:
        torch.manual_seed(0)
        nets = alpha_wgan_networks(variant, spatial_dims, 1, image_size, latent_size, base_channels)
        for net in nets.values():
            net.to(target)
        opts = {k: torch.optim.Adam(v.parameters(), 2e-4) for k, v in nets.items()}
        data = [{"image": torch.rand(shape) * 2 - 1} for _ in range(batch_size)] if target.type != "meta" else [{}]
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
        objective = AlphaWGANObjective(variant, latent_size)
        trainer = GanTrainer(target, iterations, loader, nets, opts, objective, max_iterations=iterations, amp=amp)
        return trainer, nets, data

    # FLOPs of one iteration, counted on the meta device (same shapes, no compute)
    meta, _, _ = build(torch.device("meta"), 1)
    flops = count_flops(lambda: meta._iteration(meta, {"image": torch.empty(batch_size, *shape, device="meta")}))

    trainer, nets, _ = build(dev, total)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    stamps: list[float] = []

    from ignite.engine import Events

    @trainer.on(Events.ITERATION_COMPLETED)
    def _stamp(engine) -> None:
        _sync(dev)
        stamps.append(time.perf_counter())

    _sync(dev)
    t0 = time.perf_counter()
    trainer.run()
    times = [b - a for a, b in zip([t0] + stamps[:-1], stamps)][warmup:]
    train_memory = _peak_memory_mb(dev)

    seeds = list(range(gen_batch))
    if warmup:
        trainer.generate(gen_batch, seeds=seeds)
    _sync(dev)
    t1 = time.perf_counter()
    for b in range(gen_batches):
        trainer.generate(gen_batch, seeds=[s + b * gen_batch for s in seeds])
    _sync(dev)
    gen_time = time.perf_counter() - t1

    params = {k: sum(p.numel() for p in m.parameters()) for k, m in nets.items()}
    step_s = sum(times) / len(times)
    return {
        "benchmark": "alpha_wgan_gp training step and generation",
        "config": {"variant": variant, "spatial_dims": spatial_dims, "image_size": image_size, "batch_size": batch_size,
                   "latent_size": latent_size, "base_channels": base_channels, "amp": amp, "warmup": warmup, "steps": steps},
        "device": _device_name(dev),
        "torch": torch.__version__,
        "parameters_m": {k: round(v / 1e6, 3) for k, v in params.items()},
        "train_step_s": round(step_s, 4),
        "train_step_s_all": [round(t, 4) for t in times],
        "train_volumes_per_s": round(batch_size / step_s, 3),
        "gflop_per_step": round(flops / 1e9, 2),  # forward + backward + double backward of the GPs
        "achieved_tflops": round(flops / step_s / 1e12, 4),
        "generation_volumes_per_s": round(gen_batch * gen_batches / gen_time, 3),
        "memory": {k: round(v, 1) for k, v in train_memory.items()},
        "final_losses": {k: round(float(v), 4) for k, v in trainer.state.output["losses"].items()},
    }


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_alpha_wgan", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--variant", default="improved", choices=("improved", "original", "wgan_gp"))
    p.add_argument("--spatial_dims", type=int, default=3)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--latent_size", type=int, default=256)
    p.add_argument("--base_channels", type=int, default=64)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--gen_batch", type=int, default=4)
    p.add_argument("--gen_batches", type=int, default=3)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "bench_alpha_wgan.json"))
    args = vars(p.parse_args(argv))
    out = Path(args.pop("out"))
    report = run(**args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
