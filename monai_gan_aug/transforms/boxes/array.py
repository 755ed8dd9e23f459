# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Bounding boxes for box-conditioned GANs and detection experiments (array transforms and helpers).

Boxes follow ``docs/conventions.md``: MONAI detection ``StandardMode`` corners ``[x0, y0, x1, y1]`` or
``[x0, y0, z0, x1, y1, z1]`` in voxel coordinates of the channel-first array, shape ``(N, 2 * spatial_dims)``;
a box covers voxel ``i`` along an axis when ``floor(x0) <= i < ceil(x1)``. Corners are continuous voxel *edges*
(voxel ``i`` spans ``[i, i + 1)``), so resizing an axis by a factor scales the corners by the same factor and
cropping subtracts the crop start.

The box-conditioned PGGAN of Han et al. ("Learning more with less", 2019) draws lesions inside given boxes; its
condition is the box rasterised into a map (:class:`BoxesToConditionMap`). Boxes of a mask come from its connected
components (:class:`MaskToBoxes`), and YOLO label lines (``class cx cy w h``, normalised by width = spatial axis 0
and height = spatial axis 1) feed the ultralytics detector (:func:`boxes_to_yolo_lines`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.detection.transforms.box_ops import resize_boxes as monai_resize_boxes
from monai.config import NdarrayOrTensor
from monai.data.box_utils import spatial_crop_boxes
from monai.transforms import Transform
from monai.utils import TransformBackends, optional_import

from monai_gan_aug.data.boxes import as_box_array, box_problems, validate_boxes  # the checks live on the data floor

ndimage, _ = optional_import("scipy.ndimage")

__all__ = [
    "BoxesToConditionMap",
    "BoxesToYolo",
    "MaskToBoxes",
    "ValidateBoxes",
    "as_box_array",
    "box_problems",
    "box_voxel_slices",
    "boxes_to_condition_map",
    "boxes_to_yolo_lines",
    "crop_boxes",
    "mask_to_boxes",
    "resize_boxes",
    "shift_boxes",
    "slice_boxes",
    "validate_boxes",
    "yolo_lines_to_boxes",
]


def _like(arr: np.ndarray, ref: Any, dtype: Any = None) -> NdarrayOrTensor:
    """``arr`` as the type of ``ref`` (tensor stays tensor on its device; lists and arrays become numpy)."""
    if isinstance(ref, torch.Tensor):
        out = torch.as_tensor(arr, device=ref.device)
        out = out.as_subclass(torch.Tensor)
        return out.to(dtype if isinstance(dtype, torch.dtype) else (torch.float32 if dtype is None else out.dtype))
    return np.asarray(arr, dtype=np.float32 if dtype is None else dtype)


def crop_boxes(
    boxes: Any, roi_start: Sequence[int], roi_end: Sequence[int], labels: Any = None
) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None, np.ndarray]:
    """Boxes of the region ``[roi_start, roi_end)`` of an image: shifted, clipped, and empty ones dropped.

    Clipping is MONAI's ``monai.data.box_utils.spatial_crop_boxes``; but where its ``remove_empty`` drops boxes
    thinner than one voxel, here a box is kept while it has a positive extent inside the crop (it still covers a
    voxel under the ``floor(x0) <= i < ceil(x1)`` rule).

    Args:
        boxes: ``(N, 2 * D)`` boxes.
        roi_start: crop start per spatial axis (may be negative for a pad).
        roi_end: crop end per spatial axis.
        labels: optional ``(N,)`` labels, filtered like the boxes.

    Returns:
        ``(boxes, labels, keep)``: the new boxes (type of the input), the kept labels (or ``None``) and the boolean
        keep mask over the input boxes.
    """
    arr = as_box_array(boxes)
    dims = arr.shape[1] // 2
    start = [int(v) for v in list(roi_start)[:dims]]
    end = [int(v) for v in list(roi_end)[:dims]]
    out, _ = spatial_crop_boxes(arr, start, end, remove_empty=False)
    keep = np.all(out[:, dims:] > out[:, :dims], axis=1) if len(out) else np.zeros(0, dtype=bool)
    out = out[keep]
    new_labels = None
    if labels is not None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        new_labels = _like(lab[keep] if lab.shape[0] == keep.shape[0] else lab, labels, dtype=_label_dtype(labels))
    return _like(out, boxes), new_labels, keep


def _label_dtype(labels: Any) -> Any:
    return torch.int64 if isinstance(labels, torch.Tensor) else np.int64


def shift_boxes(boxes: Any, offset: Sequence[float]) -> NdarrayOrTensor:
    """Boxes moved by ``offset`` voxels per spatial axis (e.g. the ``pad before`` of a padding).

    Args:
        boxes: ``(N, 2 * D)`` boxes.
        offset: ``D`` offsets.
    """
    arr = as_box_array(boxes)
    dims = arr.shape[1] // 2
    off = np.asarray(offset, dtype=np.float64)[:dims]
    out = arr.copy()
    out[:, :dims] += off
    out[:, dims:] += off
    return _like(out, boxes)


def resize_boxes(boxes: Any, src_size: Sequence[int], dst_size: Sequence[int]) -> NdarrayOrTensor:
    """Boxes of an image resized from ``src_size`` to ``dst_size``: corners scaled by ``dst / src`` per axis.

    (MONAI's ``monai.apps.detection.transforms.box_ops.resize_boxes``, with the output type of the input.)

    Args:
        boxes: ``(N, 2 * D)`` boxes.
        src_size: spatial size before resizing.
        dst_size: spatial size after resizing.
    """
    arr = as_box_array(boxes)
    dims = arr.shape[1] // 2
    out = monai_resize_boxes(arr, [int(v) for v in list(src_size)[:dims]], [int(v) for v in list(dst_size)[:dims]])
    return _like(out, boxes)


def slice_boxes(
    boxes: Any, axis: int, index: int, labels: Any = None
) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None, np.ndarray]:
    """2D boxes of the slice ``index`` along spatial ``axis`` of a volume: the 3D boxes that cover that slice
    (``floor(z0) <= index < ceil(z1)``), with the ``axis`` corners removed.

    Args:
        boxes: ``(N, 6)`` boxes.
        axis: spatial axis (0, 1 or 2; negative values count from the end).
        index: slice index along ``axis``.
        labels: optional ``(N,)`` labels, filtered like the boxes.

    Returns:
        ``(boxes (M, 4), labels (M,) or None, keep mask (N,))``.
    """
    arr = as_box_array(boxes, spatial_dims=3)
    ax = int(axis) % 3
    lo = np.floor(arr[:, ax] + 1e-6)
    hi = np.ceil(arr[:, ax + 3] - 1e-6)
    keep = (lo <= index) & (index < hi)
    cols = [d for d in range(3) if d != ax]
    out = arr[keep][:, cols + [c + 3 for c in cols]]
    new_labels = None
    if labels is not None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        new_labels = _like(lab[keep], labels, dtype=_label_dtype(labels))
    return _like(out, boxes), new_labels, keep


def box_voxel_slices(box: np.ndarray, size: Sequence[int]) -> tuple[slice, ...] | None:
    """The whole voxels a box ``[lo..., hi...]`` covers in an image of spatial ``size`` (``floor(lo) <= i < ceil(hi)``,
    clipped to the image), or None when it covers none."""
    dims = len(size)
    slices = []
    for d in range(dims):
        lo = max(0, math.floor(box[d] + 1e-6))
        hi = min(int(size[d]), math.ceil(box[d + dims] - 1e-6))
        if hi <= lo:
            return None
        slices.append(slice(lo, hi))
    return tuple(slices)


def boxes_to_condition_map(
    boxes: Any, spatial_size: Sequence[int], labels: Any = None, mode: str = "fill"
) -> torch.Tensor:
    """Rasterise boxes into a ``(1, *spatial_size)`` float32 map.

    ``mode="fill"``: 1 on every voxel covered by a box (``floor(x0) <= i < ceil(x1)``), 0 elsewhere.
    ``mode="label"``: ``label + 1`` on covered voxels (the largest where boxes overlap), 0 elsewhere.
    No boxes give a zero map. Parts of boxes outside the image are ignored.

    Args:
        boxes: ``(N, 2 * D)`` boxes with ``D = len(spatial_size)``.
        spatial_size: the map's spatial shape.
        labels: ``(N,)`` integer labels (``mode="label"`` only).
        mode: ``"fill"`` or ``"label"``.

    Raises:
        ValueError: for an unknown mode, missing labels in ``"label"`` mode, or boxes of the wrong length.
    """
    if mode not in ("fill", "label"):
        raise ValueError(f"mode must be 'fill' or 'label', got {mode!r}.")
    size = tuple(int(s) for s in spatial_size)
    if len(size) not in (2, 3):
        raise ValueError(f"spatial_size must have 2 or 3 entries, got {spatial_size}.")
    arr = as_box_array(boxes, spatial_dims=len(size))
    out = np.zeros((1, *size), dtype=np.float32)
    if mode == "label":
        if labels is None:
            raise ValueError("mode='label' needs the box labels; pass labels=... (one int per box).")
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if lab.shape != (arr.shape[0],):
            raise ValueError(f"{arr.shape[0]} boxes but labels of shape {lab.shape}.")
    for i, box in enumerate(arr):
        region = box_voxel_slices(box, size)
        if region is None:
            continue
        if mode == "fill":
            out[(0, *region)] = 1.0
        else:
            out[(0, *region)] = np.maximum(out[(0, *region)], float(lab[i]) + 1.0)
    return torch.from_numpy(out)


def mask_to_boxes(mask: Any, min_size: int = 1) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """Tight boxes of the connected components of a mask or label map.

    Each positive value ``v`` is processed separately; its face-connected components (``scipy.ndimage.label``)
    give boxes ``[start, stop)`` of their bounding voxels and the label ``v - 1`` (a binary mask gives label 0,
    the demo lesion class). Boxes are ordered by label, then by the position of the component's first voxel.

    Args:
        mask: ``(1, *spatial)`` channel-first mask (numpy or tensor).
        min_size: components with fewer voxels are dropped.

    Returns:
        ``(boxes, labels)``: float32 ``(N, 2 * D)`` and int64 ``(N,)``, tensors when ``mask`` is a tensor.

    Raises:
        ValueError: when the mask is not channel-first with one channel, or ``min_size < 1``.
    """
    if int(min_size) < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}.")
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim not in (3, 4) or m.shape[0] != 1:
        raise ValueError(
            f"mask must be channel-first with one channel, (1, *spatial) with 2 or 3 spatial dims; got {m.shape}."
        )
    m = m[0]
    dims = m.ndim
    values = np.unique(m[m > 0]) if np.any(m > 0) else np.zeros(0)
    boxes, labels = [], []
    for v in values:
        comp, n = ndimage.label(m == v)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        for idx, sl in enumerate(ndimage.find_objects(comp), start=1):
            if sl is None or sizes[idx] < min_size:
                continue
            boxes.append([s.start for s in sl] + [s.stop for s in sl])
            labels.append(round(float(v)) - 1)
    box_arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 2 * dims)
    lab_arr = np.asarray(labels, dtype=np.int64)
    if isinstance(mask, torch.Tensor):
        return torch.as_tensor(box_arr, device=mask.device), torch.as_tensor(lab_arr, device=mask.device)
    return box_arr, lab_arr


def boxes_to_yolo_lines(boxes: Any, labels: Any, spatial_size: Sequence[int]) -> list[str]:
    """YOLO label lines ``"class cx cy w h"`` (normalised by width = axis 0, height = axis 1; 6 decimals).

    Args:
        boxes: ``(N, 4)`` 2D boxes.
        labels: ``(N,)`` integer classes; ``None`` means class 0 for every box.
        spatial_size: ``(width, height)`` of the image, i.e. spatial axes 0 and 1.

    Raises:
        ValueError: for 3D boxes, a non-2D size, or a label count that differs from the box count.
    """
    if len(spatial_size) != 2:
        raise ValueError(f"YOLO lines need a 2D image size (width, height), got {tuple(spatial_size)}.")
    arr = as_box_array(boxes, spatial_dims=2)
    lab = (
        np.zeros(len(arr), dtype=np.int64)
        if labels is None
        else np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
        .astype(np.int64)
        .reshape(-1)
    )
    if lab.shape[0] != arr.shape[0]:
        raise ValueError(f"{arr.shape[0]} boxes but {lab.shape[0]} labels.")
    w, h = float(spatial_size[0]), float(spatial_size[1])
    lines = []
    for (x0, y0, x1, y1), c in zip(arr, lab):
        lines.append(
            f"{int(c)} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
        )
    return lines


def yolo_lines_to_boxes(lines: Sequence[str] | str, spatial_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`boxes_to_yolo_lines`: ``(boxes (N, 4) float32, labels (N,) int64)``.

    Args:
        lines: YOLO lines (a list, or the text of a label file); blank lines are skipped.
        spatial_size: ``(width, height)`` of the image.

    Raises:
        ValueError: for a line that is not ``class cx cy w h``.
    """
    if len(spatial_size) != 2:
        raise ValueError(f"YOLO lines need a 2D image size (width, height), got {tuple(spatial_size)}.")
    if isinstance(lines, str):
        lines = lines.splitlines()
    w, h = float(spatial_size[0]), float(spatial_size[1])
    boxes, labels = [], []
    for n, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"YOLO line {n} {line!r}: expected 'class cx cy w h' (5 fields), got {len(fields)}.")
        try:
            c = int(float(fields[0]))
            cx, cy, bw, bh = (float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"YOLO line {n} {line!r}: fields must be numbers.") from None
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        labels.append(c)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- transforms
class BoxesToConditionMap(Transform):
    """Rasterise bounding boxes into a one-channel condition map for a box-conditioned generator.

    Han et al., "Learning more with less: GAN-based medical image augmentation" (2019) condition their PGGAN on
    lesion bounding boxes; the map is 1 inside any box and 0 outside (``mode="fill"``), or ``label + 1`` inside
    (``mode="label"``) for several lesion classes. See :func:`boxes_to_condition_map`.

    Args:
        spatial_size: the map's spatial shape; may instead be given per call.
        mode: ``"fill"`` or ``"label"``.
    """

    backend = (TransformBackends.TORCH,)

    def __init__(self, spatial_size: Sequence[int] | None = None, mode: str = "fill") -> None:
        if mode not in ("fill", "label"):
            raise ValueError(f"mode must be 'fill' or 'label', got {mode!r}.")
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)
        self.mode = mode

    def __call__(self, boxes: Any, spatial_size: Sequence[int] | None = None, labels: Any = None) -> torch.Tensor:
        """Args:
        boxes: ``(N, 2 * D)`` boxes.
        spatial_size: overrides the constructor's.
        labels: box labels (``mode="label"``).
        """
        size = spatial_size if spatial_size is not None else self.spatial_size
        if size is None:
            raise ValueError("BoxesToConditionMap needs spatial_size (in the constructor or the call).")
        return boxes_to_condition_map(boxes, size, labels=labels, mode=self.mode)


class MaskToBoxes(Transform):
    """Boxes of the connected components of a mask (see :func:`mask_to_boxes`).

    ``BoxesToConditionMap`` of these boxes covers exactly the bounding voxels of each component.

    Args:
        min_size: components with fewer voxels are dropped.
    """

    backend = (TransformBackends.TORCH, TransformBackends.NUMPY)

    def __init__(self, min_size: int = 1) -> None:
        if int(min_size) < 1:
            raise ValueError(f"min_size must be >= 1, got {min_size}.")
        self.min_size = int(min_size)

    def __call__(self, mask: NdarrayOrTensor) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """Args:
        mask: ``(1, *spatial)`` mask or label map.
        """
        return mask_to_boxes(mask, self.min_size)


class ValidateBoxes(Transform):
    """Check boxes against their image; raise :class:`InvalidBoxesError` naming the file, the box and the size.

    Args:
        spatial_dims: expected spatial dims of the boxes (``None``: 2 or 3).
    """

    def __init__(self, spatial_dims: int | None = None) -> None:
        self.spatial_dims = spatial_dims

    def __call__(
        self, boxes: Any, spatial_size: Sequence[int] | None = None, labels: Any = None, filename: str | None = None
    ) -> Any:
        """Return ``boxes`` unchanged when they are valid.

        Args:
            boxes: the boxes.
            spatial_size: the image's spatial shape.
            labels: optional box labels (one per box).
            filename: the image file, named in the error.
        """
        validate_boxes(boxes, spatial_size, labels=labels, spatial_dims=self.spatial_dims, filename=filename)
        return boxes


class BoxesToYolo(Transform):
    """Boxes and labels to YOLO label lines (see :func:`boxes_to_yolo_lines`).

    Args:
        image_size: ``(width, height)`` = spatial axes 0 and 1; may instead be given per call.
    """

    def __init__(self, image_size: Sequence[int] | None = None) -> None:
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)

    def __call__(self, boxes: Any, labels: Any = None, image_size: Sequence[int] | None = None) -> list[str]:
        """Args:
        boxes: ``(N, 4)`` boxes.
        labels: ``(N,)`` classes (``None``: all 0).
        image_size: overrides the constructor's.
        """
        size = image_size if image_size is not None else self.image_size
        if size is None:
            raise ValueError("BoxesToYolo needs image_size (width, height) in the constructor or the call.")
        return boxes_to_yolo_lines(boxes, labels, size)
