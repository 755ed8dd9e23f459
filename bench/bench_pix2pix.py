# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix (and DF-GAN's extra Frechet term) on this project's AdversarialTrainer: Isola et al.'s ``unet_256`` generator
and 70 x 70 PatchGAN, 3 -> 3 channels, 256 x 256, batch 1 and 4 (reference: junyanz pytorch-CycleGAN-and-pix2pix);
generation throughput of the generator in eval mode (batch 32 for the batch-1 row, as in the issue).

Families: ``pix2pix``, ``dfgan`` (batch 4; no reference). Writes ``bench/results/pix2pix_<tag>.json``.
Usage: ``python -m bench.bench_pix2pix [--device cuda] [--amp] [--quick]``.
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
from monai_gan_aug.losses.objectives.dfgan import DFGANObjective
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.metrics.extractors import RandomConvFeatures
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.pix2pix import Pix2PixGenerator

__all__ = ["FAMILIES", "NAME", "main", "run"]

NAME = "pix2pix"
FAMILIES = ("pix2pix", "dfgan")


def _objective(family: str) -> Pix2PixObjective:
    if family == "pix2pix":
        return Pix2PixObjective(cond_key="source", cond_mode="image")
    obj = DFGANObjective(extractor=RandomConvFeatures(in_channels=3, dim=64), cond_key="source", cond_mode="image")
    obj.set_real_statistics({"mu": torch.zeros(64), "sigma": torch.eye(64)})
    return obj


def _images(n: int, size: int, seed: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g) * 2 - 1).to(device)


def bench_config(family: str, size: int, bs: int, gen_batch: int, base: int, args, machine: dict[str, Any],
                 reference_key: str | None) -> dict[str, Any]:
    dev = args.device
    batch = {"image": _images(bs, size, 0, dev), "source": _images(bs, size, 1, dev)}
    torch.manual_seed(0)
    g = Pix2PixGenerator(2, 3, 3, image_size=size, base_channels=base)  # 256: unet_256, 8 downs, 54.4 M parameters
    d = PatchGANDiscriminator(2, 6, receptive_field=70, base_channels=base)  # 70 x 70 PatchGAN on (condition, image)
    opts = {k: torch.optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999), fused=True) for k, m in (("generator", g), ("discriminator", d))}
    tr = AdversarialTrainer(dev, 1, RepeatBatch(batch, args.warmup + args.repeats), {"generator": g, "discriminator": d}, opts,
                    _objective(family), **engine_options(args))
    conditions = {"source": _images(gen_batch, size, 2, dev)}
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(gen_batch, batch=conditions), gen_batch=gen_batch)
    config = {"resolution": size, "spatial_dims": 2, "batch": bs, "in_channels": 3, "out_channels": 3,
              "generator": f"unet_{size}", "discriminator": "patchgan_70", "base_channels": base,
              "loss": "pix2pix" if family == "pix2pix" else "pix2pix + frechet", **engine_config(args)}
    label = f"unet_{size} + 70x70 PatchGAN, {size}^2, 3->3, batch {bs}" + engine_suffix(args)
    return record_from(m, args, machine, family=family, name=f"{family}_{size}_b{bs}", label=label, config=config,
                       reference_key=reference_key,
                       extra={"params_m": {"generator": param_millions(g), "discriminator": param_millions(d)}})


def run(args) -> list[dict[str, Any]]:
    machine = setup_run(args)
    size, base = (32, 8) if args.quick else (256, 64)
    small = 2 if args.quick else 4
    # (family, batch, generation batch, reference)
    rows = [("pix2pix", 1, 2 if args.quick else 32, "pix2pix_256_b1"),
            ("pix2pix", small, small, "pix2pix_256_b4"),
            ("dfgan", small, small, None)]  # the Frechet term needs >= 2 images per batch
    records = []
    for family, bs, gen_batch, ref in rows:
        if selected(args, family):
            records.append(bench_config(family, size, bs, gen_batch, base, args, machine, ref))
            print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = bench_parser("python -m bench.bench_pix2pix", __doc__.split("\n\n")[0], FAMILIES)
    return bench_main(NAME, parser, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
