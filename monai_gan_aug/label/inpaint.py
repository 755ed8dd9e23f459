# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesions into boxes of a REAL image with a lesion-inpainting generator (MCGAN: Han et al., 3DV 2019, arXiv
1906.04962; ``bundles/lesion_inpaint``): the request logic of the MONAI Label task
:class:`~monai_gan_aug.label.tasks.LesionInpaintTask`, without MONAI Label, so that it runs (and is tested) in any
environment.

:func:`fill_lesions` takes the image the annotator has open (any intensity units, any grid), the boxes drawn on it
and optionally its existing lesion mask, and returns the same image with a lesion generated in every box, plus the
lesion label of the result. It follows the bundle's inference (``configs/inference.json``, ``--box_file``):

* intensities are scaled to ``[-1, 1]`` with the bundle's percentiles (0.5 / 99.5, ``ScaleToSymmetricRanged``);
* a box must lie inside the image, entirely in its foreground (scaled mean over channels above
  ``foreground_threshold``, the rule :class:`~monai_gan_aug.transforms.inpaint.LesionInpaintDataset` uses without
  a tissue map; at least ``min_foreground`` of its voxels), keep ``gap`` voxels away from existing lesions and the
  other boxes, and fit the generator's patch (``patch_size - 2 * margin`` voxels per side on the generator's grid);
* an image of another size than the generator's ``image_size`` is resized to it (linear; the lesion scale of the
  generator is in voxels) when ``resize`` is true, and refused otherwise;
* the boxes are filled in turn by :meth:`LesionInpaintObjective.generate
  <monai_gan_aug.losses.objectives.lesion_inpaint.LesionInpaintObjective.generate>` (the patch around each box,
  noise in the box, seeded by ``seed``), which changes only the boxes and their ``feather``-voxel blend rings;
* the change is mapped back to the input's grid (resized linearly when the image was resized) and units (times the
  scaling's ``(p99.5 - p0.5) / 2``) and ADDED to the input: every voxel the generator did not touch keeps its input
  value bit for bit.

The label is the existing mask (as 1) plus ``box_label + 1`` on every new box (``label_mode`` ``"box"`` of the
objective) or on the box voxels whose scaled intensity changed by more than ``diff_threshold`` (``"difference"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.utils import eval_mode

from monai_gan_aug.label.codec import parse_box_labels, parse_boxes
from monai_gan_aug.transforms.boxes.array import resize_boxes
from monai_gan_aug.transforms.inpaint import NEW_BOX_LABELS, NEW_BOXES, LesionContextCrop, box_region
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["fill_lesions", "scale_to_symmetric_range"]


def _tensor(x: Any, what: str) -> torch.Tensor:
    if hasattr(x, "as_tensor"):  # MetaTensor
        x = x.as_tensor()
    try:
        return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).detach().cpu().float()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} is not a numeric array ({err}).") from err


def scale_to_symmetric_range(
    image: torch.Tensor, lower_percentile: float = 0.5, upper_percentile: float = 99.5
) -> tuple[torch.Tensor, float, float]:
    """The image scaled to ``[-1, 1]`` (clipped) between its intensity percentiles, as the bundles' preprocessing
    does (``ScaleToSymmetricRanged``), and the two percentile values ``(lo, hi)``: ``scaled = 2 (x - lo) / (hi - lo)
    - 1``.

    Raises:
        ValueError: a (nearly) constant image, whose percentiles coincide.
    """
    lo, hi = (float(v) for v in np.percentile(image.numpy(), [lower_percentile, upper_percentile]))
    if not hi > lo:
        raise ValueError(
            f"the image is constant between its {lower_percentile} and {upper_percentile} intensity percentiles "
            f"(both {lo}); send the real image the lesions go into."
        )
    return ((image - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1.0, 1.0), lo, hi


def _resample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A ``(C, *S)`` image resized to ``size``: area averaging when every axis shrinks (as the bundles'
    ``CropResizeToPowerOfTwo``), linear otherwise."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[1:]) == size:
        return x
    if all(t <= s for t, s in zip(size, x.shape[1:])):
        return F.interpolate(x[None], size=size, mode="area")[0]
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(x[None], size=size, mode=mode, align_corners=False)[0]


def _region(lo: Sequence[int], hi: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def fill_lesions(
    generator: torch.nn.Module,
    objective: Any,
    image: Any,
    boxes: Any,
    box_labels: Any = None,
    existing_label: Any = None,
    *,
    image_size: int,
    patch_size: int,
    margin: int = 2,
    resize: bool = True,
    gap: int = 1,
    min_foreground: float = 1.0,
    foreground_threshold: float = -0.95,
    percentiles: tuple[float, float] = (0.5, 99.5),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Fill ``boxes`` of a real ``image`` with generated lesions (see the module docstring).

    Args:
        generator: the :class:`~monai_gan_aug.networks.nets.lesion_inpaint.LesionInpaintGenerator` (its
            ``spatial_dims`` and ``in_channels`` say what images it takes).
        objective: the :class:`~monai_gan_aug.losses.objectives.lesion_inpaint.LesionInpaintObjective` it was
            trained with (patch size, size condition, label mode).
        image: ``(C, *S)`` channel-first image in its own units (a 2D image may carry a trailing axis of size 1).
        boxes: ``[[x0, y0, x1, y1], ...]`` (``[x0, y0, z0, x1, y1, z1]`` in 3D) in voxel coordinates of ``image``,
            or that list as JSON text (:func:`~monai_gan_aug.label.codec.parse_boxes`); ``[]`` returns the image
            unchanged.
        box_labels: one class per box (default 0): the new lesions are labelled ``class + 1``.
        existing_label: optional ``(1, *S)`` (or ``S``) lesion mask of the image: new boxes keep ``gap`` voxels away
            from it and it is part of the returned label (as 1).
        image_size: the generator's training image side.
        patch_size, margin: the generator's patch side and the margin a box leaves to each patch side.
        resize: resize an image of another size to ``image_size`` (otherwise it is refused).
        gap, min_foreground, foreground_threshold: the box checks (see the module docstring).
        percentiles: intensity percentiles of the ``[-1, 1]`` scaling.
        seed: seed of the noise in the boxes (the same seed, image and boxes give the same result).
        device: where the generator runs.

    Returns:
        ``image`` (``(C, *S)`` float32, input units), ``label`` (``(1, *S)`` uint8), ``boxes`` (``(N, 2 * D)``
        float64), ``box_labels`` (int64), ``scale`` (``(lo, hi)`` of the intensity scaling), ``resized`` (bool) and
        ``changed`` (number of voxels whose value changed).

    Raises:
        ValueError: every problem of the request, naming it: an image of the wrong rank, channels or size, a
            non-finite or constant image, malformed boxes, a box outside the image or the foreground, too close to a
            lesion or another box, or too large for the patch.
    """
    dims, channels = int(generator.spatial_dims), int(generator.in_channels)
    x = _tensor(image, "the image")
    squeezed = dims == 2 and x.ndim == 4 and x.shape[-1] == 1
    if squeezed:
        x = x[..., 0]
    if x.ndim != dims + 1:
        raise ValueError(
            f"the image has {x.ndim - 1} spatial dimensions {tuple(x.shape[1:])}; this lesion generator is {dims}D "
            f"(send a {dims}D image)."
        )
    if x.shape[0] != channels:
        raise ValueError(f"the image has {x.shape[0]} channels, the generator was trained on {channels}.")
    if not torch.isfinite(x).all():
        raise ValueError("the image holds non-finite values (NaN or inf).")
    spatial = tuple(int(s) for s in x.shape[1:])
    boxes = parse_boxes(boxes, dims)
    labels = parse_box_labels(box_labels, len(boxes))
    scaled, lo, hi = scale_to_symmetric_range(x, *percentiles)

    existing = np.zeros(spatial, dtype=bool)
    if existing_label is not None:
        lab = _tensor(existing_label, "the lesion label")
        if squeezed and lab.ndim == dims + 2 and lab.shape[-1] == 1:
            lab = lab[..., 0]
        if lab.ndim == dims:
            lab = lab[None]
        if tuple(lab.shape[1:]) != spatial:
            raise ValueError(
                f"the lesion label is {tuple(lab.shape[1:])}, the image is {spatial}: send the image's own label."
            )
        existing = (lab > 0).any(0).numpy()

    # the checks of the bundle's inference, on the input's grid
    size = np.asarray(spatial)
    foreground = (scaled.mean(0) > foreground_threshold).numpy()
    occupied = existing.copy()
    regions = []
    for i, b in enumerate(boxes):
        blo, bhi = box_region(b, dims)
        where = f"box {i} {b.tolist()}"
        if np.any(blo < 0) or np.any(bhi > size):
            raise ValueError(
                f"{where} lies outside the image of size {list(spatial)} (voxel coordinates of the sent image, x along "
                "its first axis)."
            )
        frac = float(foreground[_region(blo, bhi)].mean())
        if frac < min_foreground:
            raise ValueError(
                f"{where}: only {frac:.0%} of it lies in the image's foreground (intensity above the background), "
                f"{min_foreground:.0%} is needed; draw the box inside the tissue."
            )
        if occupied[_region(np.maximum(blo - gap, 0), bhi + gap)].any():
            raise ValueError(
                f"{where} overlaps or lies within {gap} voxel(s) of an existing lesion (the image's label) or another "
                "box; move it."
            )
        occupied[_region(blo, bhi)] = True
        regions.append((blo, bhi))

    model = (int(image_size),) * dims
    resized = spatial != model
    if resized and not resize:
        raise ValueError(
            f"the image is {spatial}, the generator was trained on {model} images (its lesion scale is in voxels) and "
            'resizing is off: send an image of that size or params {"resize": true}.'
        )
    grid = _resample(scaled, model) if resized else scaled
    grid_boxes = np.asarray(resize_boxes(boxes, spatial, model), dtype=np.float64) if resized else boxes
    grid_boxes = grid_boxes.reshape(-1, 2 * dims)
    cropper = LesionContextCrop(patch_size, margin)
    allowed = (np.asarray(cropper.patch_shape(dims)) - 2 * cropper.margin).tolist()
    for i, b in enumerate(grid_boxes):
        blo, bhi = box_region(np.clip(b, 0, model[0]), dims)
        if not cropper.fits(blo, bhi, dims):
            raise ValueError(
                f"box {i} {boxes[i].tolist()} is too large for the generator: its sides {(bhi - blo).tolist()} on the "
                f"generator's {list(model)} grid exceed {allowed} (patch_size {patch_size} minus a {margin}-voxel "
                "margin each side); draw a smaller box."
            )

    out = x.clone()
    label = np.zeros((1, *spatial), dtype=np.uint8)
    label[0][existing] = 1
    changed = 0
    if len(boxes):
        batch = {
            objective.image_key: grid[None],
            NEW_BOXES: [torch.as_tensor(grid_boxes, dtype=torch.float32)],
            NEW_BOX_LABELS: [torch.as_tensor(labels)],
        }
        dev = torch.device(device)
        with eval_mode(generator), torch.no_grad():
            result = objective.generate(
                {objective.generator_name: generator}, 1, batch=batch, seeds=[int(seed)], device=dev
            )
        delta = result[GanKeys.IMAGE][0].float().cpu() - grid
        if resized:  # exact zeros stay exact: the untouched voxels keep their input value
            mode = "bilinear" if dims == 2 else "trilinear"
            delta = F.interpolate(delta[None], size=spatial, mode=mode, align_corners=False)[0]
        out = x + delta * ((hi - lo) / 2.0)
        changed = int((out != x).any(0).sum())
        moved = (delta.abs().mean(0) > float(getattr(objective, "diff_threshold", 0.25))).numpy()
        for (blo, bhi), cls in zip(regions, labels):
            region = _region(blo, bhi)
            if getattr(objective, "label_mode", "box") == "difference":
                label[0][region][moved[region]] = int(cls) + 1
            else:
                label[0][region] = int(cls) + 1
    if squeezed:
        out, label = out[..., None], label[..., None]
    return {
        "image": out.float(),
        "label": torch.as_tensor(label),
        "boxes": boxes,
        "box_labels": labels,
        "scale": (lo, hi),
        "resized": bool(resized),
        "changed": changed,
    }
