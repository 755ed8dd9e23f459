# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Boxes of a collated batch: the per-image box and label lists a DataLoader gives (ragged lists with
:func:`~monai_gan_aug.data.gan_collate`, or one padded tensor with MONAI's default collate when every image has as
many boxes), and their condition maps, for box-conditioned generation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_gan_aug.transforms.boxes.array import as_box_array, boxes_to_condition_map

__all__ = ["box_conditions", "box_labels_as_list", "boxes_as_list", "condition_map_batch"]


def boxes_as_list(boxes: Any, n: int, spatial_dims: int) -> list[torch.Tensor]:
    """Per-sample ``(N_i, 2 * D)`` float32 CPU tensors from what a DataLoader gives: a list of tensors / arrays /
    nested lists (:func:`~monai_gan_aug.data.gan_collate`), or one ``(n, M, 2 * D)`` tensor
    (MONAI's default collate when every image has ``M`` boxes); None gives ``n`` empty sets."""
    if boxes is None:
        return [torch.zeros((0, 2 * spatial_dims)) for _ in range(n)]
    if isinstance(boxes, (torch.Tensor, np.ndarray)) and np.ndim(boxes) == 3 or isinstance(boxes, Sequence) and not isinstance(boxes, str):
        items = list(boxes)
    else:
        raise TypeError(
            f"boxes must be a per-image list (use collate_fn=monai_gan_aug.data.gan_collate), "
            f"got {type(boxes).__name__} of shape {getattr(boxes, 'shape', None)}."
        )
    if len(items) != n:
        raise ValueError(f"got box lists for {len(items)} images but {n} images in the batch.")
    return [torch.as_tensor(as_box_array(b, spatial_dims=spatial_dims), dtype=torch.float32) for b in items]


def box_labels_as_list(labels: Any, boxes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-sample ``(N_i,)`` int64 label tensors matching ``boxes`` (all 0 when ``labels`` is None)."""
    if labels is None:
        return [torch.zeros(len(b), dtype=torch.int64) for b in boxes]
    items = list(labels)
    if len(items) != len(boxes):
        raise ValueError(f"got box labels for {len(items)} images but boxes for {len(boxes)}.")
    out = []
    for lab, b in zip(items, boxes):
        t = torch.as_tensor(np.asarray(lab.detach().cpu() if isinstance(lab, torch.Tensor) else lab, dtype=np.int64))
        t = t.reshape(-1)
        if len(t) != len(b):
            raise ValueError(f"an image has {len(b)} boxes but {len(t)} box labels.")
        out.append(t)
    return out


def condition_map_batch(boxes: Sequence[Any], spatial_size: Sequence[int]) -> torch.Tensor:
    """``(N, 1, *spatial_size)`` box maps, 1 inside any box (:func:`boxes_to_condition_map` per sample)."""
    if not len(boxes):
        return torch.zeros((0, 1, *spatial_size))
    return torch.stack([boxes_to_condition_map(b, spatial_size) for b in boxes])


def box_conditions(batch: Any, num: int, spatial_size: Sequence[int], owner: str = "generation"
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """The first ``num`` box sets of a generation batch (``boxes`` and optional ``box_labels``, e.g. a
    ``BoxConditionDataset`` batch) as per-sample boxes, labels and their ``(num, 1, *spatial_size)`` box maps.
    ``owner`` names the caller in the errors raised when the batch holds no or too few box sets."""
    given = batch.get("boxes") if isinstance(batch, dict) or hasattr(batch, "get") else None
    if given is None:
        raise ValueError(f"{owner} needs box sets: pass a batch with 'boxes' (e.g. a BoxConditionDataset over the "
                         "training run's BoxSampler).")
    given = list(given)
    if len(given) < num:
        raise ValueError(f"{owner}: the batch holds box sets for {len(given)} images, {num} requested.")
    boxes = boxes_as_list(given[:num], num, len(spatial_size))
    labels = batch.get("box_labels")
    labels = box_labels_as_list(list(labels)[:num] if labels is not None else None, boxes)
    return boxes, labels, condition_map_batch(boxes, spatial_size)
