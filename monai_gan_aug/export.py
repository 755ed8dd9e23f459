# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``python -m monai_gan_aug.export``: a trained generator as a self-contained MONAI bundle folder
(:func:`monai_gan_aug.engines.export.export_bundle`).

Example::

    python -m monai_gan_aug.export --bundle pggan_bbox --run_dir runs/demo/pggan_bbox --out exported/pggan_bbox
    python -m monai.bundle run --config_file "['exported/pggan_bbox/configs/common.json','exported/pggan_bbox/configs/inference.json']" --num_samples 100
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_gan_aug.engines.export import export_bundle

__all__ = ["main", "export_bundle"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m monai_gan_aug.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="bundle name (bundles/<name>) or a bundle folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run_dir", default=None, help="training run folder (default: runs/<bundle>)")
    where.add_argument("--checkpoint", default=None, help="a checkpoint file (default: the run's newest)")
    p.add_argument("--out", required=True, help="folder to write the bundle to")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.add_argument("--no_program", action="store_true", help="skip models/model.pt2 (torch.export)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = export_bundle(args.bundle, args.out, run_dir=args.run_dir, checkpoint=args.checkpoint,
                            overwrite=args.overwrite, program=not args.no_program)
    except (FileNotFoundError, ValueError) as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    print(f"exported bundle: {out}")
    files = ",".join(f"'{out}/configs/{c}'" for c in ("common.json", "inference.json"))
    print(f'generate: python -m monai.bundle run --config_file "[{files}]" --num_samples 64')
    return 0


if __name__ == "__main__":
    sys.exit(main())
