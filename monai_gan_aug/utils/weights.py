# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Finding pretrained weight files on this machine: nothing is ever downloaded at run time."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["hub_checkpoints_dir", "local_weights_file"]


def hub_checkpoints_dir() -> Path:
    """torch hub's ``checkpoints`` folder, where torchvision and pytorch-fid keep the files they download."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def local_weights_file(
    weights_path: str | os.PathLike | None, env_var: str, patterns: Sequence[str], what: str
) -> Path | None:
    """The weight file to load, in this order: ``weights_path``; the file named by ``$env_var``; the first file of
    :func:`hub_checkpoints_dir` matching one of ``patterns`` (in pattern order). ``None`` when there is none.

    Raises:
        FileNotFoundError: ``weights_path`` or ``$env_var`` names a file that does not exist (``what`` names the
            weights in the message).
    """
    for given, source in ((weights_path, "weights_path"), (os.environ.get(env_var) or None, f"${env_var}")):
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{what}: {source} names {path}, which does not exist.")
            return path
    for pattern in patterns:
        hits = sorted(glob.glob(str(hub_checkpoints_dir() / pattern)))
        if hits:
            return Path(hits[0])
    return None
