# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion realism and distribution metrics of a written synthetic set with boxes (issue 15).

:func:`evaluate_realism` scores any synthetic set that :class:`~monai_gan_aug.handlers.SyntheticWriter` wrote with
boxes, against the real data, on four questions:

1. **Does a detector trained on real slices only find the generated lesions as often as real ones?** A YOLO detector
   (the given ``best.pt``, else one trained with :class:`~monai_gan_aug.evaluation.benefit.DetectionTask`'s recipe on
   the real training split at the synthetic set's resolution, best epoch on the real validation split, cached in
   ``out_dir``) runs at the operating point the benefit protocol uses, chosen on the real **validation** split
   (:func:`~monai_gan_aug.evaluation.benefit.operating_threshold`: the lowest confidence with at most
   ``operating_fp`` false positives per validation slice; the test split never chooses anything). At that threshold:
   the recall (IoU >= 0.25 and 0.5, one detection per lesion, :func:`~monai_gan_aug.evaluation.detection.match_detections`)
   of the generated lesions and of the real test lesions, and their ratio. Controls, so that a detector that fires
   everywhere does not look good: the same recall at control boxes where no lesion is (each image gets the scored
   boxes of the next image, :func:`~monai_gan_aug.evaluation.fidelity.shuffle_boxes` ``"roll"``, minus any that touch
   one of its own boxes), for the synthetic and the real test slices, and, for lesions added to real slices whose
   source slice is recorded, the generated boxes on the unedited source slice. The control-corrected ratio is
   ``(recall - control recall)`` of the generated lesions over the same of the real ones.
2. **Box contrast** (:func:`~monai_gan_aug.evaluation.fidelity.box_contrasts`: inside minus a surrounding ring, in
   foreground-sd units) of the generated lesions vs the real test lesions.
3. **FID and KID** with one offline feature extractor for every pair (:func:`~monai_gan_aug.metrics.evaluate.build_extractor`:
   Inception-v3 from local weights when there are any, else the seeded random conv net): generated slices vs real
   test slices next to the floor real validation vs real test slices; lesion patches (``patch_size`` crops centred on
   the boxes) generated vs test, next to validation vs test.
4. **Stripes and checkerboards** over the whole set (:func:`~monai_gan_aug.metrics.spectral.spectral_artefacts`):
   the stripe index (directional mid / high-frequency power, generated over real test slices) and the
   high-frequency power share, each next to its floor, real validation vs real test slices. Informational: the
   automatic counterpart of looking at the sample grid.
5. ``realism.json``, ``realism.md`` (targets, pass / fail) and ``realism_patches.png`` (generated lesion patches
   above real test ones).

Which boxes are "generated": every box of a whole generated slice (pggan_bbox); for lesions added to real slices
(lesion_inpaint) only ``new_boxes`` of each item (the slice's own real lesions keep their boxes in ``boxes`` and are
not scored, but they are ground truth: a detection on them is not a hit on a generated lesion). A set written before
``new_boxes`` was recorded can name its added boxes as the last ``new_boxes_last`` boxes of every item (the bundle
writes the slice's own boxes first).

All images (real and synthetic) are read the same way (:func:`~monai_gan_aug.evaluation.protocols.downstream_preprocessing`:
percentile window to [-1, 1], area-resized to the synthetic resolution, real boxes scaled with them), so the
detector, the contrast and the features see real and generated lesions at the same scale.

Bad input stops before any training with a :class:`RealismError` that names the file.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.box_utils import box_iou

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation.benefit import YOLO_AUGMENT_OFF, DetectionTask, content_digest, operating_threshold
from monai_gan_aug.evaluation.detection import YoloDetector, match_detections
from monai_gan_aug.evaluation.fidelity import box_contrasts, shuffle_boxes
from monai_gan_aug.evaluation.protocols import downstream_preprocessing, load_splits, load_synthetic_sets
from monai_gan_aug.metrics.evaluate import build_extractor
from monai_gan_aug.metrics.extractors import find_inception_weights
from monai_gan_aug.metrics.frechet import frechet_distance_from_features
from monai_gan_aug.metrics.functional import kernel_inception_distance
from monai_gan_aug.metrics.spectral import spectral_artefacts
from monai_gan_aug.transforms.boxes.array import as_box_array
from monai_gan_aug.transforms.inpaint import context_window
from monai_gan_aug.utils.misc import json_safe

__all__ = [
    "RECALL_TARGET",
    "CONTRAST_TARGET",
    "RealismError",
    "control_boxes",
    "evaluate_realism",
    "lesion_patches",
    "lesion_recall",
    "realism_markdown",
    "train_real_detector",
]

logger = logging.getLogger(__name__)

#: Targets of issue 15: generated / real detector recall (IoU 0.25) and box contrast ratio.
RECALL_TARGET = 0.7
CONTRAST_TARGET = 0.7
IOUS = (0.25, 0.5)
DETECTOR_RECORD = "detector.json"
LOW_CONF = 0.001  # the detector keeps everything above the benefit protocol's 0.1 %; the operating point cuts later


class RealismError(ValueError):
    """The realism evaluation cannot run on this input (raised before any training, naming the file)."""


Detector = Callable[[torch.Tensor], Sequence[tuple[Any, Any]]]


# ---------------------------------------------------------------------------------------------- data
@dataclass
class _Set:
    """Images of one role, preprocessed to the synthetic resolution, with their boxes in that frame."""

    name: str
    items: list[dict]
    images: torch.Tensor  # (N, 1, W, H) in [-1, 1]
    boxes: list[np.ndarray]  # per image, all its boxes (N_i, 4)
    scored: list[np.ndarray] = field(default_factory=list)  # per image, which boxes are scored (bool (N_i,))

    def scored_boxes(self) -> list[np.ndarray]:
        return [b[m] for b, m in zip(self.boxes, self.scored)]


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)


def _spatial_shape(path: str) -> tuple[int, ...]:
    try:
        image = _loader()(path)
    except Exception as err:  # any reader error: the file is what the user must fix
        raise RealismError(f"{path}: cannot read the image ({type(err).__name__}: {err}).") from err
    shape = tuple(int(s) for s in image.shape[1:])
    while len(shape) > 2 and shape[-1] == 1:  # 2D slices stored as X x Y x 1
        shape = shape[:-1]
    return shape


def _boxes_of(item: Mapping[str, Any], key: str = "boxes") -> np.ndarray:
    try:
        return as_box_array(item.get(key), spatial_dims=2)
    except ValueError as err:
        raise RealismError(f"{item.get('image')}: malformed {key!r} ({err}).") from None


def _load_images(paths: Sequence[str], size: tuple[int, int]) -> torch.Tensor:
    transform = downstream_preprocessing(size)
    out = []
    for path in paths:
        image = transform({"image": str(path)})["image"]
        image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(np.asarray(image))
        out.append(image.float().clamp(-1.0, 1.0))
    return torch.stack(out) if out else torch.zeros((0, 1, *size))


def _load_real(items: Sequence[dict], size: tuple[int, int], name: str) -> _Set:
    """Real items: images resized to ``size``, boxes scaled with them; every box is scored."""
    boxes = []
    for item in items:
        native = _spatial_shape(str(item["image"]))
        if len(native) != 2:
            raise RealismError(f"{item['image']}: a {len(native)}D image; the realism evaluation takes 2D slices.")
        scale = np.asarray(size, float) / np.asarray(native, float)
        boxes.append(_boxes_of(item) * np.concatenate([scale, scale]))
    images = _load_images([str(i["image"]) for i in items], size)
    return _Set(name, [dict(i) for i in items], images, boxes, [np.ones(len(b), bool) for b in boxes])


def _generator_settings(item: Mapping[str, Any]) -> dict[str, Any]:
    """The ``settings.json`` beside the item's checkpoint (empty when it is not there)."""
    ckpt = item.get("checkpoint")
    if not ckpt:
        return {}
    path = Path(str(ckpt)).parent / "settings.json"
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return content.get("settings", content) if isinstance(content, dict) else {}


def _scored_mask(item: Mapping[str, Any], boxes: np.ndarray, new_boxes_last: int | None) -> np.ndarray:
    where = item.get("image")
    if "new_boxes" in item:
        new = _boxes_of(item, "new_boxes")
        mask = np.zeros(len(boxes), bool)
        for nb in new:
            hit = np.flatnonzero(np.all(np.abs(boxes - nb[None]) < 1e-3, axis=1) & ~mask)
            if not len(hit):
                raise RealismError(f"{where}: new box {nb.tolist()} is not among the item's boxes {boxes.tolist()}.")
            mask[hit[0]] = True
        return mask
    if new_boxes_last is not None:
        if len(boxes) < new_boxes_last:
            raise RealismError(
                f"{where}: {len(boxes)} box(es), fewer than new_boxes_last={new_boxes_last} added ones."
            )
        mask = np.zeros(len(boxes), bool)
        mask[len(boxes) - new_boxes_last:] = True
        return mask
    return np.ones(len(boxes), bool)


def _load_synthetic(
    synthetic_dir: str | os.PathLike, image_size: int | Sequence[int] | None, new_boxes_last: int | None
) -> tuple[_Set, dict[str, Any]]:
    """Check and load the synthetic set (all checks before anything is trained)."""
    path = Path(synthetic_dir).expanduser()
    listing = path / "datalist.json" if path.is_dir() else path
    try:
        items = next(iter(load_synthetic_sets(str(path)).values()))
    except DatalistError as err:
        raise RealismError(str(err)) from err
    if not any("boxes" in i for i in items):
        raise RealismError(
            f"synthetic set {listing}: no item has 'boxes'; the realism evaluation scores generated lesions at their "
            "boxes (a box-conditioned or lesion-adding generator's set, e.g. pggan_bbox or lesion_inpaint)."
        )
    with_new = [("new_boxes" in i) for i in items]
    if any(with_new) and not all(with_new):
        odd = items[with_new.index(False)]["image"]
        raise RealismError(f"synthetic set {listing}: some items list 'new_boxes' and others (e.g. {odd}) do not.")
    if new_boxes_last is not None and (isinstance(new_boxes_last, bool) or int(new_boxes_last) < 1):
        raise RealismError(f"new_boxes_last must be a positive integer, got {new_boxes_last!r}.")
    if not any(with_new) and new_boxes_last is None:
        added = next((i for i in items if "source_image" in i or "patch_size" in _generator_settings(i)), None)
        if added is not None:
            raise RealismError(
                f"synthetic set {listing}: its generator adds lesions to real slices (lesion_inpaint), but the items "
                "do not say which boxes are new ('new_boxes'), so real lesions would be scored as generated. "
                "Regenerate it with the current bundle (inference.json --overwrite true), or pass new_boxes_last=N "
                "(--new_boxes_last N: the last N boxes of every item are the added ones; N = its num_lesions)."
            )
    shapes = [_spatial_shape(str(i["image"])) for i in items]
    if image_size is None:
        size = shapes[0]
    else:
        size = tuple(int(s) for s in ((image_size,) * 2 if isinstance(image_size, (int, np.integer)) else image_size))
    if len(size) != 2:
        raise RealismError(f"{items[0]['image']}: a {len(size)}D image; the realism evaluation takes 2D slices.")
    for item, shape in zip(items, shapes):
        if shape != size:
            raise RealismError(
                f"synthetic image {item['image']} is {shape[0]}x{shape[1] if len(shape) > 1 else ''}, the set is scored at "
                f"{size[0]}x{size[1]} ({'image_size' if image_size is not None else 'the size of ' + str(items[0]['image'])}); "
                "a synthetic set must hold images of one size, the generator's."
            )
    boxes, scored = [], []
    for item in items:
        b = _boxes_of(item)
        if len(b) and (np.any(b[:, :2] < -1e-6) or np.any(b[:, 2:] > np.asarray(size, float)[None] + 1e-6)):
            raise RealismError(f"{item['image']}: a box {b.tolist()} lies outside the {size[0]}x{size[1]} image.")
        boxes.append(b)
        scored.append(_scored_mask(item, b, None if new_boxes_last is None else int(new_boxes_last)))
    n_scored = int(sum(m.sum() for m in scored))
    if n_scored == 0:
        raise RealismError(f"synthetic set {listing}: none of its {len(items)} items has a generated box to score.")
    kind = ("lesions added to real slices ('new_boxes')" if any(with_new) else
            f"lesions added to real slices (last {new_boxes_last} box(es) of each item)" if new_boxes_last else
            "whole generated slices (every box)")
    images = _load_images([str(i["image"]) for i in items], size)
    info = {"dir": str(path), "n_images": len(items), "n_generated_boxes": n_scored,
            "n_other_boxes": int(sum(len(b) for b in boxes)) - n_scored, "kind": kind, "image_size": list(size)}
    return _Set("generated", [dict(i) for i in items], images, boxes, scored), info


# ---------------------------------------------------------------------------------------------- detector
def train_real_detector(
    splits: Mapping[str, Sequence[dict]],
    out_dir: str | os.PathLike,
    image_size: int,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """A YOLO detector trained on the real ``training`` split only with the benefit protocol's recipe
    (:class:`~monai_gan_aug.evaluation.benefit.DetectionTask`: ``yolov8n-p2`` on CPU / ``yolov8s-p2`` on GPU, SGD
    lr0 0.01, warm-up 3, at most 40 epochs, early stopping on the real ``validation`` split, ultralytics'
    augmentation off as in its real-only arm) at ``imgsz = image_size``. Cached in
    ``out_dir/detector_<key>/`` (``detector.json``), keyed by the recipe, the seed and the bytes of the training and
    validation files: a second call with the same inputs returns the same weights without training.

    Args:
        splits: real ``training`` and ``validation`` items (absolute paths, with boxes).
        out_dir: where the detector folder goes.
        image_size: training size (the synthetic set's resolution).
        seed: ultralytics' training seed.
        settings: overrides of the recipe (``DetectionTask`` settings: ``epochs``, ``batch``, ``model``, ``device``,
            ``train_kwargs``).

    Returns:
        The path of the ``best.pt``.
    """
    task = DetectionTask(**{**dict(settings or {}), "imgsz": int(image_size)})
    s = task.settings
    config = json_safe({
        "recipe": {k: s[k] for k in ("model", "imgsz", "epochs", "batch", "train_kwargs")}, "augment": YOLO_AUGMENT_OFF,
        "seed": int(seed), "training": content_digest(splits["training"]), "validation": content_digest(splits["validation"]),
    })
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    work = Path(out_dir).expanduser().absolute() / f"detector_{key}"
    record = work / DETECTOR_RECORD
    if record.is_file():
        try:
            old = json.loads(record.read_text())
        except ValueError:
            old = {}
        weights = work / str(old.get("weights", ""))
        if old.get("config") == config and weights.is_file():
            logger.info("reusing the real-data detector %s", weights)
            return weights
    work.mkdir(parents=True, exist_ok=True)
    task.prepare(splits)
    best, _ = task.train_detector(splits["training"], [], False, int(seed), work)  # the real-only arm's training
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": config, "weights": str(Path(best).relative_to(work))}, indent=1))
    tmp.replace(record)
    return Path(best)


def _detect(detector: Detector, images: torch.Tensor, batch_size: int = 16) -> list[dict[str, np.ndarray]]:
    out = []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start:start + batch_size]
        results = detector(chunk)
        if len(results) != chunk.shape[0]:
            raise ValueError(f"the detector returned {len(results)} results for {chunk.shape[0]} images.")
        for boxes, scores in results:
            b = as_box_array(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, spatial_dims=2)
            s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, float).reshape(-1)
            out.append({"boxes": b, "scores": s})
    return out


# ---------------------------------------------------------------------------------------------- measures
def lesion_recall(
    detections: Sequence[Mapping[str, Any]],
    boxes: Sequence[Any],
    scored: Sequence[Any] | None = None,
    threshold: float = 0.0,
    iou_thresholds: Sequence[float] = IOUS,
) -> dict[str, float]:
    """Recall of the scored boxes by the detections at or above ``threshold``.

    Per image, the kept detections are matched one-to-one to *all* its boxes (:func:`match_detections`, greedy by
    score), and the scored boxes that got a match count as found: a detection on an unscored (real) lesion is not a
    hit on a generated one.

    Args:
        detections: per image ``{"boxes": (D, 4), "scores": (D,)}``.
        boxes: per image ``(N_i, 4)`` boxes (ground truth).
        scored: per image boolean ``(N_i,)``: which boxes count (``None``: all).
        threshold: detections below it are ignored (the operating point).
        iou_thresholds: IoU of a match.

    Returns:
        ``n_images``, ``n_lesions`` (scored boxes), and per IoU ``t``: ``found@t``, ``recall@t`` (``nan`` without
        scored boxes) and ``fp_per_slice@t`` (kept detections matched to no box, per image).
    """
    if len(detections) != len(boxes):
        raise ValueError(f"{len(detections)} detection entries for {len(boxes)} images; give one per image.")
    scored = [None] * len(boxes) if scored is None else scored
    n_lesions, found, fps = 0, dict.fromkeys(iou_thresholds, 0), dict.fromkeys(iou_thresholds, 0)
    for det, b, m in zip(detections, boxes, scored):
        gt = as_box_array(b, spatial_dims=2)
        mask = np.ones(len(gt), bool) if m is None else np.asarray(m, bool).reshape(-1)
        if mask.shape[0] != len(gt):
            raise ValueError(f"scored has {mask.shape[0]} entries for {len(gt)} boxes.")
        pb = as_box_array(det["boxes"], spatial_dims=2)
        ps = np.asarray(det["scores"], float).reshape(-1)
        keep = ps >= threshold
        n_lesions += int(mask.sum())
        for t in iou_thresholds:
            tp, matched = match_detections(pb[keep], ps[keep], gt, t)
            found[t] += int((matched & mask).sum())
            fps[t] += int((~tp).sum())
    out: dict[str, float] = {"n_images": len(boxes), "n_lesions": n_lesions, "threshold": float(threshold)}
    for t in iou_thresholds:
        out[f"found@{t:g}"] = found[t]
        out[f"recall@{t:g}"] = found[t] / n_lesions if n_lesions else float("nan")
        out[f"fp_per_slice@{t:g}"] = fps[t] / len(boxes) if len(boxes) else float("nan")
    return out


def recall_by_size(
    gen: tuple[Sequence[Mapping[str, Any]], Sequence[Any], Sequence[Any]],
    real: tuple[Sequence[Mapping[str, Any]], Sequence[Any], Sequence[Any]],
    threshold: float,
    n_bins: int = 3,
    iou: float = 0.25,
) -> dict[str, Any]:
    """Recall of generated and real lesions per lesion size (``sqrt(w * h)`` in pixels of the scoring grid), in bins
    cut at the quantiles of the real lesions' sizes, and the **size-matched ratio**: the generated per-bin recall
    weighted by the real lesions' size distribution, over the real recall (is the recall gap the lesions' look, or
    only that the generated boxes are smaller?). ``gen`` / ``real``: ``(detections, boxes, scored)`` per image."""

    def sizes(boxes: Sequence[Any], scored: Sequence[Any]) -> list[np.ndarray]:
        out = []
        for b in boxes:
            a = as_box_array(b, spatial_dims=2).reshape(-1, 4)
            out.append(np.sqrt(np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)))
        return out

    gen_sizes, real_sizes = sizes(gen[1], gen[2]), sizes(real[1], real[2])
    real_scored = [np.ones(len(s), bool) if m is None else np.asarray(m, bool) for s, m in zip(real_sizes, real[2])]
    pooled = np.concatenate([s[m] for s, m in zip(real_sizes, real_scored)] or [np.zeros(0)])
    if pooled.size < n_bins:
        return {"bins": [], "size_matched_ratio": float("nan")}
    edges = np.quantile(pooled, np.linspace(0, 1, n_bins + 1))
    edges[0], edges[-1] = 0.0, np.inf
    bins, weighted = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        row: dict[str, Any] = {"min_px": float(lo), "max_px": float(hi) if np.isfinite(hi) else None}  # None: open
        for name, (det, boxes, scored), szs in (("generated", gen, gen_sizes), ("real_test", real, real_sizes)):
            masks = [(np.ones(len(z), bool) if m is None else np.asarray(m, bool)) & (z >= lo) & (z < hi)
                     for z, m in zip(szs, scored)]
            r = lesion_recall(det, boxes, masks, threshold, (iou,))
            row[name] = {"n": r["n_lesions"], "recall": r[f"recall@{iou:g}"]}
        row["real_share"] = row["real_test"]["n"] / pooled.size
        bins.append(row)
    real_recall = sum(b["real_share"] * b["real_test"]["recall"] for b in bins)
    if all(b["generated"]["n"] > 0 for b in bins):
        weighted = sum(b["real_share"] * b["generated"]["recall"] for b in bins)
        matched = _ratio(weighted, real_recall)
    else:  # a size class the generator never produced: no size-matched figure
        matched = float("nan")
    return {"iou": iou, "bins": bins, "size_matched_ratio": matched}


def control_boxes(boxes: Sequence[np.ndarray], scored: Sequence[np.ndarray], spatial_size: Sequence[int],
                  seed: int = 0) -> list[np.ndarray]:
    """Control boxes where no lesion is: image ``i`` gets the scored boxes of image ``i + 1``
    (:func:`shuffle_boxes` ``"roll"``; a set of one image: moved to random places), minus those that touch any box
    of image ``i`` (scored or not)."""
    mine = [np.asarray(b, float).reshape(-1, 4)[np.asarray(m, bool)] for b, m in zip(boxes, scored)]
    rolled = shuffle_boxes(mine, spatial_size, "roll", rng=np.random.default_rng(seed))
    out = []
    for c, b in zip(rolled, boxes):
        b = np.asarray(b, float).reshape(-1, 4)
        if len(c) and len(b):
            touch = np.asarray(box_iou(c.astype(np.float32), b.astype(np.float32))) > 0
            c = c[~touch.any(axis=1)]
        out.append(np.asarray(c, float).reshape(-1, 4))
    return out


def lesion_patches(images: torch.Tensor, boxes: Sequence[np.ndarray], patch_size: int
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """``patch_size`` crops centred on every box (moved inside the image at its border, as the inpainting patches:
    :func:`~monai_gan_aug.transforms.inpaint.context_window`) and each box in its patch's coordinates."""
    crops, local = [], []
    size = tuple(int(s) for s in images.shape[2:])
    patch = (int(patch_size),) * 2
    for img, bs in zip(images, boxes):
        for box in np.asarray(bs, float).reshape(-1, 4):
            lo, hi = np.floor(box[:2] + 1e-6).astype(int), np.ceil(box[2:] - 1e-6).astype(int)
            start = context_window(lo, hi, size, patch)
            crops.append(img[:, start[0]:start[0] + patch[0], start[1]:start[1] + patch[1]])
            local.append(np.concatenate([box[:2] - start, box[2:] - start]))
    if not crops:
        return torch.zeros((0, images.shape[1], *patch)), np.zeros((0, 4))
    return torch.stack(crops), np.asarray(local)


def _summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else float("nan"),
            "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan"), "n": int(v.size)}


def _contrasts(images: torch.Tensor, boxes: Sequence[np.ndarray], scored: Sequence[np.ndarray],
               extra: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Per scored box its contrast; with ``extra`` (control boxes) the contrast of those instead, their ring kept
    clear of every box of the image."""
    out = []
    for k, img in enumerate(images):
        b = np.asarray(boxes[k], float).reshape(-1, 4)
        if extra is None:
            out.append(box_contrasts(img, b)[np.asarray(scored[k], bool)] if len(b) else np.zeros(0))
        else:
            c = np.asarray(extra[k], float).reshape(-1, 4)
            out.append(box_contrasts(img, np.concatenate([b, c]))[len(b):] if len(c) else np.zeros(0))
    return np.concatenate(out) if out else np.zeros(0)


def _ratio(a: float, b: float) -> float:
    return a / b if (math.isfinite(a) and math.isfinite(b) and b != 0) else float("nan")


def _extractor(spec: str, device: str | torch.device) -> Any:
    if spec == "auto":
        try:
            find_inception_weights()
            spec = "inception"
        except FileNotFoundError:
            spec = "random"
    return build_extractor(spec, spatial_dims=2, in_channels=1, device=device)


def _distances(extractor: Any, a: torch.Tensor, b: torch.Tensor, seed: int, batch_size: int = 32) -> dict[str, Any]:
    """FID and KID between feature sets of ``a`` and ``b`` (``nan`` with fewer than 2 images in one of them)."""
    out: dict[str, Any] = {"n_a": int(a.shape[0]), "n_b": int(b.shape[0])}
    if a.shape[0] < 2 or b.shape[0] < 2:
        return {**out, "fid": float("nan"), "kid": float("nan"), "kid_sd": float("nan")}
    fa = extractor.extract(a, batch_size=batch_size)
    fb = extractor.extract(b, batch_size=batch_size)
    kid, kid_sd, m = kernel_inception_distance(fb, fa, subset_size=1000, n_subsets=100, seed=seed)
    return {**out, "fid": float(frechet_distance_from_features(fb, fa)), "kid": float(kid), "kid_sd": float(kid_sd),
            "kid_subset": int(m)}


# ---------------------------------------------------------------------------------------------- report
def _target(name: str, value: float, target: float | None, note: str = "") -> dict[str, Any]:
    ok = None if target is None or not math.isfinite(value) else bool(value >= target)
    if ok and value > 1.0 / target:
        note = note or f"above 1/{target:g}: more conspicuous than the real lesions"
    return {"name": name, "value": value, "target": target, "pass": ok, "note": note}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def realism_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: the targets with pass / fail, then the detail tables."""
    syn, real, det = report["synthetic"], report["real"], report["detector"]
    rec, con, dist = report["recall"], report["contrast"], report["distribution"]
    lines = [
        f"# Lesion realism: {syn['dir']}", "",
        f"{syn['n_images']} synthetic images at {syn['image_size'][0]}x{syn['image_size'][1]} px, "
        f"{syn['n_generated_boxes']} generated lesions scored ({syn['kind']}); real data {real['source']}: "
        f"{real['n_validation']} validation and {real['n_test']} test slices ({real['n_test_lesions']} test lesions), "
        "resized to the same size.", "",
        "| Target | Value | Target | Pass |", "|---|---|---|---|",
    ]
    for t in report["targets"]:
        verdict = "n/a" if t["pass"] is None else ("pass" if t["pass"] else "FAIL")
        goal = "-" if t["target"] is None else f">= {t['target']:g}"
        lines.append(f"| {t['name']} | {_fmt(t['value'])} | {goal} | {verdict}{' (' + t['note'] + ')' if t['note'] else ''} |")
    lines += [
        "", "## Detector recall at the validation operating point", "",
        f"Detector: {det['source']} ({'trained here on the real training split' if det['trained_here'] else 'given'}, "
        f"imgsz {det['imgsz']}); threshold "
        f"{_fmt(det['threshold'], 4)}, chosen on the real validation split: the lowest confidence with at most "
        f"{det['operating_fp']:g} false positive(s) per validation slice (IoU 0.25).", "",
        "| Boxes | Images | Lesions | Recall@0.25 | Recall@0.5 | FPs/slice@0.25 |", "|---|---|---|---|---|---|",
    ]
    for key, label in (("generated", "generated lesions"), ("real_test", "real test lesions"),
                       ("control_generated", "control: rolled boxes on the synthetic slices"),
                       ("control_test", "control: rolled boxes on the real test slices"),
                       ("source_control", "control: generated boxes on the unedited source slices")):
        r = rec.get(key)
        if not r:
            continue
        fp = _fmt(r["fp_per_slice@0.25"]) if not key.startswith(("control", "source")) else "-"
        lines.append(f"| {label} | {r['n_images']} | {r['n_lesions']} | {_fmt(r['recall@0.25'])} | "
                     f"{_fmt(r['recall@0.5'])} | {fp} |")
    lines += [
        "", f"Ratio generated / real: {_fmt(rec['ratio@0.25'])} (IoU 0.25), {_fmt(rec['ratio@0.5'])} (IoU 0.5); "
        f"control-corrected (recall minus its control, generated over real) {_fmt(rec['corrected_ratio@0.25'])} "
        "(IoU 0.25).", "",
    ]
    by_size = rec.get("by_size") or {}
    if by_size.get("bins"):
        lines += ["### By lesion size (sqrt(w h) in px, bins at the real lesions' terciles)", "",
                  "| Size (px) | Generated n | Generated recall@0.25 | Real n | Real recall@0.25 |", "|---|---|---|---|---|"]
        for b in by_size["bins"]:
            hi = "inf" if b["max_px"] is None else f"{b['max_px']:.1f}"
            lines.append(f"| {b['min_px']:.1f} - {hi} | {b['generated']['n']} | {_fmt(b['generated']['recall'])} | "
                         f"{b['real_test']['n']} | {_fmt(b['real_test']['recall'])} |")
        lines += ["", f"Size-matched ratio (generated per-size recall weighted like the real lesions' sizes, over the "
                  f"real recall): {_fmt(by_size['size_matched_ratio'])}.", ""]
    lines += [
        "## Box contrast (inside minus ring, foreground-sd units)", "",
        "| Boxes | n | Mean | SD |", "|---|---|---|---|",
    ]
    for key, label in (("generated", "generated lesions"), ("real_test", "real test lesions"),
                       ("control_generated", "control boxes, synthetic slices"),
                       ("control_test", "control boxes, real test slices")):
        c = con[key]
        lines.append(f"| {label} | {c['n']} | {_fmt(c['mean'])} | {_fmt(c['sd'])} |")
    lines += ["", f"Ratio generated / real (means): {_fmt(con['ratio'])}.", "",
              f"## FID and KID (extractor `{dist['extractor']}`)", ""]
    if dist.get("note"):
        lines += [dist["note"], ""]
    lines += ["| Pair | n | FID | KID (sd over subsets) | FID / floor |", "|---|---|---|---|---|"]
    for level, title in (("slices", "slices"), ("patches", f"lesion patches ({dist['patch_size']} px)")):
        d = dist[level]
        g, f = d["generated_vs_test"], d["floor_validation_vs_test"]
        lines.append(f"| {title}: generated vs real test | {g['n_a']} vs {g['n_b']} | {_fmt(g['fid'])} | "
                     f"{_fmt(g['kid'], 4)} ({_fmt(g['kid_sd'], 4)}) | {_fmt(d['fid_over_floor'], 2)} |")
        lines.append(f"| {title}: floor, real validation vs real test | {f['n_a']} vs {f['n_b']} | {_fmt(f['fid'])} | "
                     f"{_fmt(f['kid'], 4)} ({_fmt(f['kid_sd'], 4)}) | 1 |")
    lines += ["", "FID grows as the sets shrink: compare a pair with its floor at similar sizes (n above).", ""]
    spec = report.get("spectral")
    if spec and "stripe_band" in spec["generated_vs_test"]:
        lines += ["## Stripes and checkerboards (power spectrum, whole slices)", "",
                  "| Pair | Stripe index (band, axis) | High-frequency share ratio |", "|---|---|---|"]
        for key, title in (("generated_vs_test", "generated vs real test"),
                           ("floor_validation_vs_test", "floor, real validation vs real test")):
            sp = spec[key]
            lines.append(f"| {title} | {_fmt(sp['stripe_index'])} ({sp['stripe_band']}, axis {sp['stripe_axis']}) | "
                         f"{_fmt(sp.get('high_share_ratio'))} |")
        lines += ["", "Stripe index: the largest over the smallest per-axis power in a frequency band (mid: n/8 to n/4 "
                  "cycles, high: 3n/8 to n/2), first set over second, the larger band; 1 = as isotropic as the real "
                  "slices. High-frequency share ratio: the share of the power in the high band, first over second (> 1: "
                  "checkerboard or noise, < 1: blur).", ""]
    lines += [f"![patches]({report['figure']})" if report.get("figure") else "", "",
              "Time (s): " + ", ".join(f"{k} {v}" for k, v in report.get("timings_s", {}).items())]
    return "\n".join(lines) + "\n"


def _figure(gen: tuple[torch.Tensor, np.ndarray], real: tuple[torch.Tensor, np.ndarray], path: Path, n: int = 8,
            seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rng = np.random.default_rng(seed)
    rows = [("generated", gen), ("real test", real)]
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for r, (title, (patches, local)) in enumerate(rows):
        pick = np.sort(rng.permutation(len(patches))[:n]) if len(patches) else []
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(pick):
                continue
            k = int(pick[c])
            ax.imshow(patches[k, 0].numpy().T, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            x0, y0, x1, y1 = local[k]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="red", lw=0.6))
        axes[r][0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- the evaluation
def evaluate_realism(
    synthetic_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike | Mapping[str, Sequence[dict]] | None = None,
    out_dir: str | os.PathLike = "runs/realism",
    detector: str | os.PathLike | Detector | None = None,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    operating_fp: float | None = None,
    extractor: str = "auto",
    patch_size: int | None = None,
    new_boxes_last: int | None = None,
    detector_settings: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Lesion realism and distribution metrics of a synthetic set (module docstring); writes ``realism.json``,
    ``realism.md`` and ``realism_patches.png`` to ``out_dir`` and returns the report.

    Args:
        synthetic_dir: a SyntheticWriter folder (or its ``datalist.json``) whose items have ``boxes``.
        dataset_dir: the real datalist (JSON, folder, CSV or dict of splits; ``None``: the demo dataset), split as
            the benefit protocol splits it (:func:`~monai_gan_aug.evaluation.protocols.load_splits`).
        out_dir: output folder; a detector trained here is reused by the next call.
        detector: a ``best.pt`` trained on real slices, a callable ``detector(images (N, 1, W, H) in [-1, 1]) ->
            [(boxes (M, 4), scores (M,)), ...]`` (boxes in the image's frame), or ``None`` to train one
            (:func:`train_real_detector`). A ``.pt`` runs with ultralytics at ``imgsz = image_size``, keeping
            detections above 0.001; the operating point is then chosen on validation.
        image_size: the resolution every image is scored at; ``None``: the synthetic images' size (all must share
            it; a set of another size than a given ``image_size`` is refused).
        seed: seed of the detector training, the control boxes and the KID subsets.
        operating_fp: false positives per validation slice at the operating point (default: the benefit
            protocol's ``DetectionTask`` setting, 1).
        extractor: FID / KID features: ``"auto"`` (Inception-v3 from local weights when found, else ``"random"``),
            ``"inception"``, ``"random[:DIM]"`` or a TorchScript file (:func:`~monai_gan_aug.metrics.evaluate.build_extractor`).
        patch_size: side of the lesion patches (default: a quarter of the image side, at least 8).
        new_boxes_last: for a lesion-adding set written without ``new_boxes``: the last N boxes of every item are
            the added ones.
        detector_settings: overrides of the detector recipe when one is trained (e.g. ``{"epochs": 1}``).
        device: detector / extractor device (``None``: the first GPU when there is one).

    Raises:
        RealismError: before any training, for a missing synthetic set or detector file, a set without boxes, images
            of another size, a real dataset without a validation or test split with boxes.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    # ---- every check first: nothing is trained or written before the input is known to be usable
    if isinstance(detector, (str, os.PathLike)):
        weights = Path(detector).expanduser()
        if not weights.is_file():
            raise RealismError(
                f"detector weights {weights} do not exist; pass the best.pt of a detector trained on real slices, or "
                "leave --detector out to train one on the real training split."
            )
    elif detector is not None and not callable(detector):
        raise TypeError(f"detector must be a .pt path, a callable or None, got {type(detector).__name__}.")
    if patch_size is not None and (isinstance(patch_size, bool) or int(patch_size) < 2):
        raise RealismError(f"patch_size must be an integer >= 2, got {patch_size!r}.")
    gen, syn_info = _load_synthetic(synthetic_dir, image_size, new_boxes_last)
    size = tuple(syn_info["image_size"])
    source = str(dataset_dir) if isinstance(dataset_dir, (str, os.PathLike)) else (
        "the demo dataset" if dataset_dir is None else "the given datalist dict")
    try:
        splits = load_splits(dataset_dir)
    except DatalistError as err:
        raise RealismError(str(err)) from err
    for split in ("validation", "test"):
        if not splits[split]:
            raise RealismError(f"{source}: the real {split} split is empty; the realism evaluation needs it.")
    if not any(len(i.get("boxes") or []) for i in splits["test"]):
        raise RealismError(f"{source}: no real test slice has a box; there are no real lesions to compare with.")
    if detector is None and not any(len(i.get("boxes") or []) for i in splits["training"]):
        raise RealismError(f"{source}: no real training slice has a box; no detector can be trained on it.")
    patch = int(patch_size) if patch_size is not None else max(8, min(size) // 4)
    if patch > min(size):
        raise RealismError(f"patch_size {patch} is larger than the {size[0]}x{size[1]} images.")
    op_fp = float(operating_fp if operating_fp is not None else DetectionTask().settings["operating_fp"])
    out = Path(out_dir).expanduser().absolute()
    t1 = time.perf_counter()
    val = _load_real(splits["validation"], size, "validation")
    test = _load_real(splits["test"], size, "test")
    sources = [i.get("source_image") for i in gen.items]
    source_images = None
    if all(sources):
        missing = [s for s in sources if not Path(str(s)).is_file()]
        if missing:
            logger.warning("source slice %s (and %d more) not found: no source-slice control", missing[0], len(missing) - 1)
        else:
            source_images = _load_images([str(s) for s in sources], size)
    timings["load_s"] = time.perf_counter() - t1

    # ---- detector
    t1 = time.perf_counter()
    trained = False
    if detector is None:
        weights = train_real_detector(splits, out, int(max(size)), seed=seed, settings=detector_settings)
        trained = True
        detector = weights
    if isinstance(detector, (str, os.PathLike)):
        det_source = str(Path(detector).expanduser().absolute())
        run: Detector = YoloDetector(det_source, conf=LOW_CONF, imgsz=int(max(size)), device=device)
    else:
        det_source, run = repr(detector), detector
    timings["detector_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    val_det = _detect(run, val.images)
    threshold = float(operating_threshold(val_det, [{"boxes": b} for b in val.boxes], op_fp))
    test_det = _detect(run, test.images)
    gen_det = _detect(run, gen.images)
    recall: dict[str, Any] = {
        "generated": lesion_recall(gen_det, gen.boxes, gen.scored, threshold),
        "real_test": lesion_recall(test_det, test.boxes, test.scored, threshold),
    }
    gen_ctrl = control_boxes(gen.boxes, gen.scored, size, seed)
    test_ctrl = control_boxes(test.boxes, test.scored, size, seed)
    recall["control_generated"] = lesion_recall(gen_det, gen_ctrl, None, threshold)
    recall["control_test"] = lesion_recall(test_det, test_ctrl, None, threshold)
    recall["source_control"] = (lesion_recall(_detect(run, source_images), gen.boxes, gen.scored, threshold)
                                if source_images is not None else None)
    for t in IOUS:
        recall[f"ratio@{t:g}"] = _ratio(recall["generated"][f"recall@{t:g}"], recall["real_test"][f"recall@{t:g}"])
        g = recall["generated"][f"recall@{t:g}"] - recall["control_generated"][f"recall@{t:g}"]
        r = recall["real_test"][f"recall@{t:g}"] - recall["control_test"][f"recall@{t:g}"]
        recall[f"corrected_ratio@{t:g}"] = _ratio(g, r)
        recall[f"fp_ratio@{t:g}"] = _ratio(recall["generated"][f"fp_per_slice@{t:g}"],
                                           recall["real_test"][f"fp_per_slice@{t:g}"])
    recall["by_size"] = recall_by_size((gen_det, gen.boxes, gen.scored), (test_det, test.boxes, test.scored), threshold)
    timings["recall_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    contrast = {
        "generated": _summary(_contrasts(gen.images, gen.boxes, gen.scored)),
        "real_test": _summary(_contrasts(test.images, test.boxes, test.scored)),
        "control_generated": _summary(_contrasts(gen.images, gen.boxes, gen.scored, gen_ctrl)),
        "control_test": _summary(_contrasts(test.images, test.boxes, test.scored, test_ctrl)),
    }
    contrast["ratio"] = _ratio(contrast["generated"]["mean"], contrast["real_test"]["mean"])
    timings["contrast_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    ext = _extractor(extractor, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gen_patches = lesion_patches(gen.images, gen.scored_boxes(), patch)
    test_patches = lesion_patches(test.images, test.scored_boxes(), patch)
    val_patches = lesion_patches(val.images, val.scored_boxes(), patch)
    distribution: dict[str, Any] = {"extractor": ext.name, "patch_size": patch}
    if ext.name.startswith("random"):
        distribution["note"] = ("Features of a fixed seeded random conv net (no Inception weights on this machine): "
                                "comparable within this report only, not with published FIDs.")
    for level, (a, b, c) in (("slices", (gen.images, test.images, val.images)),
                             ("patches", (gen_patches[0], test_patches[0], val_patches[0]))):
        pair = _distances(ext, a, b, seed)
        floor = _distances(ext, c, b, seed)
        distribution[level] = {"generated_vs_test": pair, "floor_validation_vs_test": floor,
                               "fid_over_floor": _ratio(pair["fid"], floor["fid"]),
                               "kid_minus_floor": pair["kid"] - floor["kid"]}
    timings["distribution_s"] = time.perf_counter() - t1
    nan_spec = {"stripe_index": float("nan")}  # below 8 px a side has no frequency bands to compare
    spectral = ({"generated_vs_test": spectral_artefacts(gen.images, test.images),
                 "floor_validation_vs_test": spectral_artefacts(val.images, test.images)} if min(size) >= 8 else
                {"generated_vs_test": nan_spec, "floor_validation_vs_test": nan_spec})

    out.mkdir(parents=True, exist_ok=True)
    figure = out / "realism_patches.png"
    _figure(gen_patches, test_patches, figure, seed=seed)
    targets = [
        _target("Detector recall, generated / real test lesions (IoU 0.25)", recall["ratio@0.25"], RECALL_TARGET),
        _target("Same, control-corrected (recall minus control recall)", recall["corrected_ratio@0.25"],
                RECALL_TARGET),
        _target("False positives per slice (outside every box), generated / real test slices",
                recall["fp_ratio@0.25"], None,
                "no target set; far above 1: the detector fires on the generated slices away from their lesions, "
                "so the slices themselves do not look real to it"),
        _target("Box contrast, generated / real test lesions (means)", contrast["ratio"], CONTRAST_TARGET),
        _target("FID slices / real floor", distribution["slices"]["fid_over_floor"], None, "no target set; lower is better"),
        _target("FID lesion patches / real floor", distribution["patches"]["fid_over_floor"], None,
                "no target set; lower is better"),
        _target("Stripe index (directional spectral power), generated / real test slices",
                spectral["generated_vs_test"]["stripe_index"], None,
                f"no target set; 1 = as isotropic as real slices, real floor "
                f"{spectral['floor_validation_vs_test']['stripe_index']:.2f}; stripes across one axis raise it"),
    ]
    report = {
        "title": "Lesion realism and distribution metrics (issue 15)",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "synthetic": syn_info,
        "real": {"source": source, "n_validation": len(val.items), "n_test": len(test.items),
                 "n_test_lesions": int(sum(len(b) for b in test.boxes))},
        "detector": {"source": det_source, "trained_here": trained, "imgsz": int(max(size)), "threshold": threshold,
                     "operating_fp": op_fp, "chosen_on": "validation", "low_conf": LOW_CONF},
        "recall": recall, "contrast": contrast, "distribution": distribution, "spectral": spectral, "targets": targets,
        "figure": figure.name, "config": {"seed": seed, "extractor": extractor, "patch_size": patch,
                                          "new_boxes_last": new_boxes_last,
                                          "detector_settings": dict(detector_settings or {})},
    }
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()} | {"total_s": round(time.perf_counter() - t0, 1)}
    report = json_safe(report)
    tmp = out / "realism.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / "realism.json")
    (out / "realism.md").write_text(realism_markdown(report))
    return report
