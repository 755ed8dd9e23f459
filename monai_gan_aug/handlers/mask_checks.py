# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Handlers of a generation workflow that check a generated set: does each image honour its mask
(:class:`HonoursMaskHandler`), and how far is the set from real images (:class:`SyntheticSetMetrics`, FID / KID)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_gan_aug.metrics.honours_mask import HonoursMaskMetric
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import json_safe

__all__ = ["HonoursMaskHandler", "SyntheticSetMetrics"]

logger = logging.getLogger(__name__)


class HonoursMaskHandler:
    """Ignite handler for a generation workflow: segments every generated ``image`` with ``segmenter`` and, at the
    end, scores the segmentations against the input masks (the output's ``cond`` map) with
    :class:`~monai_gan_aug.metrics.honours_mask.HonoursMaskMetric`.

    The result goes to ``engine.state.metrics["honours_mask"]`` and, with ``output_path``, a JSON file.

    Args:
        segmenter: network ``(N, C, *spatial) -> (N, num_classes, *spatial)`` logits, trained on real images.
        num_classes: classes of the masks, background included.
        output_path: JSON file to write (folders are created).
        mask_key: output key of the input masks (``cond``; ``label`` for binary masks works too).
        include_background: count class 0.
        seed: seed of the shuffled control.
    """

    def __init__(
        self,
        segmenter: torch.nn.Module,
        num_classes: int = 2,
        output_path: str | Path | None = None,
        mask_key: str = GanKeys.COND,
        include_background: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(segmenter, torch.nn.Module):
            raise TypeError(f"segmenter must be an nn.Module, got {type(segmenter).__name__}.")
        self.segmenter, self.num_classes = segmenter, int(num_classes)
        self.output_path = Path(output_path) if output_path else None
        self.mask_key, self.include_background, self.seed = str(mask_key), bool(include_background), int(seed)
        self.metric = HonoursMaskMetric(self.num_classes, self.include_background, self.seed)
        self.result: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._compute)

    def _reset(self, engine: Engine) -> None:
        self.metric.reset()
        self.segmenter.to(engine.state.device).eval()

    @torch.no_grad()
    def _update(self, engine: Engine) -> None:
        out = engine.state.output
        if self.mask_key not in out:
            raise ValueError(
                f"HonoursMaskHandler: the generation output has no {self.mask_key!r} (keys {sorted(map(str, out))}); "
                "the objective must return the input masks (Pix2Pix with a label condition does)."
            )
        images = out[GanKeys.IMAGE].to(engine.state.device).float()
        logits = self.segmenter(images)
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"HonoursMaskHandler: the segmenter gives {logits.shape[1]} channels for {self.num_classes} classes."
            )
        self.metric.append(logits.argmax(1, keepdim=True), out[self.mask_key])

    def _compute(self, engine: Engine) -> None:
        self.result = self.metric.aggregate()
        engine.state.metrics["honours_mask"] = self.result
        logger.info(
            "output honours its mask: Dice %.3f vs %.3f with shuffled masks (margin %.3f, %d samples)",
            self.result["dice"], self.result["dice_shuffled"], self.result["margin"], self.result["n"],
        )  # fmt: skip
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self.output_path.write_text(json.dumps(json_safe(self.result), indent=1))


class SyntheticSetMetrics:
    """Ignite handler for a generation workflow: GAN metrics (:mod:`monai_gan_aug.metrics.gan_metrics`, e.g. FID,
    KID) of the generated ``image`` batches against real images, in the feature space of ``extractor``.

    Real images come from the workflow's own batches (``real_key``: e.g. the paired real image of a Pix2Pix
    condition, or domain B of a CycleGAN test set) and/or from ``real_loader`` (read once when the run starts).
    Results go to ``engine.state.metrics[name]`` and, with ``output_path``, a JSON file.

    Args:
        extractor: a :class:`~monai_gan_aug.metrics.extractors.FeatureExtractor` (images in ``[-1, 1]``).
        metrics: metric names understood by ``monai_gan_aug.metrics.gan_metrics.create_metric``.
        real_key: key of real images in the generation batches.
        real_loader: dict batches with real images under ``real_loader_key``.
        real_loader_key: see ``real_loader``.
        output_path: JSON file.
        metric_kwargs: per-metric constructor arguments, e.g. ``{"fid": {"n_bootstrap": 0}}``.
    """

    def __init__(
        self,
        extractor: torch.nn.Module,
        metrics: Sequence[str] = ("fid", "kid"),
        real_key: str | None = None,
        real_loader: Iterable | None = None,
        real_loader_key: str = GanKeys.IMAGE,
        output_path: str | Path | None = None,
        metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        from monai_gan_aug.metrics.gan_metrics import create_metric

        if real_key is None and real_loader is None:
            raise ValueError("SyntheticSetMetrics needs real images: give real_key and/or real_loader.")
        kwargs = dict(metric_kwargs or {})
        self.metrics = {name: create_metric(name, **dict(kwargs.get(name, {}))) for name in metrics}
        self.extractor = extractor
        self.real_key = None if real_key is None else str(real_key)
        self.real_loader, self.real_loader_key = real_loader, str(real_loader_key)
        self.output_path = Path(output_path) if output_path else None
        self.results: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._compute)

    def _features(self, images: Any, device: torch.device) -> torch.Tensor:
        return self.extractor.extract(torch.as_tensor(images).float().to(device))

    def _start(self, engine: Engine) -> None:
        device = engine.state.device
        self.extractor.to(device)
        for m in self.metrics.values():
            m.reset()
        if self.real_loader is not None:
            for batch in self.real_loader:
                feats = self._features(batch[self.real_loader_key], device)
                for m in self.metrics.values():
                    m(y=feats)

    def _update(self, engine: Engine) -> None:
        device = engine.state.device
        fake = self._features(engine.state.output[GanKeys.IMAGE], device)
        real = None
        if self.real_key is not None:
            batch = engine.state.batch
            if not isinstance(batch, Mapping) or self.real_key not in batch:
                raise ValueError(f"SyntheticSetMetrics: the generation batches hold no real images under {self.real_key!r}.")
            real = self._features(batch[self.real_key], device)
        for m in self.metrics.values():
            m(y_pred=fake, y=real)

    def _compute(self, engine: Engine) -> None:
        for m in self.metrics.values():
            self.results.update(m.aggregate())
        engine.state.metrics.update(self.results)
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self.output_path.write_text(json.dumps(json_safe(self.results), indent=1))
