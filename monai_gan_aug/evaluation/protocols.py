# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation protocols: how the downstream experiments draw, load and train, and the thyroid paper's protocol.

Shared plumbing of :mod:`~monai_gan_aug.evaluation.segmentation` and :mod:`~monai_gan_aug.evaluation.classification`:

* :func:`load_splits` / :func:`load_synthetic_sets`: the real ``training`` / ``validation`` / ``test`` lists and the
  synthetic sets (folders written by :class:`~monai_gan_aug.handlers.SyntheticWriter`, or datalist JSONs);
* :func:`draw_subset`, :func:`synthetic_counts`: which real images (a seeded, nested subset of the training split:
  DF-GAN's 50 / 100 / 250 ... real images) and how many synthetic ones (counts as the thyroid paper's 0 / 32 / 64,
  or ratios as DF-GAN's "the same amount of synthetic data") a run gets; synthetic images only ever enter training;
* :func:`downstream_preprocessing` / :func:`preload_items`: MONAI transforms that bring real and synthetic images to
  the same footing (channel first, grayscale, per-image percentile window to ``[-1, 1]``, resized), loaded once per
  experiment; :func:`classic_augmentation`: the "classical augmentation" arm (flips, small affine, intensity);
* :func:`fit_supervised`: one training with MONAI's :class:`~monai.engines.SupervisedTrainer` and, when a validation
  set is given, a :class:`~monai.engines.SupervisedEvaluator` every ``val_interval`` epochs whose best epoch's
  weights are kept (model selection on real validation images).

:func:`thyroid_protocol` is the whole evaluation of Liang & Chen (thyroid ultrasound, improved alpha-WGAN-GP):
Table I (MMD and 1-NN averaged over 10 tests of 100 images per distribution, MS-SSIM over 10 tests of 32 images,
computed by :mod:`monai_gan_aug.metrics`) for several synthetic sets, and Table II (U-Net trained with 0, 32 and 64
synthetic images added, mIoU and Dice on the real test images).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_gan_aug.data.errors import DatalistError

__all__ = [
    "SPLITS",
    "classic_augmentation",
    "default_device",
    "downstream_preprocessing",
    "draw_subset",
    "fit_supervised",
    "load_splits",
    "load_synthetic_sets",
    "msssim_settings",
    "pixel_extractor",
    "preload_items",
    "seeded",
    "synthetic_counts",
    "thyroid_protocol",
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
    from monai_gan_aug.evaluation.yolo_data import collect_synthetic_items

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


# ---------------------------------------------------------------------------------------------- thyroid protocol
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
        real_items: real data: a datalist source, a dict of splits or a list of items (see :func:`load_splits`).
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
    from monai_gan_aug.evaluation.tables import (
        aggregate_runs,
        make_table,
        table_markdown,
        write_table,
    )
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
            from monai_gan_aug.evaluation.segmentation import (
                run_segmentation_experiment,
            )

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
        from monai_gan_aug.evaluation.segmentation import segmentation_table_markdown

        md += "\n" + segmentation_table_markdown(seg_table, digits=4)
    if skipped:
        md += f"\nNo segmentation rows for {', '.join(skipped)}: their items have no {label_key!r} masks.\n"
    (out / "thyroid_protocol.md").write_text(md)
    return result
