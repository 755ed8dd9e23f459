# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Condition fidelity of box-conditioned generators: do lesions appear inside the requested boxes, and only there?

Han et al., "Learning more with less" (2019) ask a box-conditioned PGGAN for brain MR "with tumours of random shape
within bounding boxes" and discard synthetic images "with unclear tumour appearance". This module measures both
without a human reader:

* :func:`box_contrast`: for each box, the mean intensity inside minus the mean of a surrounding ring (half the box
  side wide, inside the brain, outside every box), in units of the image's foreground standard deviation; averaged
  over the boxes. Enhancing metastases on T1c are bright, so a faithful image scores clearly above 0.
  :class:`BoxContrastFilter` keeps the synthetic images whose contrast reaches a threshold (the automatic stand-in
  for the paper's manual discarding).
* :class:`BoxFidelity`: a cumulative metric (MONAI :class:`~monai.metrics.Cumulative`) of that contrast at the
  requested boxes *and* at a control: the boxes of another image of the batch (``"roll"``) or the requested boxes
  moved to random places (``"relocate"``), in both cases dropping control boxes that overlap a requested one. A
  generator that puts lesions where asked, and not elsewhere, shows a large gap. Given any ``detector``, it also
  reports the detector's recall of the requested boxes (and of the control boxes) at IoU >= 0.25 and 0.5, the
  paper's two thresholds.
* :func:`evaluate_box_fidelity`: the whole evaluation of a trained generator on sampled box sets, optionally with
  the same numbers on real images as the reference, written as JSON and markdown.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.box_utils import box_iou
from monai.metrics import Cumulative

from monai_gan_aug.transforms.boxes.array import as_box_array, box_voxel_slices

__all__ = ["BoxContrastFilter", "BoxFidelity", "box_contrast", "box_contrasts", "evaluate_box_fidelity", "fidelity_markdown", "shuffle_boxes"]

Detector = Callable[[torch.Tensor], Sequence[tuple[Any, Any]]]


def _as_array(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().double().numpy()
    return np.asarray(image, dtype=np.float64)


def _foreground(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    fg = arr > lo + 0.02 * (hi - lo)
    return fg if fg.sum() >= max(4, 0.01 * fg.size) else np.ones_like(fg)


def box_contrasts(image: Any, boxes: Any) -> np.ndarray:
    """Per-box contrast (see :func:`box_contrast`); ``nan`` for a box outside the image or without a ring.

    Args:
        image: ``(C, *spatial)`` array or tensor, any intensity range (channels are averaged).
        boxes: ``(N, 2 * D)`` MONAI corner boxes in voxel coordinates of ``image``.
    """
    arr = _as_array(image)
    b = as_box_array(boxes)
    d = b.shape[1] // 2
    if arr.ndim != d + 1:
        raise ValueError(
            f"box_contrast: image must be channel-first (C, *spatial) with {d} spatial dims for {2 * d}-value boxes, "
            f"got shape {arr.shape}."
        )
    if len(b) == 0:
        return np.zeros(0)
    arr = arr.mean(axis=0)
    size = arr.shape
    fg = _foreground(arr)
    std = float(arr[fg].std())
    std = max(std, 1e-8 * max(1.0, float(np.abs(arr).max())))
    in_any = np.zeros(size, dtype=bool)
    regions = [box_voxel_slices(box, size) for box in b]
    for r in regions:
        if r is not None:
            in_any[r] = True
    out = np.full(len(b), np.nan)
    for i, r in enumerate(regions):
        if r is None:
            continue
        inside = arr[r].mean()
        grown = []
        for ax in range(d):
            side = r[ax].stop - r[ax].start
            m = max(1, math.ceil(side / 2))
            grown.append(slice(max(0, r[ax].start - m), min(size[ax], r[ax].stop + m)))
        grown_t = tuple(grown)
        ring = ~in_any[grown_t]
        ring_fg = ring & fg[grown_t]
        use = ring_fg if ring_fg.sum() >= 4 else ring
        if not use.any():
            continue
        out[i] = (inside - arr[grown_t][use].mean()) / std
    return out


def box_contrast(image: Any, boxes: Any) -> float:
    """Mean box contrast of an image: how much brighter each box is than its surroundings.

    For each box: mean intensity of the voxels it covers minus the mean of a ring around it (the box grown by half
    its side on every axis, minus every box of the image, restricted to the foreground when the ring has foreground
    voxels), divided by the standard deviation of the image's foreground (voxels above 2 % of the intensity range).
    The result averages the boxes.

    Args:
        image: ``(C, *spatial)`` array or tensor in any intensity range (channels are averaged).
        boxes: ``(N, 2 * D)`` MONAI ``StandardMode`` corners in voxel coordinates.

    Returns:
        The mean contrast, ``nan`` when there are no boxes (or none inside the image).
    """
    values = box_contrasts(image, boxes)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


class BoxContrastFilter:
    """Keep a synthetic image when the lesions in its boxes stand out: ``box_contrast(image, boxes) >= threshold``.

    The paper "manually discard[s] synthetic images with unclear tumour appearance"; this is the automatic
    stand-in, using the fidelity score :func:`box_contrast` (mean contrast of the boxes against a surrounding ring,
    in foreground-std units), for :func:`~monai_gan_aug.evaluation.protocols.collect_synthetic_items` and the
    detection experiment. Images without boxes are kept (nothing is unclear in them); a non-finite score discards
    the image.

    Args:
        min_box_contrast: the threshold.
        score_fn: the scoring function ``(image (C, *spatial), boxes (N, 4)) -> float``; default ``box_contrast``.
    """

    def __init__(self, min_box_contrast: float, score_fn: Callable[[Any, Any], float] | None = None) -> None:
        if isinstance(min_box_contrast, bool) or not isinstance(min_box_contrast, (int, float, np.floating)):
            raise TypeError(f"min_box_contrast must be a number, got {type(min_box_contrast).__name__}.")
        self.min_box_contrast = float(min_box_contrast)
        self.score_fn = score_fn

    def score(self, image: Any, boxes: Any) -> float:
        """The box contrast of ``image`` (``nan`` when there is no box)."""
        boxes = as_box_array(boxes, spatial_dims=2)
        if len(boxes) == 0:
            return float("nan")
        fn = box_contrast if self.score_fn is None else self.score_fn
        return float(fn(image, boxes))

    def __call__(self, image: Any, boxes: Any) -> bool:
        if len(as_box_array(boxes, spatial_dims=2)) == 0:
            return True
        s = self.score(image, boxes)
        return bool(np.isfinite(s) and s >= self.min_box_contrast)

    def __repr__(self) -> str:
        return f"BoxContrastFilter(min_box_contrast={self.min_box_contrast})"


def _overlaps(box: np.ndarray, others: np.ndarray) -> bool:
    if len(others) == 0:
        return False
    d = box.shape[0] // 2
    return bool(np.any(np.all(np.minimum(box[d:], others[:, d:]) > np.maximum(box[:d], others[:, :d]), axis=1)))


def shuffle_boxes(
    boxes: Sequence[Any], spatial_size: Sequence[int], mode: str = "roll", rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Control box sets: for image ``i`` the boxes of image ``i + 1`` (``"roll"``; a batch of one falls back to
    ``"relocate"``) or its own boxes moved to random positions inside the image (``"relocate"``); control boxes
    that overlap one of image ``i``'s own boxes are dropped.

    Args:
        boxes: per image ``(N_i, 2 * D)`` boxes.
        spatial_size: image size.
        mode: ``"roll"`` or ``"relocate"``.
        rng: random generator of ``"relocate"`` (default seeded with 0).
    """
    if mode not in ("roll", "relocate"):
        raise ValueError(f"shuffle mode must be 'roll' or 'relocate', got {mode!r}.")
    sets = [as_box_array(b) for b in boxes]
    n = len(sets)
    rng = rng if rng is not None else np.random.default_rng(0)
    size = np.asarray(spatial_size, dtype=np.float64)
    out = []
    for i, own in enumerate(sets):
        if mode == "roll" and n > 1:
            cand = sets[(i + 1) % n]
        else:
            d = own.shape[1] // 2
            cand = []
            for box in own:
                side = box[d:] - box[:d]
                for _ in range(50):
                    lo = np.floor(rng.uniform(0, np.maximum(size - side, 0) + 1e-9))
                    new = np.concatenate([lo, lo + side])
                    if not _overlaps(new, own):
                        cand.append(new)
                        break
            cand = np.asarray(cand, dtype=np.float64).reshape(-1, own.shape[1])
        keep = [b for b in cand if not _overlaps(b, own)]
        out.append(np.asarray(keep, dtype=np.float64).reshape(-1, cand.shape[1] if len(cand) else own.shape[1]))
    return out


def _recall_counts(
    requested: np.ndarray, detected: np.ndarray, scores: np.ndarray, thresholds: Sequence[float], score_threshold: float
) -> list[int]:
    det = detected[scores >= score_threshold] if len(detected) else detected
    if len(requested) == 0:
        return [0] * len(thresholds)
    if len(det) == 0:
        return [0] * len(thresholds)
    iou = np.asarray(box_iou(requested.astype(np.float32), det.astype(np.float32)))
    best = iou.max(axis=1)
    return [int((best >= t).sum()) for t in thresholds]


class BoxFidelity(Cumulative):
    """Cumulative condition-fidelity metric of a box-conditioned generator.

    Call it on batches of generated images and the boxes they were asked for; :meth:`aggregate` returns

    * ``contrast``: mean :func:`box_contrast` at the requested boxes (over images with boxes);
    * ``contrast_shuffled``: the same at control boxes (see :func:`shuffle_boxes`);
    * ``contrast_gap``: their difference (large when lesions are drawn where asked and nowhere else);
    * ``contrast_std``: the standard deviation of the per-image contrast;
    * with a ``detector``: ``recall@t`` and ``recall_shuffled@t`` for each IoU threshold ``t``: the fraction of
      requested (control) boxes matched by a detection with IoU >= ``t``;
    * ``num_images``, ``num_boxes``.

    Args:
        detector: optional ``detector(images (N, C, H, W)) -> [(boxes (M, 4), scores (M,)), ...]``.
        iou_thresholds: IoU thresholds of the recall (the paper's 0.25 and 0.5).
        score_threshold: detections below this score are ignored.
        shuffle: control mode, ``"roll"`` or ``"relocate"``.
        seed: seed of the ``"relocate"`` control.
    """

    def __init__(
        self,
        detector: Detector | None = None,
        iou_thresholds: Sequence[float] = (0.25, 0.5),
        score_threshold: float = 0.0,
        shuffle: str = "roll",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if shuffle not in ("roll", "relocate"):
            raise ValueError(f"shuffle must be 'roll' or 'relocate', got {shuffle!r}.")
        if detector is not None and not callable(detector):
            raise TypeError(f"detector must be callable, got {type(detector).__name__}.")
        self.detector = detector
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.score_threshold = float(score_threshold)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: torch.Tensor, boxes: Sequence[Any], control_boxes: Sequence[Any] | None = None) -> dict:
        """Add a batch.

        Args:
            images: ``(N, C, *spatial)`` generated images.
            boxes: per image the requested ``(N_i, 2 * D)`` boxes.
            control_boxes: per image control boxes (default :func:`shuffle_boxes` of ``boxes``).

        Returns:
            This batch's per-image values (``contrast``, ``contrast_shuffled`` arrays).
        """
        if not isinstance(images, torch.Tensor) or images.ndim < 3:
            raise TypeError(f"images must be an (N, C, *spatial) tensor, got {type(images).__name__}.")
        if len(boxes) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(boxes)} box sets.")
        req = [as_box_array(b) for b in boxes]
        ctrl = (
            [as_box_array(b) for b in control_boxes]
            if control_boxes is not None
            else shuffle_boxes(req, images.shape[2:], self.shuffle, self.rng)
        )
        imgs = images.detach().float().cpu()
        c = np.asarray([box_contrast(imgs[i], req[i]) for i in range(len(req))])
        cs = np.asarray([box_contrast(imgs[i], ctrl[i]) for i in range(len(req))])
        counts = np.asarray([[len(r), len(s)] for r, s in zip(req, ctrl)], dtype=np.float64)
        k = len(self.iou_thresholds)
        matched = np.zeros((len(req), 2 * k))
        if self.detector is not None:
            dets = self.detector(imgs)
            if len(dets) != len(req):
                raise ValueError(f"the detector returned {len(dets)} results for {len(req)} images.")
            for i, (db, ds) in enumerate(dets):
                db = as_box_array(db)
                ds = np.asarray(ds.detach().cpu() if isinstance(ds, torch.Tensor) else ds, dtype=np.float64).reshape(-1)
                matched[i, :k] = _recall_counts(req[i], db, ds, self.iou_thresholds, self.score_threshold)
                matched[i, k:] = _recall_counts(ctrl[i], db, ds, self.iou_thresholds, self.score_threshold)
        self.extend(torch.as_tensor(c), torch.as_tensor(cs), torch.as_tensor(counts), torch.as_tensor(matched))
        return {"contrast": c, "contrast_shuffled": cs}

    def aggregate(self) -> dict[str, float]:  # type: ignore[override]
        """The metric values over everything added since the last :meth:`reset`."""
        buf = self.get_buffer() if self._buffers else None
        if not buf:
            raise ValueError("BoxFidelity.aggregate: no data; call the metric on generated batches first.")
        c, cs, counts, matched = (b.double().numpy() for b in buf)
        with np.errstate(all="ignore"):
            contrast = float(np.nanmean(c)) if np.isfinite(c).any() else float("nan")
            shuffled = float(np.nanmean(cs)) if np.isfinite(cs).any() else float("nan")
            out = {
                "contrast": contrast,
                "contrast_shuffled": shuffled,
                "contrast_gap": contrast - shuffled,
                "contrast_std": float(np.nanstd(c)) if np.isfinite(c).any() else float("nan"),
                "num_images": len(c),
                "num_images_with_boxes": int(np.isfinite(c).sum()),
                "num_boxes": int(counts[:, 0].sum()),
                "num_control_boxes": int(counts[:, 1].sum()),
            }
        if self.detector is not None:
            k = len(self.iou_thresholds)
            for j, t in enumerate(self.iou_thresholds):
                n_req, n_ctrl = counts[:, 0].sum(), counts[:, 1].sum()
                out[f"recall@{t:g}"] = float(matched[:, j].sum() / n_req) if n_req else float("nan")
                out[f"recall_shuffled@{t:g}"] = float(matched[:, k + j].sum() / n_ctrl) if n_ctrl else float("nan")
        return out


def fidelity_markdown(report: Mapping[str, Any]) -> str:
    """A markdown table of :func:`evaluate_box_fidelity`'s report."""
    rows = [("generated", report.get("generated", {}))]
    if report.get("real"):
        rows.append(("real (reference)", report["real"]))
    keys = ["contrast", "contrast_shuffled", "contrast_gap", "contrast_std"]
    extra = sorted({k for _, r in rows for k in r if k.startswith("recall")})
    lines = [
        f"# Box condition fidelity ({report.get('created', '')})",
        "",
        "Box contrast: mean intensity inside each box minus a surrounding ring, in foreground-std units; 'shuffled':",
        f"the same at control boxes ({report.get('shuffle', 'roll')}) where no lesion was requested.",
        "",
        "| images | n | boxes | " + " | ".join(keys + extra) + " |",
        "|---|---|---|" + "---|" * len(keys + extra),
    ]
    for name, r in rows:
        vals = " | ".join(f"{r.get(k, float('nan')):.3f}" for k in keys + extra)
        lines.append(f"| {name} | {r.get('num_images', 0)} | {r.get('num_boxes', 0)} | {vals} |")
    cfg = report.get("config", {})
    if cfg:
        lines += ["", "Configuration: " + ", ".join(f"{k}={v}" for k, v in cfg.items())]
    return "\n".join(lines) + "\n"


@torch.no_grad()
def evaluate_box_fidelity(
    generator: torch.nn.Module,
    objective: Any,
    num_samples: int = 64,
    seed: int = 0,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    output_dir: str | os.PathLike | None = None,
    sampler: Any = None,
    detector: Detector | None = None,
    real_data: Iterable[Mapping[str, Any]] | None = None,
    max_real: int | None = None,
    shuffle: str = "roll",
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate ``num_samples`` images from sampled box sets and measure their condition fidelity.

    Args:
        generator: the trained generator (EMA weights).
        objective: the family's objective (e.g. :class:`~monai_gan_aug.losses.objectives.pggan.PGGANBoxObjective`);
            its ``generate`` draws the images.
        num_samples: images to generate.
        seed: seed of image 0 (image ``i`` uses ``seed + i`` for its latent and its boxes).
        batch_size: generation batch size.
        device: device.
        output_dir: where to write ``fidelity.json`` and ``fidelity.md`` (None: write nothing).
        sampler: the :class:`~monai_gan_aug.transforms.conditions.BoxSampler` the box sets are drawn from
            (required; e.g. the training run's ``box_sampler.json``).
        detector: optional detector for the recall columns (see :class:`BoxFidelity`).
        real_data: optional items with ``image`` (C, *spatial) and ``boxes``, scored the same way as the reference.
        max_real: use at most this many real items.
        shuffle: control mode of :class:`BoxFidelity`.
        config: settings recorded in the report.

    Returns:
        ``{"generated": {...}, "real": {...} or None, "config": ..., "created": ...}``.
    """
    from ignite.engine import Events
    from torch.utils.data import DataLoader

    from monai_gan_aug.data import gan_collate
    from monai_gan_aug.engines.generation import GanGenerationEvaluator
    from monai_gan_aug.transforms.conditions import BoxConditionDataset

    if sampler is None:
        raise ValueError("evaluate_box_fidelity needs a box sampler (sampler=...), e.g. BoxSampler.from_file of the "
                         "training run's box_sampler.json.")
    loader = DataLoader(
        BoxConditionDataset(num_samples, sampler, seed), batch_size=batch_size, shuffle=False, collate_fn=gan_collate
    )
    metric = BoxFidelity(detector=detector, shuffle=shuffle, seed=seed)
    # the package's one generation loop (eval mode, no gradients, seeds per sample), with the metric fed per batch
    evaluator = GanGenerationEvaluator(device, loader, generator, objective)
    evaluator.add_event_handler(Events.ITERATION_COMPLETED,
                                lambda e: metric(e.state.output["image"].float(), e.state.output["boxes"]))
    evaluator.run()
    report: dict[str, Any] = {"generated": metric.aggregate(), "real": None, "shuffle": shuffle}
    if real_data is not None:
        ref = BoxFidelity(detector=detector, shuffle=shuffle, seed=seed)
        images, boxes = [], []
        for i, item in enumerate(real_data):
            if max_real is not None and i >= max_real:
                break
            img = item["image"]
            images.append(torch.as_tensor(np.asarray(img.detach().cpu() if isinstance(img, torch.Tensor) else img)).float())
            boxes.append(as_box_array(item.get("boxes")))
            if len(images) == batch_size:
                ref(torch.stack(images), boxes)
                images, boxes = [], []
        if images:
            ref(torch.stack(images), boxes)
        report["real"] = ref.aggregate()
    report["config"] = {"num_samples": num_samples, "seed": seed, **dict(config or {})}
    report["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if output_dir is not None:
        out_dir = Path(output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fidelity.json").write_text(json.dumps(report, indent=1, default=float))
        (out_dir / "fidelity.md").write_text(fidelity_markdown(report))
    return report
