# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""alpha-WGAN-GP in 3D (Kwon et al.'s 64^3 volumes): one training iteration (phases CD, E, D, G, each with its
gradient penalty / reconstruction) at batch 4 through :class:`~monai_gan_aug.engines.AdversarialTrainer`, generation
throughput (volumes/s), peak memory and GFLOP per step (reference: cyclomon 3dbraingen).

Family: ``alpha_wgan``. Writes ``bench/results/alpha_wgan_<tag>.json``.
Usage: ``python -m bench.bench_alpha_wgan [--device cuda] [--amp] [--variant improved] [--quick]``.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from bench.common import (
    add_size_options,
    bench_main,
    bench_parser,
    engine_config,
    engine_options,
    engine_suffix,
    print_record,
    selected,
    setup_run,
    size_defaults,
)
from bench.engine_timing import RepeatBatch, measure_engine, param_millions, record_from

__all__ = ["FAMILIES", "NAME", "main", "run"]

NAME = "alpha_wgan"
FAMILIES = ("alpha_wgan",)
# Kwon et al.'s setting, and the --quick smoke setting
FULL = {"image_size": 64, "batch_size": 4, "latent_size": 256, "base_channels": 64, "gen_batch": 4}
QUICK = {"image_size": 16, "batch_size": 2, "latent_size": 8, "base_channels": 4, "gen_batch": 2}


def bench_alpha_wgan(args, machine: dict[str, Any]) -> dict[str, Any]:
    from monai_gan_aug.engines import AdversarialTrainer
    from monai_gan_aug.losses.objectives.alpha_wgan import AlphaWGANObjective
    from monai_gan_aug.networks.nets.alpha_wgan import alpha_wgan_networks

    dev = args.device
    dims, size, bs = args.spatial_dims, args.image_size, args.batch_size
    options = engine_options(args, penalty=True)
    notes = {}
    if dims == 3 and options["channels_last"]:
        # AdversarialTrainer(channels_last=True) converts networks with torch.channels_last, which is 4-D only
        notes["channels_last"] = "ignored: the engine's channels_last is for 2D networks (no channels_last_3d)"
        options["channels_last"] = False
    g = torch.Generator().manual_seed(0)
    batch = {"image": (torch.rand(bs, 1, *(size,) * dims, generator=g) * 2 - 1).to(dev)}
    torch.manual_seed(0)
    nets = alpha_wgan_networks(args.variant, dims, 1, size, args.latent_size, args.base_channels)
    opts = {k: torch.optim.Adam(v.parameters(), 2e-4, fused=True) for k, v in nets.items()}
    objective = AlphaWGANObjective(args.variant, args.latent_size)
    tr = AdversarialTrainer(dev, 1, RepeatBatch(batch, args.warmup + args.repeats), nets, opts, objective, **options)
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(args.gen_batch), gen_batch=args.gen_batch)
    config = {"resolution": size, "spatial_dims": dims, "batch": bs, "variant": args.variant,
              "latent_size": args.latent_size, "base_channels": args.base_channels,
              **engine_config(args, channels_last=options["channels_last"], penalty=True)}
    shape = "^3" if dims == 3 else "^2"
    label = f"{args.variant}, {size}{shape}, batch {bs}" + engine_suffix(args, channels_last=options["channels_last"])
    return record_from(m, args, machine, family="alpha_wgan", name=f"alpha_wgan_{dims}d_{size}_b{bs}", label=label,
                       config=config, reference_key="alpha_wgan_3d_64_b4",
                       extra={"params_m": {k: param_millions(v) for k, v in nets.items()},
                              "generation_unit": "volumes/s" if dims == 3 else "images/s", **notes})


def run(args) -> list[dict[str, Any]]:
    size_defaults(args, FULL, QUICK)
    machine = setup_run(args)
    records = []
    if selected(args, "alpha_wgan"):
        records.append(bench_alpha_wgan(args, machine))
        print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = bench_parser("python -m bench.bench_alpha_wgan", __doc__.split("\n\n")[0], FAMILIES)
    p.add_argument("--variant", default="improved", choices=("improved", "original", "wgan_gp"))
    p.add_argument("--spatial_dims", type=int, default=3, choices=(2, 3))
    add_size_options(p, FULL, QUICK, {"gen_batch": "generation batch"})
    return bench_main(NAME, p, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
