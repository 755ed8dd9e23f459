# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``python -m monai_gan_aug.benefit``: does a bundle's synthetic data help a downstream model? One command runs the
whole paired protocol of :mod:`monai_gan_aug.evaluation.benefit` and prints the verdict table.

Example (the demo dataset, Pix2Pix pairs for a U-Net)::

    python -m monai_gan_aug.benefit --bundle pix2pix --task segmentation --out runs/benefit \\
        --generator '{"max_iterations": 2000}' --task_settings '{"epochs": 30}'

``--quick`` runs tiny sizes (seconds per run) to check a set-up. ``--task_settings '{"steps": 600}'`` gives every arm
the same optimizer steps (choose them on the validation split: ``experiments/benefit_steps.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_gan_aug.evaluation.benefit import TASKS, BenefitError, benefit_markdown, bundle_tasks, run_benefit
from monai_gan_aug.evaluation.cli import json_dict
from monai_gan_aug.utils.cli import report_command

__all__ = ["main", "run_benefit"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m monai_gan_aug.benefit", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, choices=sorted(bundle_tasks()), help="the generator's bundle")
    p.add_argument("--task", required=True, choices=sorted(TASKS), help="the downstream task")
    p.add_argument("--dataset_dir", default=None, help="real datalist JSON / folder / CSV (default: the demo dataset)")
    p.add_argument("--out", default="runs/benefit", help="output folder (runs resume from it)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 1.0], help="real-data sizes, fractions of the training patients")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of every arm (at least two)")
    p.add_argument("--ratios", type=float, nargs="+", default=[1.0], help="synthetic : real ratios of the GAN arms")
    p.add_argument("--generator", type=json_dict, default={}, help="train.json overrides: the generator's budget")
    p.add_argument("--inference", type=json_dict, default={}, help="inference.json overrides")
    p.add_argument("--task_settings", type=json_dict, default={}, help="downstream settings (epochs, image_size...)")
    p.add_argument("--no_copy_paste", action="store_true", help="leave out the copy-paste arm")
    p.add_argument("--mixed_ratios", type=float, nargs="+", default=[],
                   help="ratios (among --ratios) with a mixed arm: GAN x r/2 + copy-paste x r/2, against copy-paste x r")
    p.add_argument("--lesions_per_image", type=int, default=1,
                   help="lesions added to each GAN and copy-paste image (bundles whose inference takes num_lesions)")
    p.add_argument("--no_repeat", action="store_true",
                   help="leave out the same-steps control (real + repeat x r + classic: the real images again)")
    p.add_argument("--arms", nargs="+", default=None,
                   help="run only these arms (names as in the table, e.g. 'real+gan x1+classic'); real+classic always runs")
    p.add_argument("--n_boot", type=int, default=2000, help="bootstrap replicates")
    p.add_argument("--quick", action="store_true", help="tiny generator and downstream settings (a smoke run)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_command(
        lambda: run_benefit(
            args.bundle, args.task, args.dataset_dir, args.out, fractions=args.fractions, seeds=args.seeds,
            ratios=args.ratios, generator_overrides=args.generator, inference_overrides=args.inference,
            task_settings=args.task_settings, copy_paste=not args.no_copy_paste, mixed_ratios=args.mixed_ratios,
            lesions_per_image=args.lesions_per_image, repeat=not args.no_repeat, arms=args.arms,
            n_boot=args.n_boot, quick=args.quick,
        ),
        BenefitError, benefit_markdown, f"Report: {args.out}/benefit_{args.task}.md, .json, .png",
    )


if __name__ == "__main__":
    sys.exit(main())
