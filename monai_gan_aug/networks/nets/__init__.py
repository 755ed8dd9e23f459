# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""One module per generator family."""

from __future__ import annotations

from .alpha_wgan import (
    AlphaWGANDiscriminator,
    AlphaWGANEncoder,
    AlphaWGANGenerator,
    CodeDiscriminator,
    alpha_wgan_networks,
)
from .cyclegan import ResidualBlock, ResNetGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .fastgan import FastGANDiscriminator, FastGANGenerator
from .ga_unet import BatchRenorm, GAUNetCritic, GAUNetGenerator
from .lesion_inpaint import LesionInpaintCritic, LesionInpaintGenerator
from .pix2pix import Pix2PixGenerator

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "AlphaWGANGenerator",
    "AlphaWGANDiscriminator",
    "AlphaWGANEncoder",
    "CodeDiscriminator",
    "alpha_wgan_networks",
    "FastGANGenerator",
    "FastGANDiscriminator",
    "GAUNetGenerator",
    "GAUNetCritic",
    "BatchRenorm",
    "Pix2PixGenerator",
    "LesionInpaintGenerator",
    "LesionInpaintCritic",
    "ResNetGenerator",
    "ResidualBlock",
]
