# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Command line: ``python -m monai_gan_aug demo`` runs the main job on the embedded demo dataset.

The demo trains a bundle for a short schedule (resuming if a previous demo was interrupted), generates a labelled
synthetic set from the trained generator, and prints where everything went.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

DEMO_DEFAULTS = {
    # bundle -> {"train": training-only overrides, "shared": overrides of train and inference alike}, chosen so the
    # whole demo finishes well inside 15 minutes on 2 CPU cores
    "pggan_bbox": {
        "shared": {"image_size": 64},
        # 825 iterations, 4 -> 64 px; the whole demo measured at 4 min 36 s on the idle 2-core dev machine (README.md)
        "train": {"images_per_phase": {"4": 400, "8": 400, "16": 800, "32": 1600, "64": 3600}, "mismatch_weight": 4.0},
    },
    "dcgan": {"train": {"max_iterations": 300, "save_interval": 100, "sample_interval": 100}},
    "wgan_gp": {"train": {"max_iterations": 200, "save_interval": 100, "sample_interval": 100}},
    # the flagship's in-context mode (issue 15): lesions added to real 128 px slices; 2,500 iterations of batch 8
    "lesion_inpaint": {"train": {"max_iterations": 2500, "save_interval": 500, "sample_interval": 500}},
}
#: ``make demo``'s bundle: the in-context lesion generator, the flagship mode whose lesions a real-data detector finds
#: (docs/benefit.md); ``--bundle pggan_bbox`` demos the whole-slice generator.
DEFAULT_BUNDLE = "lesion_inpaint"


def _free_dir(base: Path) -> Path:
    """``base`` if it does not exist or is empty, else ``base_2``, ``base_3``...: never overwrite a synthetic set."""
    if not base.exists() or not any(base.iterdir()):
        return base
    i = 2
    while (base.parent / f"{base.name}_{i}").exists():
        i += 1
    return base.parent / f"{base.name}_{i}"


def demo(args: argparse.Namespace) -> int:
    from monai_gan_aug.bundles import run_bundle
    from monai_gan_aug.data.demo import get_demo_datalist

    t0 = time.time()
    print(f"[1/3] demo dataset ({'3D' if args.spatial_dims == 3 else '2D'} brain MR with lesions)...", flush=True)
    datalist = get_demo_datalist(spatial_dims=args.spatial_dims)
    print(f"      {datalist}", flush=True)
    out = Path(args.output_dir) / args.bundle
    defaults = DEMO_DEFAULTS.get(args.bundle, {})
    shared = dict(defaults.get("shared", {}))
    overrides = {**shared, **defaults.get("train", {})}
    if args.max_iterations is not None:
        overrides["max_iterations"] = args.max_iterations
    overrides.update({"output_dir": str(out), "dataset_dir": str(datalist)})
    if args.device:
        overrides["device"] = args.device
    if args.amp:
        overrides["amp"] = True  # training only: inference writes its samples in float32
    length = f"{overrides['max_iterations']} iterations" if "max_iterations" in overrides else "its short demo schedule"
    print(f"[2/3] training bundles/{args.bundle} for {length} (resumes if interrupted)...", flush=True)
    run_bundle(args.bundle, "train.json", overrides)
    synthetic = _free_dir(out / "synthetic")
    print(f"[3/3] generating {args.num_samples} labelled synthetic samples...", flush=True)
    inf = {**shared, "output_dir": str(out), "dataset_dir": str(datalist), "synthetic_dir": str(synthetic),
           "num_samples": args.num_samples}
    if args.device:
        inf["device"] = args.device
    run_bundle(args.bundle, "inference.json", inf, workflow_type="infer")
    samples = sorted((out / "samples").glob("*.png"))
    print(f"\nDone in {time.time() - t0:.0f} s. Outputs:")
    rows = [
        ("demo dataset", datalist),
        ("checkpoints", out / "checkpoints"),
        ("sample grid", samples[-1] if samples else out / "samples"),
        ("tensorboard", out / "tensorboard"),
        ("synthetic set", synthetic),
        ("manifest", synthetic / "manifest.json"),
        ("datalist", synthetic / "datalist.json"),
    ]
    for k, v in rows:
        print(f"  {k:14s} {Path(v).resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_gan_aug", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a bundle on the embedded demo dataset and generate a labelled synthetic set")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"bundle name (default {DEFAULT_BUNDLE})")
    p.add_argument("--output_dir", default="runs/demo")
    p.add_argument("--max_iterations", type=int, default=None, help="override the demo's short schedule")
    p.add_argument("--num_samples", type=int, default=64)
    p.add_argument("--spatial_dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--device", default=None)
    p.add_argument("--amp", action="store_true",
                   help="train with bf16 autocast (on by default on CUDA; on a CPU with AVX512-BF16/AMX about 2x faster convolutions)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
