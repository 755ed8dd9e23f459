# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Embedded demo dataset: synthetic contrast-enhanced T1 (T1c) brain MR with metastases, boxes and masks.

Every bundle of ``monai_gan_aug`` trains on this dataset when no ``dataset_dir`` is given. It imitates the brain
metastases data of Han et al., "Learning More with Less: GAN-based Medical Image Augmentation" (Med. Imaging Tech.
37(3), 2019; conditional PGGAN + YOLOv3 on 256 x 256 T1c axial MR with rough tumour boxes, patient-level split
126/18/36): skull-stripped axial slices, brain bounding box cropped and resized to a square, small round-ish
enhancing lesions with one box each, and a patient-level train/validation/test split (70/10/20 %).

Nothing is downloaded. Each synthetic "patient" is built from the MNI152 (ICBM 2009a) T1 template and its grey /
white matter probability maps that ``nilearn`` ships inside its wheel:

* anatomy: the template is warped by a random small rotation / anisotropic scaling plus a smooth elastic field
  (cubic B-spline over a 20 mm control grid, a few mm of displacement), sampled directly on the output grid;
* contrast: per-patient grey / white matter / CSF intensities mixed with the template's own T1 texture, a global
  gamma change, a smooth multiplicative bias field and Rician noise; intensities in a plausible MR range
  (white matter ~300-550, lesions up to ~1200, background exactly 0), NOT pre-scaled to ``[-1, 1]``;
* skull-stripped (the brain mask zeroes everything else), as in the paper's preprocessing: it removes the hardest
  and least relevant variation for a GAN trained on a few hundred images;
* crop: per 2D slice (or per 3D volume) the bounding box of the warped brain, resized to ``image_size`` per axis
  (anisotropic, like the paper's "crop the brain parts and resize to 256 x 256"); the voxel spacing written in the
  affine is 1 mm scaled by that resize;
* lesions: 0..``max_lesions`` per slice (volume), none with probability ``p_no_lesion``; irregular shapes
  (thresholded smooth noise inside a random ellipse / ellipsoid), radius ~2-12 px at 128 px, centred in grey or
  white matter, fully inside the brain and never touching each other; solid or ring-enhancing (bright rim, dark
  necrotic centre), some with a mild hypointense oedema halo, random contrast (enhancement uniform in
  ``lesion_level`` times white matter, 1.3-1.9 by default; a lower range such as 1.1-1.4 gives subtler lesions, a
  harder benchmark); a few thin bright vessel-like curves (not labelled) act as the false-positive confounders the
  paper mentions.

Files (NIfTI, paths relative to ``datalist.json``): ``images/`` float32 image, ``labels/`` uint8 lesion mask
(1 = lesion), ``tissue/`` uint8 map (0 background, 1 CSF, 2 grey matter, 3 white matter, 4 lesion). Arrays are
stored so that MONAI's PNG writer shows them in radiological display (anterior at the top, patient right on the
left); the affine is a plain ``diag(spacing)`` (identity-ish): it makes no anatomical orientation claim, so
``Orientationd(axcodes="RAS")`` leaves the arrays, and therefore the boxes, unchanged.

Boxes follow ``docs/conventions.md``: MONAI ``StandardMode`` corners ``[x0, y0, (z0,) x1, y1, (z1)]`` in voxel
coordinates of the channel-first array (spatial axis 0 = x), exactly the bounding box of each lesion's connected
component; ``box_labels`` are all 0 (one class, lesion); ``class`` is 1 when the slice holds a lesion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CACHE_ENV",
    "DEMO_VERSION",
    "TISSUE_LABELS",
    "demo_params",
    "get_demo_datalist",
    "main",
    "make_demo_dataset",
]

logger = logging.getLogger(__name__)

DEMO_VERSION = 1
"""Bumped whenever the generator changes its output; part of the cache folder name and of ``datalist.json``."""

DEFAULT_LESION_LEVEL = (1.3, 1.9)
"""Range of lesion enhancement relative to white matter (uniform per lesion) of the default demo dataset."""

CACHE_ENV = "MONAI_GAN_AUG_CACHE"
"""Environment variable that overrides the default cache folder ``~/.cache/monai_gan_aug``."""

TISSUE_LABELS = {0: "background", 1: "csf", 2: "grey_matter", 3: "white_matter", 4: "lesion"}
"""Values of the ``tissue`` maps."""

_NAME = "monai_gan_aug_demo_brain_metastases"
_DATALIST = "datalist.json"
_SUBDIRS = ("images", "labels", "tissue")
_SUBDIRS_KEYS = ("image", "label", "tissue")
_SPLIT_FRACTIONS = {"validation": 0.1, "test": 0.2}

# template crop margin (mm) and the band of the brain's axial extent (fraction, bottom -> top) the 2D slices are
# drawn from: about MNI z -10 .. +52 mm, basal ganglia / lateral ventricles up to the centrum semiovale
_TEMPLATE_MARGIN = 8
_SLICE_BAND = (0.40, 0.80)
_TEMPLATE_WM_T1 = 0.87  # median template T1 where p(WM) > 0.9: normalises the template to WM = 1
_CTRL_SPACING_MM = 20.0  # elastic control-point spacing


@dataclass(frozen=True)
class _Template:
    """MNI152 arrays cropped to the brain (+ margin): 1 mm voxels, template (RAS) index order."""

    t1: np.ndarray  # T1 normalised so that white matter ~ 1
    gm: np.ndarray  # grey matter probability
    wm: np.ndarray  # white matter probability
    mask: np.ndarray  # float32 0/1 brain mask (template > 0.2, holes filled)
    z_extent: tuple[int, int]  # first / last+1 brain voxel along axis 2 in the cropped arrays


@lru_cache(maxsize=1)
def _load_template() -> _Template:
    """Load the MNI152 template, GM/WM maps and brain mask shipped with nilearn (package files, no network)."""
    try:
        from nilearn import datasets as nl_datasets
    except ImportError as e:  # pragma: no cover - nilearn is a core dependency
        raise ImportError(
            "monai_gan_aug's demo dataset needs nilearn (it ships the MNI152 template): pip install nilearn"
        ) from e
    t1 = np.asarray(nl_datasets.load_mni152_template(resolution=1).dataobj, dtype=np.float32)
    gm = np.asarray(nl_datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(nl_datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    mask = np.asarray(nl_datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    crop = tuple(
        slice(max(s.start - _TEMPLATE_MARGIN, 0), min(s.stop + _TEMPLATE_MARGIN, n)) for s, n in zip(box, mask.shape)
    )
    mask = ndi.binary_fill_holes(mask[crop])
    t1, gm, wm = t1[crop] / _TEMPLATE_WM_T1, gm[crop], wm[crop]
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    return _Template(
        t1=np.ascontiguousarray(t1 * mask),
        gm=np.ascontiguousarray(gm * mask),
        wm=np.ascontiguousarray(wm * mask),
        mask=mask.astype(np.float32),
        z_extent=(int(zs[0]), int(zs[-1]) + 1),
    )


def _rotation(rng: np.random.Generator, ndim: int, max_deg: float | None = None) -> np.ndarray:
    """A random rotation matrix: uniform when ``max_deg`` is None, else small Euler angles up to ``max_deg``."""
    if max_deg is None:
        if ndim == 2:
            a = rng.uniform(0, 2 * np.pi)
            return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        return q
    rot = np.eye(3)
    for axes, amax in (((0, 1), max_deg), ((1, 2), max_deg / 2), ((0, 2), max_deg / 2)):
        a = np.deg2rad(rng.uniform(-amax, amax))
        r = np.eye(3)
        r[axes[0], axes[0]] = r[axes[1], axes[1]] = np.cos(a)
        r[axes[0], axes[1]], r[axes[1], axes[0]] = -np.sin(a), np.sin(a)
        rot = rot @ r
    return rot


def _bspline_basis(coords: np.ndarray, n_ctrl: int) -> np.ndarray:
    """(len(coords), n_ctrl) cubic B-spline weights of control points at integer positions ``0..n_ctrl-1``."""
    base = np.floor(coords).astype(int)
    t = coords - base
    weights = np.stack([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3], axis=1) / 6.0
    basis = np.zeros((len(coords), n_ctrl))
    rows = np.arange(len(coords))
    for j in range(4):
        np.add.at(basis, (rows, np.clip(base - 1 + j, 0, n_ctrl - 1)), weights[:, j])
    return basis


class _PatientWarp:
    """Maps patient-space grids (mm) to template voxel coordinates: a small random affine (rotation, anisotropic
    scale) plus a smooth elastic displacement, a cubic B-spline with random coefficients on a 20 mm control grid.
    The spline is separable, so a whole sampling grid is evaluated with three small tensor contractions."""

    def __init__(self, rng: np.random.Generator, shape: Sequence[int]) -> None:
        self.centre = (np.asarray(shape, dtype=float) - 1) / 2
        scales = rng.uniform(0.93, 1.07, 3) * rng.uniform(0.95, 1.05)  # head size and shape
        self.matrix = _rotation(rng, 3, max_deg=8.0) @ np.diag(scales)
        n_ctrl = np.ceil(np.asarray(shape) / _CTRL_SPACING_MM).astype(int) + 3
        # a cubic B-spline damps random coefficients by ~0.5 per 3 axes: coefficients of 4-8 mm give a few mm
        amplitude = rng.uniform(4.0, 8.0)
        self.ctrl = rng.normal(0.0, amplitude, (3, *n_ctrl))

    def grid(self, axes: Sequence[np.ndarray]) -> np.ndarray:
        """Template coordinates ``(3, len(axes[0]), len(axes[1]), len(axes[2]))`` of the patient grid ``axes``."""
        bases = [_bspline_basis(a / _CTRL_SPACING_MM + 1.0, n) for a, n in zip(axes, self.ctrl.shape[1:])]
        disp = np.einsum("cabk,ia,jb,zk->cijz", self.ctrl, *bases, optimize=True)
        points = np.stack(np.meshgrid(*axes, indexing="ij")) - self.centre[:, None, None, None]
        return self.centre[:, None, None, None] + np.einsum("cd,dijz->cijz", self.matrix, points) + disp


def _sample(tpl: _Template, warp: _PatientWarp, axes: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """Sample template arrays ``names`` on the patient grid spanned by the three 1D coordinate arrays ``axes``."""
    src = warp.grid(axes)
    return {n: ndi.map_coordinates(getattr(tpl, n), src, order=1, mode="constant", cval=0.0) for n in names}


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], n_ctrl: int, std: float) -> np.ndarray:
    """A smooth random field over ``shape``: ``n_ctrl`` normal control values per axis, cubic-interpolated."""
    coarse = rng.normal(0.0, std, (n_ctrl,) * len(shape))
    coords = np.meshgrid(*[np.linspace(0, n_ctrl - 1, s) for s in shape], indexing="ij")
    return ndi.map_coordinates(coarse, np.stack(coords), order=3, mode="nearest")


def _lesion_shape(rng: np.random.Generator, radius: float, ndim: int) -> np.ndarray:
    """An irregular, 4/6-connected, hole-free blob: thresholded smooth noise added to a random ellipse(oid)."""
    radii = radius * rng.uniform(0.75, 1.25, ndim)
    rot = _rotation(rng, ndim)
    half = int(np.ceil(1.6 * radii.max())) + 1
    ax = np.arange(-half, half + 1, dtype=float)
    grid = np.stack(np.meshgrid(*([ax] * ndim), indexing="ij"))
    local = np.tensordot(rot.T, grid, axes=1)
    q = sum((local[i] / radii[i]) ** 2 for i in range(ndim))
    noise = ndi.gaussian_filter(rng.standard_normal(q.shape), sigma=max(1.0, 0.4 * radius))
    noise /= noise.std() + 1e-8
    field = 1.0 - q + rng.uniform(0.1, 0.5) * noise
    centre = (half,) * ndim
    for candidate in (field > 0, q <= 1.0):  # the plain ellipse(oid) when the noisy blob came out too small
        comp, n = ndi.label(candidate)
        if n == 0:
            continue
        keep = comp[centre] if comp[centre] > 0 else int(np.argmax(np.bincount(comp.ravel())[1:])) + 1
        shape = ndi.binary_fill_holes(comp == keep)
        if shape.sum() >= 2**ndim:
            break
    return shape


def _place_lesions(
    rng: np.random.Generator, inner: np.ndarray, centres: np.ndarray, n: int, r_range: tuple[float, float]
) -> np.ndarray:
    """Place up to ``n`` lesions inside ``inner`` (eroded brain), centred on ``centres`` voxels, kept >= 2 voxels
    apart from each other; returns an int32 map, lesion ``k`` marked ``k`` (1-based)."""
    ids = np.zeros(inner.shape, dtype=np.int32)
    cand = np.argwhere(centres)
    if n == 0 or len(cand) == 0:
        return ids
    free = inner.copy()
    full = ndi.generate_binary_structure(inner.ndim, inner.ndim)
    lo_r, hi_r = r_range
    placed = 0
    for _ in range(n):
        radius = float(np.exp(rng.uniform(np.log(lo_r), np.log(hi_r))))  # small lesions are the more frequent
        for attempt in range(40):
            if attempt % 10 == 0:
                if attempt:
                    radius = max(lo_r, 0.75 * radius)
                shape = _lesion_shape(rng, radius, inner.ndim)
            lo = cand[rng.integers(len(cand))] - shape.shape[0] // 2
            hi = lo + np.asarray(shape.shape)
            if (lo < 0).any() or (hi > np.asarray(inner.shape)).any():
                continue
            window = tuple(slice(a, b) for a, b in zip(lo, hi))
            if not free[window][shape].all():
                continue
            placed += 1
            ids[window][shape] = placed
            halo = ndi.binary_dilation(np.pad(shape, 3), full, iterations=2)
            pad_window = tuple(slice(a - 3, b + 3) for a, b in zip(lo, hi))
            clipped = tuple(slice(max(s.start, 0), min(s.stop, d)) for s, d in zip(pad_window, inner.shape))
            offset = tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(clipped, pad_window))
            free[clipped] &= ~halo[offset]
            break
    return ids


def _render_lesions(
    rng: np.random.Generator,
    base: np.ndarray,
    brain: np.ndarray,
    ids: np.ndarray,
    scale: float,
    lesion_level: tuple[float, float] = DEFAULT_LESION_LEVEL,
) -> None:
    """Paint the lesions of ``ids`` into ``base`` (white matter = 1), in place: enhancement, necrosis, oedema."""
    boxes = ndi.find_objects(ids)
    ring_min = 3.0 * max(scale, 0.75)
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        size = np.array([s.stop - s.start for s in box], dtype=float)
        r_eff = float(np.mean(size)) / 2
        oedema = rng.random() < 0.4
        width = rng.uniform(0.5, 1.5) * max(r_eff, 1.5)
        pad = int(np.ceil(3 * width)) + 2 if oedema else 2
        win = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, d)) for s, d in zip(box, ids.shape))
        m = ids[win] == k
        b = base[win]
        if oedema:  # mild T1-hypointense vasogenic oedema around the lesion, fading with distance
            dout = ndi.distance_transform_edt(~m)
            factor = 1.0 - rng.uniform(0.08, 0.25) * np.exp(-dout / width)
            b *= np.where(brain[win] & (ids[win] == 0), factor, 1.0)
        level = rng.uniform(*lesion_level)  # enhancement relative to white matter
        value = level * (1.0 + 0.05 * _smooth_field(rng, m.shape, 3, 1.0))
        if r_eff >= ring_min and rng.random() < 0.4:  # ring enhancement around a necrotic centre
            din = ndi.distance_transform_edt(m)
            thickness = max(1.0, rng.uniform(0.25, 0.45) * r_eff)
            core = rng.uniform(0.35, 0.7)
            w = 1.0 / (1.0 + np.exp((din - thickness - 0.5) / 0.6))
            value = core + (value - core) * w
        delta = np.where(m, value - b, 0.0)
        b += ndi.gaussian_filter(delta, 0.5) * brain[win]  # slight partial-volume blur at the edge


def _render_vessels(
    rng: np.random.Generator, base: np.ndarray, inner: np.ndarray, ids: np.ndarray, scale: float
) -> None:
    """Add 0-3 thin, curved, enhancing vessel-like structures (unlabelled confounders), away from lesions."""
    n = int(rng.integers(0, 4))
    if n == 0:
        return
    ndim = base.ndim
    allowed = inner & ~ndi.binary_dilation(ids > 0, ndi.generate_binary_structure(ndim, ndim), iterations=3)
    cand = np.argwhere(allowed)
    if len(cand) == 0:
        return
    acc = np.zeros(base.shape, dtype=float)
    for _ in range(n):
        point = cand[rng.integers(len(cand))].astype(float)
        direction = rng.standard_normal(ndim)
        amplitude = rng.uniform(0.25, 0.6)
        for _ in range(int(rng.uniform(8, 28) * max(scale, 0.5))):
            direction += rng.normal(0.0, 0.25, ndim)
            direction /= np.linalg.norm(direction) + 1e-8
            point = point + 0.5 * direction
            idx = tuple(np.round(point).astype(int))
            if any(i < 0 or i >= d for i, d in zip(idx, base.shape)) or not allowed[idx]:
                break
            acc[idx] = max(acc[idx], amplitude)
    base += ndi.gaussian_filter(acc, 0.6) / 0.66 ** (ndim - 1)


def _synthesize(
    rng: np.random.Generator,
    tpl: _Template,
    warp: _PatientWarp,
    contrast: dict,
    z: float | None,
    image_size: int,
    max_lesions: int,
    p_no_lesion: float,
    lesion_level: tuple[float, float] = DEFAULT_LESION_LEVEL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One 2D slice (``z`` given, patient mm) or one 3D volume (``z`` None): image, label, tissue, spacing."""
    ndim = 2 if z is not None else 3
    extent = np.asarray(tpl.mask.shape, dtype=float)
    # pass 1: brain bounding box of the warped patient on a coarse grid (patient space, mm)
    step = 2.0 if ndim == 2 else 3.0
    coarse_axes = [np.arange(-20.0, e + 20.0, step) for e in extent]
    if z is not None:
        coarse_axes[2] = np.array([z])
    coarse = _sample(tpl, warp, coarse_axes, ["mask"])["mask"] > 0.5
    if not coarse.any():  # pragma: no cover - the slice band always cuts through the brain
        raise RuntimeError("demo dataset: the sampled slice misses the brain")
    box = ndi.find_objects(coarse.astype(np.uint8))[0]
    lo = np.array([coarse_axes[i][box[i].start] - step for i in range(ndim)])
    hi = np.array([coarse_axes[i][box[i].stop - 1] + step for i in range(ndim)])
    spacing = (hi - lo) / image_size
    # pass 2: the output grid; axes 0 and 1 run backwards (patient right -> left, anterior -> posterior), so the
    # arrays show in radiological display once written as PNG (x = columns, y = rows)
    idx = np.arange(image_size) + 0.5
    axes = [hi[0] - idx * spacing[0], hi[1] - idx * spacing[1]]
    axes.append(np.array([z]) if z is not None else lo[2] + idx * spacing[2])
    s = _sample(tpl, warp, axes, ["t1", "gm", "wm", "mask"])
    s = {k: v[..., 0] if ndim == 2 else v for k, v in s.items()}
    brain = s["mask"] > 0.5
    gm, wm = np.clip(s["gm"], 0, 1), np.clip(s["wm"], 0, 1)
    csf = np.clip(1.0 - gm - wm, 0, 1)
    tissue = np.where(brain, np.argmax(np.stack([csf, gm, wm]), axis=0) + 1, 0).astype(np.uint8)

    # base contrast, white matter = 1: per-patient tissue intensities blended with the template's own texture
    mix = contrast["csf"] * csf + contrast["gm"] * gm + wm
    base = contrast["alpha"] * mix + (1.0 - contrast["alpha"]) * s["t1"]
    sigma_tex = max(0.7, image_size / 128.0)
    texture = ndi.gaussian_filter(rng.standard_normal(base.shape), sigma_tex)
    base *= 1.0 + 0.03 * texture / (texture.std() + 1e-8)
    base = np.where(brain, base, 0.0)

    # lesions and vessels
    scale = image_size / 128.0
    erosion = max(1, round(2 * scale))
    inner = ndi.binary_erosion(brain, iterations=erosion)
    n = 0 if rng.random() < p_no_lesion or max_lesions == 0 else int(rng.integers(1, max_lesions + 1))
    r_lo = max(1.5, 2.0 * scale)
    r_range = (r_lo, max(r_lo + 1.0, 12.0 * scale))
    ids = _place_lesions(rng, inner, inner & (tissue >= 2), n, r_range)
    _render_lesions(rng, base, brain, ids, scale, lesion_level)
    _render_vessels(rng, base, inner, ids, scale)

    # global gamma, intensity scale, bias field, Rician noise, skull-stripping
    image = np.clip(base, 0, None) ** contrast["gamma"] * contrast["wm_level"]
    image *= np.exp(_smooth_field(rng, image.shape, 4, contrast["bias"]))
    sigma = contrast["noise"] * contrast["wm_level"]
    noisy = np.sqrt((image + rng.normal(0, sigma, image.shape)) ** 2 + rng.normal(0, sigma, image.shape) ** 2)
    image = np.where(brain, noisy, 0.0).astype(np.float32)
    label = (ids > 0).astype(np.uint8)
    tissue[label > 0] = 4
    return image, label, tissue, spacing


def _boxes(label: np.ndarray) -> list[list[float]]:
    """``StandardMode`` corner boxes of the connected components of ``label`` (spatial axis 0 = x)."""
    comps, _ = ndi.label(label > 0)
    return [
        [float(s.start) for s in sl] + [float(s.stop) for s in sl] for sl in ndi.find_objects(comps) if sl is not None
    ]


def _save_nifti(path: Path, array: np.ndarray, spacing: np.ndarray) -> None:
    import nibabel as nib

    affine = np.eye(4)
    affine[: len(spacing), : len(spacing)] = np.diag(spacing)
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _split(rng: np.random.Generator, n: int) -> dict[str, list[int]]:
    """Random patient-level split, 70/10/20 %, at least one patient in validation and test when n >= 3."""
    order = rng.permutation(n).tolist()
    n_val = round(n * _SPLIT_FRACTIONS["validation"])
    n_test = round(n * _SPLIT_FRACTIONS["test"])
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    elif n == 2:
        n_val, n_test = 0, 1
    else:
        n_val = n_test = 0
    return {
        "training": sorted(order[n_val + n_test :]),
        "validation": sorted(order[:n_val]),
        "test": sorted(order[n_val : n_val + n_test]),
    }


def demo_params(
    spatial_dims: int = 2,
    n_patients: int = 40,
    slices_per_patient: int = 8,
    image_size: int | None = None,
    max_lesions: int = 4,
    p_no_lesion: float = 0.25,
    seed: int = 0,
    lesion_level: Sequence[float] = DEFAULT_LESION_LEVEL,
) -> dict[str, Any]:
    """Check and normalise the demo dataset's parameters (the dict stored in ``datalist.json`` and hashed for the
    cache folder name).

    Args:
        spatial_dims: 2 (axial slices) or 3 (whole volumes).
        n_patients: number of synthetic patients (>= 1).
        slices_per_patient: 2D slices per patient (>= 1); ignored (stored as 1) for 3D.
        image_size: side of the square / cubic output; None means 128 for 2D and 64 for 3D.
        max_lesions: most lesions per slice (volume), >= 0.
        p_no_lesion: probability that a slice (volume) has no lesion, in [0, 1].
        seed: non-negative integer seed; the dataset is a pure function of all parameters.
        lesion_level: ``(low, high)``, the range of lesion enhancement relative to white matter (1.3-1.9 by default);
            stored only when it differs from the default, so every default dataset keeps its cache folder.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.
    """

    def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"demo dataset: `{name}` must be an int, got {type(value).__name__} ({value!r}).")
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"demo dataset: `{name}` must be {bound}, got {value}.")
        return int(value)

    spatial_dims = _int("spatial_dims", spatial_dims, 2, 3)
    if image_size is None:
        image_size = 128 if spatial_dims == 2 else 64
    if isinstance(p_no_lesion, bool) or not isinstance(p_no_lesion, (int, float, np.floating)):
        raise TypeError(f"demo dataset: `p_no_lesion` must be a float, got {type(p_no_lesion).__name__}.")
    if not 0.0 <= float(p_no_lesion) <= 1.0:
        raise ValueError(f"demo dataset: `p_no_lesion` must be in [0, 1], got {p_no_lesion}.")
    level = _lesion_level(lesion_level)
    params = {
        "spatial_dims": spatial_dims,
        "n_patients": _int("n_patients", n_patients, 1),
        "slices_per_patient": _int("slices_per_patient", slices_per_patient, 1) if spatial_dims == 2 else 1,
        "image_size": _int("image_size", image_size, 16, 512),
        "max_lesions": _int("max_lesions", max_lesions, 0, 64),
        "p_no_lesion": float(p_no_lesion),
        "seed": _int("seed", seed, 0),
        "version": DEMO_VERSION,
    }
    if level != DEFAULT_LESION_LEVEL:
        params["lesion_level"] = list(level)
    return params


def _lesion_level(value: Any) -> tuple[float, float]:
    """``value`` checked as a ``(low, high)`` enhancement range: finite, ``1 < low <= high``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"demo dataset: `lesion_level` must be two numbers (low, high), got {value!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and 1.0 < low <= high <= 10.0):
        raise ValueError(
            f"demo dataset: `lesion_level` must satisfy 1 < low <= high <= 10 (times white matter; lesions enhance), "
            f"got ({low}, {high})."
        )
    return low, high


def _read_complete(root: Path, params: dict[str, Any]) -> bool:
    """True when ``root`` holds a finished demo dataset built with ``params`` (all listed files present)."""
    try:
        data = json.loads((root / _DATALIST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("name") != _NAME or data.get("params") != params:
        return False
    for split in ("training", "validation", "test"):
        for item in data.get(split, []):
            if not all((root / item[k]).is_file() for k in _SUBDIRS_KEYS):
                return False
    return True


def _build(folder: Path, params: dict[str, Any]) -> None:
    """Write the whole dataset into the (empty) ``folder``; ``datalist.json`` last."""
    tpl = _load_template()
    spatial_dims, size = params["spatial_dims"], params["image_size"]
    for sub in _SUBDIRS:
        (folder / sub).mkdir()
    z0, z1 = tpl.z_extent
    band = (z0 + _SLICE_BAND[0] * (z1 - z0), z0 + _SLICE_BAND[1] * (z1 - z0))
    items: list[dict[str, Any]] = []
    for p in range(params["n_patients"]):
        rng = np.random.default_rng([params["seed"], spatial_dims, p])
        patient = f"P{p:03d}"
        warp = _PatientWarp(rng, tpl.mask.shape)
        contrast = {
            "csf": rng.uniform(0.15, 0.35),
            "gm": rng.uniform(0.6, 0.78),
            "alpha": rng.uniform(0.3, 0.7),
            "gamma": rng.uniform(0.8, 1.25),
            "wm_level": rng.uniform(300.0, 550.0),
            "bias": rng.uniform(0.05, 0.15),
            "noise": rng.uniform(0.01, 0.04),
        }
        if spatial_dims == 2:
            k = params["slices_per_patient"]
            edges = np.linspace(band[0], band[1], k + 1)
            zs: list[float | None] = list(edges[:-1] + rng.uniform(0, 1, k) * np.diff(edges))
        else:
            zs = [None]
        for s, z in enumerate(zs):
            image, label, tissue, spacing = _synthesize(
                rng, tpl, warp, contrast, z, size, params["max_lesions"], params["p_no_lesion"],
                _lesion_level(params.get("lesion_level", DEFAULT_LESION_LEVEL)),
            )
            stem = f"{patient}_s{s:02d}" if spatial_dims == 2 else patient
            rel = {key: f"{sub}/{stem}.nii.gz" for key, sub in zip(_SUBDIRS_KEYS, _SUBDIRS)}
            _save_nifti(folder / rel["image"], image, spacing)
            _save_nifti(folder / rel["label"], label, spacing)
            _save_nifti(folder / rel["tissue"], tissue, spacing)
            boxes = _boxes(label)
            items.append(
                {
                    **rel,
                    "boxes": boxes,
                    "box_labels": [0] * len(boxes),
                    "class": int(len(boxes) > 0),
                    "patient": patient,
                    "slice": s if spatial_dims == 2 else -1,
                }
            )
    split = _split(np.random.default_rng([params["seed"], spatial_dims, 2**32 - 1]), params["n_patients"])
    by_patient = {f"P{p:03d}": name for name, ps in split.items() for p in ps}
    datalist: dict[str, Any] = {
        "name": _NAME,
        "description": (
            f"Synthetic skull-stripped T1c brain MR ({spatial_dims}D, {size} px per axis) with brain metastases, "
            "built from the MNI152 template shipped with nilearn (random elastic warp, bias field, contrast, Rician "
            "noise); lesion masks, tissue maps, StandardMode boxes (axis 0 = x), patient-level 70/10/20 split. "
            "Demo data of monai_gan_aug, not for clinical use."
        ),
        "spatial_dims": spatial_dims,
        "seed": params["seed"],
        "version": DEMO_VERSION,
        "params": params,
        "labels": {"0": "background", "1": "lesion"},
        "tissue_labels": {str(k): v for k, v in TISSUE_LABELS.items()},
        "box_labels": {"0": "lesion"},
        "training": [],
        "validation": [],
        "test": [],
    }
    for item in items:
        datalist[by_patient[item["patient"]]].append(item)
    for name in ("training", "validation", "test"):
        datalist[f"num_{name}"] = len(datalist[name])
    (folder / _DATALIST).write_text(json.dumps(datalist, indent=1))


def make_demo_dataset(
    root: str | os.PathLike,
    spatial_dims: int = 2,
    n_patients: int = 40,
    slices_per_patient: int = 8,
    image_size: int | None = None,
    max_lesions: int = 4,
    p_no_lesion: float = 0.25,
    seed: int = 0,
    lesion_level: Sequence[float] = DEFAULT_LESION_LEVEL,
) -> Path:
    """Build the demo dataset in ``root`` (atomically) and return the path of its ``datalist.json``.

    The dataset is built in a temporary sibling folder and moved into place with ``os.replace``, so an interrupted
    build never leaves a half dataset at ``root``. When ``root`` already holds a complete demo dataset with the same
    parameters nothing is rebuilt; a demo dataset with other parameters is replaced.

    Args:
        root: target folder (created; must be absent, empty, or an earlier demo dataset).
        spatial_dims: 2 (axial slices) or 3 (whole volumes, 3D lesions and boxes).
        n_patients: number of synthetic patients, split 70/10/20 % into training/validation/test by patient.
        slices_per_patient: 2D slices per patient, drawn from the middle of the brain (ignored for 3D).
        image_size: output side per axis; None means 128 (2D) or 64 (3D).
        max_lesions: most lesions per slice (volume); the count is uniform in ``1..max_lesions`` otherwise.
        p_no_lesion: probability that a slice (volume) has no lesion.
        seed: the dataset is byte-for-byte a function of the parameters; another seed gives other patients.
        lesion_level: range of lesion enhancement relative to white matter (default 1.3-1.9; lower is harder).

    Returns:
        Path of ``root / "datalist.json"``.

    Raises:
        ValueError: ``root`` is a non-empty folder that is not a demo dataset, or a parameter is out of range.
        TypeError: a parameter has the wrong type.
    """
    params = demo_params(
        spatial_dims, n_patients, slices_per_patient, image_size, max_lesions, p_no_lesion, seed, lesion_level
    )
    root = Path(root).expanduser().absolute()
    if _read_complete(root, params):
        return root / _DATALIST
    if root.exists():
        if not root.is_dir():
            raise ValueError(f"demo dataset: `root` {root} is a file; pass a folder path.")
        if any(root.iterdir()) and not (root / _DATALIST).is_file():
            raise ValueError(
                f"demo dataset: `root` {root} is a non-empty folder without a demo {_DATALIST}; "
                "pass a new or empty folder so nothing of yours is overwritten."
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _build(tmp, params)
        os.chmod(tmp, 0o755)
        _install(tmp, root, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root / _DATALIST


def _install(tmp: Path, root: Path, params: dict[str, Any]) -> None:
    """Move the finished ``tmp`` folder to ``root`` (absent, empty, a stale demo dataset, or built concurrently)."""
    try:
        os.replace(tmp, root)
        return
    except OSError:
        if not root.is_dir():
            raise
    if _read_complete(root, params):  # another process finished the same dataset first: keep its copy
        return
    old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(root, old)
    try:
        os.replace(tmp, root)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def get_demo_datalist(spatial_dims: int = 2, cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Path of the cached demo dataset's ``datalist.json``, built on first use.

    The cache folder is ``cache_dir``, else ``$MONAI_GAN_AUG_CACHE``, else ``~/.cache/monai_gan_aug``; the dataset
    lives in a subfolder named from the version and a short hash of the parameters, so different parameters never
    share a folder and a newer generator never reuses an older dataset.

    Args:
        spatial_dims: 2 or 3.
        cache_dir: cache folder override.
        kwargs: the other parameters of :func:`make_demo_dataset` (``n_patients``, ``slices_per_patient``,
            ``image_size``, ``max_lesions``, ``p_no_lesion``, ``seed``, ``lesion_level``).

    Raises:
        TypeError: an unknown keyword or a wrongly typed parameter.
        ValueError: a parameter is out of range.
    """
    allowed = {"n_patients", "slices_per_patient", "image_size", "max_lesions", "p_no_lesion", "seed", "lesion_level"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"get_demo_datalist: unknown parameter(s) {unknown}; use some of {sorted(allowed)}.")
    params = demo_params(spatial_dims=spatial_dims, **kwargs)
    base = Path(cache_dir or os.environ.get(CACHE_ENV) or Path("~") / ".cache" / "monai_gan_aug").expanduser()
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    root = base / f"demo{params['spatial_dims']}d_v{DEMO_VERSION}_{digest}"
    if _read_complete(root, params):
        return root / _DATALIST
    logger.info("monai_gan_aug: building the demo dataset (%s) in %s", params, root)
    return make_demo_dataset(root, **{k: v for k, v in params.items() if k != "version"})


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: ``python -m monai_gan_aug.data.demo --out DIR [--spatial_dims 3 ...]``; prints the datalist.

    Without ``--out`` the dataset goes to the cache folder (see :func:`get_demo_datalist`).
    """
    parser = argparse.ArgumentParser(prog="python -m monai_gan_aug.data.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="target folder (default: the monai_gan_aug cache)")
    parser.add_argument("--cache_dir", default=None, help="cache folder when --out is not given")
    parser.add_argument("--spatial_dims", type=int, default=2, choices=(2, 3))
    parser.add_argument("--n_patients", type=int, default=40)
    parser.add_argument("--slices_per_patient", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=None, help="default 128 (2D) / 64 (3D)")
    parser.add_argument("--max_lesions", type=int, default=4)
    parser.add_argument("--p_no_lesion", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lesion_level", type=float, nargs=2, default=list(DEFAULT_LESION_LEVEL), metavar=("LOW", "HIGH"),
        help="lesion enhancement range relative to white matter (default 1.3 1.9; e.g. 1.1 1.4: subtler lesions)",
    )
    args = parser.parse_args(argv)
    kwargs = {
        k: getattr(args, k)
        for k in ("n_patients", "slices_per_patient", "image_size", "max_lesions", "p_no_lesion", "seed", "lesion_level")
    }
    if args.out is not None:
        path = make_demo_dataset(args.out, spatial_dims=args.spatial_dims, **kwargs)
    else:
        path = get_demo_datalist(spatial_dims=args.spatial_dims, cache_dir=args.cache_dir, **kwargs)
    print(path)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
