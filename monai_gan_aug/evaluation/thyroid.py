# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The thyroid paper's evaluation protocol (Liang & Chen, thyroid ultrasound, improved alpha-WGAN-GP).

:func:`thyroid_protocol` is the whole evaluation: Table I (MMD and 1-NN averaged over 10 tests of 100 images per
distribution, MS-SSIM over 10 tests of 32 images, computed by :mod:`monai_gan_aug.metrics`) for several synthetic
sets, and Table II (U-Net trained with 0, 32 and 64 synthetic images added, mIoU and Dice on the real test images,
by :func:`~monai_gan_aug.evaluation.segmentation.run_segmentation_experiment`). :func:`msssim_settings` and
:func:`pixel_extractor` are its metric settings.

It sits above :mod:`~monai_gan_aug.evaluation.protocols` and :mod:`~monai_gan_aug.evaluation.segmentation`, which it
uses both.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_gan_aug.evaluation.protocols import SPLITS, default_device, load_splits, load_synthetic_sets
from monai_gan_aug.evaluation.segmentation import run_segmentation_experiment, segmentation_table_markdown
from monai_gan_aug.evaluation.tables import aggregate_runs, make_table, table_markdown, write_table

__all__ = ["msssim_settings", "pixel_extractor", "thyroid_protocol"]

logger = logging.getLogger(__name__)

#: MS-SSIM scale weights of Wang et al. 2003 (MONAI's and the paper's default, 5 scales).
_MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def msssim_settings(size: int) -> dict[str, Any]:
    """MS-SSIM ``kernel_size`` and ``weights`` that MONAI accepts for square images of side ``size``.

    The standard setting (5 scales, 11-pixel Gaussian window) needs images of at least 176 px in MONAI (its check is
    ``size // (n_scales - 1) ** 2 > kernel_size - 1``). For smaller images the most scales that fit are kept (window
    11, then 9, 7, 5, 3), the standard weights truncated and renormalised to sum 1; the thyroid paper's 256 px images
    get the standard setting.

    Raises:
        ValueError: ``size`` below 8 (no MS-SSIM with two scales fits).
    """
    size = int(size)
    for n in (5, 4, 3, 2):
        for k in (11, 9, 7, 5, 3):
            if size // max(1, n - 1) ** 2 > k - 1 and size / 2 ** (n - 1) >= k:
                w = np.asarray(_MSSSIM_WEIGHTS[:n])
                return {"kernel_size": k, "weights": tuple(float(v) for v in w / w.sum())}
    raise ValueError(f"MS-SSIM needs images of at least 8 px per side, got {size}.")


def pixel_extractor(size: int = 32) -> Any:
    """Pixel-space features for MMD / 1-NN: every pixel of the image resized to ``size x size``, through the metrics
    package's :class:`~monai_gan_aug.metrics.MonaiNetworkFeatures` (an identity network, flattened). Kwon et al.
    (alpha-WGAN-GP) and the thyroid paper do not name a feature network; pixel space needs no weights (offline),
    while ``"inception"`` or a trained medical network can be passed to :func:`thyroid_protocol` instead."""
    from monai_gan_aug.metrics.extractors import MonaiNetworkFeatures

    size = int(size)
    return MonaiNetworkFeatures(
        nn.Identity(), pooling="flatten", in_channels=1, spatial_dims=2, input_size=(size, size),
        feature_dim=size * size, name=f"pixels{size}",
    )


def _first_size(files: Sequence[str]) -> int:
    from monai_gan_aug.data.datalist import read_spatial_shape

    shape = read_spatial_shape(files[0]) if files else None
    return int(min(shape[:2])) if shape else 64


def thyroid_protocol(
    real_items: Any,
    synthetic_sets: Mapping[str, Any],
    out_dir: str | os.PathLike,
    metrics_split: str = "training",
    n_tests: int = 10,
    n_images: int = 100,
    msssim_tests: int = 10,
    msssim_images: int = 32,
    extractor: Any = "pixels",
    feature_size: int = 32,
    metric_size: int | None = None,
    intensity: str = "minmax",
    msssim_kwargs: Mapping[str, Any] | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    device: str | torch.device | None = None,
    segmentation: bool = True,
    n_synthetic: Sequence[int] = (0, 32, 64),
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 60,
    image_size: int = 64,
    batch_size: int = 16,
    lr: float = 0.01,
    lr_step: int | None = 20,
    network: str = "unet",
    label_key: str = "label",
    segmentation_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The thyroid paper's evaluation (Liang & Chen, improved alpha-WGAN-GP for thyroid ultrasound).

    Table I, one row per synthetic set (the paper: WGAN-GP, alpha-WGAN-GP, ours), columns MMD, 1-NN and MS-SSIM:
    "MMD and 1-NN are calculated by averaging values of 10 test with 100 randomly selected images from each
    distribution ... MS-SSIM is calculated by averaging 10 test among 32 randomly selected images" (of the generated
    set; the real set's own MS-SSIM is the reference row, the paper's "MS-SSIM index of dataset A is 0.3129"). The
    metrics are :mod:`monai_gan_aug.metrics`' ``MMDMetric`` (Gaussian kernel of Xu et al.), ``OneNNMetric`` and
    ``MSSSIMDiversityMetric`` run through :func:`monai_gan_aug.metrics.evaluate_sets`.

    Table II: a U-Net trained on the real training images with 0, 32 and 64 synthetic images (and their masks)
    added, mIoU and Dice on the real test images (paper: Adam lr 0.01 x 0.1 every 20 epochs, batch 16, 60 epochs, no
    classic augmentation), via :func:`~monai_gan_aug.evaluation.segmentation.run_segmentation_experiment`, for every
    synthetic set whose items have masks (others are listed under ``segmentation_skipped``).

    Args:
        real_items: real data: a datalist source, a dict of splits or a list of items (see
            :func:`~monai_gan_aug.evaluation.protocols.load_splits`).
        synthetic_sets: ``name -> folder / datalist JSON / list of them``.
        out_dir: output folder: ``thyroid_table1.json|md``, ``segmentation/segmentation_table.json|md`` and the
            combined ``thyroid_protocol.json|md``.
        metrics_split: real split compared with the synthetic sets (the generator's training data), or ``"all"``.
        n_tests: MMD / 1-NN tests averaged.
        n_images: images per distribution and test.
        msssim_tests: MS-SSIM tests averaged.
        msssim_images: images per MS-SSIM test.
        extractor: ``"pixels"`` (:func:`pixel_extractor`), any spec of
            :func:`monai_gan_aug.metrics.build_extractor` (``"inception"``, ``"random:64"``, a network file) or a
            :class:`~monai_gan_aug.metrics.FeatureExtractor`.
        feature_size: side of the pixel features (``feature_size ** 2`` dimensions; the metrics package also keeps
            their covariance, so 32 - 1,024 dimensions - keeps it cheap).
        metric_size: side every image is resized to for the metrics (default: the first real image's).
        intensity: intensity mapping of the metrics' loader (``"minmax"``: per image, the same for real and
            synthetic files of any format).
        msssim_kwargs: overrides of ``MSSSIMDiversityMetric`` (default :func:`msssim_settings` of ``metric_size``).
        n_bootstrap: bootstrap replicates of the metric intervals (0: none, as the paper).
        seed: seed of the metric tests.
        device: feature extraction / training device.
        segmentation: run Table II.
        n_synthetic: synthetic images added (paper: 0, 32, 64).
        seeds: segmentation seeds.
        epochs: segmentation epochs.
        image_size: segmentation image size.
        batch_size: segmentation batch size.
        lr: segmentation learning rate.
        lr_step: its decay interval.
        network: segmentation network.
        label_key: mask key.
        segmentation_kwargs: other arguments of ``run_segmentation_experiment``.

    Returns:
        ``{"table1": ..., "segmentation": table or None, "segmentation_skipped": [names], "elapsed_s": ...}``.

    Raises:
        ValueError: no synthetic set, an empty real split.
    """
    from monai_gan_aug.metrics.evaluate import evaluate_sets

    if not isinstance(synthetic_sets, Mapping) or not synthetic_sets:
        raise ValueError("thyroid_protocol: synthetic_sets must be a non-empty dict name -> synthetic set.")
    t0 = time.perf_counter()
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(real_items)
    real = [it for s in SPLITS for it in splits[s]] if metrics_split == "all" else splits.get(metrics_split)
    if real is None:
        raise ValueError(f"metrics_split must be one of {SPLITS} or 'all', got {metrics_split!r}.")
    if len(real) < 2:
        raise ValueError(f"thyroid_protocol: the real '{metrics_split}' split has {len(real)} image(s); need >= 2.")
    real_files = [str(it["image"]) for it in real]
    sets = load_synthetic_sets(dict(synthetic_sets))
    size = int(metric_size) if metric_size else _first_size(real_files)
    ext = pixel_extractor(feature_size) if extractor == "pixels" else extractor
    ms_kw = {**msssim_settings(size), **dict(msssim_kwargs or {}), "n_tests": int(msssim_tests), "n_images": int(msssim_images)}
    metric_kwargs = {
        "mmd": {"n_tests": int(n_tests), "subset_size": int(n_images)},
        "1nn": {"n_tests": int(n_tests), "subset_size": int(n_images)},
        "msssim": ms_kw,
    }
    rows, real_msssim, reports = [], None, {}
    for name, items in sets.items():
        report = evaluate_sets(
            real_files, [str(it["image"]) for it in items], metrics=["mmd", "1nn", "msssim"], extractor=ext,
            n_bootstrap=n_bootstrap, seed=seed, spatial_size=(size, size), intensity=intensity,
            metric_kwargs=metric_kwargs, device=default_device(device),
        )
        m = report["metrics"]
        reports[name] = report
        real_msssim = m["msssim"].get("real_value", real_msssim)
        rows.append({
            "label": name, "key": name, "fields": {"set": name, "n": len(items)},
            "metrics": aggregate_runs([{"mmd": m["mmd"]["value"], "1nn": m["1nn"]["value"], "msssim": m["msssim"]["value"]}]),
            "details": {k: {kk: vv for kk, vv in v.items() if kk != "value"} for k, v in m.items()},
        })
    rows.append({
        "label": f"Real ({metrics_split})", "key": "real", "fields": {"set": f"Real ({metrics_split})", "n": len(real)},
        "metrics": aggregate_runs([{"mmd": None, "1nn": None, "msssim": real_msssim}]),
    })
    table1 = make_table(
        "Quantitative results of generation (thyroid paper, Table I)",
        (("mmd", "MMD"), ("1nn", "1-NN"), ("msssim", "MS-SSIM")),
        rows,
        fields=(("set", "Method"), ("n", "Images")),
        config={"metrics_split": metrics_split, "n_tests": n_tests, "n_images": n_images, "msssim_tests": msssim_tests,
                "msssim_images": msssim_images, "extractor": reports[next(iter(reports))]["extractor"],
                "metric_size": size, "intensity": intensity, "msssim": ms_kw, "n_bootstrap": n_bootstrap, "seed": seed},
        notes=[
            (
                f"MMD (Gaussian kernel, Xu et al.) and 1-NN accuracy (0.5 ideal): mean of {n_tests} tests with "
                f"{n_images} random images per distribution; MS-SSIM among generated images (lower = more diverse): "
                f"mean of {msssim_tests} tests of {msssim_images} images; features: "
                f"{reports[next(iter(reports))]['extractor']}, images at {size} px. The real row's MS-SSIM is the real "
                "set's own diversity."
            ),
        ],
    )
    write_table(table1, out, "thyroid_table1", markdown=table_markdown(table1, digits=4))

    seg_table, skipped = None, []
    if segmentation:
        seg_sets = {}
        for name, items in sets.items():
            if all(label_key in it for it in items):
                seg_sets[name] = synthetic_sets[name]
            else:
                skipped.append(name)
        if skipped:
            logger.info("thyroid_protocol: no %r masks in %s; no segmentation rows for them", label_key, skipped)
        if seg_sets:
            seg_table = run_segmentation_experiment(
                real_items, synthetic=seg_sets, n_synthetic=n_synthetic, classic_aug=(False,), seeds=seeds,
                network=network, epochs=epochs, image_size=image_size, batch_size=batch_size, lr=lr, lr_step=lr_step,
                label_key=label_key, device=device, out_dir=out / "segmentation",
                title="Quantitative results of segmentation (thyroid paper, Table II)",
                **dict(segmentation_kwargs or {}),
            )
    result = {"table1": table1, "segmentation": seg_table, "segmentation_skipped": skipped,
              "elapsed_s": round(time.perf_counter() - t0, 2)}
    (out / "thyroid_protocol.json").write_text(json.dumps(result, indent=1))
    md = table_markdown(table1, digits=4)
    if seg_table is not None:
        md += "\n" + segmentation_table_markdown(seg_table, digits=4)
    if skipped:
        md += f"\nNo segmentation rows for {', '.join(skipped)}: their items have no {label_key!r} masks.\n"
    (out / "thyroid_protocol.md").write_text(md)
    return result
