# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Command line: ``python -m monai_gan_aug.metrics --real A --fake B --metrics fid,kid --out result.json``.

Reads folders of PNG/JPEG/NIfTI/DICOM images or datalist JSON files, writes the results as JSON and a markdown
table beside it. Exit status 0 on success, 2 on a usage or input error (with the message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]


def _parse_set(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        metric, dot, param = key.partition(".")
        if not sep or not dot or not metric or not param:
            raise ValueError(f"--set expects METRIC.PARAM=VALUE (e.g. kid.subset_size=100), got {item!r}.")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(metric.strip().lower(), {})[param.strip()] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command."""
    p = argparse.ArgumentParser(
        prog="python -m monai_gan_aug.metrics",
        description="GAN-quality metrics (FID, KID, IS, MMD, 1-NN, MS-SSIM, precision/recall, per-pixel accuracy) "
        "between a real and a synthetic image set, offline.",
    )
    p.add_argument("--real", required=True, help="real images: folder or datalist JSON (training set for memorization)")
    p.add_argument("--fake", required=True, help="synthetic images: folder or datalist JSON")
    p.add_argument(
        "--metrics", default="fid,kid",
        help="comma-separated: fid,kid,is,mmd,1nn,msssim,prd,pa,memorization (default: fid,kid)",
    )
    p.add_argument(
        "--extractor", default="inception",
        help="inception (local weights only) | random[:DIM] (smoke tests) | path to a TorchScript network (pickled modules are refused)",
    )
    p.add_argument("--inception-weights", default=None, help="Inception-v3 weight file (default: torch hub cache)")
    p.add_argument("--out", required=True, help="result JSON path; a .md table is written beside it")
    p.add_argument("--test", default=None, help="held-out real images, reference of the memorization check")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-bootstrap", type=int, default=100, help="bootstrap replicates (0: no intervals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="cache of real-set statistics (.npz)")
    p.add_argument("--datalist-key", default="training")
    p.add_argument("--spatial-size", type=int, nargs="+", default=None, help="resize all images to this size")
    p.add_argument("--intensity", default="auto", choices=["auto", "uint8", "minmax", "unit", "none"])
    p.add_argument("--plot", default=None, choices=["tsne", "pca"], help="embedding plot of real vs synthetic features")
    p.add_argument(
        "--set", action="append", default=[], metavar="METRIC.PARAM=VALUE",
        help="metric option, repeatable, e.g. --set kid.subset_size=100 --set mmd.n_tests=10",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from monai_gan_aug.metrics.evaluate import evaluate_sets, results_markdown

    try:
        report = evaluate_sets(
            real=args.real, fake=args.fake, metrics=args.metrics, extractor=args.extractor, out=args.out,
            test=args.test, batch_size=args.batch_size, device=args.device, n_bootstrap=args.n_bootstrap,
            seed=args.seed, cache_dir=args.cache_dir, datalist_key=args.datalist_key,
            spatial_size=args.spatial_size, intensity=args.intensity, inception_weights=args.inception_weights,
            plot=args.plot, metric_kwargs=_parse_set(args.set),
        )
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(results_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
