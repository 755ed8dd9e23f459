# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``python -m monai_gan_aug.realism``: do the generated lesions of a synthetic set look like real ones? One command
runs :func:`monai_gan_aug.evaluation.realism.evaluate_realism` (detector recall of generated vs real lesions at the
validation operating point with controls, box contrast, FID / KID of slices and lesion patches next to their
real-vs-real floors) and prints the table of targets.

Example (a pggan_bbox set of the benefit protocol, the demo dataset)::

    python -m monai_gan_aug.realism --synthetic_dir runs/benefit/generators/pggan_bbox_25pct_<key>/synthetic_56 \\
        --out runs/realism/pggan_bbox_25pct

Without ``--detector`` a YOLO detector is trained on the real training split (the benefit recipe) and cached in
``--out``; ``--detector best.pt`` uses one trained on real slices already.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_gan_aug.evaluation.cli import json_dict
from monai_gan_aug.evaluation.realism import RealismError, evaluate_realism, realism_markdown
from monai_gan_aug.utils.cli import report_command

__all__ = ["build_parser", "evaluate_realism", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m monai_gan_aug.realism", description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic_dir", required=True, help="synthetic set with boxes (SyntheticWriter folder / datalist)")
    p.add_argument("--dataset_dir", default=None, help="real datalist JSON / folder / CSV (default: the demo dataset)")
    p.add_argument("--detector", default=None, help="best.pt of a detector trained on real slices (default: train one)")
    p.add_argument("--out", required=True, help="output folder (a detector trained here is reused)")
    p.add_argument("--image_size", type=int, default=None, help="scoring resolution (default: the synthetic images')")
    p.add_argument("--seed", type=int, default=0, help="seed of the detector training, controls and KID subsets")
    p.add_argument("--operating_fp", type=float, default=None, help="FPs per validation slice at the operating point")
    p.add_argument("--extractor", default="auto", help="FID/KID features: auto, inception, random[:DIM] or a .ts file")
    p.add_argument("--patch_size", type=int, default=None, help="lesion patch side (default: image side / 4, >= 8)")
    p.add_argument("--new_boxes_last", type=int, default=None,
                   help="lesion-adding set written without 'new_boxes': the last N boxes of each item are the new ones")
    p.add_argument("--detector_settings", type=json_dict, default={}, help="detector recipe overrides (JSON)")
    p.add_argument("--device", default=None, help="cpu, 0, ... (default: the first GPU if any)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_command(
        lambda: evaluate_realism(
            args.synthetic_dir, args.dataset_dir, args.out, detector=args.detector, image_size=args.image_size,
            seed=args.seed, operating_fp=args.operating_fp, extractor=args.extractor, patch_size=args.patch_size,
            new_boxes_last=args.new_boxes_last, detector_settings=args.detector_settings, device=args.device,
        ),
        RealismError, realism_markdown, f"Report: {args.out}/realism.md, realism.json, realism_patches.png",
    )


if __name__ == "__main__":
    sys.exit(main())
