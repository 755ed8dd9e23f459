# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Copy-paste of real lesions: the cheap non-GAN baseline of the "does GAN augmentation help?" experiment.

Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for Instance Segmentation" (CVPR 2021)
paste objects with their masks from one training image into another and blend the edges. For medical lesions the
paste must land inside the organ (the foreground) and away from the lesions already there, and the lesion should
keep its *contrast* to the surrounding tissue rather than its absolute intensity.

:class:`LesionBank` cuts every connected lesion (``label > 0``) out of real training items: an image patch (the
lesion's tight box plus a margin), its mask, its label values, its box label and the mean intensity of a thin ring
around it. :class:`RandLesionCopyPasted` pastes lesions drawn from the bank into a data dict at random places where
the whole lesion lies inside the image and the foreground and no voxel lies within the feathering radius (at least
one voxel) of another lesion, so lesions never overlap or touch and every box stays the tight box of one connected
component. The image is blended with an alpha that is 1 on the lesion and falls off as ``exp(-d**2 / (2 sigma**2))``
with the distance ``d`` from the lesion, 0 beyond ``feather_radius``; the patch is shifted by the difference of the
target's and the source's ring means first (``match_intensity``). The label map, boxes (the tight box of each pasted
mask, the convention of :func:`~monai_gan_aug.transforms.boxes.array.mask_to_boxes`), box labels and image class are
updated together.

Build the bank from items loaded and preprocessed exactly like the items the transform will see (same intensity
scaling, same spatial size), and from the training split only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, optional_import

from monai_gan_aug.transforms.boxes.array import as_box_array, mask_to_boxes, shift_boxes

ndimage, _ = optional_import("scipy.ndimage")
signal, _ = optional_import("scipy.signal")

__all__ = [
    "Lesion",
    "LesionBank",
    "RandLesionCopyPaste",
    "RandLesionCopyPasteD",
    "RandLesionCopyPasteDict",
    "RandLesionCopyPasted",
    "feather_alpha",
]


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def feather_alpha(mask: np.ndarray, sigma: float, radius: int | None = None) -> np.ndarray:
    """Blending weights of a pasted lesion: 1 on ``mask``, ``exp(-d**2 / (2 sigma**2))`` at Euclidean distance ``d``
    from it, 0 where ``d > radius``.

    Args:
        mask: boolean lesion mask (any spatial rank). Leave ``radius`` voxels of room around the lesion.
        sigma: width of the falloff in voxels; 0 gives a hard-edged paste (alpha = mask).
        radius: feathering radius in voxels; ``None`` means ``ceil(3 * sigma)``.

    Raises:
        ValueError: for a negative ``sigma`` / ``radius`` or an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    if sigma < 0 or (radius is not None and radius < 0):
        raise ValueError(f"feather_alpha: sigma and radius must be >= 0, got sigma={sigma}, radius={radius}.")
    if not m.any():
        raise ValueError("feather_alpha: the mask is empty; there is no lesion to feather.")
    r = math.ceil(3 * sigma) if radius is None else int(radius)
    if sigma == 0 or r == 0:
        return m.astype(np.float64)
    d = ndimage.distance_transform_edt(~m)
    return np.where(d <= r, np.exp(-(d**2) / (2.0 * sigma**2)), 0.0)


@dataclass(frozen=True, eq=False)
class Lesion:
    """One lesion cut out of a training item (made by :class:`LesionBank`).

    Attributes:
        image: ``(C, *patch)`` float32 image patch: the tight box plus the bank's margin, clipped to the source.
        mask: ``patch``-shaped bool mask of the lesion's voxels (one connected component of ``label > 0``).
        labels: ``patch``-shaped int64 label values on the mask, 0 elsewhere.
        other: ``patch``-shaped bool mask of *other* lesions' voxels in the patch (never blended into a target).
        start: index in the patch where the lesion's tight box starts.
        size: the tight box's shape.
        box: the tight box in the source item (``[x0, y0, (z0,) x1, y1, (z1)]``).
        local_box: the tight box relative to its own start (``[0, .., size]``).
        value: the most frequent label value of the lesion.
        box_label: its box label (the source's box label when a source box equals the tight box, else ``value - 1``
            as in :func:`~monai_gan_aug.transforms.boxes.array.mask_to_boxes`).
        ring_mean: ``(C,)`` mean source intensity on the ring ``0 < d <= ring_width`` around the lesion (other lesions
            excluded); NaN when the ring is empty.
        source: index of the source item.
    """

    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    other: np.ndarray
    start: tuple[int, ...]
    size: tuple[int, ...]
    box: np.ndarray
    local_box: np.ndarray
    value: int
    box_label: int
    ring_mean: np.ndarray
    source: int

    @property
    def num_voxels(self) -> int:
        return int(self.mask.sum())

    def canvas(self, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(image, mask, labels, other)`` on the tight box grown by ``radius`` voxels per side; parts outside the
        stored patch are edge-padded (image) or empty (masks)."""
        lo = [s - radius for s in self.start]
        hi = [s + n + radius for s, n in zip(self.start, self.size)]
        pad = [(max(0, -a), max(0, b - n)) for a, b, n in zip(lo, hi, self.mask.shape)]
        region = tuple(slice(a + p[0], b + p[0]) for a, b, p in zip(lo, hi, pad))
        image = np.pad(self.image, [(0, 0), *pad], mode="edge")[(slice(None), *region)]
        return image, np.pad(self.mask, pad)[region], np.pad(self.labels, pad)[region], np.pad(self.other, pad)[region]


class LesionBank(Sequence):
    """Every connected lesion of a set of real training items, ready to be pasted by :class:`RandLesionCopyPasted`.

    A lesion is a face-connected component of ``label > 0`` (``scipy.ndimage.label``), the convention of
    :func:`~monai_gan_aug.transforms.boxes.array.mask_to_boxes` and of the demo dataset's boxes. Copy-paste as a
    baseline follows Ghiasi et al. (CVPR 2021); only real training lesions may enter the bank (items marked
    ``synthetic`` are refused, and validation / test items must not be passed).

    Args:
        items: loaded data dicts (arrays or tensors), preprocessed like the items the transform will see.
        image_key: the ``(C, *spatial)`` image.
        label_key: the ``(1, *spatial)`` integer lesion mask (0 background).
        box_key: the items' boxes, used only to look up each lesion's box label (may be absent).
        box_label_key: the items' box labels (may be absent).
        margin: voxels of context kept around each lesion's tight box (the feathering draws on it).
        ring_width: width in voxels of the ring whose mean intensity is matched when pasting (``<= margin``).
        min_size: components with fewer voxels are not banked.

    Raises:
        ValueError: an item without image or label, mismatched shapes, a synthetic item, bad arguments, or no lesion
            at all ("no lesion in the N training items: copy-paste needs labelled lesions").
        TypeError: an item that is not a mapping.
    """

    def __init__(
        self,
        items: Iterable[Mapping],
        image_key: str = "image",
        label_key: str = "label",
        box_key: str | None = "boxes",
        box_label_key: str | None = "box_labels",
        margin: int = 4,
        ring_width: int = 2,
        min_size: int = 1,
    ) -> None:
        for name, value, low in (("margin", margin, 0), ("ring_width", ring_width, 1), ("min_size", min_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"LesionBank: {name} must be an int >= {low}, got {value!r}.")
        if ring_width > margin:
            raise ValueError(
                f"LesionBank: ring_width={ring_width} exceeds margin={margin}; the ring must fit in the kept context, "
                "raise margin or lower ring_width."
            )
        self.image_key, self.label_key = image_key, label_key
        self.margin, self.ring_width, self.min_size = int(margin), int(ring_width), int(min_size)
        self.lesions: list[Lesion] = []
        self.channels: int | None = None
        self.spatial_dims: int | None = None
        n_items = 0
        for i, item in enumerate(items):
            n_items += 1
            self._add_item(i, item, box_key, box_label_key)
        self.num_items = n_items
        if not self.lesions:
            raise ValueError(
                f"LesionBank: no lesion in the {n_items} training items: copy-paste needs labelled lesions "
                f"(voxels with '{label_key}' > 0, at least {self.min_size} per lesion)."
            )

    def _add_item(self, i: int, item: Any, box_key: str | None, box_label_key: str | None) -> None:
        if not isinstance(item, Mapping):
            raise TypeError(f"LesionBank: item {i} must be a data dict, got {type(item).__name__}.")
        for key in (self.image_key, self.label_key):
            if key not in item:
                raise ValueError(f"LesionBank: item {i} has no '{key}' (keys: {sorted(map(str, item))}).")
        if bool(_numpy(item.get("synthetic", False)).any()):
            raise ValueError(
                f"LesionBank: item {i} is marked synthetic; the copy-paste baseline must use real training lesions only."
            )
        image = _numpy(item[self.image_key]).astype(np.float64)
        label = _numpy(item[self.label_key])
        if image.ndim not in (3, 4):
            raise ValueError(
                f"LesionBank: item {i} '{self.image_key}' must be channel-first (C, *spatial) with 2 or 3 spatial "
                f"dims, got shape {image.shape}."
            )
        if label.shape != (1, *image.shape[1:]):
            raise ValueError(
                f"LesionBank: item {i} '{self.label_key}' has shape {label.shape}; expected (1, *spatial) = "
                f"{(1, *image.shape[1:])} to match '{self.image_key}'."
            )
        if self.channels is None:
            self.channels, self.spatial_dims = image.shape[0], image.ndim - 1
        elif (image.shape[0], image.ndim - 1) != (self.channels, self.spatial_dims):
            raise ValueError(
                f"LesionBank: item {i} has {image.shape[0]} channels and {image.ndim - 1} spatial dims, the earlier "
                f"items {self.channels} and {self.spatial_dims}; bank items of one kind only."
            )
        values = np.rint(label[0].astype(np.float64))
        if not np.allclose(values, label[0]) or values.min() < 0:
            raise ValueError(
                f"LesionBank: item {i} '{self.label_key}' must hold non-negative integers (0 background, >0 lesion)."
            )
        values = values.astype(np.int64)
        comp, n = ndimage.label(values > 0)
        if n == 0:
            return
        item_boxes = item_labels = None
        if box_key is not None and box_label_key is not None and box_key in item and box_label_key in item:
            item_boxes = as_box_array(item[box_key])
            item_labels = _numpy(item[box_label_key]).reshape(-1)
            if len(item_labels) != len(item_boxes):
                item_boxes = item_labels = None
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        spatial = values.shape
        for idx, tight in enumerate(ndimage.find_objects(comp), start=1):
            if tight is None or sizes[idx] < self.min_size:
                continue
            start = tuple(s.start for s in tight)
            size = tuple(s.stop - s.start for s in tight)
            local_box = _numpy(mask_to_boxes((comp[tight] == idx)[None].astype(np.uint8))[0])[0].astype(np.float64)
            box = _numpy(shift_boxes(local_box[None], start))[0].astype(np.float64)
            lo = [max(0, s - self.margin) for s in start]
            hi = [min(n_ax, s + k + self.margin) for s, k, n_ax in zip(start, size, spatial)]
            region = tuple(slice(a, b) for a, b in zip(lo, hi))
            mask = comp[region] == idx
            other = (values[region] > 0) & ~mask
            counts = np.bincount(values[region][mask])
            value = int(np.argmax(counts))
            box_label = value - 1
            if item_boxes is not None and len(item_boxes) and item_boxes.shape[1] == box.shape[0]:
                hit = np.flatnonzero(np.all(np.abs(item_boxes - box) < 1e-3, axis=1))
                if len(hit):
                    box_label = int(item_labels[hit[0]])
            patch = image[(slice(None), *region)].astype(np.float32)
            d = ndimage.distance_transform_edt(~mask)
            ring = (d > 0) & (d <= self.ring_width) & ~other
            ring_mean = patch[:, ring].mean(axis=1) if ring.any() else np.full(patch.shape[0], np.nan)
            self.lesions.append(
                Lesion(
                    image=patch,
                    mask=mask,
                    labels=np.where(mask, values[region], 0),
                    other=other,
                    start=tuple(s - a for s, a in zip(start, lo)),
                    size=size,
                    box=box,
                    local_box=local_box,
                    value=value,
                    box_label=box_label,
                    ring_mean=ring_mean.astype(np.float64),
                    source=i,
                )
            )

    def __len__(self) -> int:
        return len(self.lesions)

    def __getitem__(self, index: int) -> Lesion:  # type: ignore[override]
        return self.lesions[index]

    def __repr__(self) -> str:
        return (
            f"LesionBank({len(self)} lesions from {self.num_items} items, {self.spatial_dims}D, "
            f"{self.channels} channel(s), margin={self.margin})"
        )


@dataclass
class _Prepared:
    """A lesion laid out for pasting: canvas = tight box grown by ``pad`` voxels per side."""

    image: np.ndarray  # (C, *canvas)
    mask: np.ndarray  # canvas bool
    labels: np.ndarray  # canvas int
    alpha: np.ndarray  # canvas float
    ring: np.ndarray  # canvas bool
    keep_out: np.ndarray  # canvas bool: where no other lesion may be
    tight: np.ndarray  # (*size) bool: the mask on its tight box


class _LesionPasteBase(RandomizableTransform):
    """Shared sampling and pasting of :class:`RandLesionCopyPaste` and :class:`RandLesionCopyPasted`."""

    def _init_paste(
        self,
        bank: LesionBank,
        prob: float,
        num_lesions: int | Sequence[int],
        sigma: float,
        feather_radius: int | None,
        match_intensity: bool,
        foreground_percentile: float,
        max_tries: int,
    ) -> None:
        name = type(self).__name__
        if not isinstance(bank, LesionBank):
            raise TypeError(f"{name}: bank must be a LesionBank, got {type(bank).__name__}.")
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"{name}: prob must be in [0, 1], got {prob}.")
        RandomizableTransform.__init__(self, prob=float(prob))
        if isinstance(num_lesions, (int, np.integer)) and not isinstance(num_lesions, bool):
            lo = hi = int(num_lesions)
        elif (
            isinstance(num_lesions, Sequence)
            and len(num_lesions) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in num_lesions)
        ):
            lo, hi = (int(v) for v in num_lesions)
        else:
            raise ValueError(f"{name}: num_lesions must be an int or a (min, max) pair of ints, got {num_lesions!r}.")
        if lo < 0 or hi < lo or hi < 1:
            raise ValueError(f"{name}: num_lesions needs 0 <= min <= max and max >= 1, got {num_lesions!r}.")
        if not float(sigma) >= 0:
            raise ValueError(f"{name}: sigma must be >= 0 voxels, got {sigma}.")
        radius = math.ceil(3 * float(sigma)) if feather_radius is None else feather_radius
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"{name}: feather_radius must be an int >= 0 (or None), got {feather_radius!r}.")
        if not 0.0 <= float(foreground_percentile) < 100.0:
            raise ValueError(f"{name}: foreground_percentile must be in [0, 100), got {foreground_percentile}.")
        if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
            raise ValueError(f"{name}: max_tries must be an int >= 1, got {max_tries!r}.")
        self.bank = bank
        self.num_lesions = (lo, hi)
        self.sigma = float(sigma)
        self.feather_radius = int(radius)
        self.match_intensity = bool(match_intensity)
        self.foreground_percentile = float(foreground_percentile)
        self.max_tries = int(max_tries)
        self._count = 0
        self._prepared: dict[int, _Prepared] = {}

    @property
    def separation(self) -> int:
        """Pasted lesions keep this many voxels (Euclidean) from every other lesion: the feathering radius, at least
        1 so that no two lesions touch and merge into one connected component."""
        return max(1, self.feather_radius)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._count = int(self.R.randint(self.num_lesions[0], self.num_lesions[1] + 1)) if self._do_transform else 0

    def _prepare(self, index: int) -> _Prepared:
        if index not in self._prepared:
            lesion = self.bank[index]
            pad = max(self.feather_radius, self.bank.ring_width, self.separation)
            image, mask, labels, other = lesion.canvas(pad)
            d = ndimage.distance_transform_edt(~mask)
            alpha = feather_alpha(mask, self.sigma, self.feather_radius)
            alpha[other] = 0.0
            tight = mask[tuple(slice(pad, pad + n) for n in lesion.size)]
            self._prepared[index] = _Prepared(
                image=image.astype(np.float64),
                mask=mask,
                labels=labels,
                alpha=alpha,
                ring=(d > 0) & (d <= self.bank.ring_width),
                keep_out=d <= self.separation,
                tight=tight,
            )
        return self._prepared[index]

    def _position(self, index: int, foreground: np.ndarray, occupied: np.ndarray) -> tuple[int, ...] | None:
        """A uniformly drawn tight-box start where the lesion fits (inside image and foreground, away from lesions),
        or ``None`` when there is none."""
        prep = self._prepare(index)
        size = self.bank[index].size
        if any(k > s for k, s in zip(size, foreground.shape)):
            return None
        outside = signal.correlate((~foreground).astype(np.float64), prep.tight.astype(np.float64), mode="valid")
        pad = (prep.mask.shape[0] - size[0]) // 2
        near = signal.correlate(np.pad(occupied.astype(np.float64), pad), prep.keep_out.astype(np.float64), "valid")
        free = np.argwhere((outside < 0.5) & (near < 0.5))
        if not len(free):
            return None
        return tuple(int(v) for v in free[self.R.randint(len(free))])

    def _paste_arrays(
        self, image: NdarrayOrTensor, label: NdarrayOrTensor, foreground: NdarrayOrTensor | None
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[Lesion, tuple[int, ...]]]]:
        """Paste ``self._count`` lesions; returns the new image (float64), label and ``(lesion, start)`` pairs."""
        name = type(self).__name__
        img = _numpy(image).astype(np.float64)
        lab = _numpy(label)
        if img.ndim != self.bank.spatial_dims + 1 or img.shape[0] != self.bank.channels:
            raise ValueError(
                f"{name}: image of shape {tuple(img.shape)} does not fit the bank ({self.bank.channels} channel(s), "
                f"{self.bank.spatial_dims} spatial dims); build the bank from items preprocessed like these."
            )
        spatial = img.shape[1:]
        if tuple(lab.shape) != (1, *spatial):
            raise ValueError(f"{name}: label of shape {tuple(lab.shape)}; expected (1, *spatial) = {(1, *spatial)}.")
        if foreground is not None:
            fg = _numpy(foreground)
            if fg.ndim != len(spatial) + 1 or tuple(fg.shape[1:]) != spatial:
                raise ValueError(
                    f"{name}: foreground map of shape {tuple(fg.shape)}; expected channel-first (k, *spatial) with "
                    f"spatial = {spatial}."
                )
            fg = np.any(fg > 0, axis=0)
        else:
            mean = img.mean(axis=0)
            fg = mean > np.percentile(mean, self.foreground_percentile)
        lab_out = lab.copy()
        placed: list[tuple[Lesion, tuple[int, ...]]] = []
        for _ in range(self._count):
            for _try in range(self.max_tries):
                index = int(self.R.randint(len(self.bank)))
                start = self._position(index, fg, lab_out[0] != 0)
                if start is not None:
                    self._blend(index, start, img, lab_out)
                    placed.append((self.bank[index], start))
                    break
        return img, lab_out, placed

    def _blend(self, index: int, start: tuple[int, ...], img: np.ndarray, lab: np.ndarray) -> None:
        prep = self._prepare(index)
        pad = (prep.mask.shape[0] - self.bank[index].size[0]) // 2
        origin = [s - pad for s in start]
        tgt = tuple(slice(max(0, o), min(n, o + c)) for o, n, c in zip(origin, img.shape[1:], prep.mask.shape))
        src = tuple(slice(t.start - o, t.stop - o) for t, o in zip(tgt, origin))
        patch = prep.image[(slice(None), *src)]
        region = img[(slice(None), *tgt)]
        lesion = self.bank[index]
        if self.match_intensity and np.all(np.isfinite(lesion.ring_mean)):
            ring = prep.ring[src] & (lab[(0, *tgt)] == 0)
            if ring.any():
                patch = patch + (region[:, ring].mean(axis=1) - lesion.ring_mean).reshape((-1,) + (1,) * len(tgt))
        alpha = prep.alpha[src][None]
        img[(slice(None), *tgt)] = (1.0 - alpha) * region + alpha * patch
        mask = prep.mask[src]
        lab[(0, *tgt)] = np.where(mask, prep.labels[src], lab[(0, *tgt)])


def _append_boxes(boxes: Any, new: np.ndarray, spatial_dims: int, name: str) -> Any:
    """``boxes`` + ``new`` rows, in the container type (and dtype) of ``boxes``."""
    old = as_box_array(boxes, spatial_dims=spatial_dims)
    out = np.concatenate([old, new.reshape(-1, 2 * spatial_dims)], axis=0)
    if isinstance(boxes, torch.Tensor):
        return torch.as_tensor(
            out, dtype=boxes.dtype if boxes.is_floating_point() else torch.float32, device=boxes.device
        )
    if isinstance(boxes, np.ndarray):
        return out.astype(boxes.dtype if np.issubdtype(boxes.dtype, np.floating) else np.float32)
    if boxes is None or isinstance(boxes, (list, tuple)):
        return [[float(v) for v in row] for row in out]
    raise TypeError(f"{name}: boxes must be a list, numpy array or tensor, got {type(boxes).__name__}.")


def _append_labels(labels: Any, new: Sequence[int], name: str) -> Any:
    if isinstance(labels, torch.Tensor):
        return torch.cat([labels.reshape(-1), torch.as_tensor(list(new), dtype=labels.dtype, device=labels.device)])
    if isinstance(labels, np.ndarray):
        return np.concatenate([labels.reshape(-1), np.asarray(list(new), dtype=labels.dtype)])
    if labels is None or isinstance(labels, (list, tuple)):
        return [int(v) for v in (labels or [])] + [int(v) for v in new]
    raise TypeError(f"{name}: box labels must be a list, numpy array or tensor, got {type(labels).__name__}.")


def _check_box_count(boxes: Any, labels: Any, spatial_dims: int, name: str) -> None:
    n_boxes = len(as_box_array(boxes, spatial_dims=spatial_dims))
    n_labels = int(_numpy(labels).size) if labels is not None else n_boxes
    if n_boxes != n_labels:
        raise ValueError(f"{name}: {n_boxes} boxes but {n_labels} box labels; give one label per box.")


class RandLesionCopyPaste(_LesionPasteBase):
    """Paste real lesions from a :class:`LesionBank` into an image and its label map (array version).

    Copy-paste augmentation (Ghiasi et al., CVPR 2021) as the non-GAN baseline; see the module docstring for the
    placement rules and the blending. Use :class:`RandLesionCopyPasted` for data dicts.

    Args:
        bank: the lesions.
        prob: probability of pasting into a sample.
        num_lesions: lesions per sample, an int or a ``(min, max)`` range (uniform, inclusive).
        sigma: feathering width in voxels (0: hard edges).
        feather_radius: alpha is 0 beyond this distance from the lesion; ``None`` means ``ceil(3 * sigma)``.
        match_intensity: shift the patch by the target's minus the source's ring mean, keeping the lesion's contrast.
        foreground_percentile: without a foreground map, the foreground is where the channel-mean image is strictly
            above this percentile of itself (a zero background is left out; a constant image has no foreground).
        max_tries: lesions drawn per slot before giving the slot up (e.g. every drawn lesion too big).
    """

    def __init__(
        self,
        bank: LesionBank,
        prob: float = 0.5,
        num_lesions: int | Sequence[int] = 1,
        sigma: float = 1.0,
        feather_radius: int | None = None,
        match_intensity: bool = True,
        foreground_percentile: float = 5.0,
        max_tries: int = 10,
    ) -> None:
        self._init_paste(
            bank, prob, num_lesions, sigma, feather_radius, match_intensity, foreground_percentile, max_tries
        )

    def __call__(
        self,
        image: NdarrayOrTensor,
        label: NdarrayOrTensor,
        boxes: Any = None,
        box_labels: Any = None,
        foreground: NdarrayOrTensor | None = None,
        randomize: bool = True,
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor, Any, Any]:
        """Returns ``(image, label, boxes, box_labels)``; boxes / labels get one entry per pasted lesion (``None`` in
        stays ``None`` out).

        Args:
            image: ``(C, *spatial)``.
            label: ``(1, *spatial)`` integer lesion mask.
            boxes: ``(N, 2 * D)`` boxes of the existing lesions.
            box_labels: ``(N,)`` their labels.
            foreground: ``(k, *spatial)`` map, > 0 where lesions may go.
            randomize: draw anew (``False`` reuses the last draw of the paste decision and count).
        """
        name = type(self).__name__
        dims = self.bank.spatial_dims
        if boxes is not None:
            _check_box_count(boxes, box_labels, dims, name)
        if randomize:
            self.randomize()
        if self._count == 0:
            return image, label, boxes, box_labels
        img, lab, placed = self._paste_arrays(image, label, foreground)
        if not placed:
            return image, label, boxes, box_labels
        new_boxes = np.stack([_numpy(shift_boxes(les.local_box[None], start))[0] for les, start in placed])
        out_image = convert_to_dst_type(img, image, dtype=image.dtype)[0]
        out_label = convert_to_dst_type(lab, label, dtype=label.dtype)[0]
        out_boxes = None if boxes is None else _append_boxes(boxes, new_boxes, dims, name)
        out_labels = (
            None if box_labels is None else _append_labels(box_labels, [les.box_label for les, _ in placed], name)
        )
        return out_image, out_label, out_boxes, out_labels


class RandLesionCopyPasted(MapTransform, _LesionPasteBase):
    """With probability ``prob``, paste real lesions from a :class:`LesionBank` into a data dict: image, label map,
    boxes, box labels and image class change together.

    Copy-paste augmentation (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for Instance
    Segmentation", CVPR 2021) is the cheap non-GAN baseline every "does GAN augmentation help?" table needs. Each
    pasted lesion lies wholly inside the image and the foreground (``foreground_key``'s map > 0, else the image above
    ``foreground_percentile``), keeps ``max(1, feather_radius)`` voxels away from every other lesion, and gets one new
    box (the tight box of its pasted mask) and box label; ``class`` becomes 1. A slot whose ``max_tries`` drawn
    lesions all fail to fit is skipped; lesions are never cropped. All randomness comes from ``self.R``, so
    ``set_random_state(seed)`` makes it repeatable.

    Args:
        bank: the lesions (built from the training split, preprocessed like these items).
        prob: probability of pasting into a sample.
        num_lesions: lesions per sample, an int or a ``(min, max)`` range (uniform, inclusive).
        image_key: the ``(C, *spatial)`` image.
        label_key: the ``(1, *spatial)`` integer lesion mask.
        box_key: the ``(N, 2 * D)`` boxes; ``None``: boxes are not updated.
        box_label_key: the ``(N,)`` box labels; ``None``: not updated.
        class_key: the image-level class, set to 1 when a lesion is pasted; ``None``: not updated.
        foreground_key: a ``(k, *spatial)`` map (e.g. ``"tissue"``), > 0 where lesions may go; ``None``: the image
            above ``foreground_percentile``.
        sigma: feathering width in voxels (0: hard edges).
        feather_radius: alpha is 0 beyond this distance from the lesion; ``None`` means ``ceil(3 * sigma)``.
        match_intensity: shift the patch by the target's minus the source's ring mean, keeping the lesion's contrast.
        foreground_percentile: see ``foreground_key``; "above" is strict (a zero background is left out; a constant
            image has no foreground).
        max_tries: lesions drawn per slot before giving the slot up.
        allow_missing_keys: a missing box / box label / class / foreground key is skipped (the foreground then falls
            back to the percentile) instead of raising.

    Raises:
        KeyError: at call time, an item lacks the image or label, or (unless ``allow_missing_keys``) another
            configured key.
        ValueError: bad arguments; at call time shapes that do not match each other or the bank, or a box count
            that differs from the box label count.
    """

    def __init__(
        self,
        bank: LesionBank,
        prob: float = 0.5,
        num_lesions: int | Sequence[int] = 1,
        image_key: str = "image",
        label_key: str = "label",
        box_key: str | None = "boxes",
        box_label_key: str | None = "box_labels",
        class_key: str | None = "class",
        foreground_key: str | None = None,
        sigma: float = 1.0,
        feather_radius: int | None = None,
        match_intensity: bool = True,
        foreground_percentile: float = 5.0,
        max_tries: int = 10,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, [image_key], allow_missing_keys)
        self._init_paste(
            bank, prob, num_lesions, sigma, feather_radius, match_intensity, foreground_percentile, max_tries
        )
        self.image_key, self.label_key = image_key, label_key
        self.box_key, self.box_label_key, self.class_key = box_key, box_label_key, class_key
        self.foreground_key = foreground_key

    def _optional(self, d: Mapping, key: str | None, role: str) -> bool:
        """Whether ``key`` is configured and present; raises for a configured, missing key unless allowed."""
        if key is None:
            return False
        if key in d:
            return True
        if self.allow_missing_keys:
            return False
        raise KeyError(
            f"{type(self).__name__}: the item has no '{key}' ({role}); keys: {sorted(map(str, d))}. Pass "
            f"{role}=None to leave it out, or allow_missing_keys=True."
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        name = type(self).__name__
        for key in (self.image_key, self.label_key):
            if key not in d:
                raise KeyError(f"{name}: the item has no '{key}'; keys: {sorted(map(str, d))}.")
        has_boxes = self._optional(d, self.box_key, "box_key")
        has_labels = self._optional(d, self.box_label_key, "box_label_key")
        has_class = self._optional(d, self.class_key, "class_key")
        has_fg = self._optional(d, self.foreground_key, "foreground_key")
        dims = self.bank.spatial_dims
        if has_boxes and has_labels:
            _check_box_count(d[self.box_key], d[self.box_label_key], dims, name)
        self.randomize(None)
        if self._count == 0:
            return d
        img, lab, placed = self._paste_arrays(
            d[self.image_key], d[self.label_key], d[self.foreground_key] if has_fg else None
        )
        if not placed:
            return d
        image, label = d[self.image_key], d[self.label_key]
        d[self.image_key] = convert_to_dst_type(img, image, dtype=image.dtype)[0]
        d[self.label_key] = convert_to_dst_type(lab, label, dtype=label.dtype)[0]
        if has_boxes:
            new_boxes = np.stack([_numpy(shift_boxes(les.local_box[None], start))[0] for les, start in placed])
            d[self.box_key] = _append_boxes(d[self.box_key], new_boxes, dims, name)
        if has_labels:
            d[self.box_label_key] = _append_labels(d[self.box_label_key], [les.box_label for les, _ in placed], name)
        if has_class:
            c = d[self.class_key]
            if isinstance(c, torch.Tensor):
                d[self.class_key] = torch.ones_like(c)
            elif isinstance(c, np.ndarray):
                d[self.class_key] = np.ones_like(c)
            else:
                d[self.class_key] = 1
        return d


RandLesionCopyPasteD = RandLesionCopyPasteDict = RandLesionCopyPasted
