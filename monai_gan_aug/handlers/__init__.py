# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers: checkpoint/resume, sample grids, synthetic-set writer, progress."""

from __future__ import annotations

from .benefit import BenefitHandler
from .checkpoint import GanCheckpointHandler
from .progress import GanProgressBar, TrainingSummary
from .sample_grid import SampleGridSaver
from .settings import TrainingSettingsSaver
from .writer import DiskSpaceError, SyntheticWriter, config_hash, file_sha256, reference_affine

__all__ = [
    "BenefitHandler",
    "GanCheckpointHandler",
    "GanProgressBar",
    "TrainingSummary",
    "SampleGridSaver",
    "TrainingSettingsSaver",
    "SyntheticWriter",
    "DiskSpaceError",
    "config_hash",
    "file_sha256",
    "reference_affine",
]
