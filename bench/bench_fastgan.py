# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FastGAN at its paper setting: 256 x 256, batch 8, ngf = ndf = 64, DiffAugment "color,translation", L1
reconstruction (instead of LPIPS, which needs downloaded weights), image + one mask channel. Times one training
iteration (D step with the three decoders, G step) through :class:`~monai_gan_aug.engines.AdversarialTrainer`, generation
throughput, peak memory and GFLOP per step (reference: FastGAN-pytorch).

Family: ``fastgan``. Writes ``bench/results/fastgan_<tag>.json``.
Usage: ``python -m bench.bench_fastgan [--device cuda] [--amp] [--mask_channels 0] [--quick]``.
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

NAME = "fastgan"
FAMILIES = ("fastgan",)
# paper setting, and the --quick smoke setting
FULL = {"image_size": 256, "batch_size": 8, "base_channels": 64, "latent_size": 256, "gen_batch": 8}
QUICK = {"image_size": 32, "batch_size": 2, "base_channels": 8, "latent_size": 16, "gen_batch": 2}


def bench_fastgan(args, machine: dict[str, Any]) -> dict[str, Any]:
    from monai_gan_aug.engines import AdversarialTrainer
    from monai_gan_aug.losses.objectives.fastgan import FastGANObjective
    from monai_gan_aug.networks.nets.fastgan import FastGANDiscriminator, FastGANGenerator
    from monai_gan_aug.transforms.mask_channels import append_mask_channels

    dev = args.device
    size, bs, base, latent = args.image_size, args.batch_size, args.base_channels, args.latent_size
    channels = 1 + args.mask_channels
    gen = torch.Generator().manual_seed(0)
    batch = {"image": (torch.rand(bs, 1, size, size, generator=gen) * 2 - 1).to(dev)}
    if args.mask_channels:  # the masks join the image as the dataset's AppendMaskChannelsd does
        label = (torch.rand(bs, 1, size, size, generator=gen) > 0.9).float().to(dev)
        batch = {"image": append_mask_channels(batch["image"], label, args.mask_channels), "label": label}
    torch.manual_seed(0)
    nets = {"generator": FastGANGenerator(latent, channels, size, base),
            "discriminator": FastGANDiscriminator(channels, size, base)}
    opts = {k: torch.optim.Adam(v.parameters(), 2e-4, betas=(0.5, 0.999), fused=True) for k, v in nets.items()}
    objective = FastGANObjective(latent, 1, args.mask_channels, policy=args.policy, recon_loss="l1")
    tr = AdversarialTrainer(dev, 1, RepeatBatch(batch, args.warmup + args.repeats), nets, opts, objective,
                    **engine_options(args))
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(args.gen_batch), gen_batch=args.gen_batch)
    config = {"resolution": size, "spatial_dims": 2, "batch": bs, "base_channels": base, "latent_size": latent,
              "in_channels": channels, "mask_channels": args.mask_channels, "policy": args.policy, "recon_loss": "l1",
              **engine_config(args)}
    label = f"{size}^2, batch {bs}, ngf = ndf = {base}, 1 + {args.mask_channels} channels, L1 recon" + engine_suffix(args)
    return record_from(m, args, machine, family="fastgan", name=f"fastgan_{size}_b{bs}", label=label, config=config,
                       reference_key="fastgan_256_b8",
                       extra={"params_m": {k: param_millions(v) for k, v in nets.items()},
                              "train_images_per_s": bs / m.step_s})


def run(args) -> list[dict[str, Any]]:
    size_defaults(args, FULL, QUICK)
    machine = setup_run(args)
    records = []
    if selected(args, "fastgan"):
        records.append(bench_fastgan(args, machine))
        print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = bench_parser("python -m bench.bench_fastgan", __doc__.split("\n\n")[0], FAMILIES)
    add_size_options(p, FULL, QUICK, {"base_channels": "ngf = ndf", "gen_batch": "generation batch"})
    p.add_argument("--mask_channels", type=int, default=1)
    p.add_argument("--policy", default="color,translation", help="DiffAugment policy")
    return bench_main(NAME, p, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
