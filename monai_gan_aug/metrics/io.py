# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Reading image sets (folders or datalists) for the metrics, with one intensity convention.

Images are read with MONAI's ``LoadImage`` (default readers: PIL for PNG/JPEG, NiBabel for NIfTI, ITK / pydicom
for DICOM and other ITK formats), channel-first. Intensities are mapped to ``[-1, 1]`` (the extractors' input):

* ``"auto"`` (default): 8-bit images (``uint8``, e.g. PNG/JPEG) linearly, ``0 -> -1`` and ``255 -> 1``, so the
  absolute grey level is kept; anything else (16-bit PNG, CT in HU, MR, float NIfTI) per-image min-max;
* ``"uint8"``: always ``x / 127.5 - 1``; ``"minmax"``: always per-image min-max (constant images become 0);
* ``"unit"``: values already in ``[0, 1]`` -> ``2x - 1``; ``"none"``: values already in ``[-1, 1]`` (clipped).

Use the same mapping for real and generated sets (the generator's outputs saved as 8-bit PNG by MONAI's writer
read back correctly with ``auto``). RGBA drops alpha, gray+alpha keeps gray; trailing singleton spatial axes
(2D images stored as ``X x Y x 1`` NIfTI) are removed; all images of one evaluation are resized (MONAI ``Resize``,
area interpolation) to ``spatial_size`` or to the first image's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["IMAGE_EXTENSIONS", "INTENSITY_MODES", "ImageLoader", "list_images"]

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm",
)
INTENSITY_MODES = ("auto", "uint8", "minmax", "unit", "none")


def _has_image_ext(name: str) -> bool:
    low = name.lower()
    return any(low.endswith(e) for e in IMAGE_EXTENSIONS)


def list_images(
    source: str | os.PathLike | Sequence[str], datalist_key: str = "training", image_key: str = "image"
) -> list[str]:
    """Image files of a folder (recursive, sorted), a decathlon-style datalist JSON, or an explicit list.

    Args:
        source: folder, ``.json`` datalist (``{"training": [{"image": ...}, ...]}``, paths relative to the JSON's
            folder) or a list of paths.
        datalist_key: list of the datalist to read.
        image_key: item key holding the image path.
    """
    if not isinstance(source, (str, os.PathLike)):
        files = [os.fspath(p) for p in source]
    else:
        p = Path(source)
        if p.is_dir():
            files = sorted(str(f) for f in p.rglob("*") if f.is_file() and _has_image_ext(f.name))
        elif p.is_file() and p.suffix.lower() == ".json":
            from monai.data import load_decathlon_datalist

            try:
                items = load_decathlon_datalist(str(p), is_segmentation=False, data_list_key=datalist_key, base_dir=str(p.parent))
            except (KeyError, ValueError) as e:
                raise ValueError(f"Datalist {p} has no list {datalist_key!r}; pass the right --datalist-key.") from e
            files = []
            for item in items:
                path = item.get(image_key) if isinstance(item, dict) else item
                if not isinstance(path, str):
                    raise TypeError(f"Datalist {p}: item {item!r} has no {image_key!r} path.")
                files.append(path)
        elif p.is_file() and _has_image_ext(p.name):
            files = [str(p)]
        else:
            raise FileNotFoundError(f"{p} is neither a folder of images nor a datalist .json file.")
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed image(s) do not exist, e.g. {missing[0]}.")
    if not files:
        raise ValueError(f"No images found in {source} (extensions: {', '.join(IMAGE_EXTENSIONS)}).")
    return files


class ImageLoader:
    """Load images as channel-first float tensors in ``[-1, 1]`` with a fixed spatial size.

    Args:
        intensity: one of :data:`INTENSITY_MODES` (see the module docstring).
        spatial_size: target spatial size; ``None`` adopts the first loaded image's size.
    """

    def __init__(self, intensity: str = "auto", spatial_size: Sequence[int] | None = None) -> None:
        from monai.transforms import LoadImage

        if intensity not in INTENSITY_MODES:
            raise ValueError(f"`intensity` must be one of {INTENSITY_MODES}, got {intensity!r}.")
        self.intensity = intensity
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)
        self._reader = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)

    @property
    def settings(self) -> str:
        """Preprocessing identity for cache keys."""
        return f"intensity={self.intensity},size={self.spatial_size}"

    def _scale(self, x: torch.Tensor, dtype: Any, path: str) -> torch.Tensor:
        mode = self.intensity
        if mode == "auto":
            mode = "uint8" if dtype == torch.uint8 else "minmax"
        x = x.float()
        if mode == "uint8":
            if x.min() < 0 or x.max() > 255:
                raise ValueError(f"{path}: values outside [0, 255] cannot use intensity='uint8'.")
            return x / 127.5 - 1.0
        if mode == "unit":
            return (x * 2.0 - 1.0).clamp(-1, 1)
        if mode == "none":
            return x.clamp(-1, 1)
        from monai.transforms import ScaleIntensity

        if float(x.max()) == float(x.min()):
            return torch.zeros_like(x)
        return torch.as_tensor(ScaleIntensity(minv=-1.0, maxv=1.0)(x), dtype=torch.float32)

    def load(self, path: str) -> torch.Tensor:
        """One image ``(C, *spatial)`` in ``[-1, 1]``, resized to the loader's spatial size."""
        from monai.transforms import Resize

        img = self._reader(path)
        dtype = img.dtype
        x = torch.as_tensor(np.asarray(img))
        while x.ndim > 3 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.shape[0] == 4:
            x = x[:3]
        elif x.shape[0] == 2:
            x = x[:1]
        elif x.shape[0] not in (1, 3):
            raise ValueError(f"{path}: {x.shape[0]} channels; only gray (1), RGB (3) or with alpha are supported.")
        x = self._scale(x, dtype, path)
        if self.spatial_size is None:
            self.spatial_size = tuple(x.shape[1:])
        if len(self.spatial_size) != x.ndim - 1:
            raise ValueError(
                f"{path} has {x.ndim - 1} spatial dims, earlier images {len(self.spatial_size)}; do not mix 2D and 3D."
            )
        if tuple(x.shape[1:]) != self.spatial_size:
            x = torch.as_tensor(Resize(self.spatial_size)(x), dtype=torch.float32).clamp(-1, 1)
        return x.contiguous()

    def batches(self, paths: Sequence[str], batch_size: int = 16) -> Iterator[tuple[torch.Tensor, list[str]]]:
        """Yield ``(images (B, C, *spatial), their paths)``; gray and RGB images in one batch become RGB."""
        for s in range(0, len(paths), max(1, int(batch_size))):
            chunk = list(paths[s : s + batch_size])
            imgs = [self.load(p) for p in chunk]
            if len({i.shape[0] for i in imgs}) > 1:
                imgs = [i.expand(3, *i.shape[1:]) if i.shape[0] == 1 else i for i in imgs]
            yield torch.stack(imgs), chunk
