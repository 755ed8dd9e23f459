# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""One small objective per GAN family: its phases (which networks a loss trains) and how it generates."""

from __future__ import annotations

from .alpha_wgan import AlphaWGANObjective
from .base import GanObjective, NoiseToImageObjective, Phase, PhaseContext
from .cyclegan import CycleGANObjective
from .dfgan import DFGANObjective
from .fastgan import FastGANObjective
from .ga_unet import GAUNetObjective
from .lesion_inpaint import LesionInpaintObjective
from .noise import DCGANObjective, WGANGPObjective
from .pix2pix import Pix2PixObjective
from .two_stage import MaskDCGANObjective, TwoStageObjective

__all__ = [
    "GanObjective",
    "NoiseToImageObjective",
    "Phase",
    "PhaseContext",
    "DCGANObjective",
    "WGANGPObjective",
    "AlphaWGANObjective",
    "FastGANObjective",
    "GAUNetObjective",
    "Pix2PixObjective",
    "DFGANObjective",
    "CycleGANObjective",
    "LesionInpaintObjective",
    "MaskDCGANObjective",
    "TwoStageObjective",
]
