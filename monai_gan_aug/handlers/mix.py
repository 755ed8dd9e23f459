# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""SyntheticMix in a training workflow: the handler that gives a :class:`~monai_gan_aug.data.SyntheticMixDataset`
a new mix every epoch, and the pre-generation of a synthetic set for a
:class:`~monai_gan_aug.data.FolderSource` (``SeedDataset`` -> ``GanGenerationEvaluator`` -> ``SyntheticWriter``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader

from monai_gan_aug.data.mix import MissingCheckpointError, SyntheticMixDataset
from monai_gan_aug.engines.generation import GanGenerationEvaluator, SeedDataset, load_generator_weights
from monai_gan_aug.handlers.writer import SyntheticWriter

__all__ = ["SyntheticMixEpochHandler", "write_synthetic_set"]

logger = logging.getLogger(__name__)


def write_synthetic_set(
    network: torch.nn.Module,
    objective: Any,
    output_dir: str | os.PathLike,
    num_samples: int,
    seed: int = 1_000_000,
    batch_size: int = 16,
    formats: Sequence[str] = ("nifti",),
    checkpoint: str | None = None,
    reference_image: str | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> Path:
    """Pre-generate a synthetic set exactly as a bundle's ``inference.json`` does (``SeedDataset`` ->
    ``GanGenerationEvaluator`` -> ``SyntheticWriter``) for an unconditional generator; returns the folder, ready for
    :class:`FolderSource`. ``checkpoint`` is loaded into ``network`` (EMA weights preferred) and recorded.

    The manifest is updated after every batch. A partial set left in ``output_dir`` by an interrupted call is
    resumed (only the missing samples are written) when ``checkpoint`` (its sha256), ``seed``, ``num_samples`` and
    ``formats`` match; ``overwrite=True`` deletes the set already there first (never files it did not write).

    Raises:
        MissingCheckpointError: ``checkpoint`` does not exist.
        FileExistsError: ``output_dir`` holds a complete set, or a partial set this call cannot resume, and
            ``overwrite`` is False; or it holds files that no ``SyntheticWriter`` wrote.
        DiskSpaceError: the set would not fit on the disk (checked before the first file is written).
    """
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise MissingCheckpointError(f"write_synthetic_set: generator checkpoint {checkpoint!r} not found.")
        load_generator_weights(network, checkpoint, name=getattr(objective, "generator_name", "generator"))
    writer = SyntheticWriter(
        output_dir, formats=formats, checkpoint=checkpoint, reference_image=reference_image, overwrite=overwrite,
        setting_name="output_dir",
    )
    loader = DataLoader(SeedDataset(num_samples, seed), batch_size=batch_size, shuffle=False, num_workers=0)
    evaluator = GanGenerationEvaluator(torch.device(device), loader, network, objective, handlers=[writer])
    evaluator.run()
    return Path(output_dir)


class SyntheticMixEpochHandler:
    """Ignite handler: ``target.set_epoch(engine.state.epoch - 1)`` at every ``EPOCH_STARTED``, so a
    :class:`SyntheticMixDataset` (or any object with ``set_epoch``) draws a new mix per epoch and follows its
    schedule. MONAI's ``Workflow`` calls ``set_epoch`` only on a ``DistributedSampler``.

    Args:
        target: an object with ``set_epoch(int)``, or a DataLoader whose dataset or sampler has one.
        offset: added to Ignite's 1-based epoch (default -1: the first epoch is epoch 0 of the schedule).
    """

    def __init__(self, target: Any, offset: int = -1) -> None:
        obj = target
        if not callable(getattr(obj, "set_epoch", None)):
            for attr in ("dataset", "sampler"):
                inner = getattr(target, attr, None)
                if callable(getattr(inner, "set_epoch", None)):
                    obj = inner
                    break
        if not callable(getattr(obj, "set_epoch", None)):
            raise TypeError(
                f"SyntheticMixEpochHandler: {type(target).__name__} has no set_epoch; pass the SyntheticMixDataset "
                "(or its DataLoader)."
            )
        self.target, self.offset = obj, int(offset)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Any) -> None:
        epoch = max(int(engine.state.epoch) + self.offset, 0)
        self.target.set_epoch(epoch)
        if isinstance(self.target, SyntheticMixDataset):
            plan = self.target.plan(epoch)
            logger.info(
                "SyntheticMix epoch %d: ratio %.3g, %d synthetic / %d real samples.",
                epoch, plan.ratio, plan.num_synthetic, plan.num_real,
            )
