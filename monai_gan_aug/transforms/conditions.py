# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Box conditions for box-conditioned generation: a sampler of box sets and a dataset of them (collate its batches
with :func:`monai_gan_aug.data.gan_collate`, which keeps per-image box lists ragged).

Han et al., "Learning more with less" (2019) generate images "based on the annotation slightly different from
training images": :class:`BoxSampler` is fitted on the training set's box sets (the joint distribution of box count,
sizes and positions per image, kept as the empirical list of sets), draws one of them and jitters every box in
position and size, keeping each box inside the image and (when a foreground mask is known) inside the brain, and
not overlapping the other boxes of the set. A user's own box sets can be given as a JSON file
(:meth:`BoxSampler.from_file`). Draws are deterministic per seed, so a synthetic image and its boxes can be
regenerated from the seed alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable
from torch.utils.data import Dataset

from monai_gan_aug.transforms.boxes.array import as_box_array
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["BoxConditionDataset", "BoxSampler"]

def _round_box(box: np.ndarray, dims: int) -> np.ndarray:
    lo, hi = np.floor(box[:dims] + 0.5), np.floor(box[dims:] + 0.5)
    hi = np.maximum(hi, lo + 1)
    return np.concatenate([lo, hi])


class BoxSampler(Randomizable):
    """Draws box sets "slightly different from training" (Han et al. 2019).

    A draw picks one of ``box_sets`` (at random, or the ``index``-th when ``cycle``), then moves each box's centre
    by ``N(0, position_jitter * box side)`` per axis and scales each side by ``exp(N(0, size_jitter))``; corners
    are rounded to whole voxels. A jittered box must lie inside the image, cover at least ``min_foreground`` of
    its voxels with ``foreground`` (the brain) when a mask is given, and not overlap the set's other boxes; after
    ``max_tries`` failed jitters the box is kept as it was in training.

    Args:
        box_sets: per image a ``(N_i, 2 * D)`` array of boxes (MONAI corners, voxel units of ``image_size``).
        label_sets: per image ``(N_i,)`` integer box labels (default all 0).
        image_size: spatial size the boxes refer to.
        position_jitter: standard deviation of the centre shift, as a fraction of the box side.
        size_jitter: standard deviation of the log scale of each side.
        foreground: optional boolean mask of spatial shape ``image_size`` where boxes may go.
        min_foreground: fraction of a box's voxels that must be foreground.
        min_size: smallest box side in voxels.
        allow_empty: draw empty sets too (images without lesions); False draws only non-empty sets.
        cycle: ``sample(seed, index)`` uses set ``index % len(box_sets)`` instead of a random one.
        max_tries: jitter attempts per box.

    Example::

        sampler = BoxSampler.from_dataset(train_dataset)
        boxes, labels = sampler.sample(seed=7)      # the same boxes for seed 7, every time
    """

    def __init__(
        self,
        box_sets: Sequence[Any],
        image_size: Sequence[int],
        label_sets: Sequence[Any] | None = None,
        position_jitter: float = 0.25,
        size_jitter: float = 0.15,
        foreground: np.ndarray | torch.Tensor | None = None,
        min_foreground: float = 0.9,
        min_size: float = 2.0,
        allow_empty: bool = True,
        cycle: bool = False,
        max_tries: int = 20,
    ) -> None:
        self.image_size = tuple(int(s) for s in image_size)
        if len(self.image_size) not in (2, 3) or min(self.image_size) < 1:
            raise ValueError(f"BoxSampler: image_size must have 2 or 3 positive entries, got {image_size}.")
        dims = len(self.image_size)
        self.spatial_dims = dims
        sets = [as_box_array(b, spatial_dims=dims) for b in box_sets]
        if not sets:
            raise ValueError("BoxSampler needs at least one box set (an image's list of boxes, possibly empty).")
        if label_sets is None:
            labels = [np.zeros(len(b), dtype=np.int64) for b in sets]
        else:
            if len(label_sets) != len(sets):
                raise ValueError(f"BoxSampler: {len(sets)} box sets but {len(label_sets)} label sets.")
            labels = [
                np.asarray(lab.detach().cpu() if isinstance(lab, torch.Tensor) else lab, dtype=np.int64).reshape(-1)
                for lab in label_sets
            ]
            bad = [i for i, (b, lab) in enumerate(zip(sets, labels)) if len(b) != len(lab)]
            if bad:
                raise ValueError(f"BoxSampler: box sets {bad[:5]} have a different number of boxes and labels.")
        size = np.asarray(self.image_size, dtype=np.float64)
        for i, b in enumerate(sets):
            if len(b) and (np.any(b[:, dims:] <= b[:, :dims]) or np.any(b[:, :dims] < -1e-3) or np.any(b[:, dims:] > size + 1e-3)):
                raise ValueError(
                    f"BoxSampler: box set {i} has empty boxes or boxes outside the image of size {self.image_size}: "
                    f"{b.tolist()}. Fit the sampler on boxes in the coordinates of the preprocessed images."
                )
        self.box_sets, self.label_sets = sets, labels
        if not allow_empty and not any(len(b) for b in sets):
            raise ValueError("BoxSampler: allow_empty=False but no box set holds a box.")
        for name, v in (("position_jitter", position_jitter), ("size_jitter", size_jitter), ("min_size", min_size)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"BoxSampler: {name} must be a finite number >= 0, got {v}.")
        if not 0.0 <= min_foreground <= 1.0:
            raise ValueError(f"BoxSampler: min_foreground must be in [0, 1], got {min_foreground}.")
        if max_tries < 1:
            raise ValueError(f"BoxSampler: max_tries must be >= 1, got {max_tries}.")
        self.position_jitter, self.size_jitter = float(position_jitter), float(size_jitter)
        self.min_foreground, self.min_size = float(min_foreground), float(min_size)
        self.allow_empty, self.cycle, self.max_tries = bool(allow_empty), bool(cycle), int(max_tries)
        self.foreground: np.ndarray | None = None
        if foreground is not None:
            fg = np.asarray(foreground.detach().cpu() if isinstance(foreground, torch.Tensor) else foreground).astype(bool)
            fg = fg.reshape(fg.shape[-dims:]) if fg.ndim > dims and all(s == 1 for s in fg.shape[:-dims]) else fg
            if fg.shape != self.image_size:
                raise ValueError(f"BoxSampler: foreground has shape {fg.shape}, expected image_size {self.image_size}.")
            self.foreground = fg
            self._fg_integral = np.pad(fg.astype(np.int64), [(1, 0)] * dims)
            for ax in range(dims):
                self._fg_integral = np.cumsum(self._fg_integral, axis=ax)
        self._nonempty = [i for i, b in enumerate(sets) if len(b)]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataset(
        cls,
        dataset: Iterable[Mapping[str, Any]],
        box_key: str = "boxes",
        label_key: str = "box_labels",
        image_key: str = "image",
        foreground_threshold: float | None = -0.95,
        max_items: int | None = None,
        **kwargs: Any,
    ) -> BoxSampler:
        """Fit on the items of a (preprocessed) dataset: its boxes, and a brain mask from its images.

        The foreground mask holds the voxels where at least half the images exceed ``foreground_threshold``
        (images scaled to ``[-1, 1]`` have background near -1); None skips it.

        Args:
            dataset: items with ``image`` (C, *spatial) and ``boxes`` in the image's voxel coordinates (e.g. a
                MONAI ``CacheDataset`` with the training preprocessing).
            box_key: key of the boxes.
            label_key: key of the box labels (optional in the items).
            image_key: key of the image.
            foreground_threshold: intensity above which a voxel is foreground.
            max_items: use at most this many items.
            kwargs: the other arguments of :class:`BoxSampler`.
        """
        boxes, labels, size, fg_sum, count = [], [], None, None, 0
        for i, item in enumerate(dataset):
            if max_items is not None and i >= max_items:
                break
            if image_key not in item:
                raise KeyError(f"BoxSampler.from_dataset: item {i} has no {image_key!r} (keys {sorted(item)}).")
            img = item[image_key]
            arr = img.detach().cpu().float().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
            shape = tuple(arr.shape[1:])
            if size is None:
                size = shape
            elif shape != size:
                raise ValueError(
                    f"BoxSampler.from_dataset: images of different sizes ({size} and {shape}); resize them first."
                )
            b = as_box_array(item.get(box_key), spatial_dims=len(shape))
            lab = item.get(label_key)
            lab = np.zeros(len(b), dtype=np.int64) if lab is None else np.asarray(
                lab.detach().cpu() if isinstance(lab, torch.Tensor) else lab, dtype=np.int64
            ).reshape(-1)
            boxes.append(b)
            labels.append(lab)
            if foreground_threshold is not None:
                m = (arr.mean(axis=0) > foreground_threshold).astype(np.float64)
                fg_sum = m if fg_sum is None else fg_sum + m
            count += 1
        if size is None:
            raise ValueError("BoxSampler.from_dataset: the dataset is empty.")
        fg = (fg_sum / count >= 0.5) if fg_sum is not None else None
        return cls(boxes, size, label_sets=labels, foreground=fg, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, image_size: Sequence[int] | None = None, **kwargs: Any) -> BoxSampler:
        """Box sets from a JSON file: a saved sampler (:meth:`save`, it has a ``params`` entry) or a user's box sets.

        A user's file is ``{"image_size": [W, H], "box_sets": [{"boxes": [[x0, y0, x1, y1], ...], "box_labels":
        [0, ...]}, ...]}``, a plain list of such ``{"boxes": ...}`` dicts (or of box lists), or a datalist with a
        ``training`` list whose items carry ``boxes``; its sets are used as given, one per generated image in order
        (``cycle=True``, no jitter) unless ``kwargs`` say otherwise.

        Args:
            path: the JSON file.
            image_size: size the boxes refer to, when the file does not say.
            kwargs: other arguments of :class:`BoxSampler` (override the file's).
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"box file {p} does not exist; pass a JSON file of box sets (see BoxSampler.from_file).")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"box file {p} is not valid JSON: {err}.") from err
        params: dict[str, Any] = {}
        saved = isinstance(data, Mapping) and "box_sets" in data and "params" in data
        if isinstance(data, Mapping) and "box_sets" in data:
            sets = data["box_sets"]
            params = dict(data.get("params", {}))
            image_size = image_size or data.get("image_size")
            fg = data.get("foreground")
            if fg is not None:
                params["foreground"] = np.asarray(fg, dtype=bool)
        elif isinstance(data, Mapping) and "training" in data:
            sets = data["training"]
        elif isinstance(data, list):
            sets = data
        else:
            raise ValueError(f"box file {p}: expected {{'box_sets': [...]}}, a list of box sets, or a datalist.")
        if image_size is None:
            raise ValueError(f"box file {p} does not give image_size; pass image_size=[W, H] (the generator's size).")
        boxes, labels = [], []
        for s in sets:
            if isinstance(s, Mapping):
                b = s.get("boxes", [])
                lab = s.get("box_labels")
            else:
                b, lab = s, None
            arr = as_box_array(b, spatial_dims=len(image_size))
            boxes.append(arr)
            labels.append(np.zeros(len(arr), dtype=np.int64) if lab is None else np.asarray(lab, dtype=np.int64))
        if not saved:
            params.update(position_jitter=0.0, size_jitter=0.0, cycle=True)
        params.update(kwargs)
        try:
            return cls(boxes, image_size, label_sets=labels, **params)
        except ValueError as err:
            raise ValueError(f"box file {p}: {err}") from err

    def save(self, path: str | os.PathLike) -> Path:
        """Write the sampler (box sets, parameters, foreground mask) as JSON readable by :meth:`from_file`."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "image_size": list(self.image_size),
            "params": {
                "position_jitter": self.position_jitter,
                "size_jitter": self.size_jitter,
                "min_foreground": self.min_foreground,
                "min_size": self.min_size,
                "allow_empty": self.allow_empty,
                "cycle": self.cycle,
                "max_tries": self.max_tries,
            },
            "box_sets": [
                {"boxes": b.tolist(), "box_labels": [int(v) for v in lab]} for b, lab in zip(self.box_sets, self.label_sets)
            ],
        }
        if self.foreground is not None:
            data["foreground"] = self.foreground.astype(int).tolist()
        p.write_text(json.dumps(data))
        return p

    def __len__(self) -> int:
        return len(self.box_sets)

    # ------------------------------------------------------------------ statistics
    def statistics(self) -> dict[str, Any]:
        """Box count histogram and box side percentiles of the fitted sets (for docs and sanity checks)."""
        counts = np.bincount([len(b) for b in self.box_sets])
        all_boxes = np.concatenate([b for b in self.box_sets if len(b)] or [np.zeros((0, 2 * self.spatial_dims))])
        d = self.spatial_dims
        sides = all_boxes[:, d:] - all_boxes[:, :d]
        return {
            "num_sets": len(self.box_sets),
            "boxes_per_image": {int(k): int(v) for k, v in enumerate(counts)},
            "side_percentiles": {
                str(q): np.percentile(sides, q, axis=0).tolist() if len(sides) else None for q in (5, 50, 95)
            },
        }

    # ------------------------------------------------------------------ sampling
    def _fg_fraction(self, box: np.ndarray) -> float:
        if self.foreground is None:
            return 1.0
        d = self.spatial_dims
        lo = np.clip(np.floor(box[:d]).astype(int), 0, self.image_size)
        hi = np.clip(np.ceil(box[d:]).astype(int), 0, self.image_size)
        vol = float(np.prod(hi - lo))
        if vol <= 0:
            return 0.0
        s = self._fg_integral
        total = 0
        for corner in range(2**d):  # inclusion-exclusion over the corners of the integral image
            idx, sign = [], 1
            for ax in range(d):
                if corner >> ax & 1:
                    idx.append(hi[ax])
                else:
                    idx.append(lo[ax])
                    sign = -sign
            total += sign * int(s[tuple(idx)])
        return total / vol

    def _valid(self, box: np.ndarray, accepted: list[np.ndarray]) -> bool:
        d = self.spatial_dims
        size = np.asarray(self.image_size, dtype=np.float64)
        if np.any(box[:d] < 0) or np.any(box[d:] > size) or np.any(box[d:] - box[:d] < self.min_size):
            return False
        for other in accepted:
            if np.all(np.minimum(box[d:], other[d:]) > np.maximum(box[:d], other[:d])):
                return False
        return self._fg_fraction(box) >= self.min_foreground

    def _draw(self, rng: np.random.Generator, index: int | None) -> tuple[np.ndarray, np.ndarray]:
        if self.cycle and index is not None:
            k = int(index) % len(self.box_sets)
        elif self.allow_empty:
            k = int(rng.integers(len(self.box_sets)))
        else:
            k = self._nonempty[int(rng.integers(len(self._nonempty)))]
        template, labels = self.box_sets[k], self.label_sets[k]
        d = self.spatial_dims
        if self.position_jitter == 0 and self.size_jitter == 0:
            return template.astype(np.float32).copy(), labels.copy()
        accepted: list[np.ndarray] = []
        for box in template:
            side = box[d:] - box[:d]
            centre = (box[d:] + box[:d]) / 2
            chosen = None
            for _ in range(self.max_tries):
                new_side = np.maximum(side * np.exp(rng.normal(0.0, self.size_jitter, d)), self.min_size)
                new_centre = centre + rng.normal(0.0, self.position_jitter, d) * side
                cand = _round_box(np.concatenate([new_centre - new_side / 2, new_centre + new_side / 2]), d)
                if self._valid(cand, accepted):
                    chosen = cand
                    break
            accepted.append(chosen if chosen is not None else box.copy())
        out = np.asarray(accepted, dtype=np.float32).reshape(-1, 2 * d)
        return out, labels.copy()

    def sample(self, seed: int, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One box set, a function of ``seed`` (and ``index`` when ``cycle``) only.

        Returns:
            ``(boxes (N, 2 * D) float32, labels (N,) int64)``.
        """
        return self._draw(np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF), index)

    def randomize(self, data: Any = None) -> None:
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        """One box set drawn from the sampler's own random state (``set_random_state`` makes it repeatable)."""
        self.randomize()
        return self.sample(self._seed)


class BoxConditionDataset(Dataset):
    """``num_samples`` items ``{"seed", "index", "boxes", "box_labels"}`` for box-conditioned generation.

    Item ``i`` has seed ``seed + i`` and the boxes ``sampler.sample(seed + i, index=i)``, so every file of a
    synthetic set (image and boxes) can be regenerated from its seed. Use :func:`monai_gan_aug.data.gan_collate`
    as the DataLoader's ``collate_fn``.

    Args:
        num_samples: number of items.
        sampler: the :class:`BoxSampler`, or the path of a box file / saved sampler, read by
            :meth:`BoxSampler.from_file` when the first item is drawn (so a bundle's inference config builds before
            the file exists, e.g. before training).
        seed: seed of item 0.
        image_size: size the boxes of a ``sampler`` file refer to, when the file does not say.
    """

    def __init__(
        self, num_samples: int, sampler: BoxSampler | str | os.PathLike, seed: int = 0,
        image_size: Sequence[int] | None = None,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if not isinstance(sampler, (BoxSampler, str, os.PathLike)):
            raise TypeError(f"sampler must be a BoxSampler or the path of a box file, got {type(sampler).__name__}.")
        self.num_samples, self._sampler, self.seed, self.image_size = int(num_samples), sampler, int(seed), image_size

    @property
    def sampler(self) -> BoxSampler:
        if not isinstance(self._sampler, BoxSampler):
            self._sampler = BoxSampler.from_file(self._sampler, image_size=self.image_size)
        return self._sampler

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.num_samples:
            raise IndexError(i)
        boxes, labels = self.sampler.sample(self.seed + i, index=i)
        return {
            "seed": self.seed + i,
            "index": i,
            GanKeys.BOXES.value: torch.as_tensor(boxes, dtype=torch.float32),
            GanKeys.BOX_LABELS.value: torch.as_tensor(labels, dtype=torch.int64),
        }
