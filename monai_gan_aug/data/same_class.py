# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Datasets of same-class image pairs for the generative adversarial U-Net (Chen et al., "Generative adversarial
U-Net for domain-free medical image augmentation", 2021).

GA-UNet's critic scores pairs of same-class images, so training needs, for each image ``x_i``, another image ``x_j``
of the same class: :class:`SameClassPairDataset` (a MONAI ``CacheDataset``) adds it under ``"reference"``.
Generation turns reference images and their classes into new images: :class:`ReferenceSeedDataset` yields
``{"seed", "index", "reference", "class"}`` items for :class:`~monai_gan_aug.engines.GanGenerationEvaluator`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, Dataset
from monai.data.utils import set_rnd
from monai.transforms import Randomizable, apply_transform

from monai_gan_aug.utils.enums import GanKeys

__all__ = ["REFERENCE_KEY", "ReferenceSeedDataset", "SameClassPairDataset"]

logger = logging.getLogger(__name__)

REFERENCE_KEY = "reference"
"""Batch key of the same-class reference image ``x_j``."""


def _item_class(item: Any, index: int, class_key: str, where: str) -> int:
    if not isinstance(item, Mapping) or class_key not in item or item[class_key] is None:
        raise ValueError(
            f"{where}: item {index} has no '{class_key}'. GA-UNet needs an image-level class for every image (an int; "
            "the demo dataset gives class 1 to slices with a lesion); add it to the datalist."
        )
    value = item[class_key]
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1)[0].item()
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: item {index} has '{class_key}' = {value!r}, which is not an integer class.") from err


class SameClassPairDataset(Randomizable, CacheDataset):
    """A MONAI :class:`~monai.data.CacheDataset` whose items also carry a second image of the same class.

    Item ``i`` is the transformed datalist item ``i`` plus ``reference_key``: the ``image_key`` of the transformed
    item ``j``, where ``j != i`` is drawn uniformly among the items of the same class (``j = i`` when the class has a
    single item). Both go through the same ``transform`` (deterministic transforms cached once per item, random ones
    drawn independently). The draw uses ``self.R``; MONAI's ``DataLoader`` seeds it (and the transforms) per worker.

    Args:
        data: datalist items, each with an integer ``class_key``.
        transform: MONAI transforms of one item (a ``Compose`` for caching).
        class_key: key of the image-level class.
        image_key: key of the image.
        reference_key: key the second image is stored under.
        kwargs: further :class:`~monai.data.CacheDataset` arguments (``cache_rate``, ``num_workers``, ``progress``...).
    """

    def __init__(
        self,
        data: Sequence,
        transform: Sequence[Callable] | Callable | None = None,
        class_key: str = GanKeys.CLASS,
        image_key: str = GanKeys.IMAGE,
        reference_key: str = REFERENCE_KEY,
        **kwargs: Any,
    ) -> None:
        self.class_key, self.image_key, self.reference_key = class_key, image_key, reference_key
        CacheDataset.__init__(self, data, transform, **kwargs)  # calls set_data, which indexes the classes

    def _index_classes(self, data: Sequence) -> None:
        if len(data) == 0:
            raise ValueError("SameClassPairDataset: the datalist is empty.")
        self.classes = [_item_class(item, i, self.class_key, "SameClassPairDataset") for i, item in enumerate(data)]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(self.classes):
            groups[c].append(i)
        self.groups = {c: np.asarray(idx, dtype=np.int64) for c, idx in groups.items()}
        single = sorted(c for c, idx in self.groups.items() if len(idx) == 1)
        if single:
            logger.warning("SameClassPairDataset: class(es) %s have a single image, which is paired with itself.", single)
        self._pair: int | None = None

    def set_data(self, data: Sequence) -> None:
        """Replace the datalist (rebuilds the class index and the cache)."""
        self._index_classes(data)
        super().set_data(data)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> SameClassPairDataset:
        """Seed the partner draw and, with a different seed, the random transforms (MONAI's ``set_rnd`` stops at the
        first object with ``set_random_state``, so the transforms are seeded here)."""
        super().set_random_state(seed, state)
        if seed is not None and self.transform is not None:
            set_rnd(self.transform, seed + 1)
        return self

    def randomize(self, index: int) -> None:
        """Draw the partner of item ``index`` into ``self._pair``."""
        group = self.groups[self.classes[index]]
        if len(group) == 1:
            self._pair = int(index)
            return
        k = int(self.R.randint(len(group) - 1))
        others = group[group != index]
        self._pair = int(others[k])

    def _transform(self, index: int):
        index = int(index) % len(self)
        item = super()._transform(index)
        self.randomize(index)
        partner = super()._transform(self._pair)
        if not isinstance(item, Mapping) or self.image_key not in partner:
            raise ValueError(
                f"SameClassPairDataset: the transform must return one dict with '{self.image_key}' per item (got "
                f"{type(item).__name__}); transforms returning several samples per item are not supported."
            )
        item = dict(item)
        item[self.reference_key] = partner[self.image_key]
        return item


class ReferenceSeedDataset(Dataset):
    """Conditions for GA-UNet generation: item ``i`` is ``{"seed": seed + i, "index": i, reference_key: image,
    class_key: class}`` with the transformed image of reference ``i % len(references)``.

    Args:
        data: datalist items (e.g. the training split), each with ``image_key`` and an integer ``class_key``.
        transform: deterministic preprocessing of one item (as in training, without random augmentation).
        num_samples: number of samples to generate.
        seed: seed of the first sample.
        classes: keep only references of these classes (None: all).
        class_key: key of the class.
        image_key: key of the image.
        reference_key: key of the reference in the output.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None = None,
        num_samples: int = 64,
        seed: int = 0,
        classes: Sequence[int] | None = None,
        class_key: str = GanKeys.CLASS,
        image_key: str = GanKeys.IMAGE,
        reference_key: str = REFERENCE_KEY,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"ReferenceSeedDataset: num_samples must be >= 1, got {num_samples}.")
        wanted = None if classes is None else {int(c) for c in classes}
        refs = [
            item for i, item in enumerate(data)
            if wanted is None or _item_class(item, i, class_key, "ReferenceSeedDataset") in wanted
        ]
        for i, item in enumerate(refs):
            _item_class(item, i, class_key, "ReferenceSeedDataset")
        if not refs:
            raise ValueError(
                f"ReferenceSeedDataset: no reference image{'' if wanted is None else f' of class(es) {sorted(wanted)}'}; "
                "pass a datalist with such images."
            )
        super().__init__(refs, transform)
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.class_key, self.image_key, self.reference_key = class_key, image_key, reference_key

    def __len__(self) -> int:
        return self.num_samples

    def _transform(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        raw = self.data[index % len(self.data)]
        item = apply_transform(self.transform, dict(raw)) if self.transform is not None else dict(raw)
        return {
            "seed": self.seed + index,
            "index": index,
            self.reference_key: item[self.image_key],
            self.class_key: _item_class(raw, index, self.class_key, "ReferenceSeedDataset"),
        }
