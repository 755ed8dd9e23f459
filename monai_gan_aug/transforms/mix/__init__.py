# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Synthetic samples into a MONAI transform chain: ``SyntheticMix`` (image) and ``SyntheticMixd`` (whole sample)."""

from __future__ import annotations

from .array import SourceIndexStream, SyntheticMix
from .dictionary import SyntheticMixD, SyntheticMixd, SyntheticMixDict

__all__ = ["SourceIndexStream", "SyntheticMix", "SyntheticMixD", "SyntheticMixDict", "SyntheticMixd"]
