# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Display helpers: MONAI-axis arrays to PNG-ready RGB tiles, grids and box outlines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["to_uint8_display", "make_grid_rgb", "draw_boxes_rgb"]


def to_uint8_display(image: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(C, X, Y) image in ``value_range`` -> (rows=Y, cols=X, 3) uint8, following MONAI's PNG convention
    (spatial axis 0 is the column axis). One channel is shown grey; 2 channels as image + red overlay of the
    second; 3 or more as RGB of the first three."""
    arr = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    lo, hi = value_range
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    if arr.shape[0] == 1:
        rgb = np.repeat(arr, 3, axis=0)
    elif arr.shape[0] == 2:
        rgb = np.repeat(arr[:1], 3, axis=0)
        rgb[0] = np.maximum(rgb[0], arr[1])
    else:
        rgb = arr[:3]
    return (np.transpose(rgb, (2, 1, 0)) * 255.0 + 0.5).astype(np.uint8)


def draw_boxes_rgb(tile: np.ndarray, boxes: np.ndarray, color: Sequence[int] = (255, 0, 0)) -> np.ndarray:
    """Outline ``[x0, y0, x1, y1]`` boxes (MONAI axes: x = column) on a (rows, cols, 3) tile."""
    out = tile.copy()
    rows, cols = out.shape[:2]
    for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x0, y0 = int(np.floor(b[0])), int(np.floor(b[1]))
        x1, y1 = int(np.ceil(b[2])) - 1, int(np.ceil(b[3])) - 1
        x0, x1 = np.clip([x0, x1], 0, cols - 1)
        y0, y1 = np.clip([y0, y1], 0, rows - 1)
        out[y0, x0 : x1 + 1] = color
        out[y1, x0 : x1 + 1] = color
        out[y0 : y1 + 1, x0] = color
        out[y0 : y1 + 1, x1] = color
    return out


def make_grid_rgb(tiles: Sequence[np.ndarray], nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile equally sized (rows, cols, 3) uint8 images into one grid."""
    if not tiles:
        raise ValueError("make_grid_rgb needs at least one tile.")
    n = len(tiles)
    ncol = nrow or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncol))
    h, w = tiles[0].shape[:2]
    grid = np.zeros((nrows * (h + pad) + pad, ncol * (w + pad) + pad, 3), dtype=np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = t
    return grid
