# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Training-time condition fidelity of a box-conditioned GAN (Han et al. 2019): every N iterations, generate from
fixed box sets and record how much brighter the requested boxes are than shuffled control boxes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import dist_info
from monai_gan_aug.evaluation.fidelity import BoxFidelity
from monai_gan_aug.transforms.boxes.array import as_box_array
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["BoxFidelityHandler"]

logger = logging.getLogger(__name__)


class BoxFidelityHandler:
    """Every ``interval`` iterations (and at the end), ``engine.generate`` ``num_samples`` images from fixed seeds
    and fixed box sets, and write :class:`~monai_gan_aug.evaluation.fidelity.BoxFidelity`'s values into
    ``engine.state.metrics`` (``<prefix>contrast``, ``<prefix>contrast_shuffled``, ``<prefix>contrast_gap``) and, with a
    ``log_dir`` or ``summary_writer``, to TensorBoard at the current iteration. Only rank 0 measures.

    The box sets are drawn once from ``sampler`` with the seeds ``seed, seed + 1, ...``; without a sampler they are
    the first training batch's boxes, repeated.

    Args:
        interval: iterations between measurements.
        num_samples: images per measurement.
        seed: first seed of the latents (and of the sampled box sets).
        sampler: a :class:`~monai_gan_aug.transforms.conditions.BoxSampler` (e.g. the training set's,
            ``"@box_sampler"`` in pggan_bbox's ``train.json``).
        log_dir: TensorBoard folder (a ``SummaryWriter`` is opened there).
        summary_writer: an existing writer (instead of ``log_dir``).
        prefix: metric name prefix.
        shuffle: control mode (``"roll"`` or ``"relocate"``).
        use_ema: generate with the EMA generator.
    """

    def __init__(
        self,
        interval: int = 100,
        num_samples: int = 32,
        seed: int = 4242,
        sampler: Any = None,
        log_dir: str | Path | None = None,
        summary_writer: Any = None,
        prefix: str = "fidelity_",
        shuffle: str = "roll",
        use_ema: bool = True,
    ) -> None:
        if interval < 1 or num_samples < 2:
            raise ValueError(f"interval must be >= 1 and num_samples >= 2, got {interval}, {num_samples}.")
        self.interval, self.num_samples, self.seed = int(interval), int(num_samples), int(seed)
        self.sampler = sampler
        self.log_dir = None if log_dir is None else Path(log_dir)
        self._writer = summary_writer
        self.prefix, self.shuffle, self.use_ema = prefix, shuffle, use_ema
        self.seeds = list(range(self.seed, self.seed + self.num_samples))
        self._batch: dict[str, list] | None = None
        self.history: list[tuple[int, dict[str, float]]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self._final)

    def _final(self, engine: Engine) -> None:
        if engine.state.iteration % self.interval:
            self(engine)
        if self._writer is not None and self.log_dir is not None:
            self._writer.flush()

    def _boxes(self, engine: Engine) -> dict[str, list] | None:
        if self._batch is not None:
            return self._batch
        if self.sampler is not None:
            drawn = [self.sampler.sample(s) for s in self.seeds]
            self._batch = {
                GanKeys.BOXES.value: [torch.as_tensor(b, dtype=torch.float32) for b, _ in drawn],
                GanKeys.BOX_LABELS.value: [torch.as_tensor(lab, dtype=torch.int64) for _, lab in drawn],
            }
        else:
            batch = engine.state.batch
            if not isinstance(batch, Mapping) or batch.get(GanKeys.BOXES) is None:
                return None
            given = list(batch[GanKeys.BOXES])
            labels = batch.get(GanKeys.BOX_LABELS)
            labels = list(labels) if labels is not None else [np.zeros(len(as_box_array(b)), dtype=np.int64) for b in given]
            reps = -(-self.num_samples // len(given))
            self._batch = {
                GanKeys.BOXES.value: [torch.as_tensor(as_box_array(b), dtype=torch.float32) for b in (given * reps)[: self.num_samples]],
                GanKeys.BOX_LABELS.value: [torch.as_tensor(np.asarray(lab), dtype=torch.int64) for lab in (labels * reps)[: self.num_samples]],
            }
        return self._batch

    def _writer_or_none(self) -> Any:
        if self._writer is None and self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def measure(self, engine: Engine) -> dict[str, float] | None:
        """Generate and measure now; returns the metric values (None when there are no box sets yet)."""
        batch = self._boxes(engine)
        if batch is None:
            logger.warning("BoxFidelityHandler: no box sampler and no training batch with boxes; skipped.")
            return None
        out = engine.generate(self.num_samples, batch=batch, seeds=self.seeds, use_ema=self.use_ema)
        metric = BoxFidelity(shuffle=self.shuffle, seed=self.seed)
        boxes: Sequence[Any] = out.get(GanKeys.BOXES, batch[GanKeys.BOXES.value])
        metric(out[GanKeys.IMAGE].float().cpu(), boxes)
        return metric.aggregate()

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        values = self.measure(engine)
        if values is None:
            return
        it = engine.state.iteration
        keep = ("contrast", "contrast_shuffled", "contrast_gap")
        for k in keep:
            engine.state.metrics[f"{self.prefix}{k}"] = values[k]
        self.history.append((it, {k: values[k] for k in keep}))
        writer = self._writer_or_none()
        if writer is not None:
            for k in keep:
                if np.isfinite(values[k]):
                    writer.add_scalar(f"{self.prefix}{k}", values[k], it)
        logger.info(
            "box fidelity at iteration %d: contrast %.3f, shuffled %.3f, gap %.3f", it, values["contrast"],
            values["contrast_shuffled"], values["contrast_gap"],
        )
