# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""One module per generator family."""

from __future__ import annotations

from .dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]
