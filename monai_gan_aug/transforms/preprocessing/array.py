# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The papers' preprocessing as MONAI array transforms (channel-first ``(C, *spatial)`` inputs).

- Liang & Chen, "Data augmentation of thyroid ultrasound images using generative adversarial network" (2020):
  right-aligned square crop of 875 x 1167 frames to 875 x 875, resize to 256 x 256, intensities to [-1, 1]
  (:class:`RightAlignedSquareCrop`, :class:`CropResizeToPowerOfTwo`, :class:`ScaleToSymmetricRange`).
- Han et al., "Learning more with less: GAN-based medical image augmentation" (2019): remove irrelevant content
  (skull stripping), crop the remaining part and resize it to a power of two, e.g. 256 x 256 or 32 x 32 x 32
  (:class:`ForegroundCrop`, :class:`CropResizeToPowerOfTwo`); 2D slices of brain MR volumes (:class:`RandSlice`).
- Guards that make mixed datasets fail with a clear message instead of a collate stack trace
  (:class:`EnsureGrayscale`, :class:`CheckImage`).

The geometric transforms expose their plan (``compute_roi`` / ``compute_plan`` / ``compute_bounding_box``), so the
dictionary versions move bounding boxes with the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import (
    CropForeground,
    Randomizable,
    Resize,
    ScaleIntensityRange,
    ScaleIntensityRangePercentiles,
    SpatialCrop,
    SqueezeDim,
    Transform,
)
from monai.transforms.utils import get_largest_connected_component_mask
from monai.utils import TransformBackends, ensure_tuple, optional_import
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from monai_gan_aug.data.readers import LUMA_WEIGHTS
from monai_gan_aug.transforms.boxes.array import as_box_array

ndimage, _ = optional_import("scipy.ndimage")
threshold_otsu, has_skimage = optional_import("skimage.filters", name="threshold_otsu")

__all__ = [
    "CheckImage",
    "CropResizeToPowerOfTwo",
    "EnsureGrayscale",
    "ForegroundCrop",
    "RandSlice",
    "RightAlignedSquareCrop",
    "ScaleToSymmetricRange",
    "crop_or_pad",
    "is_power_of_two",
    "nearest_power_of_two",
]


def _filename(img: Any) -> str | None:
    if isinstance(img, MetaTensor):
        name = img.meta.get("filename_or_obj")
        return None if name is None else str(name)
    return None


def _where(img: Any) -> str:
    name = _filename(img)
    return f"{name}: " if name else ""


def _check_channel_first(img: Any, owner: str, ranks: Sequence[int] = (2, 3)) -> tuple[int, ...]:
    if not hasattr(img, "shape") or len(img.shape) - 1 not in ranks:
        shape = tuple(getattr(img, "shape", ()))
        raise ValueError(
            f"{_where(img)}{owner} expects a channel-first image (C, *spatial) with {' or '.join(map(str, ranks))} "
            f"spatial dims, got shape {shape}; add EnsureChannelFirst(d) after LoadImage(d)."
        )
    return tuple(int(s) for s in img.shape[1:])


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` is a positive integer power of two (1, 2, 4, ...)."""
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 and (int(n) & (int(n) - 1)) == 0


def nearest_power_of_two(n: float) -> int:
    """The power of two nearest to ``n`` on a log scale (``2 ** round(log2(n))``, halves rounded up)."""
    if n <= 0:
        raise ValueError(f"nearest_power_of_two needs a positive number, got {n}.")
    return int(2 ** math.floor(math.log2(n) + 0.5))


def crop_or_pad(
    img: NdarrayOrTensor, roi_start: Sequence[int], roi_end: Sequence[int], pad_mode: str = "constant", **pad_kwargs
) -> NdarrayOrTensor:
    """The region ``[roi_start, roi_end)`` of ``img``; parts outside the image are padded.

    Uses MONAI's ``CropForeground.crop_pad`` (crop then pad, recorded in ``applied_operations`` of a MetaTensor).

    Args:
        img: channel-first image.
        roi_start: start per spatial axis (negative: pad before).
        roi_end: end per spatial axis (beyond the size: pad after).
        pad_mode: padding mode (``"constant"``, ``"edge"``, ``"reflect"``, ...).
        pad_kwargs: e.g. ``value`` for constant padding.
    """
    start = np.asarray(roi_start, dtype=np.int64)
    end = np.asarray(roi_end, dtype=np.int64)
    cropper = CropForeground(allow_smaller=False, mode=pad_mode, **pad_kwargs)
    return cropper.crop_pad(img, start, end)


class RightAlignedSquareCrop(Transform):
    """Crop the largest square that is flush with the right edge (spatial axis 0 = columns, highest index).

    Liang & Chen (2020) right-aligned crop their 875 x 1167 (rows x columns) thyroid ultrasound frames to
    875 x 875: the rightmost 875 columns, all rows (the scanner's side panel sits on the left). The side of the
    square is ``min(width, height)``; when the image is taller than wide, the paper gives no rule for the rows, so
    ``align`` chooses: ``"center"`` (default), ``"start"`` (top) or ``"end"`` (bottom). Further spatial axes
    (3D) are kept whole.

    Args:
        align: placement of the square along spatial axis 1 when the image is taller than wide.
    """

    backend = SpatialCrop.backend

    def __init__(self, align: str = "center") -> None:
        if align not in ("center", "start", "end"):
            raise ValueError(f"align must be 'center', 'start' or 'end', got {align!r}.")
        self.align = align

    def compute_roi(self, spatial_shape: Sequence[int]) -> tuple[list[int], list[int]]:
        """``(roi_start, roi_end)`` of the square for an image of ``spatial_shape``."""
        if len(spatial_shape) < 2:
            raise ValueError(f"RightAlignedSquareCrop needs at least 2 spatial dims, got {tuple(spatial_shape)}.")
        width, height = int(spatial_shape[0]), int(spatial_shape[1])
        side = min(width, height)
        extra = height - side
        y0 = {"center": extra // 2, "start": 0, "end": extra}[self.align]
        start = [width - side, y0] + [0] * (len(spatial_shape) - 2)
        end = [width, y0 + side] + [int(s) for s in spatial_shape[2:]]
        return start, end

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Args:
        img: channel-first image.
        """
        shape = _check_channel_first(img, type(self).__name__)
        start, end = self.compute_roi(shape)
        return SpatialCrop(roi_start=start, roi_end=end)(img)


class CropResizeToPowerOfTwo(Transform):
    """Centre-crop (or pad) to a square / cube, then resize to a power-of-two size.

    Han et al. (2019) crop the brain and resize it to a power of two (256 x 256 for 2D, 32 x 32 x 32 for 3D) so a
    progressively growing GAN can double the resolution at every stage. ``mode="crop"`` keeps the central
    ``min(shape)`` square (loses the borders of the long axis), ``mode="pad"`` pads to ``max(shape)`` (keeps
    everything, adds background).

    Args:
        size: output side, a power of two; ``None`` picks the power of two nearest to the square side.
        mode: ``"crop"`` or ``"pad"``.
        interp_mode: interpolation of ``monai.transforms.Resize``; ``None``: ``"area"`` when shrinking (an
            average over each output voxel's footprint: no aliasing, and no dark borders, which MONAI's Gaussian
            ``anti_aliasing`` adds through its zero padding), ``"bilinear"`` / ``"trilinear"`` when enlarging. Use
            ``"nearest"`` for masks.
        pad_mode: padding mode of ``mode="pad"``.
        pad_kwargs: e.g. ``value=-1024`` for constant padding of CT.

    Raises:
        ValueError: when ``size`` is not a power of two, or ``mode`` is unknown.
    """

    backend = Resize.backend

    def __init__(
        self,
        size: int | None = None,
        mode: str = "crop",
        interp_mode: str | None = None,
        pad_mode: str = "constant",
        **pad_kwargs: Any,
    ) -> None:
        if size is not None and not is_power_of_two(size):
            raise ValueError(
                f"CropResizeToPowerOfTwo: size must be a power of two (e.g. 32, 64, 128, 256), got {size!r}; or "
                "pass size=None for the nearest power of two."
            )
        if mode not in ("crop", "pad"):
            raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}.")
        self.size = None if size is None else int(size)
        self.mode = mode
        self.interp_mode = interp_mode
        self.pad_mode = pad_mode
        self.pad_kwargs = pad_kwargs

    def compute_plan(self, spatial_shape: Sequence[int]) -> tuple[list[int], list[int], int, int]:
        """``(roi_start, roi_end, side, out_size)``: the centred square region (may extend outside the image in
        ``"pad"`` mode), its side, and the output side."""
        shape = [int(s) for s in spatial_shape]
        side = min(shape) if self.mode == "crop" else max(shape)
        start = [(s - side) // 2 for s in shape]
        end = [st + side for st in start]
        out = self.size if self.size is not None else nearest_power_of_two(side)
        return start, end, side, out

    def __call__(self, img: NdarrayOrTensor, interp_mode: str | None = None) -> NdarrayOrTensor:
        """Args:
        img: channel-first 2D or 3D image.
        interp_mode: overrides the constructor's.
        """
        shape = _check_channel_first(img, type(self).__name__)
        start, end, side, out = self.compute_plan(shape)
        squared = crop_or_pad(img, start, end, self.pad_mode, **self.pad_kwargs)
        if side == out:
            return squared
        mode = interp_mode or self.interp_mode
        if mode is None:
            mode = "area" if out < side else ("bilinear" if len(shape) == 2 else "trilinear")
        return Resize(spatial_size=(out,) * len(shape), mode=mode)(squared)


class ScaleToSymmetricRange(Transform):
    """Scale intensities to ``[-1, 1]``, the range of a ``tanh`` generator (Liang & Chen 2020: "All images are
    normalized to the range [-1, 1]").

    Exactly one source range is used:

    - ``a_min``/``a_max``: a fixed window (e.g. CT ``-1000..1000`` HU), via ``ScaleIntensityRange``;
    - ``lower_percentile``/``upper_percentile``: per-image percentiles, via ``ScaleIntensityRangePercentiles``;
    - nothing: the image's own min..max (a constant image becomes all ``-1``).

    Args:
        a_min: lower end of a fixed window.
        a_max: upper end of a fixed window.
        lower_percentile: lower percentile in ``[0, 100]``.
        upper_percentile: upper percentile in ``[0, 100]``.
        clip: clip the result to ``[-1, 1]``.
    """

    backend = ScaleIntensityRange.backend

    def __init__(
        self,
        a_min: float | None = None,
        a_max: float | None = None,
        lower_percentile: float | None = None,
        upper_percentile: float | None = None,
        clip: bool = True,
    ) -> None:
        fixed = (a_min is not None, a_max is not None)
        pct = (lower_percentile is not None, upper_percentile is not None)
        if any(fixed) and any(pct):
            raise ValueError("ScaleToSymmetricRange: give either a_min/a_max or lower/upper_percentile, not both.")
        if any(fixed) and not all(fixed):
            raise ValueError("ScaleToSymmetricRange: give both a_min and a_max.")
        if any(pct) and not all(pct):
            raise ValueError("ScaleToSymmetricRange: give both lower_percentile and upper_percentile.")
        if all(fixed) and not a_max > a_min:  # type: ignore[operator]
            raise ValueError(f"ScaleToSymmetricRange: a_max ({a_max}) must be greater than a_min ({a_min}).")
        if all(pct) and not 0 <= lower_percentile < upper_percentile <= 100:  # type: ignore[operator]
            raise ValueError(
                f"ScaleToSymmetricRange: need 0 <= lower_percentile < upper_percentile <= 100, got "
                f"{lower_percentile}, {upper_percentile}."
            )
        self.clip = clip
        self.scaler: Transform | None = None
        if all(fixed):
            self.scaler = ScaleIntensityRange(a_min, a_max, -1.0, 1.0, clip=clip)  # type: ignore[arg-type]
        elif all(pct):
            self.scaler = ScaleIntensityRangePercentiles(
                lower_percentile,
                upper_percentile,
                -1.0,
                1.0,
                clip=clip,  # type: ignore[arg-type]
            )

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Args:
        img: image of any shape.
        """
        if self.scaler is not None:
            return self.scaler(img)
        t = convert_to_tensor(img, track_meta=isinstance(img, MetaTensor), dtype=torch.float32)
        lo, hi = t.min(), t.max()
        if float(hi - lo) <= 0:
            out = torch.full_like(t, -1.0)
        else:
            out = (t - lo) / (hi - lo) * 2.0 - 1.0
            if self.clip:
                out = out.clamp(-1.0, 1.0)
        return convert_to_dst_type(out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)[0]


class ForegroundCrop(Transform):
    """Crop to the bounding box of the main foreground object (head / brain / body), plus a margin.

    Han et al. (2019) skull-strip brain MR and crop the remaining brain before resizing. The foreground is: the
    image (maximum over channels) above ``threshold``, reduced to its largest connected component (drops labels,
    text and bed lines) and with its holes filled; MONAI's ``CropForeground`` computes the box from this
    ``select_fn``. Apply it to a skull-stripped image (or to a brain mask through the dictionary version's
    ``source_key``) for a brain crop, to the raw image for a head crop. An image without foreground is returned
    whole.

    Args:
        threshold: a number, ``"otsu"`` (Otsu's threshold, scikit-image) or ``"mean"``.
        margin: voxels added on every side (clipped to the image).
        largest_component: keep only the largest connected component.
        fill_holes: fill holes of the foreground (``scipy.ndimage.binary_fill_holes``).
        k_divisible: make the box size divisible by this (MONAI ``CropForeground``).
    """

    backend = CropForeground.backend

    def __init__(
        self,
        threshold: float | str = "otsu",
        margin: int | Sequence[int] = 0,
        largest_component: bool = True,
        fill_holes: bool = True,
        k_divisible: int | Sequence[int] = 1,
    ) -> None:
        if isinstance(threshold, str) and threshold not in ("otsu", "mean"):
            raise ValueError(f"threshold must be a number, 'otsu' or 'mean', got {threshold!r}.")
        if threshold == "otsu" and not has_skimage:
            raise ImportError("ForegroundCrop(threshold='otsu') needs scikit-image: pip install scikit-image.")
        if any(int(m) < 0 for m in ensure_tuple(margin)):
            raise ValueError(f"margin must be non-negative, got {margin}.")
        self.threshold = threshold
        self.largest_component = largest_component
        self.fill_holes = fill_holes
        self.cropper = CropForeground(
            select_fn=self.select_foreground, margin=margin, allow_smaller=True, k_divisible=k_divisible
        )

    def _threshold_value(self, arr: np.ndarray) -> float:
        if not isinstance(self.threshold, str):
            return float(self.threshold)
        if self.threshold == "mean":
            return float(arr.mean())
        if float(arr.max()) == float(arr.min()):
            return float(arr.max())
        return float(threshold_otsu(arr))

    def select_foreground(self, img: NdarrayOrTensor) -> np.ndarray:
        """Boolean ``(1, *spatial)`` foreground mask of a channel-first image (the ``select_fn``)."""
        arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        arr = arr.astype(np.float32).max(axis=0)
        mask = arr > self._threshold_value(arr)
        if self.largest_component and mask.any():
            mask = get_largest_connected_component_mask(mask[None])[0].astype(bool)
        if self.fill_holes and mask.any():
            mask = ndimage.binary_fill_holes(mask)
        return mask[None]

    def compute_bounding_box(self, img: NdarrayOrTensor) -> tuple[list[int], list[int]]:
        """``(roi_start, roi_end)`` of the foreground box; the whole image when there is no foreground."""
        shape = _check_channel_first(img, type(self).__name__)
        start, end = self.cropper.compute_bounding_box(img)
        start = [max(0, int(s)) for s in start]
        end = [min(int(sz), int(e)) for e, sz in zip(end, shape)]
        if any(e <= s for s, e in zip(start, end)):
            return [0] * len(shape), list(shape)
        return start, end

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Args:
        img: channel-first image.
        """
        start, end = self.compute_bounding_box(img)
        return SpatialCrop(roi_start=start, roi_end=end)(img)


class EnsureGrayscale(Transform):
    """Make a channel-first image single-channel: RGB / RGBA -> ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``
    (alpha ignored), one channel passes through.

    Colour ultrasound or screenshots mixed into a grayscale dataset would otherwise give batches of mixed channel
    counts.

    Raises:
        ValueError: for any other channel count (the message names the file from the MetaTensor's
            ``filename_or_obj``).
    """

    backend = (TransformBackends.TORCH, TransformBackends.NUMPY)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Args:
        img: channel-first image.
        """
        _check_channel_first(img, type(self).__name__, ranks=(1, 2, 3))
        channels = int(img.shape[0])
        if channels == 1:
            return img
        if channels not in (3, 4):
            raise ValueError(
                f"{_where(img)}EnsureGrayscale: cannot convert {channels} channels to grayscale (expected 1, 3 = RGB "
                "or 4 = RGBA); check that EnsureChannelFirst put the channels first, or drop this image."
            )
        r, g, b = LUMA_WEIGHTS
        out = img[0:1] * r + img[1:2] * g + img[2:3] * b
        if isinstance(out, torch.Tensor):
            return out.to(torch.float32)
        return np.asarray(out, dtype=np.float32)


class RandSlice(Randomizable, Transform):
    """Take one random 2D slice of a channel-first 3D volume; 2D inputs pass through.

    For 2D GANs trained on slices of volumes (Han et al. 2019 train on 256 x 256 axial MR slices). With a
    ``foreground`` (a mask with the volume's spatial shape, or ``(N, 6)`` boxes) the slice is drawn, with
    probability ``prob_foreground``, among the slices that contain foreground, otherwise uniformly. Randomness
    comes only from ``self.R`` (``set_random_state`` / ``monai.utils.set_determinism``). The slice keeps a
    correct affine (MONAI ``SpatialCrop`` + ``SqueezeDim``).

    Args:
        axis: spatial axis to slice (``-1`` = last = axial for RAS volumes).
        prob_foreground: probability of drawing among foreground slices when a foreground is given.
    """

    backend = SpatialCrop.backend

    def __init__(self, axis: int = -1, prob_foreground: float = 0.5) -> None:
        if not -3 <= int(axis) <= 2:
            raise ValueError(f"axis must be a spatial axis of a 3D volume (-3..2), got {axis}.")
        if not 0.0 <= prob_foreground <= 1.0:
            raise ValueError(f"prob_foreground must be in [0, 1], got {prob_foreground}.")
        self.axis = int(axis) % 3
        self.prob_foreground = float(prob_foreground)
        self.index: int | None = None

    def foreground_slices(self, foreground: Any, spatial_shape: Sequence[int]) -> np.ndarray:
        """Indices along ``axis`` that hold foreground: a mask's positive voxels or the slices boxes cover."""
        n = int(spatial_shape[self.axis])
        if foreground is None:
            return np.zeros(0, dtype=np.int64)
        fg = foreground.detach().cpu().numpy() if isinstance(foreground, torch.Tensor) else np.asarray(foreground)
        if fg.ndim == 2 or fg.size == 0:  # boxes
            boxes = as_box_array(fg, spatial_dims=3)
            lo = np.clip(np.floor(boxes[:, self.axis] + 1e-6), 0, n).astype(int)
            hi = np.clip(np.ceil(boxes[:, self.axis + 3] - 1e-6), 0, n).astype(int)
            hit = np.zeros(n, dtype=bool)
            for a, b in zip(lo, hi):
                hit[a:b] = True
            return np.flatnonzero(hit)
        if fg.ndim == len(spatial_shape):
            fg = fg[None]
        if tuple(fg.shape[1:]) != tuple(spatial_shape):
            raise ValueError(
                f"RandSlice: foreground of shape {fg.shape} does not match the volume's spatial shape {tuple(spatial_shape)}."
            )
        other = tuple(d + 1 for d in range(3) if d != self.axis) + (0,)
        return np.flatnonzero((fg > 0).any(axis=other))

    def randomize(self, n_slices: int, foreground_slices: np.ndarray | None = None) -> None:
        """Draw ``self.index`` among ``n_slices`` (biased to ``foreground_slices``)."""
        use_fg = self.R.rand() < self.prob_foreground
        if use_fg and foreground_slices is not None and len(foreground_slices) > 0:
            self.index = int(foreground_slices[self.R.randint(len(foreground_slices))])
        else:
            self.index = int(self.R.randint(n_slices))

    def slice(self, img: NdarrayOrTensor, index: int) -> NdarrayOrTensor:
        """The slice ``index`` along ``axis`` of a channel-first volume, as a channel-first 2D image."""
        shape = _check_channel_first(img, type(self).__name__, ranks=(3,))
        if not 0 <= index < shape[self.axis]:
            raise ValueError(f"{_where(img)}slice index {index} outside 0..{shape[self.axis] - 1} on axis {self.axis}.")
        roi = [slice(None)] * 3
        roi[self.axis] = slice(index, index + 1)
        cropped = SpatialCrop(roi_slices=roi)(img)
        return SqueezeDim(dim=self.axis + 1)(cropped)

    def __call__(self, img: NdarrayOrTensor, foreground: Any = None, randomize: bool = True) -> NdarrayOrTensor:
        """Args:
        img: channel-first 2D image (returned as is) or 3D volume.
        foreground: optional mask or ``(N, 6)`` boxes biasing the slice choice.
        randomize: draw a new index (``False`` reuses ``self.index``).
        """
        shape = _check_channel_first(img, type(self).__name__)
        if len(shape) == 2:
            return img
        if randomize:
            self.randomize(shape[self.axis], self.foreground_slices(foreground, shape))
        if self.index is None:
            raise ValueError("RandSlice: no slice index yet; call with randomize=True first.")
        return self.slice(img, self.index)


class CheckImage(Transform):
    """Check the channel count and spatial shape of an image; raise a clear ``ValueError`` naming the file.

    Without it, a dataset that mixes channel counts or sizes fails inside ``default_collate`` with a stack trace
    that names no file.

    Args:
        channels: the allowed channel count(s); ``None`` skips the check.
        spatial_size: the expected spatial shape; entries ``None`` or ``-1`` match any size, and its length is the
            expected number of spatial dims. ``None`` skips the check.
    """

    backend = (TransformBackends.TORCH, TransformBackends.NUMPY)

    def __init__(self, channels: int | Sequence[int] | None = None, spatial_size: Sequence[int | None] | None = None):
        self.channels = None if channels is None else tuple(int(c) for c in ensure_tuple(channels))
        self.spatial_size = None if spatial_size is None else tuple(spatial_size)

    def __call__(self, img: NdarrayOrTensor, filename: str | None = None) -> NdarrayOrTensor:
        """Return ``img`` unchanged when it passes.

        Args:
            img: channel-first image.
            filename: names the file in the error when ``img`` carries no ``filename_or_obj``.
        """
        name = _filename(img) or filename
        where = f"{name}: " if name else ""
        shape = tuple(int(s) for s in getattr(img, "shape", ()))
        if len(shape) < 2:
            raise ValueError(f"{where}expected a channel-first image (C, *spatial), got shape {shape}.")
        if self.channels is not None and shape[0] not in self.channels:
            raise ValueError(
                f"{where}has {shape[0]} channel(s), expected {' or '.join(map(str, self.channels))} (shape {shape}). "
                "Convert it (EnsureGrayscale for colour images) or remove it from the datalist."
            )
        if self.spatial_size is not None:
            spatial = shape[1:]
            ok = len(spatial) == len(self.spatial_size) and all(
                e is None or int(e) == -1 or int(e) == s for e, s in zip(self.spatial_size, spatial)
            )
            if not ok:
                raise ValueError(
                    f"{where}has spatial shape {spatial}, expected {self.spatial_size} (None/-1 = any). Resize it "
                    "(e.g. CropResizeToPowerOfTwo) before batching, or remove it from the datalist."
                )
        return img
