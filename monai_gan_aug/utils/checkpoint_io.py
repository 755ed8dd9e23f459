# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Safe reading of checkpoints: ``torch.load(..., weights_only=True)`` with a minimal allow list.

A pickle can call any Python function while it is read (``os.system`` included), so a checkpoint from an
untrusted source must never be unpickled freely. :func:`load_checkpoint` uses torch's restricted unpickler, which
rebuilds tensors, containers and plain Python values only, and allows in addition just what a checkpoint of this
project holds besides those: nothing for files written now (engine state, networks, optimizers, objective states
and random streams are all tensors and plain values), plus numpy's ``uint32`` array pieces that older checkpoints
used for numpy's random state. Any other global makes the load fail with :class:`UnsafeCheckpointError`, naming the
file and the global, before anything of the file was executed.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_checkpoint", "CheckpointError", "UnsafeCheckpointError", "allowed_checkpoint_globals"]


class CheckpointError(ValueError):
    """A checkpoint file could not be read (truncated, not a ``torch.save`` file, or refused as unsafe)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds a Python global this project never saves; it was not loaded because unpickling it could
    execute code. ``globals`` names the offending globals."""

    def __init__(self, message: str, globals: list[str] | None = None) -> None:
        super().__init__(message)
        self.globals = list(globals or [])


def allowed_checkpoint_globals() -> list[Any]:
    """The globals :func:`load_checkpoint` allows on top of torch's own ``weights_only`` set: numpy's array
    reconstruction for the ``np.random.get_state()`` tuples that checkpoints written before the random states were
    stored as tensors hold (the ``uint32`` key array). Nothing that can run arbitrary code."""
    from numpy._core import multiarray  # numpy >= 2; files written with numpy 1 name it numpy.core.multiarray

    reconstruct = multiarray._reconstruct
    return [
        reconstruct,
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.<>]+)")


def _offending_globals(path: Path, err: BaseException) -> list[str]:
    """The globals of ``path`` that are not allowed, read statically from the pickle (nothing is executed)."""
    found: list[str] = []
    try:
        with torch.serialization.safe_globals(allowed_checkpoint_globals()):
            found = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # an old-format or damaged file: fall back to the name in torch's message
        found = []
    if not found:
        found = _GLOBAL_RE.findall(str(err))[:1]
    return found


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Read a ``torch.save`` file with ``weights_only=True``.

    Args:
        path: checkpoint file (a :class:`~monai_gan_aug.handlers.GanCheckpointHandler` file, a state dict, ...).
        map_location: as for :func:`torch.load`.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnsafeCheckpointError: the file holds a Python global outside torch's ``weights_only`` set and
            :func:`allowed_checkpoint_globals` (e.g. a pickled object whose unpickling calls ``os.system``); the
            message names it. Nothing of the file was executed.
        CheckpointError: the file is truncated or not a ``torch.save`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    try:
        with torch.serialization.safe_globals(allowed_checkpoint_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        names = _offending_globals(path, err) if "GLOBAL" in text or "global" in text else []
        if names:
            raise UnsafeCheckpointError(
                f"checkpoint {path} was not loaded: it holds the Python global(s) {', '.join(names)}, which "
                "monai_gan_aug checkpoints never contain, and unpickling it could execute arbitrary code. Use a "
                "checkpoint written by this project's training (GanCheckpointHandler) or a plain state dict of "
                "tensors; if the file comes from a source you trust, load it yourself and re-save only its tensors "
                "with torch.save(module.state_dict(), path).",
                names,
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path} ({_unpickler_reason(text)}): the file is damaged, not a torch.save file, "
            "or holds pickled content that is refused because it could execute code; it was not loaded."
        ) from None
    except Exception as err:  # truncated zip, a text file, ...
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {_first_line(str(err))}): the file is truncated or "
            "not a torch.save file."
        ) from err


def _unpickler_reason(text: str) -> str:
    """The line of torch's weights-only error that says what was refused (its other lines suggest
    ``weights_only=False``, which this project never does)."""
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()[:300]
    return f"UnpicklingError: {_first_line(text)}"


def _first_line(text: str) -> str:
    """The first sentence of an error message (torch's zip-reader errors go on for several lines)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.split(". ")[0].rstrip(".")[:300]
