# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Dictionary versions of the box transforms: they read the image size from the image key of the data dict.

See :mod:`monai_gan_aug.transforms.boxes.array` for the box convention and the papers behind them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import ensure_tuple_rep

from monai_gan_aug.transforms.boxes.array import (
    BoxesToConditionMap,
    BoxesToYolo,
    MaskToBoxes,
    ValidateBoxes,
)

__all__ = [
    "BoxesToConditionMapD",
    "BoxesToConditionMapDict",
    "BoxesToConditionMapd",
    "BoxesToYoloD",
    "BoxesToYoloDict",
    "BoxesToYolod",
    "MaskToBoxesD",
    "MaskToBoxesDict",
    "MaskToBoxesd",
    "ValidateBoxesD",
    "ValidateBoxesDict",
    "ValidateBoxesd",
]


def _spatial_size(data: Mapping, image_key: str | None, fallback: Any, owner: str) -> tuple[int, ...]:
    if image_key is not None and image_key in data:
        return tuple(int(s) for s in data[image_key].shape[1:])
    if fallback is not None:
        return tuple(int(s) for s in fallback)
    raise KeyError(f"{owner}: image key {image_key!r} is not in the data dict and no spatial_size was given.")


def _filename(data: Mapping, image_key: str | None) -> str | None:
    img = data.get(image_key) if image_key is not None else None
    if isinstance(img, MetaTensor):
        name = img.meta.get("filename_or_obj")
        return None if name is None else str(name)
    meta = data.get(f"{image_key}_meta_dict") if image_key is not None else None
    return str(meta["filename_or_obj"]) if isinstance(meta, Mapping) and "filename_or_obj" in meta else None


def _optional_keys(value: KeysCollection | None, n: int) -> tuple:
    return ensure_tuple_rep(None, n) if value is None else ensure_tuple_rep(value, n)


class BoxesToConditionMapd(MapTransform):
    """Dictionary version of :class:`BoxesToConditionMap`: writes the map of ``data[key]`` to ``data[cond_key]``.

    The map has the spatial shape of ``data[image_key]`` (channel-first) and, when that image is a
    ``MetaTensor``, its metadata (affine), so that it can be saved or resampled alongside the image.

    Args:
        keys: box keys.
        image_key: the image whose spatial shape the map takes.
        cond_keys: output keys, one per box key (default ``"cond"``).
        box_label_keys: label keys, one per box key (needed for ``mode="label"``).
        spatial_size: used when ``image_key`` is absent from the dict.
        mode: ``"fill"`` or ``"label"``.
        allow_missing_keys: skip missing box keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str | None = "image",
        cond_keys: KeysCollection = "cond",
        box_label_keys: KeysCollection | None = None,
        spatial_size: Any = None,
        mode: str = "fill",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.cond_keys = ensure_tuple_rep(cond_keys, len(self.keys))
        self.box_label_keys = _optional_keys(box_label_keys, len(self.keys))
        self.spatial_size = spatial_size
        self.converter = BoxesToConditionMap(mode=mode)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        size = _spatial_size(d, self.image_key, self.spatial_size, type(self).__name__)
        for key, cond_key, label_key in self.key_iterator(d, self.cond_keys, self.box_label_keys):
            labels = d.get(label_key) if label_key is not None else None
            cond = self.converter(d[key], spatial_size=size, labels=labels)
            image = d.get(self.image_key) if self.image_key is not None else None
            if isinstance(image, MetaTensor):
                cond = MetaTensor(cond, meta=dict(image.meta), applied_operations=[])
            d[cond_key] = cond
        return d


class MaskToBoxesd(MapTransform):
    """Dictionary version of :class:`MaskToBoxes`: boxes and labels of the components of ``data[key]``.

    Args:
        keys: mask keys.
        box_keys: output box keys, one per mask key.
        box_label_keys: output label keys, one per mask key.
        min_size: components with fewer voxels are dropped.
        allow_missing_keys: skip missing mask keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_keys: KeysCollection = "boxes",
        box_label_keys: KeysCollection = "box_labels",
        min_size: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_keys = ensure_tuple_rep(box_keys, len(self.keys))
        self.box_label_keys = ensure_tuple_rep(box_label_keys, len(self.keys))
        self.converter = MaskToBoxes(min_size=min_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, box_key, label_key in self.key_iterator(d, self.box_keys, self.box_label_keys):
            d[box_key], d[label_key] = self.converter(d[key])
        return d


class ValidateBoxesd(MapTransform):
    """Check ``data[key]`` boxes against the shape of ``data[image_key]``; raise
    :class:`~monai_gan_aug.data.errors.InvalidBoxesError` naming the image file (``filename_or_obj``), the box and
    the image size.

    Args:
        keys: box keys.
        image_key: the image the boxes belong to.
        box_label_keys: label keys (one per box key), checked for one integer per box.
        spatial_dims: expected spatial dims of the boxes (``None``: 2 or 3).
        allow_missing_keys: skip missing box keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        box_label_keys: KeysCollection | None = None,
        spatial_dims: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.box_label_keys = _optional_keys(box_label_keys, len(self.keys))
        self.validator = ValidateBoxes(spatial_dims=spatial_dims)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        size = _spatial_size(d, self.image_key, None, type(self).__name__)
        name = _filename(d, self.image_key)
        for key, label_key in self.key_iterator(d, self.box_label_keys):
            labels = d.get(label_key) if label_key is not None else None
            self.validator(d[key], spatial_size=size, labels=labels, filename=name)
        return d


class BoxesToYolod(MapTransform):
    """Dictionary version of :class:`BoxesToYolo`: YOLO lines of ``data[key]`` into ``data[yolo_key]``.

    The normalising size is the spatial shape of ``data[image_key]`` (axis 0 = width, axis 1 = height).

    Args:
        keys: box keys (2D boxes).
        box_label_keys: label keys, one per box key (``None``: class 0).
        image_key: the image the boxes belong to.
        yolo_keys: output keys, one per box key (default ``"yolo"``).
        allow_missing_keys: skip missing box keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_label_keys: KeysCollection | None = "box_labels",
        image_key: str = "image",
        yolo_keys: KeysCollection = "yolo",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_label_keys = _optional_keys(box_label_keys, len(self.keys))
        self.image_key = image_key
        self.yolo_keys = ensure_tuple_rep(yolo_keys, len(self.keys))
        self.converter = BoxesToYolo()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        size = _spatial_size(d, self.image_key, None, type(self).__name__)
        for key, label_key, yolo_key in self.key_iterator(d, self.box_label_keys, self.yolo_keys):
            labels = d.get(label_key) if label_key is not None else None
            d[yolo_key] = self.converter(d[key], labels=labels, image_size=size[:2])
        return d


BoxesToConditionMapD = BoxesToConditionMapDict = BoxesToConditionMapd
MaskToBoxesD = MaskToBoxesDict = MaskToBoxesd
ValidateBoxesD = ValidateBoxesDict = ValidateBoxesd
BoxesToYoloD = BoxesToYoloDict = BoxesToYolod
