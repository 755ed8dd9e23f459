# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Unpaired training items for image-to-image translation between two domains (CycleGAN, Zhu et al. 2017).

CycleGAN learns from images of two domains that are *not* pairs: each training item holds one image of domain A
and one unrelated image of domain B. :func:`unpaired_items` draws the B image of every A image (a seeded shuffle,
never an image with its own copy when both domains come from the same list); :func:`load_unpaired_items` does it
for the ``training`` splits of one or two datasets, the cyclegan bundle's training datalist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monai_gan_aug.data.datalist import load_datalist
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["load_unpaired_items", "unpaired_items"]


def unpaired_items(
    items_a: Sequence[Mapping],
    items_b: Sequence[Mapping] | None = None,
    key_a: str = "image_a",
    key_b: str = "image_b",
    source_key: str = GanKeys.IMAGE,
    seed: int = 0,
) -> list[dict]:
    """Datalist of unpaired training items ``{key_a: path, key_b: path}``.

    Domain A is ``items_a``; domain B is ``items_b`` or, when None, a shuffled copy of ``items_a`` (for a B domain
    made from the same images by a contrast transform in the preprocessing). B is shuffled with ``seed`` so that
    item ``i`` pairs two unrelated images (a fixed derangement when both lists are the same list), and cycled when
    the lists differ in length; the result has ``max(len(A), len(B))`` items.

    Args:
        items_a: datalist items of domain A.
        items_b: datalist items of domain B (None: domain B is drawn from ``items_a``).
        key_a: key of the A image in the output items.
        key_b: key of the B image in the output items.
        source_key: key of the image in the input items.
        seed: seed of the shuffle of B.

    Raises:
        ValueError: an empty domain, or items without ``source_key``.
    """
    items_a = list(items_a)
    same = items_b is None
    items_b = list(items_a if items_b is None else items_b)
    if not items_a or not items_b:
        raise ValueError("unpaired_items: both domains need at least one item; check the dataset folders / splits.")
    for name, items in (("A", items_a), ("B", items_b)):
        missing = [i for i, item in enumerate(items) if source_key not in item]
        if missing:
            raise ValueError(f"unpaired_items: items {missing[:5]} of domain {name} have no '{source_key}' entry.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items_b))
    if same and len(items_b) > 1:  # never pair an image with its own transformed copy
        while np.any(order == np.arange(len(items_b))):
            order = rng.permutation(len(items_b))
    n = max(len(items_a), len(items_b))
    return [
        {key_a: items_a[i % len(items_a)][source_key], key_b: items_b[order[i % len(items_b)]][source_key]} for i in range(n)
    ]


def load_unpaired_items(
    dataset_dir: Any,
    dataset_dir_b: Any = None,
    spatial_dims: int = 2,
    key_a: str = "image_a",
    key_b: str = "image_b",
    seed: int = 0,
    bad_images: str | None = None,
) -> list[dict]:
    """The training datalist of the cyclegan bundle: :func:`unpaired_items` of the ``training`` splits of
    ``dataset_dir`` (domain A, screened with ``bad_images``) and ``dataset_dir_b`` (domain B; ``None``: B is made
    from A, see :func:`unpaired_items`), both read with :func:`~monai_gan_aug.data.datalist.load_datalist`, whose
    errors pass through unchanged."""
    items_a = load_datalist(dataset_dir, split="training", spatial_dims=spatial_dims, bad_images=bad_images)
    items_b = None if dataset_dir_b is None else load_datalist(dataset_dir_b, split="training", spatial_dims=spatial_dims)
    return unpaired_items(items_a, items_b, key_a=key_a, key_b=key_b, seed=seed)
