# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Does a mask-conditioned generator honour its masks?

A segmentation model trained on real images segments the synthetic images; Dice against their own input masks must
be clearly above Dice against the masks of other samples (a shuffled-mask control). :func:`honours_mask` is the
metric, :class:`HonoursMaskMetric` its cumulative form (the handler:
:class:`monai_gan_aug.handlers.HonoursMaskHandler`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.metrics import Cumulative

__all__ = ["HonoursMaskMetric", "honours_mask"]


def _derangement(n: int, seed: int) -> np.ndarray:
    """A random permutation without fixed points (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _dice_per_sample(pred: torch.Tensor, target: torch.Tensor, num_classes: int, include_background: bool) -> torch.Tensor:
    """``(N, classes)`` Dice via ``monai.metrics.compute_dice``; NaN where the target class is empty."""
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    return compute_dice(
        one_hot(pred.long(), num_classes), one_hot(target.long(), num_classes),
        include_background=include_background, ignore_empty=True,
    )  # fmt: skip


def honours_mask(
    predictions: torch.Tensor,
    masks: torch.Tensor,
    num_classes: int = 2,
    include_background: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Dice of segmentations of synthetic images against their own input masks and against shuffled masks.

    A generator that honours its mask gives a ``dice`` clearly above ``dice_shuffled`` (the same segmentations
    scored against the masks of other samples, a random derangement), i.e. a clearly positive ``margin``. Dice per
    sample is the mean over the foreground classes present in the target (``monai.metrics.compute_dice`` with
    ``ignore_empty=True``); samples whose target has none of them do not count.

    Args:
        predictions: ``(N, 1, *spatial)`` label maps predicted on the synthetic images.
        masks: ``(N, 1, *spatial)`` the masks the images were generated from.
        num_classes: classes, background included.
        include_background: count class 0 too.
        seed: seed of the shuffle.

    Returns:
        ``{"dice", "dice_shuffled", "margin", "n", "n_scored", "n_scored_shuffled", "dice_per_class",
        "dice_shuffled_per_class"}`` (floats, NaN when nothing could be scored; per-class dicts keyed by class).
    """
    if predictions.shape != masks.shape or predictions.ndim < 3 or predictions.shape[1] != 1:
        raise ValueError(
            f"honours_mask: predictions {tuple(predictions.shape)} and masks {tuple(masks.shape)} must both be "
            "(N, 1, *spatial) label maps."
        )
    n = int(masks.shape[0])
    if n < 2:
        raise ValueError(f"honours_mask: the shuffled control needs >= 2 samples, got {n}.")
    predictions, masks = predictions.detach().cpu(), masks.detach().cpu()
    matched = _dice_per_sample(predictions, masks, num_classes, include_background)
    shuffled = _dice_per_sample(predictions, masks[torch.from_numpy(_derangement(n, seed))], num_classes, include_background)

    first = 0 if include_background else 1

    def summary(d: torch.Tensor) -> tuple[float, int, dict[str, float]]:
        per_sample = torch.nanmean(d, dim=1)
        ok = ~torch.isnan(per_sample)
        value = float(per_sample[ok].mean()) if ok.any() else float("nan")
        per_class = {
            str(first + c): float(torch.nanmean(d[:, c])) if (~torch.isnan(d[:, c])).any() else float("nan")
            for c in range(d.shape[1])
        }
        return value, int(ok.sum()), per_class

    dice, n_ok, per_class = summary(matched)
    dice_sh, n_ok_sh, per_class_sh = summary(shuffled)
    return {
        "dice": dice,
        "dice_shuffled": dice_sh,
        "margin": dice - dice_sh,
        "n": n,
        "n_scored": n_ok,
        "n_scored_shuffled": n_ok_sh,
        "dice_per_class": per_class,
        "dice_shuffled_per_class": per_class_sh,
    }


class HonoursMaskMetric(Cumulative):
    """Cumulative form of :func:`honours_mask` (a MONAI ``Cumulative``): ``append(predictions, masks)`` per batch,
    ``aggregate()`` scores everything gathered so far (all ranks under DDP), ``reset()`` starts again.

    Args:
        num_classes, include_background, seed: as :func:`honours_mask`.
    """

    def __init__(self, num_classes: int = 2, include_background: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.num_classes, self.include_background, self.seed = int(num_classes), bool(include_background), int(seed)

    def append(self, predictions: torch.Tensor, masks: torch.Tensor) -> None:  # type: ignore[override]
        """Add a batch (its samples, so batches of any size gather into one ``(N, 1, *spatial)`` set): ``(N, 1, *spatial)`` predicted label maps and the masks the images were generated from."""
        super().extend(predictions.detach().to(torch.uint8).cpu(), masks.detach().to(torch.uint8).cpu())  # per sample

    def aggregate(self) -> dict[str, Any]:  # type: ignore[override]
        buffers = self.get_buffer()
        if not buffers or buffers[0] is None or not len(buffers[0]):
            raise ValueError("HonoursMaskMetric: nothing to score; append predictions and masks first.")
        predictions, masks = buffers
        return honours_mask(predictions, masks, self.num_classes, self.include_background, self.seed)
