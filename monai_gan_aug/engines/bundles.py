# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Finding and running the project's MONAI bundles from Python (what ``python -m monai.bundle run`` does, with
overrides given as a dict)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["bundle_root", "list_bundles", "run_bundle"]

logger = logging.getLogger(__name__)

_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def bundle_root(name: str) -> Path:
    """Folder of bundle ``name`` (``bundles/<name>`` of this repository)."""
    root = _REPO_BUNDLES / name
    if not (root / "configs").is_dir():
        raise FileNotFoundError(f"no bundle named {name!r} in {_REPO_BUNDLES}; available: {list_bundles()}.")
    return root


def list_bundles() -> list[str]:
    return sorted(p.name for p in _REPO_BUNDLES.iterdir() if (p / "configs" / "train.json").is_file()) if _REPO_BUNDLES.is_dir() else []


def run_bundle(
    name: str,
    config: str | Sequence[str] = "train.json",
    overrides: Mapping[str, Any] | None = None,
    workflow_type: str = "train",
) -> Any:
    """Run ``bundles/<name>/configs/<config>`` through MONAI's :class:`~monai.bundle.ConfigWorkflow`
    (initialize / run / finalize) with ``overrides`` (ids as on the command line: ``output_dir``, ``max_epochs``,
    ``train#dataloader#batch_size``...). Returns the workflow."""
    from monai.bundle import ConfigWorkflow

    root = bundle_root(name)
    files = [str(root / "configs" / c) for c in ([config] if isinstance(config, str) else config)]
    wf = ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=str(root / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        **dict(overrides or {}),
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf
