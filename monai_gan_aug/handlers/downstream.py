# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers running the downstream segmentation / classification experiments from any engine.

Attach one to a bundle's generation evaluator (after its :class:`~monai_gan_aug.handlers.SyntheticWriter`) or to a
trainer, and the synthetic set is judged by what it does for a segmenter (DF-GAN Table 1, thyroid Table II) or a
classifier (GA-UNet Table III) trained on real + synthetic images, with the table's means logged into
``engine.state.metrics``. In an ``evaluate.json``::

    {"_target_": "monai_gan_aug.handlers.downstream.SegmentationEvaluationHandler",
     "real_datalist": "@dataset_dir", "output_dir": "$@output_dir + '/segmentation'",
     "n_synthetic": [0, 32, 64], "seeds": [0, 1, 2], "epochs": 60}
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine

from monai_gan_aug.engines.utils import dist_info
from monai_gan_aug.handlers.detection import _ExperimentHandler

__all__ = ["ClassificationEvaluationHandler", "SegmentationEvaluationHandler"]

logger = logging.getLogger(__name__)


class _DownstreamEvaluationHandler(_ExperimentHandler):
    """Shared logic: when to run, which synthetic set, how the table reaches ``engine.state``."""

    kind = ""  # "segmentation" / "classification"
    accepted = "a folder, a list of folders, a dict name -> folder or a SyntheticWriter"

    def __init__(
        self,
        real_datalist: str | os.PathLike | Mapping | None,
        output_dir: str | os.PathLike,
        synthetic: Any = None,
        interval: int | None = None,
        prefix: str | None = None,
        **experiment_kwargs: Any,
    ) -> None:
        super().__init__(real_datalist, output_dir, synthetic, interval, prefix or self.kind, experiment_kwargs)

    def _synthetic(self, engine: Engine) -> Any:
        """The synthetic set(s) to use: ``synthetic`` as given (a dict keeps its named sets), else the folders of
        every ``SyntheticWriter`` attached to ``engine`` (their ``datalist.json`` is written first)."""
        if isinstance(self.synthetic, Mapping):
            return dict(self.synthetic)
        return self._synthetic_sources(engine) or None

    def _run(self, synthetic: Any, out: Path) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        synthetic = self._synthetic(engine)
        if synthetic is None:
            logger.warning("%s: no synthetic set found; only the real-only rows are computed.", type(self).__name__)
        out = self._out_dir(engine)
        table = self._run(synthetic, out)
        self.table = table
        setattr(engine.state, f"{self.kind}_table", table)
        for row in table["rows"]:
            for key, summary in row["metrics"].items():
                mean = summary.get("mean") if isinstance(summary, Mapping) else None
                value = float(mean) if mean is not None and math.isfinite(float(mean)) else float("nan")
                engine.state.metrics[f"{self.prefix}/{row['key']}/{key}"] = value
        logger.info("%s table of epoch %d written to %s", self.kind, engine.state.epoch, out)


class SegmentationEvaluationHandler(_DownstreamEvaluationHandler):
    """Runs :func:`~monai_gan_aug.evaluation.segmentation.run_segmentation_experiment` at ``COMPLETED`` (or every
    ``interval`` epochs) and logs the table into ``engine.state.metrics``.

    DF-GAN (Table 1) and the thyroid paper (Table II) judge their synthetic sets by the Dice / mIoU of a U-Net(++)
    trained with them. Metric names: ``f"{prefix}/{row_key}/{metric}"`` with ``row_key`` like ``real/r100_s0/noaug``
    or ``<set>/r100_s32/noaug`` and ``metric`` in ``dice``, ``miou``, ``dice_all`` (means over seeds; ``nan`` when
    undefined); the table is ``engine.state.segmentation_table``. Only rank 0 runs it.

    Args:
        real_datalist: real datalist (JSON, folder, dict of splits, ``None`` for the demo dataset).
        output_dir: experiment folder (``epoch<N>/`` subfolders with ``interval``).
        synthetic: synthetic set(s) with masks: folder(s), a dict name -> folder, or a ``SyntheticWriter``;
            ``None``: every ``SyntheticWriter`` attached to the engine.
        interval: run every ``interval`` epochs instead of once at ``COMPLETED``.
        prefix: metric name prefix (default ``"segmentation"``).
        experiment_kwargs: other arguments of ``run_segmentation_experiment`` (``real_sizes``, ``n_synthetic``,
            ``ratios``, ``classic_aug``, ``seeds``, ``network``, ``epochs``, ``image_size``, ...).
    """

    kind = "segmentation"

    def _run(self, synthetic: Any, out: Path) -> dict[str, Any]:
        from monai_gan_aug.evaluation.segmentation import run_segmentation_experiment

        return run_segmentation_experiment(self.real_datalist, synthetic, out_dir=out, **self.experiment_kwargs)


class ClassificationEvaluationHandler(_DownstreamEvaluationHandler):
    """Runs :func:`~monai_gan_aug.evaluation.classification.run_classification_experiment` at ``COMPLETED`` (or
    every ``interval`` epochs) and logs the table into ``engine.state.metrics``.

    GA-UNet (Table III) judges its synthetic images by the accuracy, precision, recall and AUC of ResNet / DenseNet /
    SVM classifiers trained with them. Metric names: ``f"{prefix}/{row_key}/{metric}"`` with ``row_key`` like
    ``resnet18/real/r224_s0/noaug`` and ``metric`` in ``accuracy``, ``precision``, ``recall``, ``auc``; the table is
    ``engine.state.classification_table``. With ``score_synthetic=True`` the thesis' check also runs (a classifier
    trained on real images scores the synthetic set): ``f"{prefix}/synthetic_scored/{accuracy|mean_confidence}"``.

    Args:
        real_datalist: real datalist whose items carry ``class``.
        output_dir: experiment folder.
        synthetic: synthetic set(s) whose items carry ``class`` (see :class:`SegmentationEvaluationHandler`).
        interval: run every ``interval`` epochs instead of once at ``COMPLETED``.
        prefix: metric name prefix (default ``"classification"``).
        score_synthetic: also run ``score_synthetic_with_real_classifier`` (first network, first seed).
        experiment_kwargs: other arguments of ``run_classification_experiment`` (``networks``, ``n_synthetic``,
            ``ratios``, ``seeds``, ``epochs``, ``image_size``, ``default_class``, ...).
    """

    kind = "classification"

    def __init__(self, real_datalist: Any, output_dir: str | os.PathLike, synthetic: Any = None,
                 interval: int | None = None, prefix: str | None = None, score_synthetic: bool = False,
                 **experiment_kwargs: Any) -> None:
        super().__init__(real_datalist, output_dir, synthetic, interval, prefix, **experiment_kwargs)
        self.score_synthetic = bool(score_synthetic)
        self.scores: dict[str, Any] | None = None

    def _run(self, synthetic: Any, out: Path) -> dict[str, Any]:
        from monai_gan_aug.evaluation.classification import (
            run_classification_experiment,
            score_synthetic_with_real_classifier,
        )

        table = run_classification_experiment(self.real_datalist, synthetic, out_dir=out, **self.experiment_kwargs)
        if self.score_synthetic and synthetic is not None:
            kw = self.experiment_kwargs
            nets = kw.get("networks", ("resnet18",))
            net = nets if isinstance(nets, str) else next(iter(nets))
            keep = ("epochs", "image_size", "batch_size", "lr", "num_classes", "label_key", "default_class", "device",
                    "percentiles")
            self.scores = score_synthetic_with_real_classifier(
                self.real_datalist, synthetic, network=net, seed=int(next(iter(kw.get("seeds", (0,))))),
                network_kwargs=dict(kw.get("network_kwargs") or {}).get(str(net)), out_dir=out,
                **{k: kw[k] for k in keep if k in kw},
            )
            table = {**table, "synthetic_scores": self.scores}
        return table

    def __call__(self, engine: Engine) -> None:
        super().__call__(engine)
        if self.scores is not None and dist_info()[0] == 0:
            for key in ("accuracy", "mean_confidence"):
                v = self.scores.get(key)
                engine.state.metrics[f"{self.prefix}/synthetic_scored/{key}"] = float(v) if v is not None else float("nan")
