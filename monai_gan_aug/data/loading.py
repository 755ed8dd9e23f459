# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI's ``LoadImage``/``LoadImaged`` with this project's DICOM reader registered, and read errors that name
the file.

These are not a second loader: they are :class:`monai.transforms.LoadImage` and :class:`monai.transforms.LoadImaged`
with :class:`~monai_gan_aug.data.readers.DicomReader` registered so MONAI's suffix-based auto-selection picks it for
DICOM files and folders (``.dcm``, extension-less files with the ``DICM`` magic, series folders), while NIfTI,
PNG/JPEG and the rest go to MONAI's own readers. Any failure to read a file (truncated gzip, corrupt pixel data,
unknown format) becomes an :class:`~monai_gan_aug.data.errors.ImageReadError` that says which file and why.

Every loaded image is also checked (:func:`image_problem`): NaN/infinite values and a degenerate shape (fewer than
two axes longer than one pixel, e.g. a ``(1, 1, 1)`` placeholder) raise :class:`BadImageError` naming the file,
before the image can reach a network; constant images can be refused too (``allow_constant=False``: off by default
because an empty mask is constant). :func:`monai_gan_aug.data.datalist.load_datalist` with ``bad_images`` uses the
same check to refuse or skip such files before any dataset is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, LoadImaged

from monai_gan_aug.data.errors import ImageReadError
from monai_gan_aug.data.readers import DicomReader

__all__ = [
    "BAD_IMAGE_HINT",
    "BadImageError",
    "LoadMedicalImage",
    "LoadMedicalImaged",
    "LoadMedicalImageD",
    "LoadMedicalImageDict",
    "image_problem",
]

#: What to do about a bad image, appended to every :class:`BadImageError` message.
BAD_IMAGE_HINT = (
    "Fix or remove the file, or set bad_images='skip' (bundle setting: --bad_images skip) to leave such files out "
    "of training with a warning."
)


class BadImageError(ValueError):
    """An image was read but cannot be trained on: NaN/infinite values, one constant value, or a degenerate shape.

    The message names the file, the problem and what to do about it.
    """


def _describe(filename: Any) -> str:
    if isinstance(filename, (str, os.PathLike)):
        return str(filename)
    if isinstance(filename, Sequence) and len(filename) > 3:
        return f"{filename[0]} (+{len(filename) - 1} more files)"
    return str(filename)


def _spatial_shape(img: Any, meta: Mapping | None) -> tuple[int, ...]:
    shape = (meta or {}).get("spatial_shape")
    if shape is not None:
        return tuple(int(s) for s in np.asarray(shape).reshape(-1))
    full = tuple(int(s) for s in img.shape)
    channel = (meta or {}).get("original_channel_dim")
    if isinstance(channel, (int, np.integer)) and full:
        axes = list(full)
        del axes[int(channel) % len(axes)]
        return tuple(axes)
    return full


def image_problem(img: Any, meta: Mapping | None = None, spatial_dims: int | None = None,
                  allow_constant: bool = True) -> str | None:
    """What makes a loaded image unusable for training, or ``None`` when it is fine.

    Checks, in this order: the shape (fewer than ``max(2, spatial_dims)`` spatial axes longer than one pixel, such
    as a ``(1, 1, 1)`` volume or a 2D slice in a 3D pipeline), NaN or infinite values, and (unless
    ``allow_constant``) a single value everywhere.

    Args:
        img: the array (a MetaTensor, tensor or numpy array) as returned by ``LoadImage``.
        meta: its metadata when ``img`` carries none; ``spatial_shape`` and ``original_channel_dim`` are read.
        spatial_dims: the number of spatial dims the training images need (2 or 3); None means 2.
        allow_constant: accept an image that holds one value everywhere (an empty mask).
    """
    if meta is None and isinstance(img, MetaTensor):
        meta = img.meta
    shape = _spatial_shape(img, meta)
    need = max(2, int(spatial_dims or 2))
    extent = [s for s in shape if s > 1]
    if len(extent) < need:
        why = (
            "it is a 2D image and the pipeline trains 3D volumes (spatial_dims=3)"
            if need == 3 and len(extent) == 2
            else "it is not an image the networks can learn from (an empty placeholder or a failed conversion?)"
        )
        return f"spatial shape {shape} has {len(extent)} axis/axes longer than 1 pixel, a {need}D image needs {need}: {why}."
    if isinstance(img, MetaTensor):
        t = img.as_tensor()
    else:
        t = img if isinstance(img, torch.Tensor) else torch.as_tensor(np.asarray(img))
    if t.is_floating_point() or t.is_complex():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            nans = int(torch.isnan(t).sum())
            return (
                f"{bad} of {t.numel()} values are not finite ({nans} NaN, {bad - nans} infinite); the networks "
                "cannot train on them (the first loss would be NaN)."
            )
    if not allow_constant and t.numel():
        lo, hi = float(t.min()), float(t.max())
        if lo == hi:
            return (
                f"every value is {lo:g}: a constant image holds nothing to learn and becomes a flat image after "
                "resizing and intensity scaling."
            )
    return None


class LoadMedicalImage(LoadImage):
    """:class:`monai.transforms.LoadImage` with :class:`DicomReader` auto-selected for DICOM input.

    Args:
        reader: as MONAI's; when None (default) MONAI's readers plus :class:`DicomReader` are auto-selected by suffix.
        dicom_kwargs: arguments of :class:`DicomReader` (e.g. ``{"to_grayscale": True}``).
        check_image: check every loaded image with :func:`image_problem` and raise :class:`BadImageError` naming the
            file (NaN/infinite values, a degenerate shape; constant images with ``allow_constant=False``).
        spatial_dims: the spatial dims the images need (2 or 3) for the shape check; None means 2.
        allow_constant: accept constant images (default: masks may be empty).
        args, kwargs: the rest of :class:`monai.transforms.LoadImage`'s arguments.
    """

    def __init__(self, reader=None, image_only: bool = True, dtype=np.float32, ensure_channel_first: bool = False,
                 dicom_kwargs: Mapping[str, Any] | None = None, *args, check_image: bool = True,
                 spatial_dims: int | None = None, allow_constant: bool = True, **kwargs) -> None:
        super().__init__(reader, image_only, dtype, ensure_channel_first, *args, **kwargs)
        if reader is None:
            self.register(DicomReader(**dict(dicom_kwargs or {})))
        if spatial_dims not in (None, 2, 3):
            raise ValueError(f"spatial_dims must be 2, 3 or None, got {spatial_dims!r}.")
        self.check_image = bool(check_image)
        self.spatial_dims = spatial_dims
        self.allow_constant = bool(allow_constant)

    def __call__(self, filename, reader=None):
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        for name in names:
            if isinstance(name, (str, os.PathLike)) and not os.path.exists(os.path.expanduser(str(name))):
                raise ImageReadError(f"{name}: file not found. Check the path in the datalist / --dataset_dir.")
        try:
            out = super().__call__(filename, reader)
        except ImageReadError:
            raise
        except Exception as err:  # any reader's failure: report the file, not a deep traceback
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ImageReadError(
                f"{_describe(filename)}: cannot read the image ({type(err).__name__}: {detail}). The file may be "
                "truncated or corrupt, or not a DICOM/NIfTI/PNG image: re-export it or remove it from the dataset."
            ) from err
        if self.check_image:
            img, meta = (out[0], out[1]) if isinstance(out, (tuple, list)) else (out, None)
            problem = image_problem(img, meta, self.spatial_dims, self.allow_constant)
            if problem:
                raise BadImageError(f"{_describe(filename)}: {problem} {BAD_IMAGE_HINT}")
        return out


class LoadMedicalImaged(LoadImaged):
    """Dictionary version of :class:`LoadMedicalImage`; arguments as :class:`monai.transforms.LoadImaged` plus
    ``dicom_kwargs``, ``check_image``, ``spatial_dims`` and ``allow_constant`` (applied to every key)."""

    def __init__(self, keys, reader=None, dtype=np.float32, meta_keys=None, meta_key_postfix: str = "meta_dict",
                 overwriting: bool = False, image_only: bool = True, ensure_channel_first: bool = False,
                 simple_keys: bool = False, prune_meta_pattern: str | None = None, prune_meta_sep: str = ".",
                 allow_missing_keys: bool = False, expanduser: bool = True,
                 dicom_kwargs: Mapping[str, Any] | None = None, *args, check_image: bool = True,
                 spatial_dims: int | None = None, allow_constant: bool = True, **kwargs) -> None:
        super().__init__(keys, reader, dtype, meta_keys, meta_key_postfix, overwriting, image_only,
                         ensure_channel_first, simple_keys, prune_meta_pattern, prune_meta_sep,
                         allow_missing_keys, expanduser, *args, **kwargs)
        self._loader = LoadMedicalImage(reader, image_only, dtype, ensure_channel_first, dicom_kwargs, *args,
                                        check_image=check_image, spatial_dims=spatial_dims,
                                        allow_constant=allow_constant, simple_keys=simple_keys,
                                        prune_meta_pattern=prune_meta_pattern, prune_meta_sep=prune_meta_sep,
                                        expanduser=expanduser, **kwargs)


LoadMedicalImageD = LoadMedicalImageDict = LoadMedicalImaged
