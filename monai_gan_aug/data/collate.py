# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Collation that keeps per-image box lists ragged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.data import list_data_collate

__all__ = ["RAGGED_KEYS", "gan_collate"]

RAGGED_KEYS = ("boxes", "box_labels")


def _as_tensor(v: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.as_tensor(v, dtype=dtype) if not isinstance(v, torch.Tensor) else v


def gan_collate(batch: Sequence[Any], ragged_keys: Sequence[str] = RAGGED_KEYS) -> Any:
    """MONAI's :func:`~monai.data.list_data_collate`, except that ``ragged_keys`` (boxes and their labels, whose
    count differs per image) become a list of per-image tensors (``(N_i, 2*dims)`` float boxes, ``(N_i,)`` long
    labels) instead of failing to stack. Use it as the ``collate_fn`` of any loader over datalists with boxes."""
    if not batch or not isinstance(batch[0], Mapping):
        return list_data_collate(batch)
    flat = []
    for item in batch:  # list_data_collate also flattens lists of dicts (patch samplers)
        flat.extend(item if isinstance(item, list) else [item])
    present = [k for k in ragged_keys if k in flat[0]]
    ragged = {}
    for k in present:
        if k == "boxes":
            vals = [_as_tensor(d[k], torch.float32) for d in flat]
            ragged[k] = [v.reshape(-1, v.shape[-1] if v.ndim > 1 and v.shape[-1] else 4) for v in vals]
        else:
            ragged[k] = [_as_tensor(d[k], torch.long).reshape(-1) for d in flat]
    rest = [{k: v for k, v in d.items() if k not in present} for d in flat]
    out = list_data_collate(rest)
    out.update(ragged)
    return out
