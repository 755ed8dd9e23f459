# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Benchmark: cost of on-the-fly synthetic data (``GeneratorSource``) against pre-generated files (``FolderSource``)
at the same real:synthetic ratio, in a standard MONAI loader.

Measured on the machine it runs on (CPU unless ``--device cuda``):

1. generation throughput of a DCGAN 64x64 generator (the dcgan bundle's network: latent 100, ngf 64) through
   ``GeneratorSource.get_batch`` for several batch sizes, and the read throughput of the same images as files;
2. one loader epoch (``DataLoader`` over ``SyntheticMixDataset``, mode "add", ``--ratio``) for: real only, real +
   pre-generated files, real + on-the-fly generation (a fresh sample every time), and real + a finite on-the-fly
   source whose cache holds the whole set (generated once, then replayed);
3. the overhead of each mix over the real-only epoch and on-the-fly vs files (target: at most 10 % slower).

Real data: the embedded demo dataset at ``--image-size`` (built once into the cache) or ``--data``. Writes
``bench/results/mix_<hostname>.json``.

Usage::

    python bench/bench_mix.py [--ratio 1.0] [--epochs 3] [--workers 0 2] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monai.data import DataLoader, Dataset
from monai.transforms import (
    Compose,
    LoadImaged,
    RandFlipd,
    ScaleIntensityd,
    SelectItemsd,
)

from monai_gan_aug.data.datalist import load_datalist
from monai_gan_aug.data.mix import FolderSource, SyntheticMixDataset
from monai_gan_aug.engines import GeneratorSource
from monai_gan_aug.handlers import write_synthetic_set
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANGenerator

__all__ = ["main", "run"]


def _generator(image_size: int, base_channels: int, latent: int, seed: int = 0) -> tuple[DCGANGenerator, DCGANObjective]:
    torch.manual_seed(seed)
    g = DCGANGenerator(spatial_dims=2, latent_size=latent, out_channels=1, image_size=image_size, base_channels=base_channels)
    return g, DCGANObjective(latent_size=latent, latent_spatial=2)


def _epoch_seconds(datasets: dict[str, Any], batch_size: int, workers: int, epochs: int) -> dict[str, Any]:
    """Median wall time of ``epochs`` full passes over each dataset (after one warm-up pass each). The datasets take
    turns epoch by epoch, so a change of machine load affects all of them alike."""
    loaders = {k: DataLoader(d, batch_size=batch_size, shuffle=True, num_workers=workers) for k, d in datasets.items()}
    times: dict[str, list[float]] = {k: [] for k in datasets}
    samples: dict[str, int] = {}
    for epoch in range(epochs + 1):
        for key, loader in loaders.items():
            if isinstance(datasets[key], SyntheticMixDataset):
                datasets[key].set_epoch(epoch)
            t0 = time.perf_counter()
            samples[key] = sum(int(b["image"].shape[0]) for b in loader)
            if epoch:  # epoch 0 warms caches, imports and thread pools
                times[key].append(time.perf_counter() - t0)
    return {k: {"seconds_median": statistics.median(v), "seconds": v, "samples": samples[k]} for k, v in times.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.data:
        data_dir = args.data
    else:
        from monai_gan_aug.data.demo import get_demo_datalist

        data_dir = str(get_demo_datalist(spatial_dims=2, n_patients=args.n_patients, slices_per_patient=8,
                                         image_size=args.image_size))
    files = load_datalist(data_dir, split="training")
    chain = Compose([
        LoadImaged(keys="image", ensure_channel_first=True, image_only=True),
        ScaleIntensityd(keys="image"),
        RandFlipd(keys="image", prob=0.5, spatial_axis=0),
        SelectItemsd(keys=["image"]),
    ])
    gen_chain = Compose([ScaleIntensityd(keys="image"), RandFlipd(keys="image", prob=0.5, spatial_axis=0)])
    real = Dataset(files, transform=chain)
    n_syn = round(args.ratio * len(files))
    g, objective = _generator(args.image_size, args.base_channels, args.latent_size)
    result: dict[str, Any] = {
        "benchmark": "SyntheticMix: on-the-fly generation vs pre-generated files",
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "device": str(device),
        "generator": f"DCGANGenerator(image_size={args.image_size}, latent_size={args.latent_size}, "
                     f"base_channels={args.base_channels}), {sum(p.numel() for p in g.parameters())} parameters",
        "real_samples": len(files),
        "ratio": args.ratio,
        "synthetic_per_epoch": n_syn,
        "loader_batch_size": args.batch_size,
    }

    # 1. generation throughput vs file reads
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = write_synthetic_set(g, objective, Path(tmp) / "synthetic", max(n_syn, 1), batch_size=16,
                                     device=device, reference_image=files[0]["image"])
        result["pregenerate_seconds"] = time.perf_counter() - t0
        throughput = {}
        for bs in args.gen_batch_sizes:
            src = GeneratorSource(g, objective, batch_size=bs, cache_size=0, device=device)
            reps = max(2, 64 // bs)
            src.get_batch(list(range(bs)))  # warm-up
            t0 = time.perf_counter()
            for k in range(1, reps + 1):
                src.get_batch(list(range(k * bs, (k + 1) * bs)))
            dt = time.perf_counter() - t0
            throughput[str(bs)] = {"samples_per_s": reps * bs / dt, "ms_per_sample": 1000 * dt / (reps * bs)}
        result["generation"] = throughput
        fsrc = FolderSource(folder, transform=chain)
        t0 = time.perf_counter()
        for i in range(len(fsrc)):
            fsrc[i]
        dt = time.perf_counter() - t0
        result["file_read"] = {"samples_per_s": len(fsrc) / dt, "ms_per_sample": 1000 * dt / len(fsrc)}

        # 2. loader epochs
        epochs: dict[str, Any] = {}
        for workers in args.workers:
            fresh = GeneratorSource(g, objective, batch_size=args.gen_batch, transform=gen_chain, device=device)
            cached = GeneratorSource(g, objective, num_samples=max(n_syn, 1), batch_size=args.gen_batch,
                                     cache_size=-(-max(n_syn, 1) // args.gen_batch), transform=gen_chain, device=device)
            w = _epoch_seconds(
                {
                    "real_only": real,
                    "files": SyntheticMixDataset(real, fsrc, ratio=args.ratio),
                    "on_the_fly": SyntheticMixDataset(real, fresh, ratio=args.ratio),
                    "on_the_fly_cached_set": SyntheticMixDataset(real, cached, ratio=args.ratio),
                },
                args.batch_size, workers, args.epochs,
            )
            base = w["real_only"]["seconds_median"]
            files_t = w["files"]["seconds_median"]
            for key in ("files", "on_the_fly", "on_the_fly_cached_set"):
                w[key]["overhead_vs_real_only"] = w[key]["seconds_median"] / base - 1.0
            w["on_the_fly_vs_files"] = w["on_the_fly"]["seconds_median"] / files_t - 1.0
            w["on_the_fly_cached_vs_files"] = w["on_the_fly_cached_set"]["seconds_median"] / files_t - 1.0
            w["meets_10pct_target"] = w["on_the_fly_vs_files"] <= 0.10
            epochs[f"workers_{workers}"] = w
        result["epochs"] = epochs

    result["load_average_at_end"] = list(os.getloadavg())
    gen_ms = result["generation"][str(args.gen_batch)]["ms_per_sample"] if str(args.gen_batch) in result["generation"] \
        else min(v["ms_per_sample"] for v in result["generation"].values())
    read_ms = result["file_read"]["ms_per_sample"]
    verdicts = ", ".join(
        f"{k}: on-the-fly {100 * v['on_the_fly_vs_files']:+.1f} % vs files "
        f"({'meets' if v['meets_10pct_target'] else 'misses'} the 10 % target)"
        for k, v in result["epochs"].items()
    )
    result["explanation"] = (
        f"Measured {verdicts}. Per synthetic sample, on-the-fly generation replaces a file read: generating one "
        f"{args.image_size}x{args.image_size} DCGAN sample costs {gen_ms:.2f} ms on {device} (batch {args.gen_batch}, "
        f"{torch.get_num_threads()} thread(s)), reading and preprocessing one pre-generated file {read_ms:.2f} ms, so "
        f"on-the-fly should cost about {(gen_ms - read_ms) * n_syn / 1000:+.2f} s per epoch ({n_syn} synthetic "
        "samples) relative to files, more when the generator runs on small batches: SyntheticMixDataset generates "
        "once per loader batch for its synthetic members (about batch_size * ratio / (1 + ratio) samples, see the "
        "generation rows for the cost per batch size); the rest of the difference is timing noise (see the load averages: other processes share the CPU). The on-the-fly "
        "epoch gets a new synthetic sample every time (no fixed set, no disk). With DataLoader workers the generator "
        "runs in each worker (batched per loader batch via __getitems__). A finite source whose cache holds the whole "
        "set generates once and replays from memory (the cached row); its cache lives per worker, so with "
        "non-persistent workers it is rebuilt every epoch."
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="real datalist (default: the demo dataset)")
    p.add_argument("--n-patients", type=int, default=10)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--latent-size", type=int, default=100)
    p.add_argument("--base-channels", type=int, default=64)
    p.add_argument("--ratio", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16, help="loader batch size")
    p.add_argument("--gen-batch", type=int, default=16, help="GeneratorSource batch size")
    p.add_argument("--gen-batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 64])
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    result = run(args)
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"mix_{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("generation", "file_read", "epochs", "explanation")}, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
