# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Does it help? Train a generator on a subset of real patients, add its samples to that subset, and compare the
downstream model with the cheap alternatives, paired, with confidence intervals and a verdict.

Protocol (:func:`run_benefit`):

* **Real-data sizes** are fractions of the training *patients*, drawn once (``subset_seed``) as nested subsets: the
  first ``round(f * P)`` patients of one permutation, so the smaller subset lies inside the larger.
* **One generator per size**, trained with the bundle's own ``train.json`` on a datalist holding that subset only
  (:func:`check_generator_data` refuses anything else before training), at the budget the caller sets
  (``generator_overrides``). Its ``inference.json`` then writes the synthetic set, conditioned on the subset's own
  masks / boxes. Nothing it produces has seen an image outside the subset.
* **Arms** of each size: real only; real + classic augmentation (MONAI random flips, small affine, intensity,
  elastic); real + copy-paste of the subset's real lesions into its other slices (the non-GAN synthetic baseline,
  :class:`~monai_gan_aug.transforms.copy_paste.RandLesionCopyPasted`) and real + GAN, each at every ratio, with and
  without classic augmentation. Added sets hold ``round(ratio * n_real_images)`` images.
* **Same-steps control**: the downstream recipes train for a number of *epochs*, so an arm with added images also
  takes more optimizer steps than real + classic. Real + repeat x r + classic adds the subset's own real images again
  (``round(ratio * n_real)`` of them, cycled), so it trains on as many images, and takes as many steps, as the arms
  with r x added images, without any new content; every classic-augmented copy-paste, GAN or mixed arm is also
  compared with it (``vs_repeat``). A gain over real + classic that this arm also shows is a gain of training longer.
* **Same steps for every arm** (``task_settings={"steps": N}``): each run takes ``N`` optimizer steps whatever the
  size of its training set (the epochs follow from it; detection also fixes the warm-up share and keeps the last
  model, :meth:`DetectionTask.yolo_schedule`), so no arm gains from training longer and real + classic is itself the
  same-steps control. Choose ``N`` where real + classic has converged on the *validation* split
  (``experiments/benefit_steps.py``), never on the test split.
* **Paired design**: every arm of a size uses the same seeds; with a seed the network initialisation is the same and
  the real images come in the same order (:class:`~monai_gan_aug.data.samplers.PairedOrderSampler`).
* **Report**: per arm mean ± sd over seeds and a 95 % bootstrap band; against real + classic augmentation, the
  paired difference with a 95 % bootstrap interval resampling seeds and test patients
  (:func:`~monai_gan_aug.metrics.paired.paired_bootstrap`) and a verdict: helps / hurts / cannot tell; each GAN arm
  also against the copy-paste arm with the same ratio and classic setting (does the GAN beat the cheap alternative?). Markdown,
  JSON and a PNG per task (metric vs real-data size, one line per arm, bands).
* **Resume**: every generator is keyed by a hash of its settings and of its bundle's config files, every downstream
  run by a hash of its settings and of the *bytes* of the real, added and test files it saw (not their paths: a
  copied out dir keeps its records); finished ones are
  reused, a changed setting or a regenerated file never reuses a stale one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_gan_aug.engines.families import bundle_infos
from monai_gan_aug.evaluation.protocols import load_splits, load_synthetic_sets
from monai_gan_aug.evaluation.tables import json_safe, load_run_record, save_run_record
from monai_gan_aug.metrics.paired import PatientScores, arm_metric, bootstrap_interval, paired_bootstrap, verdict

__all__ = [
    "BenefitError",
    "Arm",
    "Metric",
    "BenefitTask",
    "SegmentationTask",
    "DetectionTask",
    "ClassificationTask",
    "TASKS",
    "bundle_tasks",
    "patient_of",
    "nested_patient_subsets",
    "check_generator_data",
    "operating_threshold",
    "make_arms",
    "added_items",
    "MIXED",
    "REPEAT",
    "repeat_twin",
    "select_arms",
    "operating_point_counts",
    "run_benefit",
    "benefit_markdown",
]

logger = logging.getLogger(__name__)

BASELINE = "real+classic"
#: the ``added`` of a mixed arm: half GAN, half copy-paste images
MIXED = "gan+copy_paste"
#: the ``added`` of the same-steps control: the subset's own real images again
REPEAT = "repeat"


class BenefitError(ValueError):
    """A benefit experiment cannot run with these settings (raised before any training)."""


# ---------------------------------------------------------------------------------------------- arms and metrics
@dataclass(frozen=True)
class Arm:
    """One arm of a row: what is added to the real subset, and whether classic augmentation is on."""

    name: str
    added: str | None = None  # None, "copy_paste", "gan", MIXED or REPEAT
    ratio: float = 0.0
    classic: bool = False


@dataclass(frozen=True)
class Metric:
    """A per-test-patient ratio metric: ``sum(num) / sum(den)`` over the records of the test images."""

    key: str
    title: str
    num: str
    den: str | None = None
    higher_is_better: bool = True


def make_arms(ratios: Sequence[float], copy_paste: bool = True, mixed_ratios: Sequence[float] = (),
              repeat: bool = True) -> list[Arm]:
    """The arms of every row: real, real + classic, (with ``repeat``) real + repeat x r + classic at each ratio r (the
    same-steps control: the real images again), then at each ratio r (real + copy-paste x r) and real + GAN x r, each
    with and without classic augmentation. Copy-paste adds as many images as the GAN arm it is compared with: a GAN
    arm never wins by quantity alone.

    At each of ``mixed_ratios`` (each must be one of ``ratios`` and needs copy-paste) a mixed arm adds GAN x r/2 and
    copy-paste x r/2: does the GAN add something to copy-paste, against copy-paste x r (the same number of images)?"""
    arms = [Arm("real"), Arm(BASELINE, classic=True)]
    if repeat:
        arms += [Arm(f"real+{REPEAT} x{float(r):g}+classic", REPEAT, float(r), True) for r in ratios]
    kinds = [(k, ratios) for k in (("copy_paste", "gan") if copy_paste else ("gan",))]
    if mixed_ratios:
        if not copy_paste:
            raise BenefitError("mixed GAN + copy-paste arms need the copy-paste arms (drop --no_copy_paste; the "
                               "classification task has none: it pastes no lesions).")
        missing = [r for r in mixed_ratios if float(r) not in {float(x) for x in ratios}]
        if missing:
            raise BenefitError(f"mixed ratios {missing} are not among the ratios {list(ratios)}: a mixed arm is "
                               "compared with the copy-paste arm of its ratio.")
        kinds.append((MIXED, mixed_ratios))
    for added, rs in kinds:
        for r in rs:
            tag = f"{float(r):g}"
            arms += [Arm(f"real+{added} x{tag}", added, float(r)), Arm(f"real+{added} x{tag}+classic", added, float(r), True)]
    return arms


def select_arms(arms: Sequence[Arm], names: Sequence[str] | None) -> list[Arm]:
    """The arms named in ``names`` (all when None), in the order of ``arms``, always with real + classic: the
    baseline of every verdict. Raises :class:`BenefitError` for a name that is not an arm of this experiment."""
    if names is None:
        return list(arms)
    known = [a.name for a in arms]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenefitError(f"unknown arm(s) {unknown}; the arms of this experiment are {known}.")
    keep = set(names) | {BASELINE}
    return [a for a in arms if a.name in keep]


def copy_paste_twin(arm: Arm, arms: Sequence[Arm]) -> Arm | None:
    """The copy-paste arm a GAN or mixed arm is compared with (same ratio, same classic augmentation), or None."""
    if arm.added not in ("gan", MIXED):
        return None
    return next((a for a in arms if a.added == "copy_paste" and a.classic == arm.classic and a.ratio == arm.ratio),
                None)


def repeat_twin(arm: Arm, arms: Sequence[Arm]) -> Arm | None:
    """The same-steps control a classic-augmented arm with added images is compared with (real + repeat of the same
    ratio), or None."""
    if arm.added in (None, REPEAT) or not arm.classic:
        return None
    return next((a for a in arms if a.added == REPEAT and a.ratio == arm.ratio), None)


def added_items(arm: Arm, pools: Mapping[str, Sequence[dict]], n_real: int) -> list[dict]:
    """The items ``arm`` adds to ``n_real`` real images: the first ``round(ratio * n_real)`` of its pool, so the sets
    of a source are nested across ratios (x1 is part of x2) and a run stays the same when a larger ratio enlarges the
    pool. A mixed arm takes half from the GAN pool and half from the copy-paste pool; the repeat arm cycles through
    its pool, the real subset."""
    if not arm.added:
        return []
    n_add = int(round(arm.ratio * n_real))
    if arm.added == REPEAT:
        pool = pools[REPEAT]
        return [pool[k % len(pool)] for k in range(n_add)]
    if arm.added == MIXED:
        n_gan = n_add // 2
        return list(pools["gan"][:n_gan]) + list(pools["copy_paste"][:n_add - n_gan])
    return list(pools[arm.added][:n_add])


# ---------------------------------------------------------------------------------------------- tasks
class BenefitTask(ABC):
    """What a downstream task supplies to the runner: the item key it needs, its metrics and one training run.

    :meth:`run` trains on ``real + added`` (real first: ``n_real`` of them) and returns one record per test image
    with ``patient`` and the fields its :attr:`metrics` read.
    """

    name: str = ""
    requires: str = ""  # item key every training item must carry (label / boxes / class)
    metrics: tuple[Metric, ...] = ()
    primary: str = ""

    def __init__(self, **settings: Any) -> None:
        self.settings = {**self.defaults(), **settings}

    def defaults(self) -> dict[str, Any]:
        return {}

    #: the setting that holds this task's batch size
    batch_key: str = "batch_size"

    def _batch(self, n_train: int) -> tuple[int, int]:
        n, b = int(n_train), self.settings[self.batch_key]
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise BenefitError(f"{self.name}: {self.batch_key!r} must be a positive integer with 'steps', got {b!r}.")
        if n < 1:
            raise BenefitError(f"{self.name}: no training images.")
        return n, min(int(b), n)

    def steps_per_epoch(self, n_train: int) -> int:
        """Batches of one epoch over ``n_train`` images (the last one partial; a trailing single image is dropped,
        as :func:`~monai_gan_aug.evaluation.protocols.fit_supervised` does)."""
        n, b = self._batch(n_train)
        return n // b if (n % b == 1 and n > 1) else math.ceil(n / b)

    def uses_validation_for_selection(self) -> bool:
        """Whether a run keeps its best epoch on the validation split: by epochs yes; with ``steps`` no, the model
        is the last one (a smaller arm has more epochs, so a best-of-epochs pick would be a pick from more checks)."""
        return self.settings.get("steps") is None

    def epochs_for(self, n_train: int) -> int:
        """Epochs of a run on ``n_train`` images: the ``epochs`` setting, or with ``steps`` set, the epochs that
        make ``steps`` batches (rounded to whole epochs) whatever the size of the training set, so every arm of a
        row takes the same number of gradient steps (the images seen differ by the partial last batch of each
        epoch)."""
        steps = self.settings.get("steps")
        if steps is None:
            return int(self.settings["epochs"])
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise BenefitError(f"{self.name}: 'steps' must be a positive integer or None, got {steps!r}.")
        return max(1, round(int(steps) / self.steps_per_epoch(n_train)))

    def check_items(self, items: Sequence[Mapping], source: str) -> None:
        """Raise :class:`BenefitError` naming the source when the training items cannot serve this task."""
        missing = [i.get("image") for i in items if self.requires not in i]
        if missing:
            raise BenefitError(
                f"{source}: {len(missing)} of {len(items)} training items have no {self.requires!r} (e.g. "
                f"{missing[0]}); the {self.name} task needs it for every image."
            )

    @abstractmethod
    def prepare(self, splits: Mapping[str, Sequence[dict]]) -> None:
        """Load what every run shares (validation and test images)."""

    @abstractmethod
    def run(self, real: Sequence[dict], added: Sequence[dict], classic: bool, seed: int) -> list[dict[str, Any]]:
        """Train on ``real + added`` (``classic`` augmentation on or off) with ``seed``; one record per test image."""

    def run_metrics(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Metrics of one run that are not ratios of per-patient sums (reported as mean ± sd over seeds only)."""
        return {}

    def curves(self, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
        """Curves of an arm from the test records of all its seeds (plotted next to the table); none by default."""
        return {}


class SegmentationTask(BenefitTask):
    """MONAI U-Net (Dice + cross-entropy, model selection on the real validation split) scored per test image:
    Dice on images with a lesion, Dice on all images (an empty mask predicted empty scores 1)."""

    name = "segmentation"
    requires = "label"
    metrics = (
        Metric("dice", "Dice (lesion images)", "dice", "has_lesion"),
        Metric("dice_all", "Dice (all images)", "dice_all"),
    )
    primary = "dice"

    def defaults(self) -> dict[str, Any]:
        return {"image_size": 64, "epochs": 30, "batch_size": 16, "lr": 1e-3, "network": "unet",
                "device": None}

    def prepare(self, splits: Mapping[str, Sequence[dict]]) -> None:
        from monai_gan_aug.evaluation.protocols import preload_items

        size = int(self.settings["image_size"])
        self.val = preload_items(splits["validation"], size, mask_key="label") if splits["validation"] else None
        self.test = preload_items(splits["test"], size, mask_key="label")
        self.test_patients = [patient_of(i) for i in splits["test"]]

    def _load(self, items: Sequence[dict]) -> list[dict]:
        from monai_gan_aug.evaluation.protocols import preload_items

        return preload_items(items, int(self.settings["image_size"]), mask_key="label")

    def run(self, real: Sequence[dict], added: Sequence[dict], classic: bool, seed: int) -> list[dict[str, Any]]:
        import torch

        from monai_gan_aug.evaluation.protocols import classic_augmentation
        from monai_gan_aug.evaluation.segmentation import _dice_per_image, predict_masks, train_segmenter

        s = self.settings
        data = self._load(real) + self._load(added)
        net = train_segmenter(
            data, self.val if self.uses_validation_for_selection() else None, network=s["network"],
            epochs=self.epochs_for(len(data)), image_size=int(s["image_size"]),
            classic_aug=classic_augmentation(True, int(s["image_size"]), elastic=True) if classic else False, seed=seed, batch_size=int(s["batch_size"]), lr=float(s["lr"]), device=s["device"],
            n_real=len(real),
        )
        images = torch.stack([d["image"] for d in self.test])
        masks = torch.stack([d["label"] for d in self.test]).long()
        pred = predict_masks(net, images, device=s["device"])
        dice = _dice_per_image(pred, masks, 2)  # nan where the mask is empty
        records = []
        for k, (p, m) in enumerate(zip(pred, masks)):
            has = bool((m > 0).any())
            empty_ok = 1.0 if not bool((p > 0).any()) else 0.0
            records.append({
                "patient": self.test_patients[k],
                "has_lesion": 1.0 if has else 0.0,
                "dice": float(dice[k]) if has else 0.0,
                "dice_all": float(dice[k]) if has else empty_ok,
            })
        return records


#: ultralytics augmentation settings: all off (every arm without classic augmentation) and the classic arm's.
YOLO_AUGMENT_OFF = {"mosaic": 0.0, "fliplr": 0.0, "flipud": 0.0, "degrees": 0.0, "scale": 0.0, "translate": 0.0,
                    "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "erasing": 0.0, "mixup": 0.0, "copy_paste": 0.0}
YOLO_CLASSIC = {**YOLO_AUGMENT_OFF, "fliplr": 0.5, "degrees": 10.0, "scale": 0.1, "translate": 0.05, "hsv_v": 0.1}


class DetectionTask(BenefitTask):
    """ultralytics YOLO from its model yaml, trained at the generator's resolution (``imgsz``: no synthetic image is
    upscaled), best epoch chosen on the real validation split (the last one with ``steps``:
    :meth:`yolo_schedule`), scored on the real test slices at ``conf`` (Han et
    al.'s 0.1 %): per test image its lesions, the lesions found and the false positives at IoU 0.5 and 0.25, and the
    scores of its true and false positives (FROC / CPM).

    The default model is YOLOv8 with a stride-4 (P2) head: ``yolov8n-p2.yaml`` on CPU, ``yolov8s-p2.yaml`` on GPU.
    yolov3-tinyu (strides 16 and 32) cannot learn the demo lesions at 128 px: ultralytics' task-aligned assigner
    only takes anchor points inside a box, and only 43 % of the demo's training lesions (median 10 px) hold a
    stride-16 anchor centre (71 % at stride 8, the P3 head of yolov3u); from scratch its box loss stayed near 1e-6
    and its validation mAP at 0 for the first 8 epochs, while yolov8n-p2 reached a validation mAP50 of 0.78
    (docs/benefit.md, ``experiments/detection_recipe.py``).

    Classic augmentation is ultralytics' own (flips, small rotation / scale / shift, brightness:
    :data:`YOLO_CLASSIC`); every other arm trains with all of it off (:data:`YOLO_AUGMENT_OFF`).
    """

    name = "detection"
    requires = "boxes"
    batch_key = "batch"
    metrics = (
        Metric("sens_op@0.25", "Sensitivity@IoU0.25 (val. operating point)", "tp_op@0.25", "n_gt"),
        Metric("fp_op@0.25", "FPs/slice@IoU0.25 (val. operating point)", "fp_op@0.25", "one", higher_is_better=False),
        Metric("sensitivity@0.25", "Sensitivity@IoU0.25 (conf 0.001)", "tp@0.25", "n_gt"),
        Metric("fp_per_slice@0.25", "FPs/slice@IoU0.25 (conf 0.001)", "fp@0.25", "one", higher_is_better=False),
        Metric("sensitivity@0.5", "Sensitivity@IoU0.5 (conf 0.001)", "tp@0.5", "n_gt"),
        Metric("fp_per_slice@0.5", "FPs/slice@IoU0.5 (conf 0.001)", "fp@0.5", "one", higher_is_better=False),
    )
    #: Han et al.'s columns at their 0.1 % threshold saturate here (sensitivity 0.94-0.97 at ~35 FPs/slice), so the
    #: verdict reads the sensitivity at an operating point fixed on the real validation split (``operating_fp``
    #: false positives per validation slice), never on the test split.
    primary = "sens_op@0.25"

    def defaults(self) -> dict[str, Any]:
        import torch

        gpu = torch.cuda.is_available()
        return {"model": "yolov8s-p2.yaml" if gpu else "yolov8n-p2.yaml", "imgsz": 128, "epochs": 40,
                "batch": 16, "conf": 0.001, "operating_fp": 1.0, "device": None,
                "train_kwargs": {"optimizer": "SGD", "lr0": 0.01, "patience": 15, "warmup_epochs": 3},
                "work_dir": None}

    def check_items(self, items: Sequence[Mapping], source: str) -> None:
        super().check_items(items, source)
        if not any(len(i.get("boxes") or []) for i in items):
            raise BenefitError(f"{source}: no training item has a box; the detection task needs lesion boxes.")

    def prepare(self, splits: Mapping[str, Sequence[dict]]) -> None:
        self.splits = {k: [dict(i) for i in v] for k, v in splits.items()}
        self.test_patients = [patient_of(i) for i in splits["test"]]

    def train_detector(self, real: Sequence[dict], added: Sequence[dict], classic: bool, seed: int,
                       work_dir: str | os.PathLike, test: Sequence[dict] = ()) -> tuple[Path, Any]:
        """Export ``real`` + ``added`` with the real validation split (and ``test``) under ``work_dir`` and train the
        recipe's YOLO there (:meth:`prepare` first). Returns ``(best.pt, the YoloExport)``."""
        from monai_gan_aug.evaluation.detection import train_yolo
        from monai_gan_aug.evaluation.yolo_data import export_yolo_dataset

        s = self.settings
        splits = {"training": list(real), "validation": self.splits["validation"], "test": list(test)}
        export = export_yolo_dataset(splits, Path(work_dir) / "data", synthetic_items=list(added) or None,
                                     ratio=len(added) / max(1, len(real)), max_synthetic=len(added), seed=seed,
                                     overwrite=True)
        aug = YOLO_CLASSIC if classic else YOLO_AUGMENT_OFF
        epochs, schedule = self.yolo_schedule(len(real) + len(added))
        best = train_yolo(export.data_yaml, model=s["model"], epochs=epochs, imgsz=int(s["imgsz"]),
                          batch=int(s["batch"]), seed=seed, device=s["device"], project_dir=Path(work_dir) / "yolo",
                          name="run", **{**aug, **schedule})
        return Path(best), export

    def steps_per_epoch(self, n_train: int) -> int:
        """Batches of one ultralytics epoch: ``ceil(n / batch)`` (its loader keeps a partial last batch, even of
        one image)."""
        n, b = self._batch(n_train)
        return math.ceil(n / b)

    def yolo_schedule(self, n_train: int) -> tuple[int, dict[str, Any]]:
        """``(epochs, ultralytics settings)`` of a run on ``n_train`` images.

        By epochs (``steps`` None): the recipe's ``epochs`` and ``train_kwargs``, the best epoch chosen on the
        validation split. With ``steps``, every arm takes the same ``steps`` batches on the same schedule (ultralytics
        accumulates gradients to a nominal batch of 64, so at batch 16 that is about ``steps / 4`` weight updates,
        the same number in every arm), which ultralytics counts in epochs, whose length depends on the training
        set: the epochs are
        :meth:`epochs_for`, the warm-up (``warmup_epochs`` of ``train_kwargs``) keeps its share of the recipe's
        ``epochs`` (3 of 40: 7.5 % of the steps), early stopping is off (``patience`` counts epochs) and the model is
        the last one (``val=False``: ultralytics validates the final epoch only; a model picked from per-epoch
        checks would be picked from more checks in a smaller arm). The operating threshold is still fixed on the
        validation split."""
        s = self.settings
        kwargs = dict(s["train_kwargs"])
        epochs = self.epochs_for(n_train)
        if s.get("steps") is None:
            return epochs, kwargs
        share = float(kwargs.get("warmup_epochs", 3.0)) / max(1, int(s["epochs"]))
        kwargs.update(warmup_epochs=share * epochs, patience=epochs + 1, val=False)
        return epochs, kwargs

    def run(self, real: Sequence[dict], added: Sequence[dict], classic: bool, seed: int) -> list[dict[str, Any]]:
        import tempfile

        from monai_gan_aug.evaluation.detection import match_detections, predict_detections

        s = self.settings
        with tempfile.TemporaryDirectory(dir=s["work_dir"], prefix="benefit_yolo_") as tmp:
            best, export = self.train_detector(real, added, classic, seed, tmp, test=self.splits["test"])
            kw = {"conf": float(s["conf"]), "imgsz": int(s["imgsz"]), "device": s["device"]}
            preds = predict_detections(str(best), export.test_items, **kw)
            val = self.splits["validation"]
            threshold = operating_threshold(predict_detections(str(best), val, **kw), val, float(s["operating_fp"])) \
                if val else float(s["conf"])
        records = []
        for k, (item, p) in enumerate(zip(export.test_items, preds)):
            gt = np.asarray(item.get("boxes", []), float).reshape(-1, 4)
            rec: dict[str, Any] = {"patient": self.test_patients[k], "n_gt": float(len(gt)), "one": 1.0,
                                   "threshold": threshold}
            for iou in (0.5, 0.25):
                tp, _ = match_detections(p["boxes"], p["scores"], gt, iou)
                tp = np.asarray(tp, bool)
                rec[f"tp@{iou}"] = float(tp.sum())
                rec[f"fp@{iou}"] = float((~tp).sum())
                rec[f"tp_scores@{iou}"] = np.asarray(p["scores"])[tp].round(5).tolist()
                rec[f"fp_scores@{iou}"] = np.asarray(p["scores"])[~tp].round(5).tolist()
            tp_op, fp_op = operating_point_counts(p, gt, threshold)
            rec["tp_op@0.25"], rec["fp_op@0.25"] = float(tp_op), float(fp_op)
            records.append(rec)
        return records

    def run_metrics(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Han et al.'s mAP (all-point VOC AP of the run's test detections at ``conf``) and the FROC score (CPM), at
        IoU 0.5 and 0.25."""
        return {"map@0.5": self.ap(records, 0.5), "map@0.25": self.ap(records, 0.25),
                "cpm@0.25": self.cpm(records, 0.25), "cpm@0.5": self.cpm(records, 0.5)}

    @staticmethod
    def _scores(records: Sequence[Mapping[str, Any]], iou: float) -> tuple[np.ndarray, np.ndarray, int]:
        fp = np.concatenate([np.asarray(r[f"fp_scores@{iou}"], float) for r in records] or [np.zeros(0)])
        tp = np.concatenate([np.asarray(r[f"tp_scores@{iou}"], float) for r in records] or [np.zeros(0)])
        return fp, tp, int(sum(r["n_gt"] for r in records))

    @classmethod
    def ap(cls, records: Sequence[Mapping[str, Any]], iou: float = 0.5) -> float:
        """Average precision of one run's test detections (one lesion class; detections kept at ``conf``)."""
        from monai_gan_aug.evaluation.detection import average_precision

        fp, tp, n_gt = cls._scores(records, iou)
        if n_gt == 0:
            return float("nan")
        scores = np.concatenate([tp, fp])
        hits = np.concatenate([np.ones(len(tp), bool), np.zeros(len(fp), bool)])
        return float(average_precision(scores, hits, n_gt))

    #: FPs per slice at which the FROC curves of the report are sampled (log-spaced, 1/8 ... 32).
    FROC_GRID = tuple(float(2.0 ** (k / 2)) for k in range(-6, 11))

    def curves(self, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
        out = {}
        for iou in (0.25, 0.5):
            fps, sens = self.froc(records, iou)
            at = [float(sens[fps <= x].max()) if np.any(fps <= x) else 0.0 for x in self.FROC_GRID]
            out[f"froc@{iou}"] = {"fps_per_slice": list(self.FROC_GRID), "sensitivity": at}
        return out

    @classmethod
    def froc(cls, records: Sequence[Mapping[str, Any]], iou: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """FROC curve (FPs per slice, sensitivity) of test records, MONAI's ``compute_froc_curve_data``."""
        from monai.metrics import compute_froc_curve_data

        fp, tp, n_gt = cls._scores(records, iou)
        fps, sens = compute_froc_curve_data(fp, tp, max(n_gt, 1), len(records))
        return np.asarray(fps, float), np.asarray(sens, float)

    @staticmethod
    def cpm(records: Sequence[Mapping[str, Any]], iou: float = 0.25) -> float:
        """FROC score (MONAI ``compute_froc_score``: mean sensitivity at 0.25 ... 8 FPs per slice) of one run."""
        from monai.metrics import compute_froc_curve_data, compute_froc_score

        fp, tp, n_gt = DetectionTask._scores(records, iou)
        if n_gt == 0:
            return float("nan")
        fps, sens = compute_froc_curve_data(fp, tp, n_gt, len(records))
        return float(compute_froc_score(fps, sens))


class ClassificationTask(BenefitTask):
    """Image-level classification (e.g. lesion / no lesion, the ``class`` of the demo slices): MONAI ResNet-18
    (cross-entropy, best epoch by validation ROC AUC), scored per test image (correct or not, at the arg-max) and per
    run (ROC AUC). Its cheap non-GAN alternative is classic augmentation (flips, small affine, intensity), the
    ``real+classic`` baseline; copy-paste does not apply."""

    name = "classification"
    requires = "class"
    metrics = (Metric("accuracy", "Accuracy", "correct"),)
    primary = "accuracy"

    def defaults(self) -> dict[str, Any]:
        return {"image_size": 64, "epochs": 20, "batch_size": 16, "lr": 1e-3, "network": "resnet18",
                "num_classes": 2, "device": None}

    def check_items(self, items: Sequence[Mapping], source: str) -> None:
        super().check_items(items, source)
        classes = {int(i["class"]) for i in items}
        if len(classes) < 2:
            raise BenefitError(f"{source}: the training items hold one class only ({classes}); nothing to classify.")

    def _load(self, items: Sequence[dict]) -> list[dict]:
        from monai_gan_aug.evaluation.protocols import preload_items

        return preload_items(items, int(self.settings["image_size"]), class_key="class",
                             num_classes=int(self.settings["num_classes"]))

    def prepare(self, splits: Mapping[str, Sequence[dict]]) -> None:
        self.val = self._load(splits["validation"]) if splits["validation"] else None
        self.test = self._load(splits["test"])
        self.test_patients = [patient_of(i) for i in splits["test"]]

    def run(self, real: Sequence[dict], added: Sequence[dict], classic: bool, seed: int) -> list[dict[str, Any]]:
        import torch

        from monai_gan_aug.evaluation.classification import predict_probabilities, train_classifier

        s = self.settings
        data = self._load(real) + self._load(added)
        net = train_classifier(
            data, self.val if self.uses_validation_for_selection() else None, network=s["network"],
            epochs=self.epochs_for(len(data)),
            image_size=int(s["image_size"]), classic_aug=classic, seed=seed, batch_size=int(s["batch_size"]),
            lr=float(s["lr"]), num_classes=int(s["num_classes"]), device=s["device"], n_real=len(real),
        )
        prob = predict_probabilities(net, torch.stack([d["image"] for d in self.test]), device=s["device"],
                                     num_classes=int(s["num_classes"]))
        labels = [int(d["label"]) for d in self.test]
        return [{"patient": self.test_patients[k], "label": labels[k], "correct": float(int(np.argmax(p)) == labels[k]),
                 "prob": [round(float(x), 6) for x in p]} for k, p in enumerate(prob)]

    def run_metrics(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        from monai_gan_aug.evaluation.classification import classification_metrics

        m = classification_metrics([r["label"] for r in records], np.asarray([r["prob"] for r in records]))
        return {"auc": float(m["auc"])}


def operating_point_counts(prediction: Mapping[str, Any], gt: np.ndarray, threshold: float,
                           iou: float = 0.25) -> tuple[int, int]:
    """``(lesions found, false positives)`` of one image's ``{"boxes", "scores"}`` against its boxes ``gt``, keeping
    the detections scored at least ``threshold`` (the operating point) and matching at ``iou``."""
    from monai_gan_aug.evaluation.detection import match_detections

    keep = np.asarray(prediction["scores"]) >= threshold
    tp, _ = match_detections(np.asarray(prediction["boxes"])[keep], np.asarray(prediction["scores"])[keep], gt, iou)
    found = int(np.asarray(tp, bool).sum())
    return found, int(keep.sum()) - found


def operating_threshold(predictions: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]],
                        fp_per_slice: float, iou: float = 0.25) -> float:
    """The lowest score threshold at which the false positives (IoU < ``iou`` with every box) on ``items`` stay at
    or below ``fp_per_slice`` per image: the operating point, chosen on validation images."""
    from monai_gan_aug.evaluation.detection import match_detections

    fp_scores = []
    for p, item in zip(predictions, items):
        tp, _ = match_detections(p["boxes"], p["scores"], np.asarray(item.get("boxes", []), float).reshape(-1, 4), iou)
        fp_scores += np.asarray(p["scores"])[~np.asarray(tp, bool)].tolist()
    allowed = int(np.floor(fp_per_slice * len(items)))
    ranked = sorted(fp_scores, reverse=True)
    if len(ranked) <= allowed:
        return 0.0
    return float(np.nextafter(ranked[allowed], np.inf))  # strictly above the first false positive too many

TASKS: dict[str, type[BenefitTask]] = {"segmentation": SegmentationTask, "detection": DetectionTask,
                                       "classification": ClassificationTask}

def bundle_tasks() -> dict[str, tuple[str, ...]]:
    """Which downstream tasks each bundle's synthetic sets can serve: the ``downstream_tasks`` its
    ``configs/metadata.json`` declares (:func:`~monai_gan_aug.engines.families.bundle_services`)."""
    return {name: info.downstream_tasks for name, info in bundle_infos().items() if info.downstream_tasks}


#: Downstream settings of ``quick`` mode.
QUICK_TASK: dict[str, dict[str, Any]] = {"segmentation": {"image_size": 32, "epochs": 1, "batch_size": 4},
                                         "classification": {"image_size": 32, "epochs": 1, "batch_size": 4},
                                         "detection": {"imgsz": 64, "epochs": 1, "batch": 4}}


# ---------------------------------------------------------------------------------------------- subsets
def patient_of(item: Mapping[str, Any]) -> str:
    """The item's patient (``patient`` key), else its image path: an item without one is its own patient."""
    p = item.get("patient")
    return str(p) if p is not None else str(item.get("image"))


def nested_patient_subsets(items: Sequence[dict], fractions: Sequence[float], seed: int = 0) -> dict[float, list[dict]]:
    """For each fraction ``f``, the items of the first ``max(1, round(f * P))`` of ``P`` patients of one seeded
    permutation: nested (a smaller fraction's patients are among a larger one's), whole patients only."""
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < float(f) <= 1:
            raise BenefitError(f"real-data fractions must lie in (0, 1], got {f!r}.")
    patients = sorted({patient_of(i) for i in items})
    if not patients:
        raise BenefitError("the real training split is empty.")
    order = [patients[k] for k in np.random.default_rng([int(seed), 7]).permutation(len(patients))]
    out = {}
    for f in sorted({float(x) for x in fractions}):
        chosen = set(order[: max(1, int(round(f * len(patients))))])
        out[f] = [dict(i) for i in items if patient_of(i) in chosen]
    return out


def _file_set(items: Sequence[Mapping]) -> set[str]:
    files = set()
    for item in items:
        for k, v in item.items():
            if isinstance(v, str) and k not in ("patient", "name") and os.path.sep in v:
                files.add(os.path.realpath(v))
    return files


def check_generator_data(datalist_path: str | os.PathLike, subset: Sequence[Mapping]) -> None:
    """Refuse to train a generator on a datalist that holds anything but ``subset`` in its only list,
    ``training``: every file it names must be one of the subset's files."""
    data = json.loads(Path(datalist_path).read_text())
    if set(data) - {"training"}:
        raise BenefitError(f"{datalist_path}: a generator datalist may hold a 'training' list only, got {sorted(data)}.")
    extra = _file_set(data["training"]) - _file_set(subset)
    if extra:
        raise BenefitError(
            f"{datalist_path}: {len(extra)} file(s) outside the real subset would reach the generator, e.g. "
            f"{sorted(extra)[0]}; refusing to train."
        )


def _bundle_default(bundle: str, key: str) -> Any:
    """A plain value of ``bundles/<bundle>/configs/train.json`` (composed with its ``configs/common.json``)."""
    from monai_gan_aug.engines.bundles import read_bundle_config

    return read_bundle_config(bundle, "train.json").get(key)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(json_safe(obj), sort_keys=True).encode()).hexdigest()[:10]


_FILE_SHA: dict[tuple[str, int, int], str] = {}


def _file_sha(path: str) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) so a run's key costs one read per file."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _FILE_SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_SHA[key] = h.hexdigest()
    return _FILE_SHA[key]


def content_digest(items: Sequence[Mapping]) -> str:
    """A digest of what ``items`` hold, not of where: every file they name by its bytes, every other value (boxes,
    class) as it is; independent of item order and of file names. Two sets with the same digest train the same."""
    per_item = []
    for item in items:
        entry = {}
        for k, v in item.items():
            if k in ("patient", "name", "pasted_into", "checkpoint", "config_hash"):  # provenance, not content
                continue
            if isinstance(v, str) and os.path.sep in v and os.path.isfile(v):
                entry[k] = _file_sha(os.path.realpath(v))
            elif not (isinstance(v, str) and os.path.sep in v):
                entry[k] = v
        per_item.append(json.dumps(json_safe(entry), sort_keys=True))
    return hashlib.sha256("\n".join(sorted(per_item)).encode()).hexdigest()[:16]


def bundle_config_digest(bundle: str) -> str:
    """A digest of the bundle's config files: a generator trained before they changed is not reused.
    ``metadata.json`` (version, changelog, what the bundle serves) does not change training or generation: left out."""
    from monai_gan_aug.engines.bundles import bundle_root

    files = sorted(f for f in (bundle_root(bundle) / "configs").glob("*.json") if f.name != "metadata.json")
    return _digest({f.name: f.read_text() for f in files})


def _pct(f: float) -> str:
    return f"{100 * f:g}pct"


# ---------------------------------------------------------------------------------------------- synthetic sets
def train_and_generate(
    bundle: str, subset: Sequence[dict], n_samples: int, work: Path, overrides: Mapping[str, Any],
    inference_overrides: Mapping[str, Any], seed: int = 0,
) -> list[dict]:
    """Train ``bundle`` on ``subset`` only, generate ``n_samples`` with their labels, and return the items.

    Both steps resume: the bundle's checkpoint handler resumes training, a complete synthetic set is reused."""
    from monai_gan_aug.engines.bundles import run_bundle

    work.mkdir(parents=True, exist_ok=True)
    datalist = work / "generator_datalist.json"
    tmp = datalist.with_suffix(".tmp")
    tmp.write_text(json.dumps({"training": [dict(i) for i in subset]}, indent=1))
    tmp.replace(datalist)
    check_generator_data(datalist, subset)
    with _restored_logging():  # a bundle's logging.conf sets the root logger to INFO: keep the runner's output readable
        syn = _generate(run_bundle, bundle, datalist, n_samples, work, overrides, inference_overrides, seed)
    sets = load_synthetic_sets(str(syn))
    return next(iter(sets.values()))


@contextlib.contextmanager
def _restored_logging() -> Any:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def _generate(run_bundle: Callable, bundle: str, datalist: Path, n_samples: int, work: Path,
              overrides: Mapping[str, Any], inference_overrides: Mapping[str, Any], seed: int) -> Path:
    run_bundle(bundle, "train.json", {"dataset_dir": str(datalist), "output_dir": str(work), "seed": seed,
                                      **dict(overrides)})
    # one folder per inference setting: a set made with other overrides (e.g. num_lesions) is never reused
    syn = work / (f"synthetic_{n_samples}" + (f"_{_digest(dict(inference_overrides))}" if inference_overrides else ""))
    manifest = syn / "manifest.json"
    complete = manifest.is_file() and len(json.loads(manifest.read_text()).get("files", [])) == n_samples
    if not complete:
        run_bundle(bundle, "inference.json", {"dataset_dir": str(datalist), "output_dir": str(work),
                                              "synthetic_dir": str(syn), "num_samples": int(n_samples),
                                              "overwrite": syn.exists(), **dict(inference_overrides)},
                   workflow_type="infer")
    return syn


def copy_paste_set(subset: Sequence[dict], n_samples: int, out: Path, seed: int = 0, num_lesions: int = 1) -> list[dict]:
    """``n_samples`` real training slices of ``subset`` with ``num_lesions`` real lesions of ``subset`` pasted into
    each (the non-GAN baseline), written as NIfTI image + label files with their boxes; reused when complete."""
    import nibabel as nib
    from monai.transforms import LoadImaged

    from monai_gan_aug.transforms.copy_paste import LesionBank, RandLesionCopyPasted

    index = out / "datalist.json"
    if index.is_file():
        items = json.loads(index.read_text()).get("training", [])
        if len(items) == n_samples and all(Path(i["image"]).is_file() for i in items):
            return items
    keys = ["image", "label"] + (["tissue"] if all("tissue" in i for i in subset) else [])
    loader = LoadImaged(keys, image_only=True, ensure_channel_first=True)
    loaded = []
    for item in subset:
        d = loader({k: item[k] for k in keys})
        arrays = {k: np.asarray(d[k]) for k in keys}
        arrays["label"] = np.rint(arrays["label"]).astype(np.int64)
        loaded.append({**arrays, "boxes": np.asarray(item.get("boxes", []), float).reshape(-1, 4),
                       "box_labels": np.asarray(item.get("box_labels", [0] * len(item.get("boxes", []))), int),
                       "class": int(item.get("class", 0)), "source": item})
    bank = LesionBank([{k: d[k] for k in ("image", "label", "boxes", "box_labels")} for d in loaded])
    paste = RandLesionCopyPasted(bank, prob=1.0, num_lesions=int(num_lesions),
                                 foreground_key="tissue" if "tissue" in keys else None)
    paste.set_random_state(seed=seed)
    pick = np.random.default_rng([seed, 3]).integers(0, len(loaded), n_samples)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    items = []
    for k, j in enumerate(pick):
        src = loaded[int(j)]
        d = paste({key: (v.copy() if isinstance(v, np.ndarray) else v) for key, v in src.items() if key != "source"})
        affine = np.eye(4)
        img_p, lab_p = out / "images" / f"cp_{k:05d}.nii.gz", out / "labels" / f"cp_{k:05d}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(d["image"], np.float32)[0], affine), str(img_p))
        nib.save(nib.Nifti1Image(np.asarray(d["label"], np.uint8)[0], affine), str(lab_p))
        boxes = np.asarray(d["boxes"], float).reshape(-1, 4)
        items.append({"image": str(img_p), "label": str(lab_p), "boxes": boxes.tolist(),
                      "box_labels": np.asarray(d["box_labels"], int).tolist(), "class": int(d.get("class", 1)),
                      "synthetic": True, "synthetic_source": "copy_paste", "pasted_into": src["source"]["image"]})
    tmp = index.with_suffix(".tmp")
    tmp.write_text(json.dumps({"training": items}, indent=1))
    tmp.replace(index)
    return items


# ---------------------------------------------------------------------------------------------- the runner
@dataclass
class _Row:
    fraction: float
    n_patients: int
    n_real: int
    runs: dict[str, dict[int, list[dict]]] = field(default_factory=dict)


def run_benefit(
    bundle: str,
    task: str,
    dataset_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "runs/benefit",
    fractions: Sequence[float] = (0.25, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    ratios: Sequence[float] = (1.0,),
    generator_overrides: Mapping[str, Any] | None = None,
    inference_overrides: Mapping[str, Any] | None = None,
    task_settings: Mapping[str, Any] | None = None,
    copy_paste: bool = True,
    mixed_ratios: Sequence[float] = (),
    lesions_per_image: int = 1,
    repeat: bool = True,
    arms: Sequence[str] | None = None,
    subset_seed: int = 0,
    n_boot: int = 2000,
    quick: bool = False,
    progress: bool = True,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole "does it help?" protocol (module docstring) and write ``benefit_<task>.{json,md,png}`` to
    ``out_dir``. Returns the report dict. Bad settings raise :class:`BenefitError` before any training.

    ``arms`` keeps only the named arms of :func:`make_arms` (real + classic always runs: every verdict is against it),
    e.g. the classic-augmented ones when time is short. With ``task_settings={"steps": N}`` every arm takes the same
    optimizer steps, so the same-steps control arms (``repeat``) are left out: real + classic is that control."""
    if task not in TASKS:
        raise BenefitError(f"unknown task {task!r}; available: {sorted(TASKS)}.")
    infos = bundle_infos()  # read the bundles once
    served = infos[bundle].downstream_tasks if bundle in infos and infos[bundle].downstream_tasks else None
    if served is None:
        raise BenefitError(f"bundle {bundle!r} has no benefit protocol (no 'downstream_tasks' in its metadata.json); "
                           f"available: {sorted(n for n, i in infos.items() if i.downstream_tasks)}.")
    if task not in served:
        raise BenefitError(f"bundle {bundle!r} cannot serve the {task} task (it serves {list(served)}).")
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise BenefitError(f"seeds must be at least two distinct integers (the interval resamples them), got {seeds}.")
    ratios = [float(r) for r in ratios]
    if not ratios or any(not math.isfinite(r) or r <= 0 for r in ratios):
        raise BenefitError(f"ratios must be positive numbers, got {ratios}.")
    gen_over = {**(infos[bundle].quick if quick else {}), **dict(generator_overrides or {})}
    task_over = {**(QUICK_TASK.get(task, {}) if quick else {}), **dict(task_settings or {})}
    if task == "detection" and "imgsz" not in task_over:  # the generator's resolution: no synthetic image upscaled
        task_over["imgsz"] = int(gen_over.get("image_size") or _bundle_default(bundle, "image_size"))
    t = TASKS[task](**task_over)
    splits = load_splits(dataset_dir)
    source = str(dataset_dir) if dataset_dir is not None else "the demo dataset"
    t.check_items(splits["training"], source)
    if not splits["test"]:
        raise BenefitError(f"{source}: the test split is empty; the benefit is measured on real test patients.")
    subsets = nested_patient_subsets(splits["training"], fractions, subset_seed)  # checks the fractions
    inf_over = dict(inference_overrides or {})  # the generator's settings come from its settings.json
    lesions_per_image = int(lesions_per_image)
    if lesions_per_image != 1:  # as many lesions in every added image, GAN or copy-paste
        from monai_gan_aug.engines.bundles import read_bundle_config

        if lesions_per_image < 1 or "num_lesions" not in read_bundle_config(bundle, "inference.json"):
            raise BenefitError(f"lesions_per_image must be >= 1 and the bundle's inference must take 'num_lesions' "
                               f"(lesion_inpaint does); got {lesions_per_image} for {bundle!r}.")
        inf_over["num_lesions"] = lesions_per_image
    out = Path(out_dir).expanduser().absolute()
    copy_paste = bool(copy_paste) and t.name != "classification"  # copy-paste pastes lesions with their masks
    mixed_ratios = [float(r) for r in mixed_ratios]
    repeat = bool(repeat) and t.settings.get("steps") is None  # same steps for all: real + classic is the control
    t.epochs_for(1)  # a bad 'steps' fails here, before any training
    all_arms = make_arms(ratios, copy_paste, mixed_ratios, repeat)
    arms = select_arms(all_arms, arms)
    config = {"bundle": bundle, "task": task, "dataset": source, "fractions": sorted(subsets), "seeds": seeds,
              "ratios": ratios, "generator_overrides": gen_over, "inference_overrides": inf_over,
              "task_settings": t.settings, "subset_seed": subset_seed, "copy_paste": copy_paste,
              **({"mixed_ratios": mixed_ratios} if mixed_ratios else {}),
              **({"lesions_per_image": lesions_per_image} if lesions_per_image != 1 else {}),
              **({"repeat": False} if not repeat else {}),
              **({"arms": [a.name for a in arms]} if len(arms) != len(all_arms) else {})}
    t0 = time.perf_counter()
    t.prepare(splits)
    test_digest = content_digest(splits["test"])
    timings: dict[str, float] = {"generators_s": 0.0, "copy_paste_s": 0.0, "downstream_s": 0.0}
    rows: list[_Row] = []
    n_total = len(subsets) * len(arms) * len(seeds)
    bar = _progress(n_total, f"benefit {bundle}/{task}", progress)
    for f, subset in subsets.items():
        row = _Row(f, len({patient_of(i) for i in subset}), len(subset))
        n_syn = max(1, int(round(max(ratios) * len(subset))))
        real_digest = content_digest(subset)
        added_sets: dict[str, list[dict]] = {REPEAT: list(subset)}
        if any(a.added in ("gan", MIXED) for a in arms):
            key = _digest({"bundle": bundle, "subset": sorted(_file_set(subset)), "overrides": gen_over,
                           "seed": subset_seed, "subset_content": real_digest,
                           "configs": bundle_config_digest(bundle)})
            t1 = time.perf_counter()
            added_sets["gan"] = train_and_generate(bundle, subset, n_syn, out / "generators" / f"{bundle}_{_pct(f)}_{key}",
                                                   gen_over, inf_over, seed=subset_seed)
            timings["generators_s"] += time.perf_counter() - t1
        if copy_paste:
            t1 = time.perf_counter()
            key = _digest({"subset": sorted(_file_set(subset)), "n": n_syn, "seed": subset_seed,
                           **({"lesions": lesions_per_image} if lesions_per_image != 1 else {})})
            added_sets["copy_paste"] = copy_paste_set(subset, n_syn, out / "copy_paste" / f"{_pct(f)}_{key}", subset_seed,
                                                      lesions_per_image)
            timings["copy_paste_s"] += time.perf_counter() - t1
        for arm in arms:
            row.runs[arm.name] = {}
            for seed in seeds:
                added = added_items(arm, added_sets, len(subset))
                # keyed by what the run saw, not where it lay: records stay valid when an out dir is copied
                run_cfg = {"task": task, "settings": t.settings, "classic": arm.classic, "seed": seed,
                           "content": {"real": real_digest, "added": content_digest(added), "test": test_digest}}
                path = out / "runs" / f"{task}_{_pct(f)}_{arm.name.replace(' ', '_').replace('+', '-')}_s{seed}_{_digest(run_cfg)}.json"
                cached = load_run_record(path, run_cfg)
                if cached is None:
                    t1 = time.perf_counter()
                    records = t.run(subset, added, arm.classic, seed)
                    seconds = time.perf_counter() - t1
                    timings["downstream_s"] += seconds
                    save_run_record(path, run_cfg, {"records": records, "seconds": seconds, "n_added": len(added)})
                    cached = {"records": records}
                row.runs[arm.name][seed] = cached["records"]
                if on_run is not None:
                    on_run({"fraction": f, "arm": arm.name, "seed": seed, "n_real": len(subset), "n_added": len(added)})
                bar.update(1)
        rows.append(row)
    bar.close()
    report = _report(t, rows, arms, config, n_boot)
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()} | {"total_s": round(time.perf_counter() - t0, 1)}
    _write(report, out, task)
    return report


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm  # a dependency of the package (setup.py)

    return tqdm(total=total, desc=desc, unit="run", disable=not enabled)


def _report(t: BenefitTask, rows: Sequence[_Row], arms: Sequence[Arm], config: Mapping, n_boot: int) -> dict[str, Any]:
    out_rows = []
    for row in rows:
        scores = {
            m.key: {a.name: PatientScores.from_records(row.runs[a.name], m.num, m.den) for a in arms} for m in t.metrics
        }
        arms_out = {}
        for a in arms:
            entry: dict[str, Any] = {}
            for m in t.metrics:
                s = scores[m.key][a.name]
                entry[m.key] = {**arm_metric(s), "band": list(bootstrap_interval(s, n_boot=n_boot))}
                if a.name != BASELINE:
                    ci = paired_bootstrap(s, scores[m.key][BASELINE], n_boot=n_boot)
                    entry[m.key]["vs_baseline"] = {**ci, "verdict": verdict(ci, m.higher_is_better)}
                cheap = copy_paste_twin(a, arms)
                if cheap is not None:  # the GAN against the cheap synthetic alternative, same classic setting
                    ci = paired_bootstrap(s, scores[m.key][cheap.name], n_boot=n_boot)
                    entry[m.key]["vs_copy_paste"] = {**ci, "arm": cheap.name, "verdict": verdict(ci, m.higher_is_better)}
                same_steps = repeat_twin(a, arms)
                if same_steps is not None:  # as many training images, and steps, all real
                    ci = paired_bootstrap(s, scores[m.key][same_steps.name], n_boot=n_boot)
                    entry[m.key]["vs_repeat"] = {**ci, "arm": same_steps.name, "verdict": verdict(ci, m.higher_is_better)}
            per_run = [t.run_metrics(row.runs[a.name][seed]) for seed in row.runs[a.name]]
            for key in per_run[0] if per_run else []:
                values = np.asarray([r[key] for r in per_run], float)
                finite = values[np.isfinite(values)]
                entry[key] = {"mean": float(finite.mean()) if finite.size else float("nan"),
                              "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0, "values": values.tolist()}
            curves = t.curves([r for seed in row.runs[a.name] for r in row.runs[a.name][seed]])
            if curves:
                entry["curves"] = curves
            arms_out[a.name] = entry
        out_rows.append({"fraction": row.fraction, "n_patients": row.n_patients, "n_real": row.n_real, "arms": arms_out})
    return {"title": f"Does it help? {config['bundle']} -> {t.name}", "config": json_safe(config),
            "metrics": [m.__dict__ for m in t.metrics], "primary": t.primary, "baseline": BASELINE,
            "arms": [a.__dict__ for a in arms], "rows": out_rows}


def benefit_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """The verdict table: one line per (real-data size, arm), primary metric and the others, difference to the
    baseline with its 95 % interval and the verdict."""
    metrics = report["metrics"]
    prim = report["primary"]
    first = next(iter(report["rows"][0]["arms"].values())) if report["rows"] else {}
    keys = {m["key"] for m in metrics}
    extra = [k for k in first if k not in keys and k != "curves"]
    titles = {"cpm": "CPM", "map": "mAP"}
    metrics = list(metrics) + [{"key": k, "title": titles.get(k.split("@")[0], k.split("@")[0]) + k[len(k.split("@")[0]):]}
                               for k in extra]
    cp = any("vs_copy_paste" in e[prim] for row in report["rows"] for e in row["arms"].values())
    rp = any("vs_repeat" in e[prim] for row in report["rows"] for e in row["arms"].values())
    head = ["Real data", "Arm"] + [m["title"] for m in metrics] + [f"Δ {prim} vs {report['baseline']} (95 % CI)", "Verdict"]
    head += [f"Δ {prim} vs copy-paste (95 % CI)", "Verdict vs copy-paste"] if cp else []
    head += [f"Δ {prim} vs real+repeat, same steps (95 % CI)", "Verdict vs repeat"] if rp else []
    lines = [f"# {report['title']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = f"{{:.{digits}f}}"
    for row in report["rows"]:
        for name, entry in row["arms"].items():
            cells = [f"{100 * row['fraction']:g} % ({row['n_patients']} patients, {row['n_real']} images)", name]
            for m in metrics:
                e = entry[m["key"]]
                cells.append(f"{fmt.format(e['mean'])} ± {fmt.format(e['std'])}" if e["mean"] == e["mean"] else "n/a")
            vs = entry[prim].get("vs_baseline")
            if vs is None:
                cells += ["(baseline)", ""]
            else:
                cells += [_ci_text(vs, digits), vs["verdict"]]
            if cp:
                vc = entry[prim].get("vs_copy_paste")
                cells += [_ci_text(vc, digits), vc["verdict"]] if vc else ["", ""]
            if rp:
                vr = entry[prim].get("vs_repeat")
                cells += [_ci_text(vr, digits), vr["verdict"]] if vr else ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
    cfg = report["config"]
    lines += ["", f"Seeds {cfg['seeds']}; mean ± sd over seeds; intervals: paired percentile bootstrap over seeds and "
              "test patients; verdict 'cannot tell' when the interval touches 0.", ""]
    steps = (cfg.get("task_settings") or {}).get("steps")
    if steps is not None:
        lines += [f"Every arm took the same {steps} optimizer steps (`steps`), so real+classic is the same-steps control.",
                  ""]
    if "timings_s" in report:
        lines.append("Time (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))
    return "\n".join(lines) + "\n"


def _ci_text(ci: Mapping[str, Any], digits: int) -> str:
    return f"{ci['difference']:+.{digits}f} [{ci['low']:+.{digits}f}, {ci['high']:+.{digits}f}]"


def _arm_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct colour per arm (20 before any repeats, where matplotlib's default cycle repeats after 10) and a solid
    line for the arms with classic augmentation, dashed without."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab20").colors
    return {n: {"color": colors[(2 * i) % 20 + (i // 10) % 2], "linestyle": "-" if n.endswith("classic") else "--"}
            for i, n in enumerate(names)}


def _plot(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prim = report["primary"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = [row["n_real"] for row in report["rows"]]
    styles = _arm_styles([a["name"] for a in report["arms"]])
    for arm in report["arms"]:
        name = arm["name"]
        y = [row["arms"][name][prim]["mean"] for row in report["rows"]]
        lo = [row["arms"][name][prim]["band"][0] for row in report["rows"]]
        hi = [row["arms"][name][prim]["band"][1] for row in report["rows"]]
        ax.plot(x, y, marker="o", label=name, **styles[name])
        ax.fill_between(x, lo, hi, color=styles[name]["color"], alpha=0.15)
    title = next(m["title"] for m in report["metrics"] if m["key"] == prim)
    ax.set_xlabel("real training images")
    ax.set_ylabel(title)
    ax.set_title(report["title"], fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(report: Mapping[str, Any], path: Path, key: str = "froc@0.25") -> None:
    """One panel per real-data size: each arm's FROC curve (test records of all its seeds pooled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    styles = _arm_styles([a["name"] for a in report["arms"]])
    fig, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows), 4.0), squeeze=False)
    for ax, row in zip(axes[0], rows):
        for name, entry in row["arms"].items():
            c = entry.get("curves", {}).get(key)
            if c:
                ax.plot(c["fps_per_slice"], c["sensitivity"], marker=".", label=name, **styles.get(name, {}))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("false positives per slice")
        ax.set_ylabel(f"sensitivity ({key.replace('froc@', 'IoU ')})")
        ax.set_title(f"{100 * row['fraction']:g} % ({row['n_real']} real images)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{report['title']}: FROC, seeds pooled", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(report: Mapping[str, Any], out: Path, task: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"benefit_{task}"
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_safe(report), indent=1))
    tmp.replace(stem.with_suffix(".json"))
    stem.with_suffix(".md").write_text(benefit_markdown(report))
    _plot(report, stem.with_suffix(".png"))
    if any("curves" in e for row in report["rows"] for e in row["arms"].values()):
        _plot_curves(report, out / f"benefit_{task}_froc.png")
