# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""HonoursMaskMetric: batches of any size gather into one set, scored like honours_mask on the whole set."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.metrics import HonoursMaskMetric, honours_mask


def _masks(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    for i in range(n):
        x, y = torch.randint(0, 5, (2,), generator=g).tolist()
        masks[i, 0, y:y + 3, x:x + 3] = 1
    return masks


def test_batches_of_different_sizes_give_the_whole_set_score():
    masks = _masks(7, 0)
    metric = HonoursMaskMetric(num_classes=2, seed=3)
    metric.append(masks[:4], masks[:4])  # a perfect segmenter: Dice 1 against its own masks
    metric.append(masks[4:], masks[4:])
    got = metric.aggregate()
    want = honours_mask(masks, masks, 2, seed=3)
    assert got["n"] == 7 and got["dice"] == pytest.approx(1.0) and got["dice"] == want["dice"]
    assert got["dice_shuffled"] == pytest.approx(want["dice_shuffled"]) and got["margin"] > 0.5
    metric.reset()
    with pytest.raises(ValueError, match="nothing to score"):
        metric.aggregate()
