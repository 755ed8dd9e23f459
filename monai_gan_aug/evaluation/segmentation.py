# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Downstream segmentation: U-Net / U-Net++ trained on real vs real + synthetic images, Dice and mIoU on real tests.

Two papers judge their generators this way:

* DF-GAN (Pix2Pix + FID loss, chest X-ray pneumothorax), Table 1: U-Net++ trained on 50 / 100 / 250 / 500 / 1000 /
  2000 real images ("R") and on the same plus as many synthetic ones ("R + S"), each with and without classical
  augmentation (rotations, reflections, cropping); Dice, mean ± standard error;
* Liang & Chen (thyroid ultrasound, improved alpha-WGAN-GP), Table II: U-Net trained on the 128 real images with 0,
  32 and 64 synthetic images added; mIoU and Dice on the 62 real test images (Adam, lr 0.01 x 0.1 every 20 epochs,
  batch 16, 60 epochs).

:func:`run_segmentation_experiment` produces both layouts for any real datalist and synthetic sets: one run per
(synthetic set, real-set size, synthetic amount, classic augmentation, seed), MONAI :class:`~monai.networks.nets.UNet`
or :class:`~monai.networks.nets.BasicUNetPlusPlus` trained with MONAI's ``SupervisedTrainer`` (Dice + cross-entropy
loss, model selection on the real validation split with a ``SupervisedEvaluator``), scored on the real test split
with MONAI's ``DiceMetric`` and ``MeanIoU`` (foreground channel, mean over test images). It writes
``segmentation_table.json`` / ``segmentation_table.md`` (mean ± std over seeds; a DF-GAN-style Dice grid too).

Metrics: ``dice`` and ``miou`` average images whose ground truth has foreground (MONAI's ``ignore_empty``: Dice is
undefined without a lesion, DF-GAN "mainly focus[es] on the diseased images"); ``dice_all`` counts every test image
(an empty mask predicted empty scores 1, a false positive on an empty image 0).

:func:`mask_fidelity` is the Pix2Pix "does the generator honour its mask" check: a segmenter trained on real data
segments the synthetic images; Dice against the masks they were generated from should be far above Dice against
shuffled masks.

Command line: ``python -m monai_gan_aug.evaluation.segmentation --real DATALIST --synthetic DIR ... --out DIR``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_gan_aug.evaluation.cli import bool_list, float_list, int_list, json_dict, parse_synthetic_args
from monai_gan_aug.evaluation.protocols import (
    _check_int_list,
    _resolve_sizes,
    arm_grid,
    arm_row,
    cached_run,
    classic_augmentation,
    data_label,
    default_device,
    draw_training_data,
    ensure_preloaded,
    fit_supervised,
    load_splits,
    load_synthetic_sets,
    network_from_factory,
    network_name,
    predict_batches,
    preload_items,
    run_file,
    seeded,
    slug,
    source_name,
)
from monai_gan_aug.evaluation.tables import (
    json_safe,
    make_table,
    pivot_markdown,
    table_markdown,
    write_table,
)

__all__ = [
    "NETWORKS",
    "SEGMENTATION_COLUMNS",
    "build_segmentation_network",
    "evaluate_segmenter",
    "main",
    "mask_fidelity",
    "parse_synthetic_args",
    "predict_masks",
    "run_segmentation_experiment",
    "segmentation_table_markdown",
    "train_segmenter",
]

logger = logging.getLogger(__name__)

#: Network names understood by :func:`build_segmentation_network`.
NETWORKS = ("unet", "unetpp", "basicunet")
#: Metric columns of the segmentation table.
SEGMENTATION_COLUMNS = (("dice", "Dice"), ("miou", "mIoU"), ("dice_all", "Dice (all test images)"))
TABLE_STEM = "segmentation_table"


# ---------------------------------------------------------------------------------------------- networks
class _FirstOutput(nn.Module):
    """Wraps a network returning a list of outputs (MONAI's ``BasicUNetPlusPlus``) to return the first (the full
    resolution prediction), as the trainer and evaluator expect one tensor."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def build_segmentation_network(
    name: str | Callable[[], nn.Module] = "unet", num_classes: int = 2, in_channels: int = 1, **kwargs: Any
) -> nn.Module:
    """A 2D MONAI segmentation network with ``num_classes`` output channels (logits).

    Args:
        name: ``"unet"`` (:class:`monai.networks.nets.UNet`, channels 16-32-64-128-256, strides 2, 2 residual units
            per block), ``"unetpp"`` (:class:`monai.networks.nets.BasicUNetPlusPlus`, DF-GAN's U-Net++; the image
            side must be divisible by 16), ``"basicunet"`` (:class:`monai.networks.nets.BasicUNet`), or a callable
            returning a module.
        num_classes: output channels (2 for a binary mask: background, foreground).
        in_channels: input channels.
        kwargs: overrides of the network's arguments (e.g. ``channels=(8, 16), strides=(2,)`` for a tiny U-Net).

    Raises:
        ValueError: an unknown name.
    """
    from monai.networks.nets import BasicUNet, BasicUNetPlusPlus, UNet

    if callable(name) and not isinstance(name, str):
        return network_from_factory(name)
    key = str(name).lower().replace("+", "p").replace("-", "")
    if key == "unet":
        args = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}
        args.update(kwargs)
        return UNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **args)
    if key in ("unetpp", "unetplusplus", "basicunetplusplus"):
        return _FirstOutput(BasicUNetPlusPlus(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs))
    if key == "basicunet":
        return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs)
    raise ValueError(f"unknown segmentation network {name!r}; use one of {NETWORKS} or a callable.")


def _postprocessing(num_classes: int) -> Any:
    from monai.transforms import Activationsd, AsDiscreted, Compose

    return Compose(
        [
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=num_classes),
        ]
    )


def _as_preloaded(items: Sequence[dict], image_size: int, label_key: str, num_classes: int, percentiles: Sequence[float]) -> list[dict]:
    return ensure_preloaded(items, image_size, mask_key=label_key, num_classes=num_classes, percentiles=percentiles)


def _augmentation(classic_aug: Any, image_size: int) -> Any:
    """``True``: the default classic augmentation; a transform: itself; falsy: none."""
    if classic_aug is True:
        return classic_augmentation(True, image_size)
    return classic_aug or None


# ---------------------------------------------------------------------------------------------- train / evaluate
def train_segmenter(
    train_items: Sequence[dict],
    val_items: Sequence[dict] | None = None,
    network: str | Callable[[], nn.Module] = "unet",
    epochs: int = 50,
    image_size: int = 64,
    classic_aug: bool | Callable = False,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 1e-3,
    lr_step: int | None = None,
    num_classes: int = 2,
    label_key: str = "label",
    device: str | torch.device | None = None,
    network_kwargs: Mapping[str, Any] | None = None,
    val_interval: int = 1,
    percentiles: Sequence[float] = (0.5, 99.5),
    history: dict | None = None,
    n_real: int | None = None,
) -> nn.Module:
    """Train a segmentation network on datalist items (or preloaded ``{"image", "label"}`` tensors).

    Dice + cross-entropy loss (MONAI ``DiceCELoss``), Adam, MONAI ``SupervisedTrainer``; with ``val_items`` the
    weights of the epoch with the best validation Dice (MONAI ``MeanDice``, foreground) are kept.

    Args:
        train_items: training items with ``image`` and ``label_key`` (real and/or synthetic).
        val_items: validation items (model selection); ``None`` or no foreground in any of them: final weights.
        network: see :func:`build_segmentation_network`.
        epochs: training epochs.
        image_size: square input size.
        classic_aug: ``True``: train with :func:`~monai_gan_aug.evaluation.protocols.classic_augmentation`; or a
            dictionary transform of ``image`` + ``label`` to train with instead.
        seed: seed of the initialisation, loader order and augmentation.
        batch_size: batch size.
        lr: Adam learning rate.
        lr_step: decay the learning rate by 10 every ``lr_step`` epochs (thyroid paper: 20).
        num_classes: output classes including background.
        label_key: item key of the mask.
        device: default GPU when available.
        network_kwargs: network argument overrides.
        val_interval: epochs between validations.
        percentiles: intensity window of the preprocessing.
        history: optional dict filled with the training summary (time, best epoch).
        n_real: the first ``n_real`` training items are real: keep their order whatever is added (paired arms,
            see :func:`~monai_gan_aug.evaluation.protocols.fit_supervised`).

    Returns:
        The trained network in eval mode, on ``device``.
    """
    train = _as_preloaded(train_items, image_size, label_key, num_classes, percentiles)
    val = _as_preloaded(val_items, image_size, label_key, num_classes, percentiles) if val_items else None
    if val is not None and not any(bool((d["label"] > 0).any()) for d in val):
        logger.warning("train_segmenter: no validation mask has foreground; keeping the final weights.")
        val = None  # Dice is undefined on every image: MONAI would report 0 and freeze the selection at epoch 1
    from monai.handlers import MeanDice, from_engine
    from monai.losses import DiceCELoss

    with seeded(seed):
        net = build_segmentation_network(network, num_classes=num_classes, **dict(network_kwargs or {}))
        info = fit_supervised(
            net, train, DiceCELoss(to_onehot_y=True, softmax=True), epochs, batch_size=batch_size, lr=lr, seed=seed,
            augmentation=_augmentation(classic_aug, image_size), val_data=val,
            val_metric=("val_dice", MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]))),
            val_postprocessing=_postprocessing(num_classes), val_interval=val_interval, lr_step=lr_step,
            device=device, n_real=n_real,
        )
    if history is not None:
        history.update(info)
    return net


def evaluate_segmenter(
    segmenter: nn.Module,
    test_items: Sequence[dict],
    image_size: int = 64,
    num_classes: int = 2,
    label_key: str = "label",
    batch_size: int = 16,
    device: str | torch.device | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> dict[str, Any]:
    """Dice and mIoU of ``segmenter`` on test items with a MONAI ``SupervisedEvaluator``.

    Returns:
        ``{"dice", "miou", "dice_all", "n_test", "n_test_foreground"}``; ``dice`` / ``miou``: MONAI ``DiceMetric`` /
        ``MeanIoU`` on the foreground channels, mean over images with foreground (``nan`` when there is none);
        ``dice_all``: every image, an empty mask predicted empty counting 1.
    """
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator
    from monai.handlers import IgniteMetricHandler, from_engine
    from monai.metrics import DiceMetric, MeanIoU

    test = _as_preloaded(test_items, image_size, label_key, num_classes, percentiles)
    if not test:
        raise ValueError("evaluate_segmenter: no test items.")
    dev = default_device(device)
    pair = from_engine(["pred", "label"])
    evaluator = SupervisedEvaluator(
        device=dev, val_data_loader=DataLoader(Dataset(test), batch_size=batch_size, shuffle=False),
        network=segmenter.to(dev), postprocessing=_postprocessing(num_classes),
        key_val_metric={"dice": IgniteMetricHandler(DiceMetric(include_background=False, ignore_empty=True), output_transform=pair)},
        additional_metrics={
            "miou": IgniteMetricHandler(MeanIoU(include_background=False, ignore_empty=True), output_transform=pair),
            "dice_all": IgniteMetricHandler(DiceMetric(include_background=False, ignore_empty=False), output_transform=pair),
        },
    )
    evaluator.run()
    n_fg = int(sum(bool((d["label"] > 0).any()) for d in test))
    out: dict[str, Any] = {k: float(evaluator.state.metrics[k]) for k in ("dice", "miou", "dice_all")}
    if n_fg == 0:  # MONAI reduces an all-NaN buffer to 0; without foreground these metrics are undefined
        out["dice"] = out["miou"] = float("nan")
    out.update({"n_test": len(test), "n_test_foreground": n_fg})
    return out


def _images_tensor(images: Any, name: str) -> torch.Tensor:
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(np.asarray(i) if not isinstance(i, torch.Tensor) else i) for i in images])
    t = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if t.ndim != 4:
        raise ValueError(f"`{name}` must be a (N, C, H, W) batch or a list of (C, H, W) arrays, got shape {tuple(t.shape)}.")
    return t.float()


def predict_masks(
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    images: Any,
    threshold: float = 0.5,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Label maps ``(N, 1, H, W)`` (long) predicted by ``segmenter`` (any callable, e.g. a trained network).

    A multi-channel output is reduced by ``argmax`` over channels; a single-channel output is thresholded at
    ``threshold`` (probabilities or a binary mask; pass ``0.0`` for logits).
    """
    x = _images_tensor(images, "images")

    def _labels(batch: torch.Tensor, out: Any) -> torch.Tensor:
        y = torch.as_tensor(out[0] if isinstance(out, (list, tuple)) else out)
        if y.ndim != 4 or y.shape[0] != len(batch) or y.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"the segmenter returned shape {tuple(y.shape)} for input {tuple(batch.shape)}; "
                "expected (N, C, H, W) with the input's N, H, W."
            )
        pred = y.argmax(1, keepdim=True) if y.shape[1] > 1 else (y > threshold).long()
        return pred.long().cpu()

    return predict_batches(segmenter, x, batch_size, device, _labels)


def _dice_per_image(pred: torch.Tensor, mask: torch.Tensor, num_classes: int) -> np.ndarray:
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    d = compute_dice(one_hot(pred, num_classes), one_hot(mask.long(), num_classes), include_background=False, ignore_empty=True)
    v = d.float()
    return torch.nanmean(v, dim=1).numpy() if v.shape[1] > 1 else v[:, 0].numpy()


def mask_fidelity(
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    images: Any,
    masks: Any = None,
    shuffled: bool = True,
    n_shuffles: int = 5,
    seed: int = 0,
    threshold: float = 0.5,
    num_classes: int = 2,
    image_size: int | None = None,
    label_key: str = "label",
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Does a mask-conditioned generator honour its masks? Dice of a segmenter's predictions on the synthetic images
    against the masks they were generated from, versus against shuffled masks (the Pix2Pix / GA-UNet "FCN score"
    idea applied to masks).

    A generator that draws the lesion where its mask says gives ``dice`` well above ``dice_shuffled`` (the Dice a
    segmenter reaches when image and mask are unrelated); a generator ignoring its condition gives both about equal.

    Args:
        segmenter: a trained network (e.g. :func:`train_segmenter` on real data) or any callable ``(N, C, H, W) ->
            (N, K, H, W)`` scores / ``(N, 1, H, W)`` mask.
        images: ``(N, C, H, W)`` images in ``[-1, 1]`` (a tensor, array or list), or a synthetic set (folder /
            datalist JSON, loaded with the downstream preprocessing at ``image_size``; ``masks`` must be ``None``).
        masks: ``(N, 1, H, W)`` label maps paired with ``images``.
        shuffled: also score against ``n_shuffles`` random derangements of the masks (no image keeps its own).
        n_shuffles: number of derangements averaged.
        seed: seed of the derangements.
        threshold: for single-channel segmenter outputs, see :func:`predict_masks`.
        num_classes: classes of the masks (including background).
        image_size: size at which a synthetic set given by path is loaded.
        label_key: mask key of such a set.
        batch_size: segmentation batch size.
        device: default GPU when available.

    Returns:
        ``{"dice", "dice_shuffled", "gap", "n_images", "n_scored", "per_image"}``: means over images with a
        non-empty reference mask (``nan`` when none), ``gap = dice - dice_shuffled``.

    Raises:
        ValueError: mismatched shapes, fewer than 2 images for shuffling, or a path without ``image_size``.
    """
    if isinstance(images, (str, os.PathLike)):
        if masks is not None:
            raise ValueError("mask_fidelity: with a synthetic set path, leave `masks` None (they come from the set).")
        if image_size is None:
            raise ValueError("mask_fidelity: loading a synthetic set needs `image_size` (the segmenter's input size).")
        sets = load_synthetic_sets(images, require=label_key)
        items = [it for v in sets.values() for it in v]
        pre = preload_items(items, image_size, mask_key=label_key, num_classes=num_classes)
        images = torch.stack([p["image"] for p in pre])
        masks = torch.stack([p["label"] for p in pre])
    if masks is None:
        raise ValueError("mask_fidelity: `masks` is required with image tensors.")
    x = _images_tensor(images, "images")
    m = _images_tensor(masks, "masks").round().long()
    if m.shape[0] != x.shape[0] or m.shape[2:] != x.shape[2:] or m.shape[1] != 1:
        raise ValueError(f"`masks` {tuple(m.shape)} must be (N, 1, H, W) paired with `images` {tuple(x.shape)}.")
    pred = predict_masks(segmenter, x, threshold, batch_size, device)
    own = _dice_per_image(pred, m, num_classes)
    scored = np.isfinite(own)
    out: dict[str, Any] = {
        "dice": float(np.nanmean(own)) if scored.any() else float("nan"),
        "n_images": len(x),
        "n_scored": int(scored.sum()),
        "per_image": [float(v) if math.isfinite(v) else None for v in own],
    }
    if shuffled:
        n = len(x)
        if n < 2:
            raise ValueError("mask_fidelity: shuffling needs at least 2 images.")
        rng = np.random.default_rng(seed)
        vals = []
        for _ in range(max(1, int(n_shuffles))):
            perm = rng.permutation(n)
            target = np.empty(n, dtype=int)
            target[perm] = np.roll(perm, -1)  # image perm[i] gets the mask of perm[i + 1]: a derangement
            d = _dice_per_image(pred, m[torch.from_numpy(target)], num_classes)
            if np.isfinite(d).any():
                vals.append(float(np.nanmean(d)))
        out["dice_shuffled"] = float(np.mean(vals)) if vals else float("nan")
        out["gap"] = out["dice"] - out["dice_shuffled"]
    return out


# ---------------------------------------------------------------------------------------------- experiment
def _row_key(set_name: str | None, n_real: int, n_syn: int, aug: bool) -> str:
    """Row key (also the metric-name infix of the Ignite handler): ``<set|real>/r<n_real>_s<n_syn>/<aug|noaug>``."""
    return f"{slug(set_name) if n_syn and set_name else 'real'}/r{n_real}_s{n_syn}/{'aug' if aug else 'noaug'}"


def segmentation_table_markdown(table: Mapping[str, Any], digits: int = 3) -> str:
    """Markdown of a segmentation table: the long table (one line per configuration) and a DF-GAN Table 1 style
    Dice grid (rows: classic augmentation; columns: real / real + synthetic)."""
    md = table_markdown(table, digits)
    rows = table.get("rows", [])
    if rows and any(r.get("metrics", {}).get("dice", {}).get("mean") is not None for r in rows):
        md += "\n" + pivot_markdown(table, "dice", "classic_aug", "data", digits, title="Dice (DF-GAN Table 1 layout)")
    return md


def run_segmentation_experiment(
    real_datalist: Any,
    synthetic: Any = None,
    real_sizes: Sequence[int] | int | None = None,
    n_synthetic: Sequence[int] | None = None,
    ratios: Sequence[float] | None = None,
    classic_aug: Sequence[bool] | bool = (False, True),
    seeds: Sequence[int] = (0, 1, 2),
    network: str | Callable[[], nn.Module] = "unet",
    epochs: int = 50,
    image_size: int = 64,
    label_key: str = "label",
    num_classes: int = 2,
    batch_size: int = 16,
    lr: float = 1e-3,
    lr_step: int | None = None,
    val_interval: int = 1,
    lesion_only: bool = False,
    network_kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    out_dir: str | os.PathLike = "runs/segmentation",
    resume: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """Segmentation with / without synthetic training images, mean ± std over seeds, scored on real test images.

    For every classic-augmentation setting, real-set size and synthetic amount, each seed draws a real subset of the
    training split (nested: larger sizes add images; the same subset for the real-only and the real + synthetic rows
    of a seed, so they differ by the synthetic images only), adds that many synthetic images drawn from the set,
    trains a fresh network and scores it on the real test split.

    Args:
        real_datalist: real data (see :func:`~monai_gan_aug.evaluation.protocols.load_splits`; ``None``: the demo).
        synthetic: synthetic set(s) with masks (see :func:`~monai_gan_aug.evaluation.protocols.load_synthetic_sets`;
            a dict gives one group of rows per set).
        real_sizes: real training images per row (DF-GAN: 50, 100, 250, 500, 1000, 2000), capped by the split;
            default all.
        n_synthetic: synthetic images added per row (thyroid: 0, 32, 64); capped by the set size.
        ratios: or synthetic : real ratios (DF-GAN: 0 and 1). Neither: ``0`` and ``1`` when ``synthetic`` is given.
        classic_aug: classic augmentation settings, one group of rows each.
        seeds: one training per seed.
        network: ``"unet"``, ``"unetpp"`` (U-Net++), ``"basicunet"`` or a factory.
        epochs: training epochs per run.
        image_size: square image size.
        label_key: mask key of real and synthetic items.
        num_classes: classes including background.
        batch_size: batch size.
        lr: Adam learning rate.
        lr_step: learning-rate decay (x 0.1) interval in epochs.
        val_interval: validation interval (model selection on the real validation split, when it is not empty).
        lesion_only: keep only real images whose mask has foreground (DF-GAN trains and tests on diseased images).
        network_kwargs: network argument overrides.
        device: default GPU when available.
        percentiles: intensity window of the preprocessing.
        out_dir: output folder: ``segmentation_table.json`` / ``.md`` and ``runs/*.json`` (one per run).
        resume: reuse finished runs whose record was written with identical settings.
        title: table title.

    Returns:
        The table (see :mod:`monai_gan_aug.evaluation.tables`).

    Raises:
        ValueError: an empty real training or test split, or bad arguments.
    """
    seeds = _check_int_list(seeds, "seeds")
    augs = [bool(a) for a in ([classic_aug] if isinstance(classic_aug, bool) else classic_aug)]
    if not augs:
        raise ValueError("classic_aug must hold at least one setting (False, True or both).")
    out = Path(out_dir).expanduser().absolute()
    t_start = time.perf_counter()
    splits = load_splits(real_datalist)
    sets = load_synthetic_sets(synthetic, require=label_key)

    def _pre(items: Sequence[dict]) -> list[dict]:
        return preload_items(items, image_size, mask_key=label_key, num_classes=num_classes, percentiles=percentiles)

    train, val, test = (_pre(splits[s]) for s in ("training", "validation", "test"))
    if lesion_only:
        train, val, test = ([d for d in part if bool((d["label"] > 0).any())] for part in (train, val, test))
    if not test:
        raise ValueError(f"{real_datalist}: the real test split is empty; the table is scored on real test images.")
    if not train:
        raise ValueError(f"{real_datalist}: the real training split is empty.")
    pools = {name: _pre(items) for name, items in sets.items()}
    sizes = _resolve_sizes(real_sizes, len(train))
    net_name = network_name(network)
    config = {
        "real": source_name(real_datalist),
        "synthetic": {name: len(items) for name, items in sets.items()},
        "synthetic_sources": json_safe(synthetic),
        "real_sizes": sizes, "n_synthetic": n_synthetic, "ratios": ratios, "classic_aug": augs, "seeds": seeds,
        "network": net_name, "network_kwargs": dict(network_kwargs or {}), "epochs": int(epochs),
        "image_size": int(image_size), "label_key": label_key, "num_classes": int(num_classes),
        "batch_size": int(batch_size), "lr": float(lr), "lr_step": lr_step, "val_interval": int(val_interval),
        "lesion_only": bool(lesion_only), "percentiles": list(percentiles), "device": str(default_device(device)),
        "n_train_available": len(train), "n_validation": len(val), "n_test": len(test),
    }
    run_dir = out / "runs"
    skip = ("real_sizes", "n_synthetic", "ratios", "classic_aug", "seeds", "synthetic", "synthetic_sources")

    def _run(set_name: str | None, n_real: int, n_syn: int, aug: bool, seed: int) -> dict[str, Any]:
        path = run_file(run_dir, _row_key(set_name, n_real, n_syn, aug), seed)
        run_config = {**{k: v for k, v in config.items() if k not in skip},
                      "set": set_name if n_syn else None, "n_set": len(pools[set_name]) if n_syn else 0,
                      "n_real": n_real, "n_synthetic": n_syn, "classic_aug": aug, "seed": seed}

        def _train() -> dict[str, Any]:
            data = draw_training_data(train, n_real, seed, pools.get(set_name), n_syn)  # type: ignore[arg-type]
            info: dict[str, Any] = {}
            net = train_segmenter(
                data, val or None, network=network, epochs=epochs, image_size=image_size, classic_aug=aug, seed=seed,
                batch_size=batch_size, lr=lr, lr_step=lr_step, num_classes=num_classes, label_key=label_key,
                device=device, network_kwargs=network_kwargs, val_interval=val_interval, history=info,
            )
            metrics = evaluate_segmenter(net, test, image_size, num_classes, label_key, batch_size, device)
            logger.info("%s: dice %.4f miou %.4f (%.1f s)", path.stem, metrics["dice"], metrics["miou"], info["train_seconds"])
            return {"metrics": {k: metrics[k] for k in ("dice", "miou", "dice_all")}, "n_test": metrics["n_test"],
                    "n_test_foreground": metrics["n_test_foreground"], **info}

        return cached_run(path, run_config, resume, _train)

    rows: list[dict[str, Any]] = []
    for aug in augs:
        for n_real, set_name, n_syn in arm_grid(sizes, pools, n_synthetic, ratios):
            runs = [_run(set_name, n_real, n_syn, aug, s) for s in seeds]
            fields = {
                "set": set_name if n_syn else "-", "n_real": n_real, "n_synthetic": n_syn,
                "classic_aug": aug, "data": data_label(n_real, n_syn) + (f" ({set_name})" if n_syn and len(pools) > 1 else ""),
            }
            label = fields["data"] + (", classic aug." if aug else "")
            rows.append(arm_row(label, _row_key(set_name, n_real, n_syn, aug), fields, runs, SEGMENTATION_COLUMNS, run_dir, seeds))
    notes = [
        f"{net_name}, {epochs} epochs at {image_size} px, batch {batch_size}, Adam lr {lr:g}"
        + (f" (x0.1 every {lr_step} epochs)" if lr_step else "")
        + f"; mean ± std over seeds {', '.join(map(str, seeds))}; real test split: {len(test)} images "
        f"({sum(bool((d['label'] > 0).any()) for d in test)} with foreground). Dice / mIoU: images with foreground; "
        "Dice (all test images): empty masks included.",
    ]
    table = make_table(
        title or "Segmentation with / without synthetic training images",
        SEGMENTATION_COLUMNS,
        rows,
        fields=(("data", "Training data"), ("set", "Synthetic set"), ("classic_aug", "Classic aug.")),
        config=config,
        notes=notes,
        elapsed_s=round(time.perf_counter() - t_start, 2),
    )
    write_table(table, out, TABLE_STEM, markdown=segmentation_table_markdown(table))
    logger.info("segmentation table written to %s", out / f"{TABLE_STEM}.md")
    return table


# ---------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m monai_gan_aug.evaluation.segmentation --real DATALIST --synthetic DIR [DIR ...] --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_gan_aug.evaluation.segmentation",
        description="U-Net / U-Net++ segmentation with and without synthetic training images (DF-GAN Table 1, "
        "thyroid Table II).",
    )
    parser.add_argument("--real", default=None, help="real datalist JSON or folder (default: the demo dataset)")
    parser.add_argument("--synthetic", nargs="*", default=[], help="synthetic sets: DIR ... or NAME=DIR ...")
    parser.add_argument("--real_sizes", type=int_list, default=None, help="real training images per row, e.g. 50,100,250")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--n_synthetic", type=int_list, default=None, help="synthetic images added, e.g. 0,32,64")
    amount.add_argument("--ratios", type=float_list, default=None, help="synthetic:real ratios, e.g. 0,1")
    parser.add_argument("--classic_aug", type=bool_list, default=[False, True], help="e.g. 0,1")
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    parser.add_argument("--network", default="unet", choices=NETWORKS)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr_step", type=int, default=None)
    parser.add_argument("--label_key", default="label")
    parser.add_argument("--num_classes", type=int, default=2)
    parser.add_argument("--lesion_only", action="store_true", help="only real images with foreground")
    parser.add_argument("--network_kwargs", type=json_dict, default=None,
                        help='network overrides as JSON, e.g. \'{"channels": [8, 16, 32], "strides": [2, 2]}\'')
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no_resume", action="store_true", help="retrain finished runs")
    args = parser.parse_args(argv)
    table = run_segmentation_experiment(
        args.real, parse_synthetic_args(args.synthetic), real_sizes=args.real_sizes, n_synthetic=args.n_synthetic,
        ratios=args.ratios, classic_aug=args.classic_aug, seeds=args.seeds, network=args.network, epochs=args.epochs,
        image_size=args.image_size, label_key=args.label_key, num_classes=args.num_classes,
        batch_size=args.batch_size, lr=args.lr, lr_step=args.lr_step, lesion_only=args.lesion_only,
        network_kwargs=args.network_kwargs, device=args.device, out_dir=args.out, resume=not args.no_resume,
    )
    print(segmentation_table_markdown(table))
    return table


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
