# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN on this project's AdversarialTrainer: one training iteration (both generators, then both discriminators with
the image pools) with Zhu et al.'s ``resnet_9blocks`` generators and 70 x 70 PatchGANs, 3 -> 3 channels, batch 1,
at 128 x 128 and 256 x 256 (reference: junyanz pytorch-CycleGAN-and-pix2pix); translation throughput A -> B at
batch 1 (as the reference's test script).

Family: ``cyclegan``. Writes ``bench/results/cyclegan_<tag>.json``.
Usage: ``python -m bench.bench_cyclegan [--device cuda] [--sizes 128 256] [--quick]``.
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
from monai_gan_aug.losses.objectives.cyclegan import CYCLEGAN_NETWORKS, CycleGANObjective
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.cyclegan import ResNetGenerator

__all__ = ["FAMILIES", "NAME", "main", "run"]

NAME = "cyclegan"
FAMILIES = ("cyclegan",)


def bench_config(size: int, base: int, n_blocks: int, gen_batch: int, args, machine: dict[str, Any]) -> dict[str, Any]:
    dev = args.device
    g = torch.Generator().manual_seed(0)
    batch = {k: (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(dev) for k in ("image_a", "image_b")}
    torch.manual_seed(0)
    nets = {
        "generator_ab": ResNetGenerator(2, 3, 3, base_channels=base, n_blocks=n_blocks),
        "generator_ba": ResNetGenerator(2, 3, 3, base_channels=base, n_blocks=n_blocks),
        "discriminator_a": PatchGANDiscriminator(2, 3, receptive_field=70, base_channels=base, norm="instance"),
        "discriminator_b": PatchGANDiscriminator(2, 3, receptive_field=70, base_channels=base, norm="instance"),
    }
    opts = {k: torch.optim.Adam(nets[k].parameters(), 2e-4, betas=(0.5, 0.999), fused=True) for k in CYCLEGAN_NETWORKS}
    tr = AdversarialTrainer(dev, 1, RepeatBatch(batch, args.warmup + args.repeats), nets, opts, CycleGANObjective(pool_size=50),
                    **engine_options(args))
    sources = {"image_a": (torch.rand(gen_batch, 3, size, size, generator=g) * 2 - 1).to(dev)}
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(gen_batch, batch=sources), gen_batch=gen_batch)
    gen_name = f"resnet_{n_blocks}blocks"
    config = {"resolution": size, "spatial_dims": 2, "batch": 1, "in_channels": 3, "out_channels": 3,
              "generator": gen_name, "discriminator": "patchgan_70", "base_channels": base, **engine_config(args)}
    label = f"{gen_name} x2 + 70x70 PatchGAN x2, {size}^2, 3->3, batch 1" + engine_suffix(args)
    ref = f"cyclegan_{size}_b1" if size in (128, 256) else "cyclegan_128_b1"
    return record_from(m, args, machine, family="cyclegan", name=f"cyclegan_{size}_b1", label=label, config=config,
                       reference_key=ref,
                       extra={"params_m": {"generator_ab": param_millions(nets["generator_ab"]),
                                           "discriminator_a": param_millions(nets["discriminator_a"])}})


def run(args) -> list[dict[str, Any]]:
    machine = setup_run(args)
    records = []
    if selected(args, "cyclegan"):
        sizes, base, n_blocks = ([32], 8, 2) if args.quick else (args.sizes, 64, 9)
        for size in sizes:
            records.append(bench_config(size, base, n_blocks, 1, args, machine))
            print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = bench_parser("python -m bench.bench_cyclegan", __doc__.split("\n\n")[0], FAMILIES)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="image sides (ignored with --quick)")
    return bench_main(NAME, p, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
