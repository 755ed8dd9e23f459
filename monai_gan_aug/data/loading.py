# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI's ``LoadImage``/``LoadImaged`` with this project's DICOM reader registered, and read errors that name
the file.

These are not a second loader: they are :class:`monai.transforms.LoadImage` and :class:`monai.transforms.LoadImaged`
with :class:`~monai_gan_aug.data.readers.DicomReader` registered so MONAI's suffix-based auto-selection picks it for
DICOM files and folders (``.dcm``, extension-less files with the ``DICM`` magic, series folders), while NIfTI,
PNG/JPEG and the rest go to MONAI's own readers. Any failure to read a file (truncated gzip, corrupt pixel data,
unknown format) becomes an :class:`~monai_gan_aug.data.errors.ImageReadError` that says which file and why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import LoadImage, LoadImaged

from monai_gan_aug.data.errors import ImageReadError
from monai_gan_aug.data.readers import DicomReader

__all__ = ["LoadMedicalImage", "LoadMedicalImaged", "LoadMedicalImageD", "LoadMedicalImageDict"]


def _describe(filename: Any) -> str:
    if isinstance(filename, (str, os.PathLike)):
        return str(filename)
    if isinstance(filename, Sequence) and len(filename) > 3:
        return f"{filename[0]} (+{len(filename) - 1} more files)"
    return str(filename)


class LoadMedicalImage(LoadImage):
    """:class:`monai.transforms.LoadImage` with :class:`DicomReader` auto-selected for DICOM input.

    Args:
        reader: as MONAI's; when None (default) MONAI's readers plus :class:`DicomReader` are auto-selected by suffix.
        dicom_kwargs: arguments of :class:`DicomReader` (e.g. ``{"to_grayscale": True}``).
        args, kwargs: the rest of :class:`monai.transforms.LoadImage`'s arguments.
    """

    def __init__(self, reader=None, image_only: bool = True, dtype=np.float32, ensure_channel_first: bool = False,
                 dicom_kwargs: Mapping[str, Any] | None = None, *args, **kwargs) -> None:
        super().__init__(reader, image_only, dtype, ensure_channel_first, *args, **kwargs)
        if reader is None:
            self.register(DicomReader(**dict(dicom_kwargs or {})))

    def __call__(self, filename, reader=None):
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        for name in names:
            if isinstance(name, (str, os.PathLike)) and not os.path.exists(os.path.expanduser(str(name))):
                raise ImageReadError(f"{name}: file not found. Check the path in the datalist / --dataset_dir.")
        try:
            return super().__call__(filename, reader)
        except ImageReadError:
            raise
        except Exception as err:  # any reader's failure: report the file, not a deep traceback
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ImageReadError(
                f"{_describe(filename)}: cannot read the image ({type(err).__name__}: {detail}). The file may be "
                "truncated or corrupt, or not a DICOM/NIfTI/PNG image: re-export it or remove it from the dataset."
            ) from err


class LoadMedicalImaged(LoadImaged):
    """Dictionary version of :class:`LoadMedicalImage`; arguments as :class:`monai.transforms.LoadImaged` plus
    ``dicom_kwargs``."""

    def __init__(self, keys, reader=None, dtype=np.float32, meta_keys=None, meta_key_postfix: str = "meta_dict",
                 overwriting: bool = False, image_only: bool = True, ensure_channel_first: bool = False,
                 simple_keys: bool = False, prune_meta_pattern: str | None = None, prune_meta_sep: str = ".",
                 allow_missing_keys: bool = False, expanduser: bool = True,
                 dicom_kwargs: Mapping[str, Any] | None = None, *args, **kwargs) -> None:
        super().__init__(keys, reader, dtype, meta_keys, meta_key_postfix, overwriting, image_only,
                         ensure_channel_first, simple_keys, prune_meta_pattern, prune_meta_sep,
                         allow_missing_keys, expanduser, *args, **kwargs)
        self._loader = LoadMedicalImage(reader, image_only, dtype, ensure_channel_first, dicom_kwargs, *args,
                                        simple_keys=simple_keys, prune_meta_pattern=prune_meta_pattern,
                                        prune_meta_sep=prune_meta_sep, expanduser=expanduser, **kwargs)


LoadMedicalImageD = LoadMedicalImageDict = LoadMedicalImaged
