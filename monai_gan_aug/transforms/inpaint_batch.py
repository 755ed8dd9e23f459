# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Batch-side operations of lesion inpainting (MCGAN: Han et al., 3DV 2019); :mod:`monai_gan_aug.transforms.inpaint`
holds the item-side ones (patches, inference items).

* :func:`box_crop_resize`: each sample's box region resampled to a fixed side, differentiably (what the lesion
  critic sees);
* :func:`inpaint_slices`: fill the new boxes of whole real slices with a patch inpainter (the patch around each box,
  pasted back whole), with the edited slices' masks and box lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from monai_gan_aug.transforms.inpaint import NEW_BOX_LABELS, NEW_BOXES, SOURCE_IMAGE, LesionContextCrop, box_region
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["box_crop_resize", "inpaint_slices"]


def box_crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each sample's box region (``(N, 2 * D)`` voxel corners) resampled (linearly) to ``size`` per side."""
    n, dims = x.shape[0], x.ndim - 2
    extent = torch.tensor(x.shape[2:], dtype=torch.float32, device=x.device)
    b = boxes.to(device=x.device, dtype=torch.float32)
    scale, shift = (b[:, dims:] - b[:, :dims]) / extent, (b[:, dims:] + b[:, :dims]) / extent - 1.0
    theta = torch.zeros(n, dims, dims + 1, device=x.device)
    for a in range(dims):  # grid coordinates run over the spatial axes in reverse order
        theta[:, a, a], theta[:, a, dims] = scale[:, dims - 1 - a], shift[:, dims - 1 - a]
    grid = F.affine_grid(theta, [n, x.shape[1]] + [size] * dims, align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def inpaint_slices(
    batch: Mapping[str, Any],
    fill: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    num: int,
    patch_size: int,
    seeds: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    image_key: str = GanKeys.IMAGE,
    label_mode: str = "box",
    diff_threshold: float = 0.25,
) -> dict[str, Any]:
    """Fill every new box of the first ``num`` slices of ``batch``, in turn.

    For the k-th new box of every slice that has one, the ``patch_size`` patch around it is cropped from the slice as
    already edited (:class:`~monai_gan_aug.transforms.inpaint.LesionContextCrop`, no margin), its box filled with
    noise, and ``fill(inputs, masks, sizes)`` (``(B, C, *P)`` patches, ``(B, 1, *P)`` box masks, ``(B, D)`` box sides
    over patch sides) returns the inpainted patches, pasted back whole (an inpainter changes only the box and its
    blend ring).

    Args:
        batch: ``image_key`` ``(N, C, *spatial)`` slices, ``new_boxes`` (per slice ``(M_i, 2 * D)``), optionally
            ``label`` (their masks), ``boxes`` / ``box_labels`` (existing lesions), ``new_box_labels`` and
            ``source_image`` (provenance).
        fill: the patch inpainter (e.g. a generator with its size condition).
        num: slices to edit (the first ``num``).
        patch_size: the inpainter's patch side.
        seeds: noise of slice ``i`` from a generator seeded with ``seeds[i]``; None: the global random stream.
        device: where the slices are edited.
        image_key: key of the slices.
        label_mode: mask of an added lesion: ``"box"`` (the whole box) or ``"difference"`` (box voxels whose
            channel-mean change exceeds ``diff_threshold``).
        diff_threshold: see ``label_mode``.

    Returns:
        ``image`` (the edited slices), ``label`` (uint8: the slice's mask plus the new lesions), ``boxes`` /
        ``box_labels`` (existing then new), ``new_boxes`` / ``new_box_labels`` (the new ones alone), ``class`` 1 and
        ``source_image`` when the batch names the slices.
    """
    if label_mode not in ("box", "difference"):
        raise ValueError(f"inpaint_slices: label_mode must be 'box' or 'difference', got {label_mode!r}.")
    images = batch[image_key][:num].float().clone().to(device)
    dims, n = images.ndim - 2, images.shape[0]
    streams = [torch.Generator().manual_seed(int(s)) for s in seeds] if seeds is not None else [None] * n
    label = batch.get(GanKeys.LABEL)
    label = (label[:num] > 0).to(device) if label is not None else torch.zeros_like(images[:, :1], dtype=torch.bool)
    new = [torch.as_tensor(b).float().reshape(-1, 2 * dims) for b in batch[NEW_BOXES][:num]]
    cropper, patch = LesionContextCrop(patch_size, margin=0), (images.shape[1],) + (patch_size,) * dims
    for k in range(max((len(b) for b in new), default=0)):  # the k-th new box of every slice that has one
        rows = [j for j in range(n) if len(new[j]) > k]
        crops = [cropper(images[j], new[j][k], torch.randn(patch, generator=streams[j])) for j in rows]
        sizes = torch.stack([c["size"] for c in crops]).to(device)
        out = fill(torch.stack([c["input"] for c in crops]), torch.stack([c["mask"] for c in crops]), sizes)
        for r, (j, c) in enumerate(zip(rows, crops)):
            region = (slice(None), *(slice(s, s + patch_size) for s in c["start"].tolist()))
            inside = (slice(None), *(slice(a, b) for a, b in zip(*(v.tolist() for v in box_region(new[j][k], dims)))))
            before = images[j][inside].clone()
            images[j][region] = out[r]
            changed = (images[j][inside] - before).abs().mean(0, keepdim=True) > diff_threshold
            label[j][inside] |= changed if label_mode == "difference" else True
    empty = [torch.zeros(0)] * n
    old_boxes, old_labels = batch.get(GanKeys.BOXES, empty)[:num], batch.get(GanKeys.BOX_LABELS, empty)[:num]
    new_labels = batch.get(NEW_BOX_LABELS, [torch.zeros(len(b)) for b in new])[:num]
    boxes = [torch.cat([torch.as_tensor(o).float().reshape(-1, 2 * dims), b]) for o, b in zip(old_boxes, new)]
    labels = [torch.cat([torch.as_tensor(o).reshape(-1), torch.as_tensor(b).reshape(-1)]).long()
              for o, b in zip(old_labels, new_labels)]
    result = {GanKeys.IMAGE: images, GanKeys.LABEL: label.to(torch.uint8), GanKeys.BOXES: boxes,
              GanKeys.BOX_LABELS: labels, GanKeys.CLASS: torch.ones(n, dtype=torch.long), NEW_BOXES: new,
              NEW_BOX_LABELS: [torch.as_tensor(b).reshape(-1).long() for b in new_labels]}
    if SOURCE_IMAGE in batch:  # provenance for the writer: which real slice each sample edits
        result[SOURCE_IMAGE] = [str(v) for v in batch[SOURCE_IMAGE][:num]]
    return result
