# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""One small objective per GAN family: its phases (which networks a loss trains) and how it generates."""

from __future__ import annotations

from .base import GanObjective, NoiseToImageObjective, Phase, PhaseContext
from .noise import DCGANObjective, WGANGPObjective

__all__ = ["GanObjective", "NoiseToImageObjective", "Phase", "PhaseContext", "DCGANObjective", "WGANGPObjective"]
