# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The GAN trainer, the generation workflow and their helpers."""

from __future__ import annotations

from .bundles import generate, generator_checkpoint, model_file, run_bundle, workflow_bundle_root
from .export import check_network_data_format, export_bundle, metadata_inputs
from .gan_trainer import AdversarialTrainer, GanTrainer, NonFiniteLossError
from .generation import GanGenerationEvaluator, InfererCall, SeedDataset, generator_state_dict, load_generator_weights
from .generator_source import GeneratorSource
from .reference_segmenter import fit_reference_segmenter, load_segmenter, reference_segmenter
from .utils import RandomStates, StateDictGroup, dist_info, find_latest_checkpoint, losses_from_output

__all__ = [
    "AdversarialTrainer",
    "GeneratorSource",
    "fit_reference_segmenter",
    "load_segmenter",
    "reference_segmenter",
    "GanTrainer",
    "NonFiniteLossError",
    "GanGenerationEvaluator",
    "SeedDataset",
    "load_generator_weights",
    "generator_state_dict",
    "InfererCall",
    "generator_checkpoint",
    "model_file",
    "workflow_bundle_root",
    "run_bundle",
    "generate",
    "export_bundle",
    "check_network_data_format",
    "metadata_inputs",
    "RandomStates",
    "StateDictGroup",
    "dist_info",
    "find_latest_checkpoint",
    "losses_from_output",
]
