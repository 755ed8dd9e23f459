# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation protocols: how the downstream experiments draw, load and train.

Shared plumbing of :mod:`~monai_gan_aug.evaluation.segmentation`, :mod:`~monai_gan_aug.evaluation.classification`,
the detection export (:mod:`~monai_gan_aug.evaluation.yolo_data`) and :mod:`~monai_gan_aug.evaluation.thyroid`:

* :func:`load_splits` / :func:`load_synthetic_sets` / :func:`collect_synthetic_items`: the real ``training`` /
  ``validation`` / ``test`` lists and the synthetic sets (folders written by
  :class:`~monai_gan_aug.handlers.SyntheticWriter`, or datalist JSONs);
* :func:`draw_subset`, :func:`synthetic_counts`: which real images (a seeded, nested subset of the training split:
  DF-GAN's 50 / 100 / 250 ... real images) and how many synthetic ones (counts as the thyroid paper's 0 / 32 / 64,
  or ratios as DF-GAN's "the same amount of synthetic data") a run gets; synthetic images only ever enter training;
* :func:`downstream_preprocessing` / :func:`preload_items`: MONAI transforms that bring real and synthetic images to
  the same footing (channel first, grayscale, per-image percentile window to ``[-1, 1]``, resized), loaded once per
  experiment; :func:`classic_augmentation`: the "classical augmentation" arm (flips, small affine, intensity);
* :func:`fit_supervised`: one training with MONAI's :class:`~monai.engines.SupervisedTrainer` and, when a validation
  set is given, a :class:`~monai.engines.SupervisedEvaluator` every ``val_interval`` epochs whose best epoch's
  weights are kept (model selection on real validation images);
* :func:`arm_grid`, :func:`draw_training_data`, :func:`cached_run`, :func:`arm_row`: the grid of runs the
  segmentation and classification tables share (real size x synthetic set x amount, one resumable run per seed,
  one row of mean ± std per configuration).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation.tables import aggregate_runs, json_safe, load_run_record, save_run_record

__all__ = [
    "SPLITS",
    "arm_grid",
    "arm_row",
    "cached_run",
    "classic_augmentation",
    "collect_synthetic_items",
    "data_label",
    "default_device",
    "downstream_preprocessing",
    "draw_subset",
    "draw_training_data",
    "ensure_preloaded",
    "fit_supervised",
    "load_splits",
    "load_synthetic_sets",
    "network_from_factory",
    "network_name",
    "predict_batches",
    "preload_items",
    "run_file",
    "seeded",
    "slug",
    "source_name",
    "synthetic_counts",
]

logger = logging.getLogger(__name__)

#: The datalist splits, in order.
SPLITS = ("training", "validation", "test")
_DATALIST_NAMES = ("datalist.json", "dataset.json")


# ---------------------------------------------------------------------------------------------- small helpers
def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means the first GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU (and CUDA) generators seeded with ``seed`` and restore them afterwards, so a run
    (network initialisation, loader order) is repeatable without changing the caller's random state."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def _check_int_list(values: Any, name: str, minimum: int = 0) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"`{name}` must be a non-empty list of integers, got {values!r}.")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ValueError(f"`{name}` must hold integers >= {minimum}, got {list(values)!r}.")
        out.append(int(v))
    return out


# ---------------------------------------------------------------------------------------------- datalists
def _json_lacks_split(source: Any, split: str) -> bool:
    """True when ``source`` is a datalist JSON (or a folder holding one) with several lists but no ``split`` list."""
    if source is None:
        return False
    path = Path(source).expanduser()
    if path.is_dir():
        path = next((path / n for n in _DATALIST_NAMES if (path / n).is_file()), path)
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and not isinstance(content.get(split), list)


def load_splits(
    real: str | os.PathLike | Mapping[str, Sequence[dict]] | Sequence[dict] | None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """The real ``training`` / ``validation`` / ``test`` lists with absolute paths.

    Args:
        real: a datalist JSON, a folder (with ``datalist.json``, or of images), a CSV, ``None`` (the embedded demo
            dataset), a dict of split name -> items (paths absolute), or one list of items, which is split by
            patient (:func:`monai_gan_aug.data.datalist.split_datalist`, fractions ``1 - val - test, val, test``).
        val_fraction: validation fraction of a single-list source.
        test_fraction: test fraction of a single-list source.
        seed: seed of that split.

    Raises:
        DatalistError: an unreadable source, or all three lists empty.
    """
    from monai_gan_aug.data.datalist import load_datalist, split_datalist

    if isinstance(real, Mapping):
        lists = {s: [dict(item) for item in real.get(s, [])] for s in SPLITS}
        source = "the given datalist dict"
    elif isinstance(real, Sequence) and not isinstance(real, (str, bytes)):
        items = [dict(item) for item in real]
        fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
        lists = dict(zip(SPLITS, split_datalist(items, fractions=fractions, seed=seed, key="patient")))
        source = "the given list of items"
    else:
        lists = {}
        for split in SPLITS:
            try:
                lists[split] = load_datalist(
                    real, split=split, spatial_dims=2, val_fraction=val_fraction, test_fraction=test_fraction,
                    seed=seed,
                )
            except DatalistError:
                if _json_lacks_split(real, split):  # e.g. no "validation" list: an empty split, not an error
                    lists[split] = []
                else:
                    raise
        source = str(real) if real is not None else "the demo dataset"
    for split, items in lists.items():
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item:
                raise DatalistError(f"{source}: item {i} of '{split}' has no 'image' ({item!r}).")
    if not any(lists.values()):
        raise DatalistError(f"{source}: the training, validation and test lists are all empty.")
    return lists


def _set_name(source: str | os.PathLike) -> str:
    p = Path(source)
    if p.suffix.lower() == ".json":
        return p.parent.name if p.name in _DATALIST_NAMES else p.stem
    return p.name or str(p)


def _synthetic_lists(source: str | os.PathLike) -> list[dict]:
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "datalist.json"
    if not path.is_file():
        raise DatalistError(
            f"synthetic set {source}: no datalist.json found; pass the output folder of SyntheticWriter or a datalist "
            "JSON."
        )
    from monai_gan_aug.data.datalist import load_datalist

    items = load_datalist(path, split="all", spatial_dims=2, check=False)
    for i, item in enumerate(items):
        if "image" not in item:
            raise DatalistError(f"synthetic set {path}: item {i} has no 'image'.")
        if not Path(item["image"]).is_file():
            raise DatalistError(f"synthetic set {path}: item {i} image {item['image']} does not exist.")
    return items


def collect_synthetic_items(
    sources: Sequence[str | os.PathLike] | str | os.PathLike | None,
    synthetic_filter: Callable[[Any, Any], bool] | None = None,
) -> tuple[list[dict], dict[str, Any]]:
    """All items of the synthetic sets (folders of :class:`~monai_gan_aug.handlers.SyntheticWriter` or datalist
    JSONs) that pass ``synthetic_filter``, in source order, each marked ``synthetic: True``.

    Args:
        sources: one or several folders / JSON files; ``None`` or ``[]`` gives no items.
        synthetic_filter: ``(image (C, W, H) array, boxes (N, 4)) -> bool``; ``None`` keeps everything.

    Returns:
        ``(items, info)``; ``info`` holds ``sources``, ``n_total``, ``n_kept``, ``filter`` and, for a
        :class:`~monai_gan_aug.evaluation.fidelity.BoxContrastFilter`, each item's score under ``box_contrast`` in
        the items.

    Raises:
        DatalistError: for a missing / unreadable source.
    """
    if sources is None:
        sources = []
    elif isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    items: list[dict] = []
    for src in sources:
        for item in _synthetic_lists(src):
            items.append({**item, "synthetic": True, "synthetic_source": str(src)})
    n_total = len(items)
    if synthetic_filter is not None and items:
        from monai.transforms import LoadImage

        from monai_gan_aug.evaluation.fidelity import BoxContrastFilter
        from monai_gan_aug.transforms.boxes.array import as_box_array

        loader = LoadImage(image_only=True, ensure_channel_first=True)
        kept = []
        for item in items:
            image = loader(item["image"])
            boxes = as_box_array(item.get("boxes"), spatial_dims=2)
            if isinstance(synthetic_filter, BoxContrastFilter) and len(boxes):
                item["box_contrast"] = synthetic_filter.score(image, boxes)
            if synthetic_filter(image, boxes):
                kept.append(item)
        items = kept
    info = {
        "sources": [str(s) for s in sources],
        "n_total": n_total,
        "n_kept": len(items),
        "filter": repr(synthetic_filter) if synthetic_filter is not None else None,
    }
    if synthetic_filter is not None:
        logger.info("synthetic filter %r kept %d of %d images", synthetic_filter, len(items), n_total)
    return items, info


def load_synthetic_sets(
    synthetic: Any,
    require: str | None = None,
    default_class: int | None = None,
) -> dict[str, list[dict]]:
    """Synthetic sets by name, each a list of items marked ``synthetic: True``.

    Args:
        synthetic: ``None`` (no set); a folder of :class:`~monai_gan_aug.handlers.SyntheticWriter` or a datalist
            JSON (one set named after the folder); a list of those (pooled into one set named ``a+b``); or a dict
            ``name -> folder / JSON / list of them / list of datalist items`` (separate sets, e.g.
            ``{"WGAN-GP": ..., "alpha-WGAN-GP": ...}``).
        require: item key every item must have (``"label"`` for segmentation, ``"class"`` for classification).
        default_class: with ``require="class"``, the class given to items without one (a generator trained on a
            single class, as the thesis' "GAN trained on abnormal radiographs").

    Raises:
        DatalistError: a missing / unreadable set, or an item without ``require``.
        TypeError: ``synthetic`` of another type.
    """
    if synthetic is None:
        return {}
    if isinstance(synthetic, (str, os.PathLike)):
        named: dict[str, Any] = {_set_name(synthetic): [synthetic]}
        given: dict[str, Any] = {}
    elif isinstance(synthetic, Mapping):
        named = {str(k): ([v] if isinstance(v, (str, os.PathLike)) else list(v)) for k, v in synthetic.items()}
        given = {k: v for k, v in named.items() if v and all(isinstance(i, Mapping) for i in v)}
    elif isinstance(synthetic, Sequence) and not isinstance(synthetic, bytes):
        sources = list(synthetic)
        if not sources:
            return {}
        named = {"+".join(_set_name(s) for s in sources): sources}
        given = {}
    else:
        raise TypeError(
            "synthetic must be None, a folder / datalist JSON, a list of them or a dict name -> folder, got "
            f"{type(synthetic).__name__}."
        )
    sets: dict[str, list[dict]] = {}
    for name, sources in named.items():
        if name in given:  # a list of datalist items (absolute paths)
            items = [{**dict(i), "synthetic": True, "synthetic_source": name} for i in sources]
            missing = [i.get("image") for i in items if "image" not in i or not Path(str(i["image"])).is_file()]
            if missing:
                raise DatalistError(f"synthetic set {name!r}: item image(s) missing or not found: {missing[:5]}.")
        else:
            items, _ = collect_synthetic_items(sources)
        if not items:
            raise DatalistError(f"synthetic set {name!r} ({[str(s) for s in sources]}) holds no images.")
        if require is not None:
            for item in items:
                if require not in item:
                    if require == "class" and default_class is not None:
                        item["class"] = int(default_class)
                        continue
                    hint = " (or pass default_class)" if require == "class" else ""
                    raise DatalistError(
                        f"synthetic set {name!r}: item {item['image']} has no {require!r}; this experiment needs "
                        f"synthetic images with their {require}{hint}."
                    )
        sets[name] = items
    return sets


# ---------------------------------------------------------------------------------------------- drawing
def draw_subset(items: Sequence[Any], n: int, seed: int, stratify: Sequence[Any] | None = None) -> list[int]:
    """Indices of ``n`` of ``items`` drawn with ``numpy.random.default_rng([seed, 0])``.

    Without ``stratify`` the draw is the first ``n`` of one permutation, so a larger ``n`` with the same seed is a
    superset of a smaller one (the rows of a table differ by added images only). With ``stratify`` (one class per
    item) each class gets its share by largest remainder and at least one image when ``n`` allows it.

    Raises:
        ValueError: ``n`` negative or larger than ``len(items)``, or ``stratify`` of another length.
    """
    total = len(items)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= total:
        raise ValueError(f"draw_subset: n must be an integer in [0, {total}], got {n!r}.")
    rng = np.random.default_rng([int(seed), 0])
    if stratify is None:
        return sorted(rng.permutation(total)[: int(n)].tolist())
    if len(stratify) != total:
        raise ValueError(f"draw_subset: stratify has {len(stratify)} entries for {total} items.")
    classes = sorted(set(stratify), key=str)
    members = {c: [i for i, s in enumerate(stratify) if s == c] for c in classes}
    raw = np.array([n * len(members[c]) / total for c in classes]) if total else np.zeros(0)
    counts = np.floor(raw).astype(int)
    for j in np.argsort(-(raw - counts), kind="stable")[: int(n) - int(counts.sum())]:
        counts[j] += 1
    for j, c in enumerate(classes):  # every class present when n allows it
        if counts[j] == 0 and n >= len(classes) and members[c]:
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[j] += 1
    chosen: list[int] = []
    for j, c in enumerate(classes):
        perm = rng.permutation(len(members[c]))[: counts[j]]
        chosen.extend(members[c][k] for k in perm)
    return sorted(chosen)


def synthetic_counts(
    n_real: int,
    n_synthetic: Sequence[int] | None = None,
    ratios: Sequence[float] | None = None,
    available: int | None = None,
) -> list[int]:
    """Numbers of synthetic training images per row for ``n_real`` real ones: ``n_synthetic`` as given (the thyroid
    paper's 0 / 32 / 64) or ``round(ratio * n_real)`` (DF-GAN: ratio 1), capped by ``available``, duplicates removed
    (order kept). Neither given: ``[0, n_real]`` when a synthetic set exists, else ``[0]``.

    Raises:
        ValueError: both ``n_synthetic`` and ``ratios`` given, or negative values.
    """
    if n_synthetic is not None and ratios is not None:
        raise ValueError("give either n_synthetic (counts) or ratios (synthetic : real), not both.")
    if n_synthetic is not None:
        counts = _check_int_list(n_synthetic, "n_synthetic")
    elif ratios is not None:
        rs = [float(r) for r in (ratios if isinstance(ratios, Sequence) else [ratios])]
        if not rs or any(not math.isfinite(r) or r < 0 for r in rs):
            raise ValueError(f"ratios must be a non-empty list of numbers >= 0, got {ratios!r}.")
        counts = [round(r * n_real) for r in rs]
    else:
        counts = [0, int(n_real)] if available else [0]
    if available is not None:
        counts = [min(c, int(available)) for c in counts]
    return list(dict.fromkeys(counts))


def _resolve_sizes(real_sizes: Sequence[int] | int | None, available: int) -> list[int]:
    if available < 1:
        raise ValueError("the real training split is empty; nothing to train on.")
    if real_sizes is None:
        return [available]
    sizes = _check_int_list(real_sizes, "real_sizes", minimum=1)
    capped = [min(s, available) for s in sizes]
    if any(s > available for s in sizes):
        logger.info("real_sizes %s capped at the %d real training images", sizes, available)
    return list(dict.fromkeys(capped))


# ---------------------------------------------------------------------------------------------- loading
def _squeeze_trailing(x: Any) -> Any:
    while x.ndim > 3 and x.shape[-1] == 1:
        x = x[..., 0]
    return x


def downstream_preprocessing(
    image_size: int | Sequence[int],
    mask_key: str | None = None,
    num_classes: int = 2,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> Any:
    """MONAI transforms that load one datalist item for a downstream network: ``LoadMedicalImaged`` (channel first),
    trailing singleton axes dropped (2D images stored as ``X x Y x 1``), grayscale, per-image percentile window to
    ``[-1, 1]`` (real MR in arbitrary units and generator outputs in ``[-1, 1]`` end up on the same scale, as the
    detection export's :func:`~monai_gan_aug.evaluation.yolo_data.window_to_uint8`), resized to ``image_size``
    (``area`` for images, ``nearest`` for masks). Masks become ``0/1`` (``num_classes == 2``: any value > 0 is
    foreground, so 0/255 PNG masks work) or rounded class indices.
    """
    from monai.transforms import Compose, Lambdad, Resized

    from monai_gan_aug.data.loading import LoadMedicalImaged
    from monai_gan_aug.transforms.preprocessing.dictionary import (
        EnsureGrayscaled,
        ScaleToSymmetricRanged,
    )

    size = (int(image_size),) * 2 if isinstance(image_size, (int, np.integer)) else tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be an int or two ints >= 1, got {image_size!r}.")
    keys = ["image"] + ([mask_key] if mask_key else [])
    lo, hi = (float(p) for p in percentiles)
    steps = [
        LoadMedicalImaged(keys, ensure_channel_first=True, image_only=True),
        Lambdad(keys, _squeeze_trailing),
        EnsureGrayscaled("image"),
        ScaleToSymmetricRanged("image", lower_percentile=lo, upper_percentile=hi),
        Resized(keys, spatial_size=size, mode=["area"] + (["nearest"] if mask_key else [])),
    ]
    if mask_key:
        if num_classes == 2:
            steps.append(Lambdad(mask_key, lambda m: (m > 0).float()))
        else:
            steps.append(Lambdad(mask_key, lambda m: m.round().clamp(0, num_classes - 1).float()))
    return Compose(steps)


def _plain(x: Any) -> torch.Tensor:
    """A contiguous float32 ``torch.Tensor`` (MetaTensor metadata dropped: it only slows collation)."""
    t = x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(np.asarray(x))
    return t.float().contiguous()


def preload_items(
    items: Sequence[dict],
    image_size: int | Sequence[int],
    mask_key: str | None = None,
    class_key: str | None = None,
    num_classes: int = 2,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> list[dict[str, torch.Tensor]]:
    """Load and preprocess items once (:func:`downstream_preprocessing`) into ``{"image": (1, H, W) float,
    "label": mask (1, H, W) float | class () long}`` dicts of plain tensors, the batches MONAI's trainers expect.

    Args:
        items: datalist items (absolute paths).
        image_size: output size.
        mask_key: item key of the segmentation mask (segmentation).
        class_key: item key of the image-level class (classification).
        num_classes: number of classes (masks with 2 are binarised).
        percentiles: intensity window.

    Raises:
        ValueError: both or a missing ``mask_key`` / ``class_key`` entry, or a non-2D image (the message names it).
    """
    if mask_key and class_key:
        raise ValueError("preload_items: give mask_key (segmentation) or class_key (classification), not both.")
    transform = downstream_preprocessing(image_size, mask_key, num_classes, percentiles)
    out = []
    for item in items:
        name = item.get("image")
        if mask_key and mask_key not in item:
            raise ValueError(f"{name}: the item has no {mask_key!r} mask; segmentation needs one for every image.")
        if class_key and class_key not in item:
            raise ValueError(f"{name}: the item has no {class_key!r}; classification needs a class for every image.")
        d = transform({k: item[k] for k in ("image", mask_key) if k})
        image = _plain(d["image"])
        if image.ndim != 3:
            raise ValueError(f"{name}: expected a 2D image, got spatial shape {tuple(image.shape[1:])}.")
        entry = {"image": image}
        if mask_key:
            entry["label"] = _plain(d[mask_key])
        if class_key:
            c = int(item[class_key])
            if not 0 <= c < num_classes:
                raise ValueError(f"{name}: class {c} is outside [0, {num_classes}); set num_classes.")
            entry["label"] = torch.tensor(c, dtype=torch.long)
        out.append(entry)
    return out


def ensure_preloaded(items: Sequence[dict], image_size: int | Sequence[int], **preload_kwargs: Any) -> list[dict]:
    """``items`` as :func:`preload_items` (``image_size``, ``preload_kwargs``) returns them; items already preloaded
    (a tensor ``image``) pass as they are."""
    if items and isinstance(items[0].get("image"), torch.Tensor):
        return list(items)
    return preload_items(items, image_size, **preload_kwargs)


def classic_augmentation(
    with_mask: bool,
    image_size: int | Sequence[int],
    flip_axes: Sequence[int] = (0,),
    rotate_deg: float = 10.0,
    scale: float = 0.1,
    translate: float = 0.05,
    intensity: float = 0.1,
    prob: float = 0.5,
    elastic: bool = False,
) -> Any:
    """The "classical augmentation" arm (DF-GAN: rotations, reflections, cropping; the thesis: flips, rotations,
    zoom): random flips along ``flip_axes``, a small random affine (rotation up to ``rotate_deg``, zoom ``± scale``,
    shift ``± translate`` of the size; border padding, nearest for masks) and intensity scale / shift by
    ``± intensity``, each applied with probability ``prob``; with ``elastic`` also a mild elastic deformation
    (MONAI ``Rand2DElasticd``: control points 1/8 of the size apart, magnitude up to 2 px). Keys ``image``
    (+ ``label`` when ``with_mask``)."""
    from monai.transforms import (
        Compose,
        RandAffined,
        RandFlipd,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    size = (int(image_size),) * 2 if isinstance(image_size, (int, np.integer)) else tuple(int(s) for s in image_size)
    keys = ["image", "label"] if with_mask else ["image"]
    modes = ["bilinear", "nearest"] if with_mask else ["bilinear"]
    steps: list[Any] = [RandFlipd(keys, prob=prob, spatial_axis=int(a)) for a in flip_axes]
    steps.append(
        RandAffined(
            keys, prob=prob, rotate_range=(math.radians(rotate_deg),), scale_range=(scale, scale),
            translate_range=(translate * size[0], translate * size[1]), mode=modes, padding_mode="border",
        )
    )
    if elastic:
        from monai.transforms import Rand2DElasticd

        steps.append(Rand2DElasticd(keys, spacing=(max(2, size[0] // 8), max(2, size[1] // 8)), magnitude_range=(0.0, 2.0),
                                    prob=prob, mode=modes, padding_mode="border"))
    steps += [RandScaleIntensityd("image", factors=intensity, prob=prob), RandShiftIntensityd("image", offsets=intensity, prob=prob)]
    return Compose(steps)


# ---------------------------------------------------------------------------------------------- training
class _KeepBest:
    """Evaluator handler: snapshot the network's weights whenever the evaluator's key metric reaches a new best."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1
        self.value = float("nan")

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        best = engine.state.best_metric
        if engine.state.best_metric_epoch == engine.state.epoch and isinstance(best, float) and math.isfinite(best):
            self.state = copy.deepcopy(self.network.state_dict())
            self.epoch, self.value = int(engine.state.epoch), float(best)


def _finite_greater(current: float, best: float) -> bool:
    """Metric comparison that never prefers a NaN (a validation set without positives gives NaN Dice / AUC)."""
    if not math.isfinite(float(current)):
        return False
    return not math.isfinite(float(best)) or current > best


def fit_supervised(
    network: nn.Module,
    train_data: Sequence[dict],
    loss_function: Callable,
    epochs: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    augmentation: Any = None,
    val_data: Sequence[dict] | None = None,
    val_metric: tuple[str, Any] | None = None,
    val_postprocessing: Any = None,
    val_interval: int = 1,
    lr_step: int | None = None,
    lr_gamma: float = 0.1,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    n_real: int | None = None,
) -> dict[str, Any]:
    """Train ``network`` in place with MONAI's :class:`~monai.engines.SupervisedTrainer` (Adam).

    With ``val_data`` and ``val_metric`` a :class:`~monai.engines.SupervisedEvaluator` runs every ``val_interval``
    epochs (MONAI :class:`~monai.handlers.ValidationHandler`) and the weights of its best epoch are restored at the
    end (NaN metrics never count as best); otherwise the final weights are kept.

    Args:
        network: the model (moved to ``device``).
        train_data: preloaded ``{"image", "label"}`` dicts (:func:`preload_items`).
        loss_function: e.g. ``DiceCELoss(to_onehot_y=True, softmax=True)`` or ``CrossEntropyLoss()``.
        epochs: training epochs.
        batch_size: batch size (a last batch of one image is dropped: batch norm cannot train on it).
        lr: Adam learning rate.
        seed: seed of the loader order and of the augmentation's random state.
        augmentation: dictionary transform applied to every training sample (e.g. :func:`classic_augmentation`).
        val_data: preloaded validation dicts.
        val_metric: ``(name, ignite metric)`` of the evaluator, e.g. ``("val_dice", MeanDice(...))``.
        val_postprocessing: evaluator postprocessing (activation, argmax, one-hot) the metric needs.
        val_interval: epochs between validations.
        lr_step: multiply the learning rate by ``lr_gamma`` every ``lr_step`` epochs (the thyroid paper: 0.1 every
            20 epochs); ``None``: constant.
        lr_gamma: the factor.
        weight_decay: Adam weight decay.
        device: training device (default: GPU when available).
        n_real: the first ``n_real`` items of ``train_data`` are real, the rest added: the real items then come in
            the same order whatever is added (:class:`~monai_gan_aug.data.samplers.PairedOrderSampler`), so the arms
            of a paired experiment differ by the added items only. ``None``: a plain shuffle.

    Returns:
        ``{"train_seconds", "epochs", "best_epoch", "best_val", "n_train"}`` (``best_epoch = -1``: final weights).

    Raises:
        ValueError: no training data or bad numbers.
    """
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator, SupervisedTrainer
    from monai.handlers import LrScheduleHandler, ValidationHandler

    if not train_data:
        raise ValueError("fit_supervised: train_data is empty.")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if batch_size < 1 or lr <= 0 or val_interval < 1:
        raise ValueError(f"batch_size ({batch_size}) and val_interval ({val_interval}) must be >= 1, lr ({lr}) > 0.")
    dev = default_device(device)
    network.to(dev)
    if augmentation is not None and hasattr(augmentation, "set_random_state"):
        augmentation.set_random_state(seed=int(seed) % (2**32))
    generator = torch.Generator().manual_seed(int(seed))
    n = len(train_data)
    order: dict[str, Any] = {"shuffle": True, "generator": generator}
    if n_real is not None:
        from monai_gan_aug.data.samplers import PairedOrderSampler

        order = {"sampler": PairedOrderSampler(int(n_real), n, seed=int(seed))}
    loader = DataLoader(
        Dataset(list(train_data), transform=augmentation), batch_size=min(batch_size, n), num_workers=0,
        drop_last=(n % batch_size == 1 and n > 1), **order,
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)
    handlers: list[Any] = []
    if lr_step:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(lr_step), gamma=lr_gamma)
        handlers.append(LrScheduleHandler(scheduler, print_lr=False))
    keep = None
    if val_data and val_metric is not None:
        keep = _KeepBest(network)
        evaluator = SupervisedEvaluator(
            device=dev, val_data_loader=DataLoader(Dataset(list(val_data)), batch_size=batch_size, shuffle=False),
            network=network, postprocessing=val_postprocessing, key_val_metric={val_metric[0]: val_metric[1]},
            metric_cmp_fn=_finite_greater, val_handlers=[keep],
        )
        handlers.append(ValidationHandler(validator=evaluator, interval=int(val_interval), epoch_level=True))
    trainer = SupervisedTrainer(
        device=dev, max_epochs=int(epochs), train_data_loader=loader, network=network, optimizer=optimizer,
        loss_function=loss_function, train_handlers=handlers, decollate=False,
    )
    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0
    if keep is not None and keep.state is not None:
        network.load_state_dict(keep.state)
    network.eval()
    return {
        "train_seconds": round(seconds, 3),
        "epochs": int(epochs),
        "best_epoch": keep.epoch if keep is not None and keep.state is not None else -1,
        "best_val": keep.value if keep is not None and keep.state is not None else None,
        "n_train": n,
    }


# ---------------------------------------------------------------------------------------------- experiment grid
def source_name(real: Any) -> str:
    """How a table's ``config`` names the real data: the source as a string, or the type of an in-memory datalist."""
    return str(real) if not isinstance(real, (Mapping, list, tuple)) else type(real).__name__


def network_name(network: Any) -> str:
    """A network's name in tables and run records: the name given, or the factory's ``__name__``."""
    return network if isinstance(network, str) else getattr(network, "__name__", type(network).__name__)


def network_from_factory(factory: Callable[[], nn.Module]) -> nn.Module:
    """The module ``factory()`` returns (a network given as a callable instead of a name).

    Raises:
        TypeError: the factory returned something other than an ``nn.Module``.
    """
    net = factory()
    if not isinstance(net, nn.Module):
        raise TypeError(f"the network factory returned {type(net).__name__}, not an nn.Module.")
    return net


def predict_batches(
    model: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    batch_size: int,
    device: str | torch.device | None,
    finish: Callable[[torch.Tensor, Any], torch.Tensor],
) -> torch.Tensor:
    """``model`` (a module is moved to ``device`` and set to eval mode; or any callable) on ``x`` in batches of
    ``batch_size`` without gradients: ``finish(batch, output)`` of every batch, concatenated along the first axis."""
    dev = default_device(device)
    if isinstance(model, nn.Module):
        model = model.to(dev).eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(x), max(1, int(batch_size))):
            batch = x[s : s + batch_size]
            outs.append(finish(batch, model(batch.to(dev))))
    return torch.cat(outs)


def slug(text: str) -> str:
    """``text`` reduced to characters safe in a file name (``[A-Za-z0-9._+-]``, other runs become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)) or "set"


def data_label(n_real: int, n_syn: int) -> str:
    """``"<n> R"`` (real only) or ``"<n> R + <m> S"`` (DF-GAN's row labels)."""
    return f"{n_real} R" if n_syn == 0 else f"{n_real} R + {n_syn} S"


def arm_grid(
    sizes: Sequence[int],
    pools: Mapping[str, Sequence[Any]],
    n_synthetic: Sequence[int] | None = None,
    ratios: Sequence[float] | None = None,
) -> Iterator[tuple[int, str | None, int]]:
    """The ``(n_real, set_name, n_synthetic)`` rows of one group of a table: for every real size, the real-only row
    once (``set_name`` is ``None`` without synthetic sets), then each synthetic set's amounts
    (:func:`synthetic_counts` of ``n_synthetic`` / ``ratios``, capped by the set's size)."""
    set_names: list[str | None] = list(pools) or [None]
    for n_real in sizes:
        real_only_done = False
        for set_name in set_names:
            available = len(pools[set_name]) if set_name is not None else 0
            counts = synthetic_counts(n_real, n_synthetic, ratios, available) if set_name is not None else [0]
            for n_syn in counts:
                if n_syn == 0 and real_only_done:
                    continue
                real_only_done = real_only_done or n_syn == 0
                yield n_real, set_name, n_syn


def draw_training_data(
    train: Sequence[dict],
    n_real: int,
    seed: int,
    pool: Sequence[dict] | None = None,
    n_syn: int = 0,
    stratify: Sequence[Any] | None = None,
) -> list[dict]:
    """The training items of one run: ``n_real`` real items (:func:`draw_subset` with ``seed``, nested across sizes)
    followed by ``n_syn`` items of ``pool`` (a permutation drawn with ``numpy.random.default_rng([seed, 1])``)."""
    data = [train[i] for i in draw_subset(train, n_real, seed, stratify=stratify)]
    if n_syn:
        if pool is None:
            raise ValueError(f"draw_training_data: n_syn={n_syn} synthetic items asked for without a pool.")
        data += [pool[i] for i in np.random.default_rng([seed, 1]).permutation(len(pool))[:n_syn]]
    return data


def run_file(run_dir: str | os.PathLike, row_key: str, seed: int) -> Path:
    """The record file of one seed of a table row: ``<run_dir>/<row key with / as _>_seed<seed>.json``."""
    return Path(run_dir) / f"{row_key.replace('/', '_')}_seed{seed}.json"


def cached_run(
    path: str | os.PathLike, run_config: Mapping[str, Any], resume: bool, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """One run of an experiment, resumable: with ``resume`` the result recorded at ``path`` under exactly
    ``run_config`` (:func:`~monai_gan_aug.evaluation.tables.load_run_record`) is returned; otherwise ``compute()``
    runs and its result is recorded there. Returns the JSON form of the result (:func:`json_safe`)."""
    if resume:
        cached = load_run_record(path, run_config)
        if cached is not None:
            logger.info("reusing finished run %s", path)
            return cached
    result = compute()
    save_run_record(path, run_config, result)
    return json_safe(result)


def arm_row(
    label: str,
    key: str,
    fields: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    run_dir: str | os.PathLike,
    seeds: Sequence[int],
) -> dict[str, Any]:
    """A table row (see :mod:`~monai_gan_aug.evaluation.tables`) from the runs of its seeds: the ``columns``'
    metrics and the training time as mean ± std, and the runs' record files."""
    return {
        "label": label,
        "key": key,
        "fields": dict(fields),
        "metrics": aggregate_runs([r["metrics"] for r in runs], [c[0] for c in columns]),
        "train_seconds": aggregate_runs([{"t": r.get("train_seconds")} for r in runs])["t"],
        "runs": [str(run_file(run_dir, key, s)) for s in seeds],
    }
