# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handler running the "does it help?" protocol (:func:`monai_gan_aug.evaluation.benefit.run_benefit`) when
an engine completes, e.g. after a bundle's training, with the verdicts logged into ``engine.state.metrics``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import dist_info
from monai_gan_aug.evaluation.benefit import run_benefit

__all__ = ["BenefitHandler"]

logger = logging.getLogger(__name__)


class BenefitHandler:
    """Runs :func:`~monai_gan_aug.evaluation.benefit.run_benefit` at ``event`` (default ``COMPLETED``) on rank 0.

    ``engine.state.metrics`` then holds, per real-data fraction and arm, the primary metric's mean
    (``benefit/<fraction>/<arm>``), its paired difference to the baseline (``.../delta``) and the interval's bounds
    (``.../low``, ``.../high``); the whole report is kept as :attr:`report`. In a config::

        {"_target_": "monai_gan_aug.handlers.BenefitHandler", "bundle": "pix2pix", "task": "segmentation",
         "dataset_dir": "@dataset_dir", "out_dir": "$@output_dir + '/benefit'", "seeds": [0, 1, 2, 3, 4]}

    Args:
        bundle, task, dataset_dir, out_dir: as :func:`run_benefit`.
        event: the engine event to run at.
        kwargs: further :func:`run_benefit` arguments (fractions, seeds, ratios, generator_overrides, ...).
    """

    def __init__(self, bundle: str, task: str, dataset_dir: Any = None, out_dir: str = "runs/benefit",
                 event: str = "COMPLETED", **kwargs: Any) -> None:
        if not hasattr(Events, event):
            raise ValueError(f"event must name an ignite Events member (e.g. 'COMPLETED'), got {event!r}.")
        self.bundle, self.task, self.dataset_dir, self.out_dir = bundle, task, dataset_dir, out_dir
        self.event = getattr(Events, event)
        self.kwargs = dict(kwargs)
        self.report: Mapping[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(self.event, self)

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        self.report = run_benefit(self.bundle, self.task, self.dataset_dir, self.out_dir, **self.kwargs)
        engine.state.metrics.update(benefit_metrics(self.report))
        logger.info("benefit report written to %s", self.out_dir)


def benefit_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``benefit/<fraction>/<arm>[/delta|/low|/high]`` numbers of a report's primary metric."""
    prim = report["primary"]
    out: dict[str, float] = {}
    rows: Sequence[Mapping[str, Any]] = report["rows"]
    for row in rows:
        for arm, entry in row["arms"].items():
            key = f"benefit/{row['fraction']:g}/{arm}"
            out[key] = float(entry[prim]["mean"])
            vs = entry[prim].get("vs_baseline")
            if vs is not None:
                out[f"{key}/delta"], out[f"{key}/low"], out[f"{key}/high"] = (
                    float(vs["difference"]), float(vs["low"]), float(vs["high"]))
    return out
