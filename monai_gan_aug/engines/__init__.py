# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The GAN trainer, the generation workflow and their helpers."""

from __future__ import annotations

from .gan_trainer import GanTrainer, NonFiniteLossError
from .generation import GanGenerationEvaluator, SeedDataset, load_generator_weights
from .utils import RandomStates, StateDictGroup, dist_info, find_latest_checkpoint, losses_from_output

__all__ = [
    "GanTrainer",
    "NonFiniteLossError",
    "GanGenerationEvaluator",
    "SeedDataset",
    "load_generator_weights",
    "RandomStates",
    "StateDictGroup",
    "dist_info",
    "find_latest_checkpoint",
    "losses_from_output",
]
