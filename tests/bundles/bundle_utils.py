# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Helpers for the per-bundle tests: a tiny demo dataset and running a bundle config in-process."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=4)
def tiny_demo(root: str, spatial_dims: int = 2, image_size: int = 32) -> str:
    from monai_gan_aug.data.demo import make_demo_dataset

    kw = dict(n_patients=3, slices_per_patient=2, image_size=image_size) if spatial_dims == 2 else dict(
        n_patients=3, image_size=image_size
    )
    return str(make_demo_dataset(root, spatial_dims=spatial_dims, seed=0, **kw))


def run_config(bundle: str, configs, overrides: dict, workflow_type: str = "train"):
    """Run ``configs`` of ``bundle`` in-process, composed with the bundle's ``configs/common.json`` (``run_bundle``)."""
    from monai_gan_aug.bundles import run_bundle

    return run_bundle(bundle, configs, overrides, workflow_type=workflow_type)


def config_list(bundle: str, config) -> str:
    """The ``--config_file`` value of ``config`` (a name or a list of names in ``bundles/<bundle>/configs``) composed
    with the bundle's ``common.json``, relative to the repo root: ``"['bundles/b/configs/common.json',...]"``."""
    from monai_gan_aug.engines.bundles import bundle_config_files

    files = [p.relative_to(REPO).as_posix() for p in bundle_config_files(REPO / "bundles" / bundle, config)]
    return "[" + ",".join(f"'{f}'" for f in files) + "]" if len(files) > 1 else files[0]


def bundle_cli(bundle: str, config, *args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run --config_file "['bundles/<bundle>/configs/common.json','bundles/<bundle>/configs/
    <config>']" ARGS`` from the repo root."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_list(bundle, config), *args]
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)


def chain_text(exc: BaseException) -> str:
    """Messages of an exception and its causes: MONAI's config parser wraps the user-facing error."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)
