# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Writes generated samples with their labels, each marked synthetic, plus a manifest and a MONAI datalist."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import as_bool

__all__ = ["SyntheticWriter", "file_sha256", "config_hash", "reference_affine"]

logger = logging.getLogger(__name__)

SYNTHETIC_DESCRIP = b"SYNTHETIC monai_gan_aug"


def file_sha256(path: str | os.PathLike | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(paths: Sequence[str | os.PathLike] | str | os.PathLike, overrides: Mapping | None = None) -> str:
    """Short sha256 over config files' contents (and overrides): identifies the configuration that made a file."""
    h = hashlib.sha256()
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        h.update(p.read_bytes() if p.is_file() else str(p).encode())
    if overrides:
        h.update(json.dumps(dict(overrides), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def reference_affine(reference: str | None, spatial_shape: Sequence[int]) -> np.ndarray:
    """Affine (RAS, as MONAI/nibabel use) for a generated image of ``spatial_shape``: the reference training
    image's orientation and origin with its spacing scaled by the size ratio; identity when there is none."""
    dims = len(spatial_shape)
    if not reference:
        return np.eye(4)
    from monai.transforms import LoadImage

    try:
        ref = LoadImage(image_only=True, ensure_channel_first=True)(reference)
    except Exception as err:
        raise ValueError(f"cannot read reference image {reference} for spacing/orientation: {err}") from err
    aff = np.asarray(ref.affine, dtype=np.float64)
    if aff.shape[0] == 3:  # 2D affine -> 3D
        full = np.eye(4)
        full[:2, :2], full[:2, 3] = aff[:2, :2], aff[:2, 2]
        aff = full
    ref_shape = list(ref.shape[1:])
    scale = np.ones(3)
    for i in range(min(dims, len(ref_shape))):
        scale[i] = ref_shape[i] / float(spatial_shape[i])
    out = aff.copy()
    out[:3, :3] = aff[:3, :3] * scale[None, :]
    return out


class SyntheticWriter:
    """Ignite handler writing each generated sample as NIfTI (``.nii.gz``) and/or PNG, its label (mask as NIfTI/PNG,
    boxes as YOLO ``.txt``), a ``manifest.json`` (checkpoint, its sha256, seed and config hash of every file) and a
    MONAI ``datalist.json`` (the format every loader of this project reads, with ``synthetic: true``).

    For 3D samples the PNG is a preview of the middle slice along the last axis (the NIfTI holds the volume).
    Every image is marked synthetic: the NIfTI header's ``descrip`` reads "SYNTHETIC monai_gan_aug", PNGs carry
    ``synthetic``/``source``/``seed`` text chunks. The output folder must not exist or be empty unless
    ``overwrite=True``: an earlier synthetic set is never replaced silently (the check happens at construction,
    before anything is generated).

    Args:
        output_dir: where to write.
        formats: any of ``"nifti"``, ``"png"``.
        checkpoint: generator checkpoint path (recorded with its sha256).
        config_hash: hash of the configuration (see :func:`config_hash`).
        reference_image: a training image whose orientation/spacing the NIfTI files take.
        prefix: file name prefix.
        value_range: intensity range of the generated images (for PNG scaling).
        overwrite: allow a non-empty ``output_dir``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        formats: Sequence[str] = ("nifti", "png"),
        checkpoint: str | None = None,
        config_hash: str | None = None,
        reference_image: str | None = None,
        prefix: str = "syn",
        value_range: tuple[float, float] = (-1.0, 1.0),
        overwrite: bool = False,
    ) -> None:
        bad = [f for f in formats if f not in ("nifti", "png")]
        if bad or not formats:
            raise ValueError(f"formats must be a non-empty subset of ('nifti', 'png'), got {list(formats)}.")
        self.output_dir = Path(output_dir)
        overwrite = as_bool(overwrite, "overwrite")
        if self.output_dir.exists() and any(self.output_dir.iterdir()) and not overwrite:
            raise FileExistsError(
                f"output folder {self.output_dir} already holds files; nothing was written. Pass another "
                "--output_dir, or --overwrite true to replace them."
            )
        self.formats = tuple(formats)
        self.checkpoint = checkpoint
        self.config_hash = config_hash
        self.reference_image = reference_image
        self.prefix = prefix
        self.value_range = value_range
        self.records: list[dict[str, Any]] = []
        self._affine: np.ndarray | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.write_manifest)

    # -------------------------------------------------------------- per sample
    def _png(self, arr: np.ndarray, path: Path, info: Mapping[str, str], is_label: bool = False) -> None:
        from PIL import Image, PngImagePlugin

        if arr.ndim == 4:  # 3D: the PNG is a preview of the middle slice along the last axis
            arr = arr[..., arr.shape[-1] // 2]
        if is_label:
            img = np.transpose(arr[0] if arr.ndim == 3 else arr).astype(np.uint8)
            mode_img = Image.fromarray(img)
        else:
            lo, hi = self.value_range
            x = np.clip((arr - lo) / (hi - lo), 0, 1)
            x = np.transpose(x, (2, 1, 0)) if x.shape[0] in (3, 4) else np.transpose(x[0])
            mode_img = Image.fromarray((x * 255 + 0.5).astype(np.uint8))
        meta = PngImagePlugin.PngInfo()
        for k, v in info.items():
            meta.add_text(k, str(v))
        mode_img.save(path, pnginfo=meta)

    def _nifti(self, arr: np.ndarray, path: Path, dtype=np.float32) -> None:
        import nibabel as nib

        data = np.moveaxis(arr, 0, -1) if arr.shape[0] > 1 else arr[0]  # channels last for nibabel
        if self._affine is None:
            self._affine = reference_affine(self.reference_image, arr.shape[1:])
        img = nib.Nifti1Image(data.astype(dtype), self._affine)
        img.header["descrip"] = SYNTHETIC_DESCRIP
        img.header["intent_name"] = b"synthetic"
        nib.save(img, str(path))

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        images = out[GanKeys.IMAGE].detach().float().cpu().numpy()
        labels = out.get(GanKeys.LABEL)
        labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        boxes = out.get(GanKeys.BOXES)
        box_labels = out.get(GanKeys.BOX_LABELS)
        classes = out.get(GanKeys.CLASS)
        img_dir, lab_dir = self.output_dir / "images", self.output_dir / "labels"
        img_dir.mkdir(parents=True, exist_ok=True)
        for j in range(images.shape[0]):
            idx, seed = int(out["index"][j]), int(out["seed"][j])
            name = f"{self.prefix}_{idx:06d}"
            info = {"synthetic": "true", "source": "monai_gan_aug", "seed": str(seed), "checkpoint": str(self.checkpoint)}
            rec: dict[str, Any] = {"synthetic": True, "seed": seed, "checkpoint": self.checkpoint, "config_hash": self.config_hash}
            if "nifti" in self.formats:
                self._nifti(images[j], img_dir / f"{name}.nii.gz")
                rec["image"] = f"images/{name}.nii.gz"
            if "png" in self.formats:
                self._png(images[j], img_dir / f"{name}.png", info)
                rec["png" if "image" in rec else "image"] = f"images/{name}.png"
            if labels is not None:
                lab_dir.mkdir(parents=True, exist_ok=True)
                lab = np.asarray(labels[j])
                if "nifti" in self.formats:
                    self._nifti(lab, lab_dir / f"{name}.nii.gz", dtype=np.uint8)
                    rec["label"] = f"labels/{name}.nii.gz"
                if "png" in self.formats:
                    self._png(lab, lab_dir / f"{name}.png", info, is_label=True)
                    rec.setdefault("label", f"labels/{name}.png")
            if boxes is not None:
                b = boxes[j]
                b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
                bl = box_labels[j] if box_labels is not None else np.zeros(len(b), dtype=int)
                bl = bl.detach().cpu().numpy() if isinstance(bl, torch.Tensor) else np.asarray(bl)
                rec["boxes"] = np.asarray(b, dtype=np.float64).reshape(-1, 2 * (images.ndim - 2)).tolist()
                rec["box_labels"] = [int(v) for v in bl]
                if images.ndim == 4:  # YOLO labels for 2D images
                    from monai_gan_aug.transforms.boxes.array import boxes_to_yolo_lines

                    lab_dir.mkdir(parents=True, exist_ok=True)
                    lines = boxes_to_yolo_lines(np.asarray(b).reshape(-1, 4), rec["box_labels"], images.shape[2:])
                    (lab_dir / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
                    rec["yolo"] = f"labels/{name}.txt"
            if classes is not None:
                c = classes[j]
                rec["class"] = int(c.item() if isinstance(c, torch.Tensor) else c)
            self.records.append(rec)

    def write_manifest(self, engine: Engine | None = None) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "generator": "monai_gan_aug",
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": file_sha256(self.checkpoint),
            "config_hash": self.config_hash,
            "num_samples": len(self.records),
            "files": self.records,
        }
        path = self.output_dir / "manifest.json"
        path.write_text(json.dumps(manifest, indent=1))
        datalist = {"name": "monai_gan_aug synthetic set", "synthetic": True, "training": [
            {k: v for k, v in r.items() if k not in ("png", "yolo")} for r in self.records
        ]}
        (self.output_dir / "datalist.json").write_text(json.dumps(datalist, indent=1))
        logger.info("wrote %d synthetic samples, manifest %s", len(self.records), path)
        return path
