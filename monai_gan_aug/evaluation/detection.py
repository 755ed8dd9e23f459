# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Downstream detection experiment: YOLOv3 trained with and without synthetic images (Han et al., Table 1).

Han et al., "Learning More with Less: GAN-based Medical Image Augmentation" (Med. Imaging Tech. 37(3), 2019)
train YOLOv3 on 2,813 real brain-metastasis MR slices with and without 4,000 box-conditioned GAN images and report,
on the real test slices at a 0.1 % detection threshold, the mAP and, at IoU >= 0.5 and >= 0.25, the sensitivity and
the false positives per slice. This module reproduces that table for any real datalist and synthetic sets:

* :func:`~monai_gan_aug.evaluation.yolo_data.export_yolo_dataset` writes the YOLO dataset of one configuration;
* :func:`train_yolo` trains an ultralytics YOLO from a model yaml (``yolov3-tinyu.yaml`` / ``yolov3u.yaml``, shipped
  with ultralytics) from scratch, fully offline (see :func:`ultralytics_offline`);
* :func:`evaluate_detections` predicts on the real test images at ``conf=0.001`` and scores the predictions with
  this module's own matching (:func:`match_detections`, greedy by score, one prediction per lesion) and AP
  (:func:`average_precision`, all-point interpolated VOC AP, the area under the precision envelope; ultralytics'
  own ``val`` is not used for the table, so mAP, sensitivity and FPs come from the same predictions);
* :func:`run_detection_experiment` repeats this for every real:synthetic ratio and seed and writes
  ``detection_table.json`` / ``detection_table.md`` (mean +- std over seeds).

Command line: ``python -m monai_gan_aug.evaluation.detection --real DATALIST --synthetic DIR ... --out DIR``.
Nothing is downloaded: ``YOLO_OFFLINE=1`` is set (unless the caller set it) before ultralytics is imported, and the
few ultralytics helpers that would still reach the network (font check, asset/PyPI look-ups) are replaced while
YOLO trains or predicts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported anywhere through this module

import numpy as np
import torch
from monai.data.box_utils import box_iou

from monai_gan_aug.evaluation.cli import float_list, int_list
from monai_gan_aug.evaluation.fidelity import BoxContrastFilter
from monai_gan_aug.evaluation.protocols import collect_synthetic_items
from monai_gan_aug.evaluation.yolo_data import (
    export_yolo_dataset,
    load_real_splits,
    window_to_uint8,
)
from monai_gan_aug.transforms.boxes.array import as_box_array
from monai_gan_aug.utils.misc import json_safe

__all__ = [
    "DEFAULT_CPU_MODEL",
    "DEFAULT_GPU_MODEL",
    "OfflineDownloadError",
    "YoloDetector",
    "average_precision",
    "detection_metrics",
    "evaluate_detections",
    "format_table_markdown",
    "main",
    "match_detections",
    "metric_keys",
    "predict_detections",
    "run_detection_experiment",
    "train_yolo",
    "ultralytics_offline",
    "yolo_detector",
]

logger = logging.getLogger(__name__)

DEFAULT_CPU_MODEL = "yolov3-tinyu.yaml"
DEFAULT_GPU_MODEL = "yolov3u.yaml"
SETTINGS_SUBDIR = "ultralytics_settings"
METRICS_FILE = "detection_metrics.json"
TABLE_JSON = "detection_table.json"
TABLE_MD = "detection_table.md"
_IOU_TOL = 1e-6  # MONAI's box_iou works in float32 and adds eps to the union: IoU >= t is tested as IoU >= t - tol
_RASTER = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# ---------------------------------------------------------------------------------------------- matching / metrics
def _as_scores(values: Any, n: int, name: str) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    arr = arr.astype(np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values for {n} boxes; give one per box.")
    return arr


def _as_labels(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=np.int64)
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    arr = arr.astype(np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values for {n} boxes; give one per box.")
    return arr


def match_detections(
    pred_boxes: Any,
    pred_scores: Any,
    gt_boxes: Any,
    iou_threshold: float = 0.5,
    pred_labels: Any = None,
    gt_labels: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of one image's predictions to its ground truth (COCO / VOC rule).

    Predictions are visited by descending score (ties keep the input order); each takes the still unmatched
    ground-truth box of its class with the highest IoU, if that IoU is ``>= iou_threshold``. A matched prediction is a
    true positive; every other prediction is a false positive (a second detection of an already found lesion too).

    Args:
        pred_boxes: ``(D, 4)`` ``StandardMode`` corners ``[x0, y0, x1, y1]``.
        pred_scores: ``(D,)`` confidences.
        gt_boxes: ``(G, 4)`` ground-truth corners.
        iou_threshold: minimum IoU of a match, in ``(0, 1]``.
        pred_labels: ``(D,)`` classes (``None``: all 0).
        gt_labels: ``(G,)`` classes (``None``: all 0).

    Returns:
        ``(pred_tp, gt_matched)``: boolean ``(D,)`` in the input order and boolean ``(G,)``.

    Raises:
        ValueError: malformed boxes, a score/label count that differs from the box count, a bad threshold.
    """
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}.")
    pb = as_box_array(pred_boxes, spatial_dims=2)
    gb = as_box_array(gt_boxes, spatial_dims=2)
    scores = _as_scores(pred_scores, len(pb), "pred_scores")
    pl = _as_labels(pred_labels, len(pb), "pred_labels")
    gl = _as_labels(gt_labels, len(gb), "gt_labels")
    pred_tp = np.zeros(len(pb), dtype=bool)
    gt_matched = np.zeros(len(gb), dtype=bool)
    if len(pb) == 0 or len(gb) == 0:
        return pred_tp, gt_matched
    ious = np.asarray(box_iou(pb, gb), dtype=np.float64)
    ious[pl[:, None] != gl[None, :]] = -1.0  # no match across classes
    for d in np.argsort(-scores, kind="stable"):
        cand = np.where(gt_matched, -1.0, ious[d])
        g = int(np.argmax(cand))
        if cand[g] >= float(iou_threshold) - _IOU_TOL:
            pred_tp[d] = True
            gt_matched[g] = True
    return pred_tp, gt_matched


def average_precision(scores: Any, tp: Any, n_gt: int) -> float:
    """All-point interpolated average precision (VOC 2010+): the area under the precision envelope of the
    precision-recall curve of the detections ranked by descending score.

    Args:
        scores: ``(D,)`` confidences of all detections of one class over the data set.
        tp: ``(D,)`` booleans, whether each detection is a true positive (see :func:`match_detections`).
        n_gt: number of ground-truth objects of the class.

    Returns:
        AP in ``[0, 1]``; ``nan`` when ``n_gt == 0``; ``0`` when there are objects but no detections.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    if scores.shape != tp.shape:
        raise ValueError(f"scores ({scores.shape[0]}) and tp ({tp.shape[0]}) must have the same length.")
    if n_gt < 0:
        raise ValueError(f"n_gt must be >= 0, got {n_gt}.")
    if n_gt == 0:
        return float("nan")
    if tp.sum() > n_gt:
        raise ValueError(f"{int(tp.sum())} true positives for {n_gt} ground-truth objects; matching must be 1:1.")
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    ctp = np.cumsum(tp[order])
    cfp = np.cumsum(~tp[order])
    recall = ctp / float(n_gt)
    precision = ctp / np.maximum(ctp + cfp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def metric_keys(iou_thresholds: Sequence[float] = (0.5, 0.25)) -> list[str]:
    """Names of the table's metrics: ``map@t``, ``sensitivity@t``, ``fp_per_slice@t`` for every threshold ``t``."""
    return [f"{name}@{float(t):g}" for t in iou_thresholds for name in ("map", "sensitivity", "fp_per_slice")]


def detection_metrics(
    predictions: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    iou_thresholds: Sequence[float] = (0.5, 0.25),
    conf: float = 0.0,
) -> dict[str, float]:
    """mAP, sensitivity and false positives per slice over a set of images (one "slice" = one image).

    For every IoU threshold ``t``:

    * ``sensitivity@t``: matched ground-truth boxes / all ground-truth boxes (``nan`` without any);
    * ``fp_per_slice@t``: unmatched predictions / number of images (images without lesions count);
    * ``map@t``: :func:`average_precision` per class (classes present in the ground truth), averaged.

    Also ``tp@t``, ``fp@t``, ``n_images``, ``n_gt``, ``n_pred`` and ``conf``.

    Args:
        predictions: per image ``{"boxes": (D, 4), "scores": (D,), "labels": (D,) optional}``.
        targets: per image ``{"boxes": (G, 4), "labels" or "box_labels": (G,) optional}``, same order.
        iou_thresholds: the IoU thresholds (the paper: 0.5 and 0.25).
        conf: predictions with a score below it are dropped first (the paper's 0.1 % threshold is ``0.001``).

    Raises:
        ValueError: different numbers of prediction and target entries, malformed boxes.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction entries for {len(targets)} images; give one per image.")
    if not iou_thresholds:
        raise ValueError("iou_thresholds must not be empty.")
    preds, gts = [], []
    for p, t in zip(predictions, targets):
        pb = as_box_array(p.get("boxes"), spatial_dims=2)
        ps = _as_scores(p.get("scores", np.ones(len(pb))), len(pb), "scores")
        pl = _as_labels(p.get("labels"), len(pb), "labels")
        keep = ps >= conf
        preds.append((pb[keep], ps[keep], pl[keep]))
        gb = as_box_array(t.get("boxes"), spatial_dims=2)
        gl = _as_labels(t.get("labels", t.get("box_labels")), len(gb), "labels")
        gts.append((gb, gl))
    n_images = len(gts)
    gt_classes = np.concatenate([g[1] for g in gts]) if gts else np.zeros(0, dtype=np.int64)
    n_gt = int(gt_classes.size)
    out: dict[str, float] = {
        "n_images": n_images,
        "n_gt": n_gt,
        "n_pred": int(sum(len(p[0]) for p in preds)),
        "conf": float(conf),
    }
    for thr in iou_thresholds:
        key = f"{float(thr):g}"
        all_scores, all_tp, all_labels, n_matched = [], [], [], 0
        for (pb, ps, pl), (gb, gl) in zip(preds, gts):
            tp, matched = match_detections(pb, ps, gb, thr, pl, gl)
            all_scores.append(ps)
            all_tp.append(tp)
            all_labels.append(pl)
            n_matched += int(matched.sum())
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        tps = np.concatenate(all_tp) if all_tp else np.zeros(0, dtype=bool)
        labels = np.concatenate(all_labels) if all_labels else np.zeros(0, dtype=np.int64)
        aps = [
            average_precision(scores[labels == c], tps[labels == c], int((gt_classes == c).sum()))
            for c in np.unique(gt_classes)
        ]
        out[f"map@{key}"] = float(np.mean(aps)) if aps else float("nan")
        out[f"sensitivity@{key}"] = n_matched / n_gt if n_gt else float("nan")
        n_fp = int((~tps).sum())
        out[f"fp_per_slice@{key}"] = n_fp / n_images if n_images else float("nan")
        out[f"tp@{key}"] = int(tps.sum())
        out[f"fp@{key}"] = n_fp
    return out


# ---------------------------------------------------------------------------------------------- ultralytics
class OfflineDownloadError(ConnectionError):
    """Ultralytics tried to download something while :func:`ultralytics_offline` was active (nothing was sent)."""


def _local_font() -> str | None:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def _import_ultralytics(settings_dir: str | os.PathLike | None = None) -> Any:
    """Import ultralytics and the modules whose download helpers :func:`ultralytics_offline` replaces.

    When this is the first import and ``YOLO_CONFIG_DIR`` is unset, ultralytics' settings file goes to
    ``settings_dir`` (default: ``ultralytics_settings`` in the monai_gan_aug cache, ``$MONAI_GAN_AUG_CACHE`` or
    ``~/.cache/monai_gan_aug``), never to ultralytics' own ``~/.config/Ultralytics``.
    """
    if settings_dir is None:
        cache = os.environ.get("MONAI_GAN_AUG_CACHE") or os.path.join("~", ".cache", "monai_gan_aug")
        settings_dir = Path(cache).expanduser() / SETTINGS_SUBDIR
    if "ultralytics" not in sys.modules and not os.environ.get("YOLO_CONFIG_DIR"):
        Path(settings_dir).mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(Path(settings_dir).absolute())
        try:
            import ultralytics.utils  # noqa: F401  (reads YOLO_CONFIG_DIR once, at import)
        finally:
            del os.environ["YOLO_CONFIG_DIR"]
    for name in (
        "ultralytics.utils.checks",
        "ultralytics.utils.downloads",
        "ultralytics.utils.events",
        "ultralytics.utils.plotting",
        "ultralytics.data.utils",
        "ultralytics.nn.tasks",
        "ultralytics.engine.model",
        "ultralytics.engine.trainer",
        "ultralytics.models.yolo.detect",
    ):
        importlib.import_module(name)
    from ultralytics import YOLO

    return YOLO


@contextlib.contextmanager
def ultralytics_offline() -> Iterator[None]:
    """Context in which ultralytics cannot reach the network.

    Replaces, in every loaded ``ultralytics`` module, ``safe_download``, ``get_github_assets`` and
    ``get_google_drive_file_info`` (raise :class:`OfflineDownloadError` before any connection; ultralytics' AMP
    check treats that as "offline" and skips itself), ``is_url(check=True)`` (answers False without asking the
    network), ``check_font`` (returns matplotlib's bundled DejaVu Sans instead of downloading Arial.ttf) and
    ``check_latest_pypi_version``; and disables ultralytics' usage analytics. Everything is restored on exit.
    Local files (a ``best.pt``) still load.
    """
    _import_ultralytics()
    from ultralytics.utils import checks, downloads, events

    def _blocked(name: str) -> Callable[..., Any]:
        def fn(*args: Any, **kwargs: Any) -> Any:
            target = kwargs.get("url") or (args[0] if args else "")
            raise OfflineDownloadError(
                f"monai_gan_aug keeps ultralytics offline: {name}({target}) was blocked, nothing was downloaded. "
                "Build models from a *.yaml with pretrained=False, or place the file locally and pass its path."
            )

        return fn

    orig_is_url = downloads.is_url

    def _is_url(url: Any, check: bool = False) -> bool:
        return False if check else orig_is_url(url)

    def _check_font(font: str = "Arial.ttf") -> str | None:
        return _local_font()

    swaps = {
        downloads.safe_download: _blocked("safe_download"),
        downloads.get_github_assets: _blocked("get_github_assets"),
        downloads.get_google_drive_file_info: _blocked("get_google_drive_file_info"),
        downloads.is_url: _is_url,
        checks.check_font: _check_font,
        checks.check_latest_pypi_version: _blocked("check_latest_pypi_version"),
    }
    by_id = {id(k): (k, v) for k, v in swaps.items()}
    undo: list[tuple[Any, str, Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "ultralytics" or name.startswith("ultralytics.")):
            continue
        for attr, value in list(vars(module).items()):
            hit = by_id.get(id(value))
            if hit is not None and hit[0] is value:
                setattr(module, attr, hit[1])
                undo.append((module, attr, value))
    analytics = events.events.enabled
    events.events.enabled = False
    try:
        yield
    finally:
        events.events.enabled = analytics
        for module, attr, value in reversed(undo):
            setattr(module, attr, value)


def _default_device() -> str:
    return "0" if torch.cuda.is_available() else "cpu"


def _load_model(model: Any, settings_dir: str | os.PathLike | None = None) -> Any:
    YOLO = _import_ultralytics(settings_dir)
    if isinstance(model, (str, os.PathLike)):
        text = str(model)
        if not text.endswith((".yaml", ".yml")) and not Path(text).is_file():
            raise ValueError(
                f"model {text!r}: pass a model yaml shipped with ultralytics (e.g. {DEFAULT_CPU_MODEL!r}, "
                f"{DEFAULT_GPU_MODEL!r}) or the path of a local .pt file; nothing is downloaded."
            )
        with ultralytics_offline():
            return YOLO(text)
    if hasattr(model, "predict") and hasattr(model, "train"):
        return model
    raise TypeError(f"model must be a model yaml name, a .pt path or an ultralytics YOLO, got {type(model).__name__}.")


def train_yolo(
    data_yaml: str | os.PathLike,
    model: Any = DEFAULT_CPU_MODEL,
    epochs: int = 30,
    imgsz: int = 128,
    batch: int = 16,
    seed: int = 0,
    device: str | None = None,
    project_dir: str | os.PathLike = "runs/detection",
    name: str = "train",
    **train_kwargs: Any,
) -> Path:
    """Train an ultralytics YOLO detector offline and return the path of its best checkpoint.

    A model yaml is built from scratch (``pretrained=False``); a local ``.pt`` is fine-tuned. Fixed settings:
    ``amp=False`` (no AMP check download), ``plots=False`` (no font), ``workers=0``, ``deterministic=True``,
    ``exist_ok=True``; the run folder is ``project_dir/name`` (absolute, so nothing lands in ultralytics' global runs
    folder), and ultralytics' settings file goes to ``project_dir/ultralytics_settings`` when ultralytics is first
    imported here.

    Args:
        data_yaml: ``data.yaml`` of a YOLO dataset (e.g. from :func:`export_yolo_dataset`).
        model: model yaml (``yolov3-tinyu.yaml``, ``yolov3u.yaml``, ...), local ``.pt`` or a YOLO object.
        epochs: training epochs.
        imgsz: training image size (letterboxed square).
        batch: batch size.
        seed: ultralytics' training seed.
        device: ``"cpu"``, ``"0"``, ...; ``None`` picks the first GPU when there is one.
        project_dir: parent folder of the run.
        name: run folder name.
        train_kwargs: further ultralytics training arguments (``patience``, ``mosaic``, ``lr0`` ...); they override
            the fixed settings above.

    Returns:
        ``project_dir/name/weights/best.pt`` (``last.pt`` when no best was saved).

    Raises:
        FileNotFoundError: ``data_yaml`` does not exist.
        ValueError: bad ``epochs``/``imgsz``/``batch`` or an unknown model.
    """
    data_yaml = Path(data_yaml).expanduser().absolute()
    if not data_yaml.is_file():
        raise FileNotFoundError(f"data_yaml {data_yaml} does not exist; write it with export_yolo_dataset().")
    for arg, value in (("epochs", epochs), ("imgsz", imgsz), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}.")
    project = Path(project_dir).expanduser().absolute()
    project.mkdir(parents=True, exist_ok=True)
    yolo = _load_model(model, project / SETTINGS_SUBDIR)
    is_yaml = isinstance(model, (str, os.PathLike)) and str(model).endswith((".yaml", ".yml"))
    args: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": int(epochs),
        "imgsz": int(imgsz),
        "batch": int(batch),
        "seed": int(seed),
        "deterministic": True,
        "device": device if device is not None else _default_device(),
        "project": str(project),
        "name": str(name),
        "exist_ok": True,
        "amp": False,
        "plots": False,
        "workers": 0,
        "verbose": False,
    }
    if is_yaml:
        args["pretrained"] = False
    args.update(train_kwargs)
    with ultralytics_offline():
        yolo.train(**args)
    save_dir = Path(yolo.trainer.save_dir)
    best, last = save_dir / "weights" / "best.pt", save_dir / "weights" / "last.pt"
    if best.is_file():
        return best
    if last.is_file():
        return last
    raise FileNotFoundError(f"ultralytics finished without writing weights in {save_dir / 'weights'}.")


def _array_input(image: Any, percentiles: Sequence[float]) -> np.ndarray:
    """Channel-first ``(C, W, H)`` image (axis 0 = x) -> windowed ``(rows, cols, 3)`` uint8, as cv2 reads a PNG."""
    pixels = window_to_uint8(image, percentiles)
    return np.ascontiguousarray(np.repeat(pixels.T[..., None], 3, axis=-1))


def _prediction_input(item: Mapping[str, Any], percentiles: Sequence[float]) -> Any:
    image = item["image"]
    if not isinstance(image, (str, os.PathLike)):
        return _array_input(image, percentiles)  # an in-memory (C, W, H) array / tensor
    path = str(image)
    if path.lower().endswith(_RASTER):
        return path  # read by ultralytics exactly as in training
    from monai.transforms import LoadImage

    return _array_input(LoadImage(image_only=True, ensure_channel_first=True)(path), percentiles)


def predict_detections(
    model: Any,
    items: Sequence[Mapping[str, Any]],
    conf: float = 0.001,
    imgsz: int | None = None,
    device: str | None = None,
    nms_iou: float = 0.7,
    max_det: int = 300,
    batch: int = 16,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> list[dict[str, np.ndarray]]:
    """Run a YOLO model on ``items`` and return per image ``{"boxes" (D, 4), "scores" (D,), "labels" (D,)}``.

    Boxes are ``StandardMode`` ``[x0, y0, x1, y1]`` in the coordinates of the channel-first array (x = spatial axis
    0 = PNG columns), the frame of the datalist boxes. PNG/JPEG items are read by ultralytics as in training; other
    files (NIfTI, DICOM) are read with MONAI, and in-memory channel-first arrays / tensors are used as they are; both
    are windowed by :func:`window_to_uint8` first.

    Args:
        model: YOLO object, local ``.pt`` path or model yaml.
        items: dicts with ``image``.
        conf: confidence threshold of the predictions kept (``0.001`` = the paper's 0.1 %).
        imgsz: inference size; ``None`` uses the model's training size (640 when unknown).
        device: ``None`` picks the first GPU when there is one.
        nms_iou: IoU of ultralytics' non-maximum suppression.
        max_det: maximum detections per image.
        batch: images per ``predict`` call.
        percentiles: window for non-raster items (same as the export).
    """
    yolo = _load_model(model)
    size = int(imgsz or yolo.overrides.get("imgsz") or 640)
    device = device if device is not None else _default_device()
    out: list[dict[str, np.ndarray]] = []
    with ultralytics_offline():
        for start in range(0, len(items), max(1, int(batch))):
            chunk = [_prediction_input(item, percentiles) for item in items[start : start + batch]]
            results = yolo.predict(
                chunk, conf=float(conf), iou=float(nms_iou), imgsz=size, device=device, max_det=int(max_det),
                verbose=False, save=False,
            )
            for res in results:
                b = res.boxes
                out.append(
                    {
                        "boxes": b.xyxy.detach().cpu().numpy().astype(np.float64).reshape(-1, 4),
                        "scores": b.conf.detach().cpu().numpy().astype(np.float64).reshape(-1),
                        "labels": b.cls.detach().cpu().numpy().astype(np.int64).reshape(-1),
                    }
                )
    return out


class YoloDetector:
    """A YOLO model trained on real images as the ``detector`` of
    :class:`~monai_gan_aug.evaluation.fidelity.BoxFidelity`: the recall of the requested boxes on synthetic images
    (against control boxes) says whether the generated lesions look like lesions to a real-data detector.

    ``detector(images)`` takes a ``(N, C, W, H)`` batch (any range; each image is windowed like the YOLO export) and
    returns per image ``(boxes (M, 4), scores (M,))`` in the array's ``[x0, y0, x1, y1]`` frame, keeping detections
    with score >= ``conf``. Weights load from a local file only (``best.pt`` of :func:`train_yolo` /
    :func:`run_detection_experiment`); nothing is downloaded.

    Args:
        model: local ``.pt`` path or a YOLO object.
        conf: score threshold of the kept detections (ultralytics' default 0.25; the table's 0.001 would let
            low-confidence false positives "find" the control boxes too).
        imgsz: inference size (``None``: the model's training size).
        device: ``None`` picks the first GPU when there is one.
        percentiles: intensity window (as the export's).
    """

    def __init__(
        self,
        model: Any,
        conf: float = 0.25,
        imgsz: int | None = None,
        device: str | None = None,
        percentiles: Sequence[float] = (0.5, 99.5),
    ) -> None:
        if isinstance(model, (str, os.PathLike)) and not str(model).endswith((".yaml", ".yml")):
            if not Path(model).expanduser().is_file():
                raise FileNotFoundError(
                    f"YoloDetector: weights {model} do not exist; train them with run_detection_experiment (real "
                    "only row: runs/ratio0_seed<s>/weights/best.pt)."
                )
        if not 0.0 <= float(conf) <= 1.0:
            raise ValueError(f"YoloDetector: conf must be in [0, 1], got {conf}.")
        self.model = model
        self.conf, self.imgsz, self.device, self.percentiles = float(conf), imgsz, device, tuple(percentiles)
        self._yolo: Any = None

    def __call__(self, images: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._yolo is None:
            self._yolo = _load_model(self.model)
        items = [{"image": img} for img in images]
        preds = predict_detections(
            self._yolo, items, conf=self.conf, imgsz=self.imgsz, device=self.device, percentiles=self.percentiles
        )
        return [(p["boxes"], p["scores"]) for p in preds]

    def __repr__(self) -> str:
        return f"YoloDetector({self.model!s}, conf={self.conf:g})"


def evaluate_detections(
    model: Any,
    test_items: Sequence[Mapping[str, Any]],
    conf: float = 0.001,
    iou_thresholds: Sequence[float] = (0.5, 0.25),
    imgsz: int | None = None,
    device: str | None = None,
    nms_iou: float = 0.7,
    max_det: int = 300,
    save_predictions: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Paper-style scores of a detector on real test images: mAP, sensitivity and FPs per slice per IoU threshold.

    Args:
        model: YOLO object, local ``.pt`` path or model yaml.
        test_items: ``{"image", "boxes", "box_labels"}`` dicts (e.g. ``YoloExport.test_items``).
        conf: detection threshold (the paper's 0.1 % = ``0.001``).
        iou_thresholds: IoU thresholds of the matching.
        imgsz: inference size (``None``: the training size).
        device: inference device.
        nms_iou: NMS IoU.
        max_det: maximum detections per image.
        save_predictions: optional JSON path for the raw predictions (to re-score later).

    Returns:
        :func:`detection_metrics` of the predictions.

    Raises:
        ValueError: no test items.
    """
    if not test_items:
        raise ValueError("test_items is empty: the detection table needs real test images with boxes.")
    if save_predictions is not None:
        _import_ultralytics(Path(save_predictions).expanduser().absolute().parent / SETTINGS_SUBDIR)
    preds = predict_detections(model, test_items, conf, imgsz, device, nms_iou, max_det)
    if save_predictions is not None:
        Path(save_predictions).write_text(
            json.dumps(
                [
                    {"image": str(item["image"]), **{k: v.tolist() for k, v in p.items()}}
                    for item, p in zip(test_items, preds)
                ]
            )
        )
    return detection_metrics(preds, test_items, iou_thresholds, conf)


def yolo_detector(
    weights: str | os.PathLike | None, conf: float = 0.25, device: torch.device | str = "cpu"
) -> YoloDetector | None:
    """The optional detector of a fidelity evaluation: ``None`` without ``weights`` (falsy), else
    ``YoloDetector(weights, conf=conf, device=...)`` on the CPU when ``device`` is a CPU device and on CUDA device
    ``'0'`` otherwise (ultralytics' device names). :class:`YoloDetector` raises its clear errors for a missing file."""
    if not weights:
        return None
    return YoloDetector(weights, conf=conf, device="cpu" if torch.device(device).type == "cpu" else "0")


# ---------------------------------------------------------------------------------------------- experiment
def _summary(values: Sequence[float | None]) -> dict[str, Any]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = float(np.mean(finite)) if finite else None
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else (0.0 if finite else None)
    return {"mean": mean, "std": std, "n": len(finite), "values": list(values)}


def _fmt(summary: Mapping[str, Any], digits: int = 2) -> str:
    if summary.get("mean") is None:
        return "n/a"
    if summary.get("n", 0) > 1:
        return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"
    return f"{summary['mean']:.{digits}f}"


def format_table_markdown(table: Mapping[str, Any]) -> str:
    """The table of :func:`run_detection_experiment` as Markdown, columns as in the paper's Table 1."""
    thresholds = table["config"]["iou_thresholds"]
    first = f"{float(thresholds[0]):g}"
    header = ["Training data", f"mAP (IoU ≥ {first})"]
    keys = [f"map@{first}"]
    for t in thresholds:
        header += [f"Sensitivity (IoU ≥ {float(t):g})", f"FPs per slice (IoU ≥ {float(t):g})"]
        keys += [f"sensitivity@{float(t):g}", f"fp_per_slice@{float(t):g}"]
    cfg = table["config"]
    lines = [
        f"YOLO detection with / without synthetic training images, detection threshold {cfg['conf'] * 100:g} %",
        "",
        (
            f"Model {cfg['model']}, {cfg['epochs']} epochs at {cfg['imgsz']} px; mean ± std over seeds "
            f"{', '.join(str(s) for s in cfg['seeds'])}; real test set: {table['test']['n_images']} slices, "
            f"{table['test']['n_gt']} lesions."
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|",
    ]
    for row in table["rows"]:
        cells = [row["label"]] + [_fmt(row["metrics"][k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _as_filter(synthetic_filter: Any, min_box_contrast: float | None) -> Callable[[Any, Any], bool] | None:
    if synthetic_filter is not None and min_box_contrast is not None:
        raise ValueError("give either synthetic_filter or min_box_contrast, not both.")
    if min_box_contrast is not None:
        return BoxContrastFilter(min_box_contrast)
    if synthetic_filter is None or callable(synthetic_filter):
        return synthetic_filter
    if isinstance(synthetic_filter, (int, float)) and not isinstance(synthetic_filter, bool):
        return BoxContrastFilter(float(synthetic_filter))
    raise TypeError(
        "synthetic_filter must be None, a callable (image, boxes) -> bool or a number (minimum box contrast), got "
        f"{type(synthetic_filter).__name__}."
    )


def _run_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings without the grid lists (``ratios``, ``seeds``): adding seeds or ratios to an experiment
    keeps its finished runs."""
    return {k: v for k, v in config.items() if k not in ("ratios", "seeds")}


def _tag(ratio: float) -> str:
    return f"ratio{float(ratio):g}"


def run_detection_experiment(
    real_datalist: str | os.PathLike | Mapping[str, Sequence[dict]] | None,
    synthetic: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    ratios: Sequence[float] = (0, 1, 2),
    seeds: Sequence[int] = (0, 1, 2),
    model: Any = None,
    epochs: int = 30,
    imgsz: int = 128,
    batch: int = 16,
    out_dir: str | os.PathLike = "runs/detection",
    synthetic_filter: Any = None,
    min_box_contrast: float | None = None,
    max_synthetic: int | None = None,
    conf: float = 0.001,
    iou_thresholds: Sequence[float] = (0.5, 0.25),
    device: str | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    train_kwargs: Mapping[str, Any] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """The paper's Table 1 for a real datalist and synthetic sets: one row per real:synthetic ratio, mean ± std of
    mAP, sensitivity and FPs per slice over the seeds, all scored on the real test split.

    Layout of ``out_dir``: ``datasets/ratio<r>[_seed<s>]/`` (YOLO exports; real-only is shared by the seeds),
    ``runs/ratio<r>_seed<s>/`` (ultralytics run, ``detection_metrics.json``, ``predictions.json``),
    ``ultralytics_settings/`` and the tables ``detection_table.json`` / ``detection_table.md``. With ``resume`` a
    run whose ``detection_metrics.json`` was written with the same settings is not repeated.

    Args:
        real_datalist: real datalist (JSON, folder, dict of splits, or ``None`` for the demo dataset).
        synthetic: synthetic sets (SyntheticWriter folders or datalist JSONs); needed when a ratio is > 0.
        ratios: synthetic : real train images per row (``0`` = real only). The paper's balance is 1:1 to 1:2.
        seeds: one training (and synthetic draw) per seed.
        model: model yaml / ``.pt``; ``None``: ``yolov3u.yaml`` with a GPU, ``yolov3-tinyu.yaml`` on CPU.
        epochs: training epochs per run.
        imgsz: training / inference size.
        batch: batch size.
        out_dir: output folder.
        synthetic_filter: ``None``, a callable ``(image, boxes) -> bool`` or a number (= ``min_box_contrast``).
        min_box_contrast: keep synthetic images whose box contrast is at least this (the paper's "discard synthetic
            images with unclear tumour appearance"), see :class:`~monai_gan_aug.evaluation.fidelity.BoxContrastFilter`.
        max_synthetic: cap on synthetic images per run.
        conf: detection threshold of the scores (0.001 = 0.1 %).
        iou_thresholds: IoU thresholds (the first one is the "mAP" column).
        device: ``None`` picks the first GPU when there is one.
        percentiles: intensity window of the export.
        train_kwargs: extra ultralytics training arguments.
        resume: reuse finished runs with identical settings.

    Returns:
        The table (also written as JSON and Markdown).

    Raises:
        ValueError: bad ratios/seeds, a ratio > 0 without synthetic images, no real test images.
    """
    ratios = [float(r) for r in ratios]
    if not ratios or any(not math.isfinite(r) or r < 0 for r in ratios):
        raise ValueError(f"ratios must be a non-empty list of numbers >= 0, got {ratios}.")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints, got {list(seeds)}.")
    seeds = [int(s) for s in seeds]
    if any(r > 0 for r in ratios) and not synthetic:
        raise ValueError(f"ratios {ratios} include synthetic rows but no synthetic set was given (--synthetic DIR).")
    filt = _as_filter(synthetic_filter, min_box_contrast)
    model = model or (DEFAULT_GPU_MODEL if torch.cuda.is_available() else DEFAULT_CPU_MODEL)
    device = device if device is not None else _default_device()
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    _import_ultralytics(out / SETTINGS_SUBDIR)

    lists = load_real_splits(real_datalist)
    if not lists["test"]:
        raise ValueError(f"{real_datalist}: the real 'test' list is empty; the table is scored on real test images.")
    pool, pool_info = ([], {})
    if any(r > 0 for r in ratios):
        pool, pool_info = collect_synthetic_items(synthetic, filt)

    model_name = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    config = {
        "real": str(real_datalist) if not isinstance(real_datalist, Mapping) else "dict",
        "synthetic": [str(s) for s in ([synthetic] if isinstance(synthetic, (str, os.PathLike)) else synthetic or [])],
        "ratios": ratios,
        "seeds": seeds,
        "model": model_name,
        "epochs": int(epochs),
        "imgsz": int(imgsz),
        "batch": int(batch),
        "synthetic_filter": repr(filt) if filt is not None else None,
        "max_synthetic": max_synthetic,
        "conf": float(conf),
        "iou_thresholds": [float(t) for t in iou_thresholds],
        "percentiles": [float(p) for p in percentiles],
        "train_kwargs": dict(train_kwargs or {}),
    }
    rows, test_info = [], {"n_images": 0, "n_gt": 0}
    for ratio in ratios:
        runs = []
        for seed in seeds:
            ds_dir = out / "datasets" / (_tag(ratio) if ratio == 0 else f"{_tag(ratio)}_seed{seed}")
            export = export_yolo_dataset(
                real_datalist, ds_dir, ratio=ratio, max_synthetic=max_synthetic, seed=seed if ratio > 0 else 0,
                synthetic_items=pool if ratio > 0 else None, percentiles=percentiles,
            )
            run_name = f"{_tag(ratio)}_seed{seed}"
            run_dir = out / "runs" / run_name
            run_config = json_safe({**_run_identity(config), "ratio": ratio, "seed": seed, "export": export.info["config"]})
            metrics_path = run_dir / METRICS_FILE
            record = None
            if resume and metrics_path.is_file():
                try:
                    old = json.loads(metrics_path.read_text())
                except ValueError:
                    old = {}
                if _run_identity(old.get("config") or {}) == run_config:
                    record = old
                    logger.info("reusing finished run %s", run_dir)
            if record is None:
                weights = train_yolo(
                    export.data_yaml, model, epochs, imgsz, batch, seed, device, out / "runs", run_name,
                    **dict(train_kwargs or {}),
                )
                metrics = evaluate_detections(
                    weights, export.test_items, conf, iou_thresholds, imgsz, device,
                    save_predictions=run_dir / "predictions.json",
                )
                record = json_safe(
                    {"config": run_config, "weights": str(weights), "counts": export.counts, "metrics": metrics}
                )
                metrics_path.write_text(json.dumps(record, indent=1))
            runs.append(record)
            test_info = {"n_images": record["metrics"]["n_images"], "n_gt": record["metrics"]["n_gt"]}
        counts = runs[0]["counts"]
        n_real, n_syn = counts["train_real"], counts["train_synthetic"]
        label = f"{n_real:,} real images" if n_syn == 0 else f"+ {n_syn:,} synthetic (ratio {ratio:g})"
        keys = [k for k in runs[0]["metrics"] if "@" in k]
        rows.append(
            {
                "label": label,
                "ratio": ratio,
                "n_real": n_real,
                "n_synthetic": n_syn,
                "metrics": {k: _summary([r["metrics"][k] for r in runs]) for k in keys},
                "runs": [str(out / "runs" / f"{_tag(ratio)}_seed{s}") for s in seeds],
            }
        )
    table = json_safe(
        {
            "title": "YOLO detection with/without synthetic images (Han et al. 2019, Table 1)",
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "config": config,
            "columns": metric_keys(iou_thresholds),
            "synthetic_pool": pool_info,
            "test": test_info,
            "rows": rows,
        }
    )
    (out / TABLE_JSON).write_text(json.dumps(table, indent=1))
    (out / TABLE_MD).write_text(format_table_markdown(table))
    logger.info("detection table written to %s", out / TABLE_MD)
    return table


# ---------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m monai_gan_aug.evaluation.detection --real DATALIST --synthetic DIR [DIR ...] --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_gan_aug.evaluation.detection",
        description="YOLO detection with/without synthetic images (Han et al. 2019, Table 1).",
    )
    parser.add_argument("--real", default=None, help="real datalist JSON or folder (default: the demo dataset)")
    parser.add_argument("--synthetic", nargs="*", default=[], help="synthetic sets (SyntheticWriter folders / JSONs)")
    parser.add_argument("--ratios", type=float_list, default=[0.0, 1.0, 2.0], help="synthetic:real ratios, e.g. 0,1,2")
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="seeds, e.g. 0,1,2")
    parser.add_argument("--model", default=None, help=f"model yaml or .pt (default {DEFAULT_GPU_MODEL} on GPU, "
                        f"{DEFAULT_CPU_MODEL} on CPU)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default=None, help="cpu, 0, ... (default: first GPU if any)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--min_box_contrast", type=float, default=None, help="discard synthetic images below it")
    parser.add_argument("--max_synthetic", type=int, default=None)
    parser.add_argument("--conf", type=float, default=0.001, help="detection threshold (0.001 = 0.1 %%)")
    parser.add_argument("--iou", type=float_list, default=[0.5, 0.25], help="IoU thresholds, e.g. 0.5,0.25")
    parser.add_argument("--no_resume", action="store_true", help="retrain finished runs")
    args = parser.parse_args(argv)
    table = run_detection_experiment(
        args.real, args.synthetic or None, ratios=args.ratios, seeds=args.seeds, model=args.model, epochs=args.epochs,
        imgsz=args.imgsz, batch=args.batch, out_dir=args.out, min_box_contrast=args.min_box_contrast,
        max_synthetic=args.max_synthetic, conf=args.conf, iou_thresholds=args.iou, device=args.device,
        resume=not args.no_resume,
    )
    print(format_table_markdown(table))
    return table


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
