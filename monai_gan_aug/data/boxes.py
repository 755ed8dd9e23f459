# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Bounding boxes as the data floor reads and checks them: corner boxes ``[x0, y0, (z0,) x1, y1, (z1)]`` in MONAI's
axis order (:func:`as_box_array`), and what is wrong with a box list for an image (:func:`box_problems`,
:func:`validate_boxes`), used by the datalist check before anything trains. The box transforms
(:mod:`monai_gan_aug.transforms.boxes`) build on these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_gan_aug.data.errors import InvalidBoxesError

__all__ = ["as_box_array", "box_problems", "validate_boxes"]

_TOL = 1e-3  # corner tolerance (in voxels) of the inside-image check


def as_box_array(boxes: Any, spatial_dims: int | None = None) -> np.ndarray:
    """Boxes (list, numpy array or tensor) as a float64 numpy array of shape ``(N, 2 * spatial_dims)``.

    ``None`` or an empty sequence gives ``(0, 2 * spatial_dims)`` (``(0, 4)`` when ``spatial_dims`` is ``None``).
    A single flat box ``[x0, y0, x1, y1]`` is promoted to ``(1, 4)``.

    Args:
        boxes: the boxes.
        spatial_dims: expected number of spatial dimensions; ``None`` accepts 4 or 6 values per box.

    Raises:
        InvalidBoxesError: when the boxes are ragged or have a length other than ``2 * spatial_dims``.
    """
    width = 2 * spatial_dims if spatial_dims is not None else None
    if boxes is None:
        return np.zeros((0, width or 4))
    if isinstance(boxes, torch.Tensor):
        arr = boxes.detach().cpu().numpy().astype(np.float64)
    else:
        try:
            arr = np.asarray(boxes, dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise InvalidBoxesError(
                f"boxes must be a list of equal-length corner lists, got {boxes!r} ({e})."
            ) from None
    if arr.size == 0:
        return np.zeros((0, width or (arr.shape[-1] if arr.ndim == 2 and arr.shape[-1] in (4, 6) else 4)))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 6) or (width is not None and arr.shape[1] != width):
        want = f"{width}" if width is not None else "4 (2D) or 6 (3D)"
        raise InvalidBoxesError(
            f"boxes must have shape (N, {want}) in [x0, y0, (z0,) x1, y1, (z1)] order, got {arr.shape}."
        )
    return arr


def box_problems(
    boxes: Any,
    spatial_size: Sequence[int] | None = None,
    labels: Any = None,
    spatial_dims: int | None = None,
    filename: str | None = None,
) -> list[str]:
    """Describe everything wrong with ``boxes`` (empty list when they are fine).

    Checks: shape ``(N, 4)`` or ``(N, 6)`` (``2 * spatial_dims`` or ``2 *`` the image rank), finite values,
    ``x1 > x0`` on every axis, ``0 <= x0`` and ``x1 <= size`` (``spatial_size`` in MONAI axis order, tolerance 1e-3
    voxel), one integer label per box.

    Args:
        boxes: the boxes.
        spatial_size: the image's spatial shape; ``None`` skips the inside-image check.
        labels: optional box labels.
        spatial_dims: the pipeline's spatial dims.
        filename: the image file, used in the messages.
    """
    where = f"{filename}: " if filename else ""
    try:
        arr = as_box_array(boxes)
    except InvalidBoxesError as e:
        return [f"{where}{e}"]
    n, width = arr.shape
    dims = width // 2
    allowed = {2 * spatial_dims} if spatial_dims else {4, 6}
    if spatial_size is not None:
        allowed.add(2 * len(spatial_size))
    problems = []
    if n and width not in allowed:
        problems.append(f"{where}boxes have {width} values each, expected one of {sorted(allowed)}")
        return problems
    if labels is not None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != n:
            problems.append(f"{where}{n} boxes but box_labels has shape {lab.shape}; give one label per box")
        elif n and not np.all(np.equal(np.mod(lab.astype(np.float64), 1), 0)):
            problems.append(f"{where}box_labels must be integers, got {lab.tolist()}")
    size = None
    if spatial_size is not None and n:
        if len(spatial_size) < dims:
            problems.append(
                f"{where}{dims}D boxes for an image of spatial size {tuple(spatial_size)}; give {2 * len(spatial_size)}"
                " values per box"
            )
        else:
            size = np.asarray(spatial_size[:dims], dtype=np.float64)
    for box in arr:
        text = f"box {[round(float(v), 3) for v in box]}"
        if not np.all(np.isfinite(box)):
            problems.append(f"{where}{text} has non-finite values")
            continue
        lo, hi = box[:dims], box[dims:]
        if np.any(hi <= lo):
            problems.append(f"{where}{text} is empty or inverted (needs x1 > x0 on every axis)")
            continue
        if size is not None and (np.any(lo < -_TOL) or np.any(hi > size + _TOL)):
            problems.append(
                f"{where}{text} lies outside the image of size {tuple(int(s) for s in size)} (MONAI axes: columns, "
                "rows[, slices]); fix the annotation or its axis order"
            )
    return problems


def validate_boxes(
    boxes: Any,
    spatial_size: Sequence[int] | None = None,
    labels: Any = None,
    spatial_dims: int | None = None,
    filename: str | None = None,
) -> None:
    """Raise :class:`InvalidBoxesError` listing the problems :func:`box_problems` finds.

    Args:
        boxes: the boxes.
        spatial_size: the image's spatial shape (MONAI axis order).
        labels: optional box labels.
        spatial_dims: the pipeline's spatial dims.
        filename: the image file, named in the message.
    """
    problems = box_problems(boxes, spatial_size, labels, spatial_dims, filename)
    if problems:
        raise InvalidBoxesError("; ".join(problems))
