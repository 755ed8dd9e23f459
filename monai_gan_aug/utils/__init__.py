# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Enums and small utilities."""

from __future__ import annotations

from .enums import GanKeys, Provenance

__all__ = ["GanKeys", "Provenance"]
