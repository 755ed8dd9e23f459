# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Box-conditioned PGGAN (Han et al. 2019): one training iteration (critic step with gradient penalty, generator
step, EMA) through :class:`~monai_gan_aug.engines.AdversarialTrainer` at each resolution stage, in the stable phase and in
the middle of the fade-in, plus generation throughput (EMA generator) at each stable stage.

Networks: ``--preset bundle`` (default: the pggan_bbox bundle's, latent 128, fmap_base 512, fmap_max 64, up to
128^2) or ``--preset reference`` (Karras et al.'s sizes, latent 512, fmap_base 8192, fmap_max 512: the work per step
of the reference, pytorch_GAN_zoo PGAN with WGAN-GP, whose 32^2 and 64^2 stable phases at batch 16 are in the
issue's table).

Family: ``pggan``. Writes ``bench/results/pggan_<tag>.json``.
Usage: ``python -m bench.bench_pggan [--preset reference --max_resolution 64 --resolutions 32 64] [--quick]``.
"""

from __future__ import annotations

import dataclasses
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
    size_defaults,
)
from bench.engine_timing import measure_calls, param_millions, record_from
from bench.references import REFERENCES

__all__ = ["FAMILIES", "NAME", "PRESETS", "main", "run"]

NAME = "pggan"
FAMILIES = ("pggan",)
PRESETS = {
    "bundle": {"max_resolution": 128, "latent_size": 128, "fmap_base": 512, "fmap_max": 64},
    "reference": {"max_resolution": 64, "latent_size": 512, "fmap_base": 8192, "fmap_max": 512},
    "quick": {"max_resolution": 8, "latent_size": 16, "fmap_base": 32, "fmap_max": 8},
}


def _batch(batch_size: int, size: int, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch_size, 1, size, size, generator=g) * 2 - 1
    boxes = []
    for i in range(batch_size):
        k = i % 4
        lo = torch.randint(0, max(1, size - size // 8), (k, 2), generator=g).float()
        boxes.append(torch.cat([lo, lo + size // 10 + 1], 1))
    from monai_gan_aug.transforms.boxes.batch import condition_map_batch

    return {"image": image, "boxes": boxes, "box_labels": [torch.zeros(len(b), dtype=torch.int64) for b in boxes],
            "cond": condition_map_batch(boxes, (size, size))}  # the box maps the bundle's dataset builds


def _reference_key(res: int, kind: str, args) -> str | None:
    if kind != "stable":
        return None
    if args.quick:  # smoke run: exercise the comparison with the smallest reference (not comparable)
        return "pggan_32_stable_b16" if res == args.max_resolution else None
    key = f"pggan_{res}_stable_b16"
    return key if key in REFERENCES else None


def run(args) -> list[dict[str, Any]]:
    from monai_gan_aug.engines import AdversarialTrainer
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator

    size_defaults(args, PRESETS[args.preset], PRESETS["quick"])
    if args.batch_size is None:
        args.batch_size = 4 if args.quick else 16
    if args.gen_batch is None:
        args.gen_batch = args.batch_size
    machine = setup_run(args)
    if not selected(args, "pggan"):
        return []
    dev = torch.device(args.device)
    torch.manual_seed(0)
    g = PGGANGenerator(2, args.latent_size, 1, 1, args.max_resolution, fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    d = PGGANDiscriminator(2, 1, 1, args.max_resolution, fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    nets = {"generator": g, "discriminator": d}
    opts = {k: torch.optim.Adam(v.parameters(), 1e-3, betas=(0.0, 0.99), fused=True) for k, v in nets.items()}
    obj = PGGANBoxObjective(args.latent_size, args.max_resolution, images_per_phase=args.batch_size,
                            batch_size=args.batch_size, mismatch_weight=args.mismatch_weight)
    batch = _batch(args.batch_size, args.max_resolution)
    trainer = AdversarialTrainer(dev, 1, [batch], nets, opts, obj, ema={"generator": 0.99}, **engine_options(args, penalty=True))
    conditions = _batch(args.gen_batch, args.max_resolution, seed=1)
    resolutions = args.resolutions or obj.schedule.resolutions
    unknown = [r for r in resolutions if r not in obj.schedule.resolutions]
    if unknown:
        raise SystemExit(f"--resolutions {unknown} not in the schedule {obj.schedule.resolutions}.")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or set(phases) - {"stable", "fade"}:
        raise SystemExit(f"--phases takes stable and/or fade, got {args.phases!r}.")

    def step() -> None:
        trainer._iteration(trainer, batch)

    def generate() -> Any:
        return trainer.generate(args.gen_batch, batch=conditions)

    records = []
    for res in resolutions:
        for kind in phases:
            if kind == "fade" and res == obj.schedule.resolutions[0]:
                continue  # the first resolution has no fade-in
            state = obj.schedule.at(obj.schedule.iterations_until(res, kind))
            if kind == "fade":
                state = dataclasses.replace(state, alpha=0.5)
            for net in (g, d, *trainer.ema_networks.values()):  # what ProgressiveGrowingHandler does
                net.set_growth(state.stage, state.alpha)
            stable = kind == "stable"
            m = measure_calls(step, device=args.device, warmup=args.warmup, repeats=args.repeats,
                              generate=generate if stable else None, gen_batch=args.gen_batch if stable else None,
                              count_flops=not args.no_flops)
            config = {"resolution": res, "spatial_dims": 2, "phase": kind, "alpha": state.alpha,
                      "batch": state.batch_size, "max_resolution": args.max_resolution,
                      "preset": "quick" if args.quick else args.preset,
                      "latent_size": args.latent_size, "fmap_base": args.fmap_base, "fmap_max": args.fmap_max,
                      "channels": g.channels[res], "loss": "wgan_gp", "n_critic": 1,
                      "mismatch_weight": args.mismatch_weight, **engine_config(args, penalty=True)}
            label = f"{res}^2 {kind} phase, batch {state.batch_size}, {g.channels[res]} channels" + engine_suffix(args)
            records.append(record_from(
                m, args, machine, family="pggan", name=f"pggan_{res}_{kind}_b{state.batch_size}", label=label,
                config=config, reference_key=_reference_key(res, kind, args),
                extra={"params_m": {k: param_millions(v) for k, v in nets.items()},
                       "train_images_per_s": state.batch_size / m.step_s,
                       "generation": f"EMA generator at the {res}^2 stage, upsampled to {args.max_resolution}^2"
                       if stable else None},
            ))
            print_record(records[-1])
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = bench_parser("python -m bench.bench_pggan", __doc__.split("\n\n")[0], FAMILIES)
    p.add_argument("--preset", default="bundle", choices=("bundle", "reference"),
                   help="network sizes (max_resolution, latent_size, fmap_base, fmap_max unless given)")
    p.add_argument("--max_resolution", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=None, help="default 16 (4 quick)")
    p.add_argument("--latent_size", type=int, default=None)
    p.add_argument("--fmap_base", type=int, default=None)
    p.add_argument("--fmap_max", type=int, default=None)
    p.add_argument("--resolutions", type=int, nargs="+", default=None, help="stages to time (default all)")
    p.add_argument("--phases", default="stable,fade", help="comma-separated: stable, fade")
    p.add_argument("--gen_batch", type=int, default=None, help="generation batch (default the training batch)")
    p.add_argument("--mismatch_weight", type=float, default=0.0)
    p.add_argument("--no_flops", action="store_true", help="skip the FLOP count")
    return bench_main(NAME, p, run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
