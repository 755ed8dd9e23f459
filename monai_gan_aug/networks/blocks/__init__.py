# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Shared network blocks."""

from __future__ import annotations

from .diffaugment import DiffAugment, diff_augment
from .patchgan import PATCHGAN_RECEPTIVE_FIELDS, PatchGANDiscriminator, patchgan_receptive_field, receptive_field
from .sle import SkipLayerExcitation

__all__ = [
    "DiffAugment",
    "diff_augment",
    "PatchGANDiscriminator",
    "patchgan_receptive_field",
    "receptive_field",
    "PATCHGAN_RECEPTIVE_FIELDS",
    "SkipLayerExcitation",
]
