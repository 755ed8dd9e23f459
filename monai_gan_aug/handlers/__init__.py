# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers: checkpoint/resume, sample grids, synthetic-set writer, progress, and the evaluation handlers
(GAN metrics, box fidelity, downstream detection / segmentation / classification, the benefit protocol)."""

from __future__ import annotations

from .benefit import BenefitHandler
from .checkpoint import GanCheckpointHandler
from .detection import DetectionEvaluationHandler
from .downstream import ClassificationEvaluationHandler, SegmentationEvaluationHandler
from .fidelity import BoxFidelityHandler
from .mask_checks import HonoursMaskHandler, SyntheticSetMetrics
from .metrics import GanMetricHandler
from .mix import SyntheticMixEpochHandler, write_synthetic_set
from .progress import GanProgressBar, TrainingSummary
from .progressive import ProgressiveGrowingHandler
from .sample_grid import SampleGridSaver
from .settings import TrainingSettingsSaver
from .writer import DiskSpaceError, SyntheticWriter, config_hash, file_sha256, reference_affine

__all__ = [
    "BenefitHandler",
    "GanCheckpointHandler",
    "DetectionEvaluationHandler",
    "ClassificationEvaluationHandler",
    "SegmentationEvaluationHandler",
    "BoxFidelityHandler",
    "HonoursMaskHandler",
    "SyntheticSetMetrics",
    "GanMetricHandler",
    "SyntheticMixEpochHandler",
    "write_synthetic_set",
    "GanProgressBar",
    "TrainingSummary",
    "ProgressiveGrowingHandler",
    "SampleGridSaver",
    "TrainingSettingsSaver",
    "SyntheticWriter",
    "DiskSpaceError",
    "config_hash",
    "file_sha256",
    "reference_affine",
]
