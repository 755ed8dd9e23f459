# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Dictionary versions of the papers' preprocessing transforms.

Geometry-changing transforms compute one plan from the first present key (or ``source_key``), apply it to every
key (per-key interpolation ``mode``: use ``"nearest"`` for masks), and move the boxes of ``box_keys`` with the
image; boxes that leave the image are dropped together with their labels in ``box_label_keys``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import Identityd, MapTransform, Randomizable, SpatialCrop
from monai.utils import ensure_tuple, ensure_tuple_rep

from monai_gan_aug.transforms.boxes.array import crop_boxes, resize_boxes, slice_boxes
from monai_gan_aug.transforms.preprocessing.array import (
    CheckImage,
    CropResizeToPowerOfTwo,
    EnsureGrayscale,
    ForegroundCrop,
    RandSlice,
    RightAlignedSquareCrop,
    ScaleToSymmetricRange,
)

__all__ = [
    "transform_or_identity",
    "CheckImageD",
    "CheckImageDict",
    "CheckImaged",
    "CropResizeToPowerOfTwoD",
    "CropResizeToPowerOfTwoDict",
    "CropResizeToPowerOfTwod",
    "EnsureGrayscaleD",
    "EnsureGrayscaleDict",
    "EnsureGrayscaled",
    "ForegroundCropD",
    "ForegroundCropDict",
    "ForegroundCropd",
    "RandSliceD",
    "RandSliceDict",
    "RandSliced",
    "RightAlignedSquareCropD",
    "RightAlignedSquareCropDict",
    "RightAlignedSquareCropd",
    "ScaleToSymmetricRangeD",
    "ScaleToSymmetricRangeDict",
    "ScaleToSymmetricRanged",
]


class _BoxFollower(MapTransform):
    """Shared handling of ``box_keys`` / ``box_label_keys`` for geometric dictionary transforms."""

    def __init__(
        self,
        keys: KeysCollection,
        box_keys: KeysCollection | None = None,
        box_label_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_keys = ensure_tuple(box_keys) if box_keys is not None else ()
        if box_label_keys is None:
            self.box_label_keys: tuple = (None,) * len(self.box_keys)
        else:
            self.box_label_keys = ensure_tuple_rep(box_label_keys, len(self.box_keys))
        if len(self.box_label_keys) != len(self.box_keys):
            raise ValueError(
                f"box_label_keys {box_label_keys} must pair one-to-one with box_keys {box_keys} (or be None)."
            )

    def _reference(self, d: Mapping, key: Hashable | None = None) -> Any:
        if key is not None:
            if key not in d:
                raise KeyError(f"{type(self).__name__}: source key {key!r} is not in the data dict.")
            return d[key]
        for k in self.key_iterator(d):
            return d[k]
        return None

    def _move_boxes(self, d: dict, fn: Any) -> None:
        """Replace ``d[box_key]`` by ``fn(boxes, labels) -> (boxes, labels_or_None)`` for every present box key."""
        for box_key, label_key in zip(self.box_keys, self.box_label_keys):
            if box_key not in d:
                if self.allow_missing_keys:
                    continue
                raise KeyError(f"{type(self).__name__}: box key {box_key!r} is not in the data dict.")
            labels = d.get(label_key) if label_key is not None else None
            boxes, new_labels = fn(d[box_key], labels)
            d[box_key] = boxes
            if label_key is not None and new_labels is not None:
                d[label_key] = new_labels


def _crop_fn(start: Sequence[int], end: Sequence[int]) -> Any:
    def fn(boxes: Any, labels: Any) -> tuple:
        new_boxes, new_labels, _ = crop_boxes(boxes, start, end, labels=labels)
        return new_boxes, new_labels

    return fn


class RightAlignedSquareCropd(_BoxFollower):
    """Dictionary version of :class:`RightAlignedSquareCrop` (Liang & Chen 2020); boxes follow the crop.

    Args:
        keys: image / mask keys (same spatial shape).
        box_keys: box keys to move with the crop.
        box_label_keys: label keys filtered with dropped boxes, one per box key.
        align: see :class:`RightAlignedSquareCrop`.
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_keys: KeysCollection | None = None,
        box_label_keys: KeysCollection | None = None,
        align: str = "center",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, box_keys, box_label_keys, allow_missing_keys)
        self.cropper = RightAlignedSquareCrop(align=align)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = self._reference(d)
        if ref is None:
            return d
        start, end = self.cropper.compute_roi(tuple(ref.shape[1:]))
        for key in self.key_iterator(d):
            d[key] = SpatialCrop(roi_start=start, roi_end=end)(d[key])
        self._move_boxes(d, _crop_fn(start, end))
        return d


class CropResizeToPowerOfTwod(_BoxFollower):
    """Dictionary version of :class:`CropResizeToPowerOfTwo` (Han et al. 2019); boxes follow crop/pad + resize.

    Args:
        keys: image / mask keys (same spatial shape).
        size: power-of-two output side, or ``None`` for the nearest power of two.
        mode: ``"crop"`` or ``"pad"``.
        interp_mode: interpolation per key (e.g. ``(None, "nearest")`` for image and mask); ``None``: area when
            shrinking, linear when enlarging (see :class:`CropResizeToPowerOfTwo`).
        box_keys: box keys to move with the image.
        box_label_keys: label keys filtered with dropped boxes, one per box key.
        pad_mode: padding mode of ``mode="pad"``.
        allow_missing_keys: skip missing keys.
        pad_kwargs: e.g. ``value`` for constant padding.
    """

    def __init__(
        self,
        keys: KeysCollection,
        size: int | None = None,
        mode: str = "crop",
        interp_mode: str | Sequence[str | None] | None = None,
        box_keys: KeysCollection | None = None,
        box_label_keys: KeysCollection | None = None,
        pad_mode: str = "constant",
        allow_missing_keys: bool = False,
        **pad_kwargs: Any,
    ) -> None:
        super().__init__(keys, box_keys, box_label_keys, allow_missing_keys)
        self.transform = CropResizeToPowerOfTwo(size=size, mode=mode, pad_mode=pad_mode, **pad_kwargs)
        self.interp_mode = ensure_tuple_rep(interp_mode, len(self.keys))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = self._reference(d)
        if ref is None:
            return d
        shape = tuple(int(s) for s in ref.shape[1:])
        start, end, side, out = self.transform.compute_plan(shape)
        for key, interp in self.key_iterator(d, self.interp_mode):
            if tuple(d[key].shape[1:]) != shape:
                raise ValueError(
                    f"CropResizeToPowerOfTwod: {key!r} has spatial shape {tuple(d[key].shape[1:])}, the reference "
                    f"has {shape}; all keys must share one shape."
                )
            d[key] = self.transform(d[key], interp_mode=interp)

        def fn(boxes: Any, labels: Any) -> tuple:
            new_boxes, new_labels, _ = crop_boxes(boxes, start, end, labels=labels)
            if out != side:
                new_boxes = resize_boxes(new_boxes, (side,) * len(shape), (out,) * len(shape))
            return new_boxes, new_labels

        self._move_boxes(d, fn)
        return d


class ScaleToSymmetricRanged(MapTransform):
    """Dictionary version of :class:`ScaleToSymmetricRange` (intensities to ``[-1, 1]``).

    Args:
        keys: image keys.
        a_min: lower end of a fixed window.
        a_max: upper end of a fixed window.
        lower_percentile: lower percentile.
        upper_percentile: upper percentile.
        clip: clip to ``[-1, 1]``.
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        a_min: float | None = None,
        a_max: float | None = None,
        lower_percentile: float | None = None,
        upper_percentile: float | None = None,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleToSymmetricRange(a_min, a_max, lower_percentile, upper_percentile, clip)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d


class ForegroundCropd(_BoxFollower):
    """Dictionary version of :class:`ForegroundCrop` (Han et al. 2019 brain crop); boxes follow the crop.

    Args:
        keys: keys to crop (same spatial shape).
        source_key: key whose foreground defines the box (e.g. a brain mask); default the first key.
        threshold: a number, ``"otsu"`` or ``"mean"``.
        margin: voxels added on every side.
        largest_component: keep only the largest connected component.
        fill_holes: fill holes of the foreground.
        k_divisible: make the box size divisible by this.
        box_keys: box keys to move with the crop.
        box_label_keys: label keys filtered with dropped boxes, one per box key.
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str | None = None,
        threshold: float | str = "otsu",
        margin: int | Sequence[int] = 0,
        largest_component: bool = True,
        fill_holes: bool = True,
        k_divisible: int | Sequence[int] = 1,
        box_keys: KeysCollection | None = None,
        box_label_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, box_keys, box_label_keys, allow_missing_keys)
        self.source_key = source_key
        self.cropper = ForegroundCrop(threshold, margin, largest_component, fill_holes, k_divisible)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = self._reference(d, self.source_key)
        if ref is None:
            return d
        start, end = self.cropper.compute_bounding_box(ref)
        for key in self.key_iterator(d):
            d[key] = SpatialCrop(roi_start=start, roi_end=end)(d[key])
        self._move_boxes(d, _crop_fn(start, end))
        return d


class EnsureGrayscaled(MapTransform):
    """Dictionary version of :class:`EnsureGrayscale`.

    Args:
        keys: image keys.
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = EnsureGrayscale()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class RandSliced(Randomizable, _BoxFollower):
    """Dictionary version of :class:`RandSlice`: one slice index for every key; 3D boxes become the 2D boxes of
    that slice (boxes that miss it are dropped with their labels).

    Args:
        keys: image / mask keys (same spatial shape).
        foreground_key: a mask key or a box key biasing the slice choice; ``None``: uniform.
        prob_foreground: probability of drawing among foreground slices.
        axis: spatial axis to slice.
        box_keys: ``(N, 6)`` box keys to slice.
        box_label_keys: label keys filtered with dropped boxes, one per box key.
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        foreground_key: str | None = None,
        prob_foreground: float = 0.5,
        axis: int = -1,
        box_keys: KeysCollection | None = None,
        box_label_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        _BoxFollower.__init__(self, keys, box_keys, box_label_keys, allow_missing_keys)
        self.foreground_key = foreground_key
        self.slicer = RandSlice(axis=axis, prob_foreground=prob_foreground)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandSliced:
        super().set_random_state(seed, state)
        self.slicer.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the slice index for ``data`` (a dict) into ``self.slicer.index``."""
        ref = self._reference(data)
        shape = tuple(int(s) for s in ref.shape[1:])
        fg = data.get(self.foreground_key) if self.foreground_key is not None else None
        self.slicer.randomize(shape[self.slicer.axis], self.slicer.foreground_slices(fg, shape))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = self._reference(d)
        if ref is None or len(ref.shape) - 1 == 2:
            return d
        self.randomize(d)
        index = int(self.slicer.index)  # type: ignore[arg-type]
        for key in self.key_iterator(d):
            d[key] = self.slicer.slice(d[key], index)
        axis = self.slicer.axis

        def fn(boxes: Any, labels: Any) -> tuple:
            new_boxes, new_labels, _ = slice_boxes(boxes, axis, index, labels=labels)
            return new_boxes, new_labels

        self._move_boxes(d, fn)
        return d


class CheckImaged(MapTransform):
    """Dictionary version of :class:`CheckImage`; the error names the file (``filename_or_obj``) and the key.

    Args:
        keys: keys to check.
        channels: allowed channel count(s).
        spatial_size: expected spatial shape (``None``/``-1`` entries match any size).
        allow_missing_keys: skip missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        channels: int | Sequence[int] | None = None,
        spatial_size: Sequence[int | None] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckImage(channels=channels, spatial_size=spatial_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = d.get(f"{key}_meta_dict")
            name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
            try:
                self.checker(d[key], filename=None if name is None else str(name))
            except ValueError as e:
                raise ValueError(f"[{key}] {e}") from None
        return d


RightAlignedSquareCropD = RightAlignedSquareCropDict = RightAlignedSquareCropd
CropResizeToPowerOfTwoD = CropResizeToPowerOfTwoDict = CropResizeToPowerOfTwod
ScaleToSymmetricRangeD = ScaleToSymmetricRangeDict = ScaleToSymmetricRanged
ForegroundCropD = ForegroundCropDict = ForegroundCropd
EnsureGrayscaleD = EnsureGrayscaleDict = EnsureGrayscaled
RandSliceD = RandSliceDict = RandSliced
CheckImageD = CheckImageDict = CheckImaged


def transform_or_identity(transform: type[MapTransform], keys: KeysCollection, enabled: Any, **kwargs: Any) -> MapTransform:
    """``transform(keys=keys, **kwargs)`` when ``enabled`` is true (Python truthiness), else
    ``monai.transforms.Identityd(keys=keys)``: a step of a config's ``Compose`` that a setting switches off while the
    list keeps its length (and the positions of the transforms' random states in a checkpoint).

    ``{"_target_": "monai_gan_aug.transforms.preprocessing.transform_or_identity", "transform":
    "$monai_gan_aug.transforms.preprocessing.RandSliced", "keys": "@image_key", "enabled": "$@spatial_dims == 2"}``

    Raises:
        TypeError: ``transform`` is not a class of dictionary transform.
    """
    if not (isinstance(transform, type) and issubclass(transform, MapTransform)):
        raise TypeError(
            f"transform_or_identity: transform must be a dictionary transform class (e.g. "
            f"monai_gan_aug.transforms.preprocessing.RandSliced), got {transform!r}."
        )
    return transform(keys=keys, **kwargs) if enabled else Identityd(keys=keys)
