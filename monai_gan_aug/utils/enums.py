# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Keys shared by the engine, objectives, handlers and transforms."""

from __future__ import annotations

from monai.utils import StrEnum

__all__ = ["GanKeys", "Provenance"]


class GanKeys(StrEnum):
    """Keys of batch dictionaries and of the GAN engine's per-iteration output."""

    IMAGE = "image"
    LABEL = "label"
    TISSUE = "tissue"
    BOXES = "boxes"
    BOX_LABELS = "box_labels"
    CLASS = "class"
    COND = "cond"
    REALS = "reals"
    FAKES = "fakes"
    LATENTS = "latents"
    LOSSES = "losses"
    G_LOSS = "g_loss"
    D_LOSS = "d_loss"


class Provenance(StrEnum):
    """Keys that mark where a sample came from (written into data dicts and image metadata)."""

    SYNTHETIC = "synthetic"
    SOURCE = "source"
    CHECKPOINT = "checkpoint"
    SEED = "seed"
    CONFIG_HASH = "config_hash"
