# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Deprecated: the parts of this former grab-bag now live on their floors (kept for one release, so train and
inference configs of exported bundles keep loading; their evaluate configs name the two handlers below, whose
``_target_`` must be updated):

* :class:`~monai_gan_aug.losses.objectives.two_stage.MaskDCGANObjective`,
  :class:`~monai_gan_aug.losses.objectives.two_stage.TwoStageObjective`;
* :func:`~monai_gan_aug.data.items.select_keys`, :func:`~monai_gan_aug.data.items.seeded_items`;
* :func:`~monai_gan_aug.metrics.honours_mask.honours_mask`;
* :func:`~monai_gan_aug.engines.reference_segmenter.fit_reference_segmenter`, ``reference_segmenter``,
  ``load_segmenter``;
* the handlers ``HonoursMaskHandler`` and ``SyntheticSetMetrics``: :mod:`monai_gan_aug.handlers` (handlers sit above
  engines, so this module cannot re-export them).
"""

from __future__ import annotations

import warnings
from typing import Any

from monai_gan_aug.data.items import seeded_items, select_keys
from monai_gan_aug.engines.reference_segmenter import fit_reference_segmenter, load_segmenter, reference_segmenter
from monai_gan_aug.losses.objectives.two_stage import MaskDCGANObjective, TwoStageObjective
from monai_gan_aug.metrics.honours_mask import honours_mask

__all__ = [
    "MaskDCGANObjective",
    "TwoStageObjective",
    "fit_reference_segmenter",
    "honours_mask",
    "load_segmenter",
    "reference_segmenter",
    "seeded_items",
    "select_keys",
]

warnings.warn("monai_gan_aug.engines.two_stage is deprecated: import from monai_gan_aug.losses.objectives, "
              "monai_gan_aug.data, monai_gan_aug.metrics and monai_gan_aug.engines; HonoursMaskHandler and "
              "SyntheticSetMetrics are monai_gan_aug.handlers.HonoursMaskHandler / .SyntheticSetMetrics.",
              FutureWarning, stacklevel=2)

_MOVED_HANDLERS = ("HonoursMaskHandler", "SyntheticSetMetrics")


def __getattr__(name: str) -> Any:
    if name in _MOVED_HANDLERS:
        raise AttributeError(f"monai_gan_aug.engines.two_stage.{name} moved to monai_gan_aug.handlers.{name}; "
                             "update the config's _target_.")
    raise AttributeError(f"module 'monai_gan_aug.engines.two_stage' has no attribute {name!r}")
