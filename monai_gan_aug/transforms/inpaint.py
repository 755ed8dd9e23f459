# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion-in-context data for MCGAN-style inpainting (Han et al., 3DV 2019, arXiv 1906.04962).

MCGAN trains on patches of real scans centred on a real lesion whose box is replaced by noise (64^3 patches, a
central 32^3 noise box, in the paper) and generates by filling a box of a real scan. This module holds:

* :class:`LesionContextCrop` / :class:`LesionContextCropd`: crop a ``patch_size`` patch centred on a box (moved
  inside the image at its borders), with the box mask, the noise-filled generator input and the box in patch
  coordinates. Training picks one of the item's real lesion boxes at random; with ``box_index`` it crops around a
  given (requested) box. Noise and choice come from ``self.R``.
* :class:`LesionInpaintDataset`: the inference items: real slices (preprocessed once) with the new boxes to fill,
  planned up front (deterministic per seed) so that a bad request stops the run before anything is generated.
  New boxes come from a :class:`~monai_gan_aug.transforms.conditions.BoxSampler` fitted on the training boxes (or a
  user's box file): each must lie inside the image and the slice's foreground (``tissue > 0``), fit the
  generator's patch, and keep ``gap`` voxels away from existing lesions (mask and boxes) and other new boxes.
* :func:`lesion_items`, :func:`load_box_file`, :func:`inpaint_collate`.

A box covers voxel ``i`` along an axis when ``floor(x0) <= i < ceil(x1)`` (``docs/conventions.md``); the box
mask and the patch-local box use these whole-voxel corners.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import ensure_tuple_rep
from torch.utils.data import Dataset

from monai_gan_aug.data.collate import gan_collate
from monai_gan_aug.transforms.boxes.array import as_box_array
from monai_gan_aug.transforms.conditions import BoxSampler

__all__ = [
    "INPAINT_BOX",
    "INPAINT_INPUT",
    "INPAINT_MASK",
    "LESION_SIZE",
    "NEW_BOXES",
    "NEW_BOX_LABELS",
    "SOURCE_IMAGE",
    "LesionContextCrop",
    "LesionContextCropD",
    "LesionContextCropDict",
    "LesionContextCropd",
    "LesionInpaintDataset",
    "box_region",
    "context_window",
    "inpaint_collate",
    "lesion_items",
    "load_box_file",
]

INPAINT_INPUT = "inpaint_input"  # the patch with its box filled with noise
INPAINT_MASK = "inpaint_mask"  # (1, *P) box mask
INPAINT_BOX = "inpaint_box"  # the box in patch coordinates
INPAINT_START = "inpaint_start"  # the patch's corner in the image
LESION_SIZE = "lesion_size"  # box sides over patch sides
NEW_BOXES, NEW_BOX_LABELS = "new_boxes", "new_box_labels"  # inference: boxes to fill
SOURCE_IMAGE = "source_image"  # inference: the real slice the lesions are added to (its datalist image path)


def box_region(box: Any, spatial_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole-voxel ``(lo, hi)`` int arrays of one box (``floor`` of the low, ``ceil`` of the high corners)."""
    b = as_box_array(box, spatial_dims=spatial_dims)
    if b.shape[0] != 1:
        raise ValueError(f"box_region takes one box, got {b.shape[0]}.")
    lo, hi = np.floor(b[0, :spatial_dims] + 1e-6).astype(int), np.ceil(b[0, spatial_dims:] - 1e-6).astype(int)
    if np.any(hi <= lo):
        raise ValueError(f"box {b[0].tolist()} is empty (x1 <= x0 on some axis).")
    return lo, hi


def context_window(
    lo: np.ndarray, hi: np.ndarray, spatial_shape: Sequence[int], patch_size: Sequence[int]
) -> np.ndarray:
    """Start of the ``patch_size`` window centred on the box ``[lo, hi)``, moved inside the image at its borders."""
    size, patch = np.asarray(spatial_shape, dtype=int), np.asarray(patch_size, dtype=int)
    if np.any(patch > size):
        raise ValueError(f"the patch {tuple(patch)} is larger than the image {tuple(size)}; lower patch_size.")
    start = np.floor((lo + hi) / 2.0 - patch / 2.0 + 0.5).astype(int)
    return np.clip(start, 0, size - patch)


def _region(lo: Sequence[int], hi: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _tensor(x: Any) -> torch.Tensor:
    if hasattr(x, "as_tensor"):  # MetaTensor
        return x.as_tensor().float()
    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).float()


def _noun(spatial_dims: int) -> str:
    """What one real image is called in messages: a 2D slice or a 3D volume."""
    return "volume" if spatial_dims == 3 else "slice"


def _name(x: Any, fallback: str = "the item") -> str:
    meta = getattr(x, "meta", None)
    return str(meta.get("filename_or_obj", fallback)) if isinstance(meta, Mapping) else fallback


class LesionContextCrop(Transform):
    """Crop the context patch around one box and fill the box with noise (array version).

    ``__call__(image, box, noise)`` with a ``(C, *S)`` image, one box and a ``(C, *P)`` noise tensor returns a dict:
    ``patch`` (the real patch), ``input`` (the patch with the box replaced by the noise), ``mask`` ``(1, *P)`` (1 in
    the box), ``box`` (the whole-voxel box in patch coordinates, ``(2 * D,)``), ``start`` (the patch's corner in the
    image) and ``size`` (box sides over patch sides, ``(D,)``: the optional lesion-size condition).

    Args:
        patch_size: patch side (int) or sides.
        margin: voxels the box must leave to each patch side (room for the blend ring and some context).

    Raises:
        ValueError: the box lies outside the image, or does not fit the patch with its margin.
    """

    def __init__(self, patch_size: int | Sequence[int], margin: int = 2) -> None:
        self.patch_size, self.margin = patch_size, int(margin)
        if self.margin < 0:
            raise ValueError(f"LesionContextCrop: margin must be >= 0, got {margin}.")

    def patch_shape(self, spatial_dims: int) -> tuple[int, ...]:
        p = tuple(int(s) for s in ensure_tuple_rep(self.patch_size, spatial_dims))
        if min(p) < 1:
            raise ValueError(f"LesionContextCrop: patch_size must be positive, got {self.patch_size}.")
        return p

    def fits(self, lo: np.ndarray, hi: np.ndarray, spatial_dims: int) -> bool:
        return bool(np.all(hi - lo <= np.asarray(self.patch_shape(spatial_dims)) - 2 * self.margin))

    def __call__(self, image: Any, box: Any, noise: torch.Tensor) -> dict[str, Any]:
        img = _tensor(image)
        dims, size = img.ndim - 1, tuple(img.shape[1:])
        patch = self.patch_shape(dims)
        lo, hi = box_region(box, dims)
        if np.any(lo < 0) or np.any(hi > np.asarray(size)):
            box_text = np.concatenate([lo, hi]).tolist()
            raise ValueError(f"LesionContextCrop: box {box_text} lies outside the image {size}.")
        if not self.fits(lo, hi, dims):
            raise ValueError(
                f"LesionContextCrop: box sides {(hi - lo).tolist()} do not fit a {patch} patch with a "
                f"{self.margin}-voxel margin (at most {(np.asarray(patch) - 2 * self.margin).tolist()}); raise patch_size."
            )
        start = context_window(lo, hi, size, patch)
        crop = img[(slice(None), *_region(start, start + np.asarray(patch)))]
        mask = torch.zeros((1, *patch), dtype=crop.dtype, device=crop.device)
        mask[(slice(None), *_region(lo - start, hi - start))] = 1.0
        noise = noise.to(device=crop.device, dtype=crop.dtype)
        if tuple(noise.shape) != tuple(crop.shape):
            raise ValueError(
                f"LesionContextCrop: noise of shape {tuple(noise.shape)} for a patch of shape {tuple(crop.shape)}."
            )
        return {
            "patch": crop,
            "input": crop * (1.0 - mask) + noise * mask,
            "mask": mask,
            "box": torch.as_tensor(np.concatenate([lo - start, hi - start]), dtype=torch.float32),
            "start": torch.as_tensor(start, dtype=torch.int64),
            "size": torch.as_tensor((hi - lo) / np.asarray(patch, dtype=np.float64), dtype=torch.float32),
        }


class LesionContextCropd(Randomizable, MapTransform):
    """MCGAN training patches (Han et al. 2019): a patch centred on one lesion box, its box filled with noise.

    The first key is the image: it becomes the real patch, and ``input_key`` the patch with the box replaced by
    standard normal noise. Other keys (e.g. ``label``, ``tissue``) are cropped to the same window. Also written:
    ``mask_key`` ``(1, *P)`` box mask, ``local_box_key`` the box in patch coordinates, ``size_key`` the box sides
    over the patch sides, ``start_key`` the patch corner. With ``box_index=None`` one of the item's boxes that fit
    the patch is drawn at random (training); an int crops around that box (e.g. of a requested-box key).

    Args:
        keys: image key first, then keys cropped with it.
        patch_size: patch side(s), e.g. 64 for 128 px slices.
        box_key: the item's boxes (voxel corners of the image).
        box_index: ``None`` (random) or the index of the box to use.
        margin: voxels the box must leave to each patch side.
        input_key, mask_key, local_box_key, size_key, start_key: output keys.
        allow_missing_keys: skip missing extra keys.

    Raises:
        KeyError: no image or box key.
        ValueError: no box of the item fits the patch (the message names the file), or ``box_index`` is out of range.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int | Sequence[int],
        box_key: str = "boxes",
        box_index: int | None = None,
        margin: int = 2,
        input_key: str = INPAINT_INPUT,
        mask_key: str = INPAINT_MASK,
        local_box_key: str = INPAINT_BOX,
        size_key: str = LESION_SIZE,
        start_key: str = INPAINT_START,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.cropper = LesionContextCrop(patch_size, margin)
        self.box_key, self.box_index = box_key, box_index
        self.out_keys = (input_key, mask_key, local_box_key, size_key, start_key)
        self._choice, self._noise = 0, None

    def randomize(self, data: Any = None) -> None:
        n_choices, shape = data
        self._choice = int(self.R.randint(n_choices)) if n_choices > 1 else 0
        self._noise = torch.from_numpy(self.R.standard_normal(shape).astype(np.float32))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d, name = dict(data), type(self).__name__
        key = self.keys[0]
        for k in (key, self.box_key):
            if k not in d:
                raise KeyError(f"{name}: the item has no {k!r}; keys: {sorted(map(str, d))}.")
        image = d[key]
        dims = len(image.shape) - 1
        boxes = as_box_array(d[self.box_key], spatial_dims=dims)
        where = _name(image, f"the item's {key!r}")
        if self.box_index is None:
            fitting = [i for i, b in enumerate(boxes) if self.cropper.fits(*box_region(b, dims), dims)]
            if not fitting:
                sides = (boxes[:, dims:] - boxes[:, :dims]).tolist()
                raise ValueError(
                    f"{name}: {where} has no lesion box that fits a {self.cropper.patch_shape(dims)} patch with a "
                    f"{self.cropper.margin}-voxel margin (box sides {sides}); leave items without boxes out "
                    "(lesion_items; boxes the preprocessing cropped away count as missing: CropResizeToPowerOfTwod "
                    "mode='pad' keeps them) and raise patch_size for large lesions."
                )
        else:
            if not 0 <= self.box_index < len(boxes):
                raise ValueError(f"{name}: box_index {self.box_index} but {where} has {len(boxes)} box(es).")
            fitting = [self.box_index]
        self.randomize((len(fitting), (int(image.shape[0]), *self.cropper.patch_shape(dims))))
        out = self.cropper(image, boxes[fitting[self._choice]], self._noise)
        start, stop = out["start"].numpy(), out["start"].numpy() + np.asarray(out["patch"].shape[1:])
        d[key] = out["patch"]
        for k in self.key_iterator(d):
            if k != key:
                d[k] = _tensor(d[k])[(slice(None), *_region(start, stop))]
        for k, v in zip(self.out_keys, ("input", "mask", "box", "size", "start")):
            d[k] = out[v]
        return d


LesionContextCropD = LesionContextCropDict = LesionContextCropd


def lesion_items(datalist: Sequence[Mapping], box_key: str = "boxes") -> list[dict]:
    """The items of ``datalist`` with at least one box (MCGAN trains on lesion patches only).

    Raises:
        ValueError: when no item has a box.
    """
    items = [dict(it) for it in datalist if len(as_box_array(it.get(box_key)))]
    if not items:
        raise ValueError(
            f"lesion_items: none of the {len(datalist)} training items has a box under {box_key!r}; the lesion "
            "inpainting GAN trains on patches around real lesion boxes."
        )
    return items


def load_box_file(path: str, image_size: Sequence[int]) -> BoxSampler:
    """A user's requested boxes (:meth:`BoxSampler.from_file` formats, used as given); every error names the file.

    Boxes are ``[x0, y0, x1, y1]`` for 2D, ``[x0, y0, z0, x1, y1, z1]`` for 3D (``len(image_size)``), in voxels of the
    preprocessed images. A file that states its ``image_size`` must state the generator's.

    Raises:
        FileNotFoundError / ValueError: a missing file, invalid JSON, malformed boxes, an ``image_size`` other than
            the generator's (e.g. a 2D file for a 3D generator) or boxes outside ``image_size``.
    """
    size = [int(s) for s in image_size]
    try:  # the file's own image_size, when it states one (unreadable files: from_file names the problem)
        stated = json.loads(Path(path).read_text())
        stated = stated.get("image_size") if isinstance(stated, Mapping) else None
    except (OSError, ValueError):
        stated = None
    if stated is not None:
        try:
            stated_size = [int(s) for s in stated]
        except (TypeError, ValueError):
            raise ValueError(f"box file {path}: image_size must be a list of ints, got {stated!r}.") from None
        if stated_size != size:
            corners = "[x0, y0, z0, x1, y1, z1]" if len(size) == 3 else "[x0, y0, x1, y1]"
            raise ValueError(
                f"box file {path}: its boxes refer to images of size {stated_size}, the generator makes "
                f"{len(size)}D images of size {size}; give {corners} boxes in the coordinates of the preprocessed "
                "images (the trained image_size)."
            )
    try:
        return BoxSampler.from_file(path, image_size=image_size)
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"box file {path}: {err}") from err


def inpaint_collate(batch: Sequence[Any]) -> Any:
    """:func:`~monai_gan_aug.data.gan_collate` that also keeps ``new_boxes`` / ``new_box_labels`` ragged."""
    items = [dict(b) for b in batch]
    extra = {k: [it.pop(k) for it in items] for k in (NEW_BOXES, NEW_BOX_LABELS, SOURCE_IMAGE) if k in items[0]}
    out = gan_collate(items)
    out.update(extra)
    return out


def _window_sums(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """For every window start, the number of true voxels of ``mask`` in the window of ``size`` (integral image)."""
    dims = mask.ndim
    ii = np.pad(mask.astype(np.int64), [(1, 0)] * dims)
    for ax in range(dims):
        ii = np.cumsum(ii, axis=ax)
    out = 0
    for corner in itertools.product((0, 1), repeat=dims):
        sl = tuple(slice(size[a], None) if c else slice(0, ii.shape[a] - size[a]) for a, c in enumerate(corner))
        out = out + (-1) ** (dims - sum(corner)) * ii[sl]
    return np.asarray(out)


@dataclass
class _Slice:
    name: str
    image: torch.Tensor  # (C, *S) float32
    label: torch.Tensor  # (1, *S) uint8
    foreground: np.ndarray  # S bool
    occupied: np.ndarray  # S bool: existing lesions and boxes
    boxes: np.ndarray
    labels: np.ndarray


class LesionInpaintDataset(Dataset):
    """Inference items for lesion inpainting: real slices and the new lesion boxes to fill, one item per seed.

    Item ``i`` (seed ``seed + i``) takes slice ``i % len(data)`` (the next slice with room when a sampled box set
    finds none) and ``num_lesions`` new boxes. Sampled boxes (``requested=False``): box sets drawn from ``sampler``
    (fitted on the slices' own boxes when None: the training boxes) until ``num_lesions`` boxes pass the checks below,
    then, after ``max_tries`` draws, sampled sizes at random valid places. Requested boxes (``requested=True``, a
    user's box file): box set ``i % len(sampler)``, every box must pass, or a ``ValueError`` names the box, the slice
    and the reason. The checks: inside the image; sides at most ``patch_size - 2 * margin``; at least
    ``min_foreground`` of its voxels in the foreground (``foreground_key`` map > 0, else the image above
    ``foreground_threshold``); no voxel within ``gap`` of an existing lesion (label > 0 or box) or another new box.
    Every slice is preprocessed once and kept in memory, and every item is planned in the constructor, so errors
    come before anything is generated.

    Items: ``seed``, ``index``, ``source`` (slice index), ``source_image`` (the slice's image path), the image, the
    ``(1, *S)`` uint8 lesion mask (zeros when the slice has none), the existing boxes and box labels (under the given
    keys), ``new_boxes`` and ``new_box_labels``; collate with :func:`inpaint_collate`.

    Args:
        data: datalist items of the real slices (training split).
        transform: their preprocessing (load, channel-first, scale to [-1, 1], optional resize); None: the items hold
            arrays already.
        patch_size: the generator's patch side(s).
        image_size: the slice size the generator was trained on; a slice of another size is refused.
        num_samples: number of items (default: one per slice).
        seed: seed of item 0.
        sampler: box sampler (fitted on the slices' boxes when None).
        requested: the sampler holds requested boxes (user box file), used as given.
        num_lesions: new boxes per sampled item.
        margin, gap, min_foreground, max_tries, foreground_threshold: see above.
        image_key, label_key, foreground_key, box_key, box_label_key: item keys.
    """

    def __init__(
        self,
        data: Sequence[Mapping],
        transform: Callable | None,
        patch_size: int | Sequence[int],
        image_size: int | Sequence[int] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
        sampler: BoxSampler | None = None,
        requested: bool = False,
        num_lesions: int = 1,
        margin: int = 2,
        gap: int = 1,
        min_foreground: float = 1.0,
        max_tries: int = 50,
        foreground_threshold: float = -0.95,
        image_key: str = "image",
        label_key: str = "label",
        foreground_key: str | None = "tissue",
        box_key: str = "boxes",
        box_label_key: str = "box_labels",
    ) -> None:
        name = type(self).__name__
        if not data:
            raise ValueError(f"{name}: no real slices to add lesions to.")
        if num_lesions < 1 or gap < 0 or max_tries < 1 or not 0 <= min_foreground <= 1:
            raise ValueError(f"{name}: need num_lesions >= 1, gap >= 0, max_tries >= 1, 0 <= min_foreground <= 1.")
        self.cropper = LesionContextCrop(patch_size, margin)
        self.seed, self.requested, self.num_lesions = int(seed), bool(requested), int(num_lesions)
        self.keys = (image_key, label_key, box_key, box_label_key)
        self.gap, self.min_foreground, self.max_tries = int(gap), float(min_foreground), int(max_tries)
        keys = (image_key, label_key, foreground_key, box_key, box_label_key)
        self.slices = [self._load(i, item, transform, image_size, foreground_threshold, keys) for i, item in enumerate(data)]
        self.spatial_size = tuple(self.slices[0].foreground.shape)
        other = next((s for s in self.slices if s.foreground.shape != self.spatial_size), None)
        if other is not None:
            raise ValueError(
                f"{name}: slice {other.name} is {other.foreground.shape}, slice {self.slices[0].name} is "
                f"{self.spatial_size}; resize the slices to one size (the generator's image_size)."
            )
        dims = len(self.spatial_size)
        context_window(np.zeros(dims, int), np.ones(dims, int), self.spatial_size, self.cropper.patch_shape(dims))
        if sampler is None:
            sets = [(s.boxes, s.labels) for s in self.slices if len(s.boxes)]
            if not sets:
                raise ValueError(
                    f"{name}: none of the {len(self.slices)} slices has a lesion box to fit the box sampler on; pass a "
                    "box file."
                )
            boxes, labels = [b for b, _ in sets], [lab for _, lab in sets]
            sampler = BoxSampler(boxes, self.spatial_size, label_sets=labels, allow_empty=False)
        if not isinstance(sampler, BoxSampler) or tuple(sampler.image_size) != self.spatial_size:
            raise ValueError(
                f"{name}: the boxes refer to images of size {getattr(sampler, 'image_size', None)}, the "
                f"{_noun(dims)}s are {self.spatial_size}; give boxes in the coordinates of the preprocessed "
                f"{_noun(dims)}s."
            )
        self.sampler = sampler
        self.num_samples = len(self.slices) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"{name}: num_samples must be >= 1, got {num_samples}.")
        self.plan = [self._plan(i) for i in range(self.num_samples)]

    @staticmethod
    def _load(i: int, item: Mapping, transform: Callable | None, image_size: Any, threshold: float, keys: tuple) -> _Slice:
        image_key, label_key, fg_key, box_key, box_label_key = keys
        where = str(item.get(image_key, f"item {i}")) if isinstance(item, Mapping) else f"item {i}"
        d = transform(dict(item)) if transform is not None else dict(item)
        image = _tensor(d[image_key])
        dims = image.ndim - 1
        if image_size is not None:
            expected = tuple(int(s) for s in ensure_tuple_rep(image_size, dims))
            if tuple(image.shape[1:]) != expected:
                noun = _noun(dims)
                raise ValueError(
                    f"LesionInpaintDataset: {noun} {where} is {tuple(image.shape[1:])} after preprocessing, the "
                    f"generator was trained on {expected} {noun}s (its lesion scale is in voxels); resize the {noun}s "
                    f"to {expected} (inference's resize_slices) or pass {noun}s of that size."
                )
        if d.get(label_key) is not None:
            label = (_tensor(d[label_key]) > 0).any(0, keepdim=True)
        else:
            label = torch.zeros((1, *image.shape[1:]), dtype=torch.bool)
        if fg_key is not None and d.get(fg_key) is not None:
            fg = (_tensor(d[fg_key]) > 0).any(0).numpy()
        else:
            fg = (image.mean(0) > threshold).numpy()
        boxes = as_box_array(d.get(box_key), spatial_dims=dims).astype(np.float32)
        labels = d.get(box_label_key)
        labels = np.zeros(len(boxes), np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
        occupied = label.any(0).numpy().copy()
        for b in boxes:
            occupied[_region(*box_region(b, dims))] = True
        return _Slice(where, image, label.to(torch.uint8), fg, occupied, boxes, labels)

    def problem(self, box: Any, s: _Slice, occupied: np.ndarray) -> str | None:
        """Why ``box`` cannot be filled in slice ``s`` (None: it can)."""
        dims, size = len(self.spatial_size), np.asarray(self.spatial_size)
        lo, hi = box_region(box, dims)
        if np.any(lo < 0) or np.any(hi > size):
            return f"it lies outside the image of size {self.spatial_size}"
        if not self.cropper.fits(lo, hi, dims):
            patch = np.asarray(self.cropper.patch_shape(dims))
            allowed = (patch - 2 * self.cropper.margin).tolist()
            return f"its sides {(hi - lo).tolist()} exceed what the {patch.tolist()} patch allows ({allowed})"
        frac = float(s.foreground[_region(lo, hi)].mean())
        if frac < self.min_foreground:
            return f"only {frac:.0%} of it lies in the foreground (tissue), {self.min_foreground:.0%} is needed"
        if occupied[_region(np.maximum(lo - self.gap, 0), hi + self.gap)].any():
            return f"it overlaps or lies within {self.gap} voxel(s) of an existing lesion or another new box"
        return None

    def _mark(self, occupied: np.ndarray, box: np.ndarray) -> None:
        occupied[_region(*box_region(box, len(self.spatial_size)))] = True

    def _random_place(
        self, rng: np.random.Generator, s: _Slice, occupied: np.ndarray, side: np.ndarray
    ) -> np.ndarray | None:
        dims = len(self.spatial_size)
        side = np.maximum(np.round(side).astype(int), 1)
        too_big = np.any(side + 2 * self.gap > np.asarray(self.spatial_size))
        if too_big or not self.cropper.fits(np.zeros(dims, int), side, dims):
            return None
        # window start p - gap of the box grown by gap voxels: all foreground, no lesion, no other new box
        cand = np.argwhere(_window_sums(~s.foreground | occupied, side + 2 * self.gap) == 0)
        if not len(cand):
            return None
        lo = cand[int(rng.integers(len(cand)))] + self.gap
        return np.concatenate([lo, lo + side]).astype(np.float32)

    def _plan(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        n = len(self.slices)
        if self.requested:
            boxes, labels = self.sampler.sample(self.seed + i, index=i)
            s = self.slices[i % n]
            occupied = s.occupied.copy()
            for b in boxes:
                why = self.problem(b, s, occupied)
                if why:
                    raise ValueError(
                        f"requested box {b.tolist()} (box set {i % len(self.sampler)}) on "
                        f"{_noun(len(self.spatial_size))} {s.name}: {why}; nothing was generated. Fix the box file."
                    )
                self._mark(occupied, b)
            return i % n, boxes.astype(np.float32), labels
        rng = np.random.default_rng(self.seed + i)
        dims = len(self.spatial_size)
        for k in range(n):
            s = self.slices[(i + k) % n]
            occupied, chosen, chosen_labels, sides = s.occupied.copy(), [], [], []
            for _ in range(self.max_tries):
                boxes, labels = self.sampler.sample(int(rng.integers(2**62)))
                for b, lab in zip(boxes, labels):
                    sides.append(b[dims:] - b[:dims])
                    if len(chosen) < self.num_lesions and self.problem(b, s, occupied) is None:
                        chosen.append(b)
                        chosen_labels.append(int(lab))
                        self._mark(occupied, b)
                if len(chosen) == self.num_lesions:
                    break
            for _ in range(self.max_tries if sides and len(chosen) < self.num_lesions else 0):
                b = self._random_place(rng, s, occupied, sides[int(rng.integers(len(sides)))])
                if b is not None and self.problem(b, s, occupied) is None:
                    chosen.append(b)
                    chosen_labels.append(0)
                    self._mark(occupied, b)
                if len(chosen) == self.num_lesions:
                    break
            if len(chosen) == self.num_lesions:
                boxes = np.asarray(chosen, np.float32).reshape(-1, 2 * dims)
                return (i + k) % n, boxes, np.asarray(chosen_labels, np.int64)
        raise ValueError(
            f"LesionInpaintDataset: no {_noun(dims)} has room for {self.num_lesions} new lesion box(es) inside the "
            f"foreground, away from its lesions and within a {self.cropper.patch_shape(dims)} patch; lower num_lesions "
            "or gap."
        )

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.num_samples:
            raise IndexError(i)
        k, new, new_labels = self.plan[i]
        s, (image_key, label_key, box_key, box_label_key) = self.slices[k], self.keys
        return {
            "seed": self.seed + i,
            "index": i,
            "source": k,
            image_key: s.image,
            label_key: s.label,
            box_key: torch.as_tensor(s.boxes),
            box_label_key: torch.as_tensor(s.labels),
            NEW_BOXES: torch.as_tensor(new),
            NEW_BOX_LABELS: torch.as_tensor(new_labels),
            SOURCE_IMAGE: s.name,
        }
