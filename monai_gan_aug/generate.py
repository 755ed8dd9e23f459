# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``python -m monai_gan_aug.generate``: a labelled synthetic set from an exported bundle in one command
(:func:`monai_gan_aug.engines.bundles.generate`, also ``monai_gan_aug.generate(...)``).

Example::

    python -m monai_gan_aug.generate --bundle_dir exported/pggan_bbox --num_samples 100 --output_dir synthetic \\
        --boxes boxes.json --batch_size 8

Other ``--key value`` pairs override ids of the bundle's ``configs/inference.json`` (values are read as JSON
when they parse, else as text).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Sequence
from typing import Any

from monai_gan_aug.engines.bundles import generate

__all__ = ["main", "generate"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m monai_gan_aug.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle_dir", required=True, help="exported bundle folder (or a bundle name of this repository)")
    p.add_argument("--num_samples", type=int, required=True)
    p.add_argument("--output_dir", required=True, help="folder of the synthetic set")
    p.add_argument("--boxes", default=None, help="box file (box-conditioned bundles: pggan_bbox, lesion_inpaint)")
    p.add_argument("--masks", nargs="+", default=None,
                   help="mask files, a folder of masks or a datalist JSON (mask-conditioned bundles: pix2pix, dfgan)")
    p.add_argument("--seed", type=int, default=0, help="seed of sample 0")
    return p


def _overrides(extra: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    it = iter(extra)
    for key in it:
        if not key.startswith("--"):
            raise SystemExit(f"unexpected argument {key!r}: overrides are --key value pairs.")
        try:
            value = next(it)
        except StopIteration:
            raise SystemExit(f"{key} needs a value.") from None
        try:
            out[key[2:]] = json.loads(value)
        except ValueError:
            out[key[2:]] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    masks = args.masks[0] if args.masks and len(args.masks) == 1 else args.masks
    out = generate(args.bundle_dir, args.num_samples, args.output_dir, boxes=args.boxes, masks=masks, seed=args.seed,
                   **_overrides(extra))
    print(f"synthetic set: {out} (manifest.json, datalist.json)")
    return 0


class _CallableModule(types.ModuleType):
    """``import monai_gan_aug.generate`` makes the package attribute ``monai_gan_aug.generate`` this module; calling it
    still calls :func:`generate`, so ``monai_gan_aug.generate(...)`` works whatever was imported first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return generate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
