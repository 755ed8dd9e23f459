# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet (Chen et al. 2021) on this project's AdversarialTrainer: one training iteration (``n_critic`` = 5 WGAN-GP critic
steps on same-class image pairs, then one generator step, EMA of the generator as in the bundle) with the bundle's
networks (residual U-Net generator: base 32, 4 levels, 4 layers per block; DenseNet critic: 64 stem channels, growth
32, 4 layers per block), 1 channel, 2 classes, at 64^2 batch 16 and 128^2 batch 8; generation throughput (a
same-class reference image ``x_j`` and a class per sample), peak memory and GFLOP per step. No reference
implementation is measured by issue #8, so the records have ``reference: null`` and ``ratios: null``.

Sizes: the paper trains at 256^2 with batch 16, far too slow for a 2-core CPU (one iteration at 64^2 batch 16 already
takes about 70 s with 2 threads: the five critic steps each run the dense critic forward twice plus a gradient
penalty's double backward). Hence the two smaller configurations, and fewer timed steps than the other scripts:
1 warm-up and 3 repeats by default (``--warmup`` / ``--repeats`` override; ``--quick``: 1 / 1). Both configurations
run in one process, so on CPU the peak-RSS figure of the second is the process peak over both (pass ``--configs``
with one entry for a per-configuration figure).

Family: ``ga_unet``. Writes ``bench/results/ga_unet_<tag>.json``.
Usage: ``python -m bench.bench_ga_unet [--device cuda] [--amp] [--configs 64x16 128x8] [--quick]``.
"""

from __future__ import annotations

import argparse
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

__all__ = ["FAMILIES", "NAME", "main", "parse_config", "run"]

NAME = "ga_unet"
FAMILIES = ("ga_unet",)
# the bundle's network and objective settings (bundles/ga_unet/configs/common.json and train.json), and the --quick smoke setting
FULL = {"base_channels": 32, "levels": 4, "layers_per_block": 4, "critic_channels": 64, "growth_rate": 32,
        "n_critic": 5, "noise_size": 100}
QUICK = {"base_channels": 4, "levels": 4, "layers_per_block": 2, "critic_channels": 8, "growth_rate": 4,
         "n_critic": 5, "noise_size": 8}
# image side x training batch
FULL_CONFIGS = ["64x16", "128x8"]
QUICK_CONFIGS = ["32x2"]
# fewer timed steps than the shared default (2 warm-ups, 7 repeats): see the module docstring
FULL_WARMUP, FULL_REPEATS = 1, 3
NUM_CLASSES, DROPOUT, LAMBDA_GP, EMA_DECAY = 2, 0.2, 10.0, 0.999


def parse_config(text: str) -> tuple[int, int]:
    """``"64x16"`` -> ``(64, 16)`` (image side, batch)."""
    try:
        size, batch = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected SIZExBATCH such as 64x16, got {text!r}") from err
    if size < 1 or batch < 1:
        raise argparse.ArgumentTypeError(f"size and batch must be >= 1, got {text!r}")
    return size, batch


def bench_config(size: int, bs: int, args, machine: dict[str, Any]) -> dict[str, Any]:
    from monai_gan_aug.engines import AdversarialTrainer
    from monai_gan_aug.losses.objectives.ga_unet import GAUNetObjective
    from monai_gan_aug.networks.nets.ga_unet import GAUNetCritic, GAUNetGenerator

    dev = args.device
    g = torch.Generator().manual_seed(0)
    classes = torch.arange(bs) % NUM_CLASSES  # both classes in every batch
    # x_i and its same-class partner x_j, as SameClassPairDataset delivers them (random images: timing only)
    batch = {"image": (torch.rand(bs, 1, size, size, generator=g) * 2 - 1).to(dev),
             "reference": (torch.rand(bs, 1, size, size, generator=g) * 2 - 1).to(dev),
             "class": classes.to(dev)}
    torch.manual_seed(0)
    nets = {
        "generator": GAUNetGenerator(2, 1, 1, num_classes=NUM_CLASSES, image_size=size, noise_size=args.noise_size,
                                     base_channels=args.base_channels, levels=args.levels,
                                     layers_per_block=args.layers_per_block, dropout=DROPOUT),
        "discriminator": GAUNetCritic(2, 1, num_classes=NUM_CLASSES, image_size=size, base_channels=args.critic_channels,
                                      growth_rate=args.growth_rate, layers_per_block=args.layers_per_block,
                                      dropout=DROPOUT),
    }
    opts = {k: torch.optim.Adam(v.parameters(), 1e-4, betas=(0.0, 0.9), fused=True) for k, v in nets.items()}
    objective = GAUNetObjective(noise_size=args.noise_size, num_classes=NUM_CLASSES, n_critic=args.n_critic,
                                lambda_gp=LAMBDA_GP)
    tr = AdversarialTrainer(dev, 1, RepeatBatch(batch, args.warmup + args.repeats), nets, opts, objective,
                    ema={"generator": EMA_DECAY}, **engine_options(args, penalty=True))
    gen_batch = args.gen_batch or bs
    # generation conditions: one reference image x_j and its class per sample (ReferenceSeedDataset's items)
    conditions = {"reference": (torch.rand(gen_batch, 1, size, size, generator=g) * 2 - 1).to(dev),
                  "class": (torch.arange(gen_batch) % NUM_CLASSES).to(dev)}
    m = measure_engine(tr, batch, device=dev, warmup=args.warmup, repeats=args.repeats,
                       generate=lambda: tr.generate(gen_batch, batch=conditions), gen_batch=gen_batch)
    config = {"resolution": size, "spatial_dims": 2, "batch": bs, "in_channels": 1, "num_classes": NUM_CLASSES,
              "base_channels": args.base_channels, "levels": args.levels, "layers_per_block": args.layers_per_block,
              "critic_channels": args.critic_channels, "growth_rate": args.growth_rate, "n_critic": args.n_critic,
              "noise_size": args.noise_size, "dropout": DROPOUT, "lambda_gp": LAMBDA_GP, "ema_decay": EMA_DECAY,
              "loss": "wgan_gp", **engine_config(args, penalty=True)}
    label = (f"res-U-Net G (base {args.base_channels}, {args.levels} levels) + DenseNet critic ({args.critic_channels}, "
             f"growth {args.growth_rate}), {size}^2, batch {bs}, {args.n_critic} critic steps" + engine_suffix(args))
    return record_from(m, args, machine, family="ga_unet", name=f"ga_unet_{size}_b{bs}", label=label, config=config,
                       reference_key=None,
                       extra={"params_m": {k: param_millions(v) for k, v in nets.items()},
                              "train_images_per_s": bs / m.step_s,
                              "paper_setting": "256^2, batch 16 (not run: too slow on a 2-core CPU)"})


def run(args) -> list[dict[str, Any]]:
    size_defaults(args, FULL, QUICK)
    if not args.quick:  # this script's own timing defaults (setup_run fills the rest)
        args.warmup = FULL_WARMUP if args.warmup is None else args.warmup
        args.repeats = FULL_REPEATS if args.repeats is None else args.repeats
    if args.configs is None:
        args.configs = [parse_config(c) for c in (QUICK_CONFIGS if args.quick else FULL_CONFIGS)]
    machine = setup_run(args)
    records = []
    if selected(args, "ga_unet"):
        for size, bs in args.configs:
            records.append(bench_config(size, bs, args, machine))
            print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = bench_parser("python -m bench.bench_ga_unet", __doc__.split("\n\n")[0], FAMILIES)
    for action in p._actions:  # this script's timing defaults differ from the shared ones
        if action.dest == "warmup":
            action.help = f"warm-up steps (default {FULL_WARMUP}; 1 with --quick)"
        elif action.dest == "repeats" and action.help != argparse.SUPPRESS:
            action.help = f"timed steps, median reported (default {FULL_REPEATS}; 1 with --quick)"
    add_size_options(p, FULL, QUICK, {"base_channels": "generator base channels", "critic_channels": "critic stem "
                                      "channels", "levels": "generator levels", "n_critic": "critic steps per iteration"})
    p.add_argument("--configs", type=parse_config, nargs="+", default=None,
                   help=f"SIZExBATCH entries (default {' '.join(FULL_CONFIGS)}; {' '.join(QUICK_CONFIGS)} with --quick)")
    p.add_argument("--gen_batch", type=int, default=None, help="generation batch (default: the training batch)")
    return bench_main(NAME, p, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
