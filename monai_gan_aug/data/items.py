# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Datalist items for configs: the keys a workflow reads (:func:`select_keys`) and seeded condition items for a
conditional generation workflow (:func:`seeded_items`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["seeded_items", "select_keys"]


def select_keys(items: Sequence[Mapping], keys: Sequence[str], optional_keys: Sequence[str] = ()) -> list[dict]:
    """Keep only ``keys`` (required) and ``optional_keys`` (when present) of each datalist item; this drops e.g.
    ragged ``boxes`` lists that cannot be collated into a batch.

    Raises:
        ValueError: an item lacks one of ``keys``.
    """
    out = []
    for i, item in enumerate(items):
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(
                f"datalist item {i} ({item.get('image', '?')}) has no {missing}; the config reads keys {list(keys)}. "
                "Use a dataset with these entries (the demo dataset has image, label and tissue) or change the keys."
            )
        out.append({k: item[k] for k in [*keys, *optional_keys] if k in item})
    return out


def seeded_items(
    items: Sequence[Mapping],
    seed: int = 0,
    num_samples: int | None = None,
    keys: Sequence[str] | None = None,
    optional_keys: Sequence[str] = (),
) -> list[dict]:
    """Datalist items for a conditional generation workflow: ``keys`` (and present ``optional_keys``) of each item
    plus ``seed = seed + i`` and ``index = i`` (what the generation workflow needs). With ``num_samples`` larger than the list, the items are cycled (each condition reused with a new
    seed/index); smaller takes the first ``num_samples``."""
    items = list(items) if keys is None else select_keys(items, keys, optional_keys)
    if not items:
        raise ValueError("seeded_items: the condition datalist is empty; check dataset_dir and the split.")
    n = len(items) if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"seeded_items: num_samples must be >= 1, got {num_samples}.")
    return [{**items[i % len(items)], "seed": int(seed) + i, "index": i} for i in range(n)]
