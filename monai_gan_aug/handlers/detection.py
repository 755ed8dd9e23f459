# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handler running the downstream YOLO detection experiment (Han et al. 2019, Table 1) from any engine."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import attached_objects, dist_info

__all__ = ["DetectionEvaluationHandler"]

logger = logging.getLogger(__name__)


def _is_writer(obj: Any) -> bool:
    from monai_gan_aug.handlers.writer import SyntheticWriter

    return isinstance(obj, SyntheticWriter)


def _writers_of(engine: Engine) -> list[Any]:
    """SyntheticWriter instances attached to ``engine`` (as handlers or through their bound methods)."""
    return [obj for obj in attached_objects(engine) if _is_writer(obj)]


class _ExperimentHandler:
    """What the experiment handlers share: when to run (``interval``), where to write, which synthetic set.

    ``forbidden``: ``experiment_kwargs`` that the handler's own arguments set; ``accepted``: what ``synthetic`` may
    be, in words.
    """

    forbidden: tuple[str, ...] = ("real_datalist", "synthetic", "out_dir")
    accepted = "a folder, a list of folders or a SyntheticWriter"

    def __init__(
        self,
        real_datalist: Any,
        output_dir: str | os.PathLike,
        synthetic: Any,
        interval: int | None,
        prefix: str,
        experiment_kwargs: Mapping[str, Any],
    ) -> None:
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
            raise ValueError(f"interval must be None or a positive number of epochs, got {interval!r}.")
        for bad in self.forbidden:
            if bad in experiment_kwargs:
                raise TypeError(f"{type(self).__name__}: pass {bad!r} once (as the handler's argument), not again.")
        self.real_datalist = real_datalist
        self.output_dir = Path(output_dir)
        self.synthetic = synthetic
        self.interval = interval
        self.prefix = prefix
        self.experiment_kwargs = dict(experiment_kwargs)
        self.table: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        event = Events.EPOCH_COMPLETED(every=self.interval) if self.interval else Events.COMPLETED
        engine.add_event_handler(event, self)

    def _out_dir(self, engine: Engine) -> Path:
        """The experiment folder of this call: ``epoch<N>/`` under ``output_dir`` with ``interval``."""
        return self.output_dir / f"epoch{engine.state.epoch}" if self.interval else self.output_dir

    def _synthetic_sources(self, engine: Engine) -> list[str]:
        """The synthetic folders: ``synthetic`` as given, else those of every ``SyntheticWriter`` attached to
        ``engine`` (a writer's ``datalist.json`` is (re)written first from the records so far)."""
        given = self.synthetic
        if given is None:
            entries: list[Any] = _writers_of(engine)
        elif _is_writer(given) or isinstance(given, (str, os.PathLike)):
            entries = [given]
        elif isinstance(given, Sequence):
            entries = list(given)
        else:
            raise TypeError(f"synthetic must be {self.accepted}, got {type(given).__name__}.")
        sources = []
        for entry in entries:
            if _is_writer(entry):
                entry.write_manifest()  # datalist.json of everything written so far (idempotent)
                sources.append(str(entry.output_dir))
            else:
                sources.append(str(entry))
        return sources


class DetectionEvaluationHandler(_ExperimentHandler):
    """Runs :func:`~monai_gan_aug.evaluation.detection.run_detection_experiment` when an engine completes (or every
    ``interval`` epochs) and logs the table's means into ``engine.state.metrics``.

    Han et al., "Learning More with Less: GAN-based Medical Image Augmentation" (Med. Imaging Tech. 37(3), 2019)
    judge their synthetic set by what it does for YOLOv3: mAP, sensitivity and false positives per slice at IoU 0.5
    and 0.25 on real test slices, trained with and without the synthetic images. Attach this handler to the
    generation evaluator of an ``evaluate.json`` / ``inference.json`` after its
    :class:`~monai_gan_aug.handlers.SyntheticWriter`, and the synthetic set just written is scored the same way.

    Synthetic set, in order: ``synthetic`` when given (folders / datalist JSONs, or a ``SyntheticWriter``), else every
    ``SyntheticWriter`` attached to the engine (its ``datalist.json`` is (re)written first from the records so far).

    Metrics: for each ratio ``r`` and metric ``m`` of the table (``map@0.5``, ``sensitivity@0.5``,
    ``fp_per_slice@0.5``, ``map@0.25`` ...), ``engine.state.metrics[f"{prefix}/ratio{r}/{m}"]`` is the mean over the
    seeds (``nan`` when undefined); the whole table is also in ``engine.state.detection_table``. Only rank 0 runs it.

    Args:
        real_datalist: real datalist (JSON, folder, or ``None`` for the demo dataset); its test split is scored.
        output_dir: experiment folder (``epoch<N>/`` subfolders when ``interval`` is set).
        synthetic: see above.
        ratios: synthetic : real train-image ratios, one table row each.
        seeds: trainings per row.
        interval: run every ``interval`` epochs instead of once at ``COMPLETED``.
        prefix: metric name prefix.
        experiment_kwargs: other arguments of ``run_detection_experiment`` (``model``, ``epochs``, ``imgsz``,
            ``batch``, ``min_box_contrast``, ``max_synthetic``, ``device``, ``conf``, ``iou_thresholds`` ...).
    """

    forbidden = ("real_datalist", "synthetic", "ratios", "seeds", "out_dir")

    def __init__(
        self,
        real_datalist: str | os.PathLike | None,
        output_dir: str | os.PathLike,
        synthetic: Any = None,
        ratios: Sequence[float] = (0, 1),
        seeds: Sequence[int] = (0,),
        interval: int | None = None,
        prefix: str = "detection",
        **experiment_kwargs: Any,
    ) -> None:
        super().__init__(real_datalist, output_dir, synthetic, interval, prefix, experiment_kwargs)
        self.ratios = [float(r) for r in ratios]
        self.seeds = [int(s) for s in seeds]

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        from monai_gan_aug.evaluation.detection import run_detection_experiment

        sources = self._synthetic_sources(engine)
        ratios = self.ratios
        if not sources and any(r > 0 for r in ratios):
            logger.warning("DetectionEvaluationHandler: no synthetic set found; only the real-only row is computed.")
            ratios = [r for r in ratios if r == 0] or [0.0]
        out = self._out_dir(engine)
        table = run_detection_experiment(
            self.real_datalist, sources or None, ratios=ratios, seeds=self.seeds, out_dir=out,
            **self.experiment_kwargs,
        )
        self.table = table
        engine.state.detection_table = table
        for row in table["rows"]:
            for key, summary in row["metrics"].items():
                mean = summary.get("mean") if isinstance(summary, Mapping) else None
                engine.state.metrics[f"{self.prefix}/ratio{row['ratio']:g}/{key}"] = (
                    float(mean) if mean is not None else float("nan")
                )
        logger.info("detection table of epoch %d written to %s", engine.state.epoch, out)
