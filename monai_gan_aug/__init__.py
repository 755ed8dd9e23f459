# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""monai_gan_aug: MONAI-native GAN-based augmentation for small medical imaging datasets."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
