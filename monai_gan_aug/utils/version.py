# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The package version, on the bottom floor so every module (the MONAI Label app's info included) can read it."""

__version__ = "0.1.0"
