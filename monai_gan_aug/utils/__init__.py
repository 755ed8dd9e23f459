# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Enums and small utilities."""

from __future__ import annotations

from .checkpoint_io import CheckpointError, UnsafeCheckpointError, load_checkpoint
from .enums import GanKeys, Provenance
from .misc import as_bool, drop_none
from .settings import read_settings, trained_setting

__all__ = [
    "CheckpointError",
    "GanKeys",
    "Provenance",
    "UnsafeCheckpointError",
    "as_bool",
    "drop_none",
    "load_checkpoint",
    "read_settings",
    "trained_setting",
]
