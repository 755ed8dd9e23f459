# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Export MONAI datalists (real + synthetic) as an ultralytics YOLO detection dataset.

Han et al., "Learning More with Less: GAN-based Medical Image Augmentation" (Med. Imaging Tech. 37(3), 2019) train
YOLOv3 on 2,813 real brain-metastasis MR slices with and without 4,000 GAN-generated ones (real:synthetic balance
1:1 to 1:2) and "manually discard synthetic images with unclear tumour appearance". This module writes the dataset
of one such configuration:

* ``images/{train,val,test}/*.png`` (8-bit grey), ``labels/{train,val,test}/*.txt`` (YOLO lines ``class cx cy w h``,
  see ``docs/conventions.md``), ``data.yaml`` (absolute ``path``), ``test.json`` (the exported test items with
  their ground-truth boxes, what :func:`monai_gan_aug.evaluation.detection.evaluate_detections` scores) and
  ``export.json`` (counts and settings);
* real and synthetic images are read the same way (MONAI ``LoadImage``, channel first, spatial axis 0 = PNG
  columns) and windowed the same way (:func:`window_to_uint8`, per-image percentile scaling), so the detector
  cannot tell them apart by intensity range alone;
* synthetic images only ever enter the *train* split, ``round(ratio * n_real_train)`` of them (capped by
  ``max_synthetic`` and by what the sources hold), drawn by a permutation seeded with ``seed``: a larger ratio with
  the same seed is a superset of a smaller one, so the rows of a table differ by added images only;
* an optional filter discards synthetic images before sampling (:class:`BoxContrastFilter`: the paper's "unclear
  tumour appearance" as a box-contrast threshold).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import PILWriter
from monai.data.box_utils import clip_boxes_to_image
from monai.transforms import LoadImage

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation.fidelity import BoxContrastFilter  # re-exported: the detection experiment's filter
from monai_gan_aug.evaluation.protocols import collect_synthetic_items, load_splits
from monai_gan_aug.transforms.boxes.array import as_box_array, boxes_to_yolo_lines
from monai_gan_aug.utils.misc import as_bool

__all__ = [
    "BoxContrastFilter",
    "YoloExport",
    "collect_synthetic_items",
    "export_yolo_dataset",
    "load_real_splits",
    "window_to_uint8",
    "write_yolo_item",
]

logger = logging.getLogger(__name__)

#: YOLO split name -> datalist split name.
SPLIT_KEYS = {"train": "training", "val": "validation", "test": "test"}
EXPORT_INFO = "export.json"
TEST_ITEMS = "test.json"


# ---------------------------------------------------------------------------------------------- intensities
def window_to_uint8(image: Any, percentiles: Sequence[float] = (0.5, 99.5)) -> np.ndarray:
    """Per-image percentile window to ``uint8``: ``lo, hi = percentile(image, percentiles)`` maps to ``0, 255``.

    The same function serves real and synthetic images, whatever their range (MR intensities, ``[-1, 1]`` GAN
    outputs, 8-bit PNGs). A constant image gives zeros; non-finite values count as the image minimum.

    Args:
        image: ``(W, H)`` or channel-first ``(C, W, H)`` array / tensor; several channels are averaged.
        percentiles: lower and upper percentile, ``0 <= lower < upper <= 100``.

    Returns:
        ``(W, H)`` ``uint8`` array (spatial axis 0 first, like the input).

    Raises:
        ValueError: for an image that is not 2D (after dropping the channel axis) or bad percentiles.
    """
    lo_p, hi_p = (float(p) for p in percentiles)
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {tuple(percentiles)}.")
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    arr = arr.astype(np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    if arr.ndim != 2:
        raise ValueError(
            f"YOLO export needs 2D images (W, H) or (C, W, H), got shape {tuple(np.shape(image))}; slice 3D volumes "
            "into 2D items first."
        )
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, arr[finite].min() if finite.any() else 0.0)
    lo, hi = np.percentile(arr, [lo_p, hi_p])
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint(np.clip((arr - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- datalists
def load_real_splits(real: str | os.PathLike | Mapping[str, Sequence[dict]] | None) -> dict[str, list[dict]]:
    """The ``training`` / ``validation`` / ``test`` lists of a real detection datalist, with absolute paths.

    :func:`~monai_gan_aug.evaluation.protocols.load_splits` (a single-list source split by patient with
    :func:`monai_gan_aug.data.datalist.load_datalist`'s default fractions, 0.1 validation and 0.1 test) that also
    requires box annotations.

    Args:
        real: a datalist JSON, a folder holding ``datalist.json``, ``None`` (the embedded demo dataset), or a dict
            of split name -> items whose ``image`` paths are absolute. A source with a single list is split by
            patient (see :func:`monai_gan_aug.data.datalist.load_datalist`).

    Raises:
        DatalistError: for an unreadable datalist or one without any ``boxes``.
    """
    lists = load_splits(real, val_fraction=0.1, test_fraction=0.1, seed=0)
    if not any("boxes" in item for items in lists.values() for item in items):
        source = "the given datalist dict" if isinstance(real, Mapping) else str(real) if real is not None else "the demo dataset"
        raise DatalistError(
            f"{source}: no item has 'boxes'; a detection experiment needs box annotations (see docs/conventions.md)."
        )
    return lists


# ---------------------------------------------------------------------------------------------- writing
def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def write_yolo_item(
    item: Mapping[str, Any],
    png_path: str | os.PathLike,
    txt_path: str | os.PathLike,
    percentiles: Sequence[float] = (0.5, 99.5),
    loader: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Write one item as an 8-bit PNG (MONAI ``PILWriter``: PNG columns = spatial axis 0) and its YOLO label file.

    Boxes are clipped to the image (MONAI ``clip_boxes_to_image``); boxes left without area are dropped.

    Args:
        item: ``{"image": path, "boxes": [[x0, y0, x1, y1], ...], "box_labels": [...]}`` (absolute path).
        png_path: output PNG.
        txt_path: output YOLO label file (empty when there is no box).
        percentiles: intensity window of :func:`window_to_uint8`.
        loader: image reader returning ``(C, W, H)``; default MONAI ``LoadImage`` (channel first).

    Returns:
        ``{"image": png path, "boxes", "box_labels", "source", "synthetic", "spatial_size"}`` with the boxes written.

    Raises:
        ValueError: for a non-2D image or malformed boxes (naming the file).
    """
    loader = loader or LoadImage(image_only=True, ensure_channel_first=True)
    source = str(item["image"])
    try:
        image = loader(source)
    except Exception as e:
        raise ValueError(f"{source}: cannot read the image for the YOLO export ({e}).") from e
    try:
        pixels = window_to_uint8(image, percentiles)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    size = tuple(int(s) for s in pixels.shape)
    try:
        boxes = as_box_array(item.get("boxes"), spatial_dims=2)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    labels = np.asarray(item.get("box_labels", [0] * len(boxes)), dtype=np.int64).reshape(-1)
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"{source}: {boxes.shape[0]} boxes but {labels.shape[0]} box_labels.")
    if len(boxes):
        boxes, _ = clip_boxes_to_image(boxes, size, remove_empty=False)
        keep = np.all(boxes[:, 2:] > boxes[:, :2], axis=1)
        boxes, labels = boxes[keep].astype(np.float64), labels[keep]
    writer = PILWriter(output_dtype=np.uint8, scale=None)
    writer.set_data_array(pixels[None], channel_dim=0)
    writer.write(str(png_path))
    lines = boxes_to_yolo_lines(boxes, labels, size)
    Path(txt_path).write_text("".join(line + "\n" for line in lines))
    return {
        "image": str(png_path),
        "boxes": boxes.tolist(),
        "box_labels": [int(v) for v in labels],
        "source": source,
        "synthetic": bool(item.get("synthetic", False)),
        "spatial_size": list(size),
    }


@dataclass
class YoloExport:
    """What :func:`export_yolo_dataset` wrote.

    Attributes:
        root: the dataset folder.
        data_yaml: its ``data.yaml`` (hand it to ultralytics).
        counts: number of images per split (``train_real``, ``train_synthetic``, ``val``, ``test``).
        test_items: the exported test items (PNG paths, boxes, labels) for scoring.
        info: the content of ``export.json``.
    """

    root: Path
    data_yaml: Path
    counts: dict[str, int]
    test_items: list[dict] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _class_names(real: Any, items: Sequence[dict]) -> dict[int, str]:
    names: dict[int, str] = {}
    if isinstance(real, (str, os.PathLike)):
        path = Path(real).expanduser()
        path = path / "datalist.json" if path.is_dir() else path
        try:
            meta = json.loads(path.read_text()).get("box_labels")
        except (OSError, ValueError, AttributeError):
            meta = None
        if isinstance(meta, dict):
            names = {int(k): str(v) for k, v in meta.items() if str(k).lstrip("-").isdigit()}
    n_classes = 1 + max((int(v) for item in items for v in item.get("box_labels", []) or []), default=0)
    n_classes = max(n_classes, 1 + max(names, default=-1))
    if n_classes == 1 and not names:
        return {0: "lesion"}
    return {i: names.get(i, f"class{i}") for i in range(n_classes)}


def _config(**kwargs: Any) -> dict[str, Any]:
    return json.loads(json.dumps(kwargs, default=str))


def export_yolo_dataset(
    real: str | os.PathLike | Mapping[str, Sequence[dict]] | None,
    out_dir: str | os.PathLike,
    synthetic: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    ratio: float = 0.0,
    max_synthetic: int | None = None,
    seed: int = 0,
    synthetic_filter: Callable[[Any, Any], bool] | None = None,
    synthetic_items: Sequence[dict] | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    overwrite: bool = False,
) -> YoloExport:
    """Write a YOLO detection dataset: the real splits plus ``ratio`` x (number of real train images) synthetic
    images in the train split.

    Splits: the real ``training`` list -> ``train``, ``validation`` -> ``val``, ``test`` -> ``test``. Ultralytics
    needs a ``val`` split (it picks ``best.pt`` on it); when the datalist has no validation items the real train
    images are used for it, with a warning. The test split holds real images only.

    Args:
        real: see :func:`load_real_splits`.
        out_dir: dataset folder. When it already holds an export with the same settings, that export is reused.
        synthetic: synthetic sets (folders / JSONs), see :func:`collect_synthetic_items`.
        ratio: synthetic : real train images (``0`` = real only, ``1`` = as many synthetic as real, ``2`` = twice).
        max_synthetic: cap on the number of synthetic images.
        seed: seed of the synthetic draw.
        synthetic_filter: applied to the synthetic pool before drawing (e.g. :class:`BoxContrastFilter`).
        synthetic_items: an already collected (and filtered) pool; replaces ``synthetic``/``synthetic_filter``.
        percentiles: intensity window (:func:`window_to_uint8`), identical for real and synthetic images.
        overwrite: replace a non-empty ``out_dir`` holding something else.

    Returns:
        A :class:`YoloExport`.

    Raises:
        ValueError: bad ``ratio``/``max_synthetic``, ``ratio > 0`` without synthetic images, no real train images.
        FileExistsError: ``out_dir`` holds other files and ``overwrite`` is False.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer, np.floating)) or ratio < 0:
        raise ValueError(f"ratio must be a number >= 0 (synthetic : real train images), got {ratio!r}.")
    if max_synthetic is not None and (isinstance(max_synthetic, bool) or int(max_synthetic) != max_synthetic
                                      or max_synthetic < 0):
        raise ValueError(f"max_synthetic must be None or an integer >= 0, got {max_synthetic!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}.")
    lists = load_real_splits(real)
    train_real = lists["training"]
    if not train_real:
        raise ValueError(f"{real}: the real 'training' list is empty; a detector needs real training images.")
    val_items = lists["validation"]
    if not val_items:
        logger.warning("%s: no validation items; the real train images also serve as YOLO's val split.", real)
        val_items = train_real
    test_items = lists["test"]

    if synthetic_items is None:
        pool, syn_info = collect_synthetic_items(synthetic, synthetic_filter) if ratio > 0 else ([], {})
    else:
        pool = [{**item, "synthetic": True} for item in synthetic_items]
        syn_info = {"sources": "given items", "n_total": len(pool), "n_kept": len(pool), "filter": None}
    n_wanted = round(float(ratio) * len(train_real))
    if max_synthetic is not None:
        n_wanted = min(n_wanted, int(max_synthetic))
    if n_wanted > 0 and not pool:
        raise ValueError(
            f"ratio={ratio} asks for {n_wanted} synthetic images but there are none"
            + (" left after the synthetic filter" if syn_info.get("n_total") else "; pass synthetic sets")
            + "."
        )
    if n_wanted > len(pool):
        logger.warning("ratio=%s asks for %d synthetic images; only %d available: using all.", ratio, n_wanted,
                       len(pool))
        n_wanted = len(pool)
    order = np.random.default_rng(seed).permutation(len(pool))[:n_wanted] if n_wanted else np.zeros(0, dtype=int)
    chosen = [(int(i), pool[int(i)]) for i in order]

    config = _config(
        real=str(real) if not isinstance(real, Mapping) else "dict",
        real_digest=hashlib.sha1(
            json.dumps({k: [[i["image"], i.get("boxes"), i.get("box_labels")] for i in v] for k, v in lists.items()},
                       default=str).encode()
        ).hexdigest(),
        n_real={k: len(v) for k, v in lists.items()},
        synthetic=[str(s) for s in ([synthetic] if isinstance(synthetic, (str, os.PathLike)) else synthetic or [])],
        synthetic_images=[item["image"] for _, item in chosen],
        ratio=float(ratio),
        max_synthetic=max_synthetic,
        seed=int(seed),
        percentiles=[float(p) for p in percentiles],
        synthetic_filter=syn_info.get("filter"),
    )
    root = Path(out_dir).expanduser().absolute()
    info_path = root / EXPORT_INFO
    if info_path.is_file():
        try:
            old = json.loads(info_path.read_text())
        except ValueError:
            old = {}
        if old.get("config") == config and (root / "data.yaml").is_file() and (root / TEST_ITEMS).is_file():
            return YoloExport(root, root / "data.yaml", old["counts"], json.loads((root / TEST_ITEMS).read_text()), old)
    if root.exists() and any(root.iterdir()):
        if not (as_bool(overwrite, "overwrite") or info_path.is_file()):
            raise FileExistsError(
                f"{root} already holds files that are not a YOLO export of monai_gan_aug; pass another out_dir or "
                "overwrite=True."
            )
        shutil.rmtree(root)
    for sub in ("images", "labels"):
        for split in SPLIT_KEYS:
            (root / sub / split).mkdir(parents=True, exist_ok=True)

    loader = LoadImage(image_only=True, ensure_channel_first=True)

    def _write(split: str, name: str, item: Mapping[str, Any]) -> dict[str, Any]:
        return write_yolo_item(
            item, root / "images" / split / f"{name}.png", root / "labels" / split / f"{name}.txt", percentiles, loader
        )

    for i, item in enumerate(train_real):
        _write("train", f"real_{i:05d}_{_stem(item['image'])}", item)
    for i, item in chosen:
        _write("train", f"syn_{i:05d}_{_stem(item['image'])}", {**item, "synthetic": True})
    for i, item in enumerate(val_items):
        _write("val", f"real_{i:05d}_{_stem(item['image'])}", item)
    written_test = [_write("test", f"real_{i:05d}_{_stem(item['image'])}", item) for i, item in enumerate(test_items)]

    names = _class_names(real, [*train_real, *val_items, *test_items, *(item for _, item in chosen)])
    import yaml

    data = {"path": str(root), "train": "images/train", "val": "images/val", "test": "images/test", "names": names}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / TEST_ITEMS).write_text(json.dumps(written_test, indent=1))
    counts = {
        "train_real": len(train_real),
        "train_synthetic": len(chosen),
        "val": len(val_items),
        "test": len(written_test),
    }
    info = {"config": config, "counts": counts, "synthetic_pool": syn_info, "names": {str(k): v for k, v in names.items()}}
    info_path.write_text(json.dumps(info, indent=1))
    return YoloExport(root, root / "data.yaml", counts, written_test, info)
