# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Datalists: find the images (and masks, boxes, classes) of a dataset and check them before training starts.

A datalist is a list of dicts in the format of ``docs/conventions.md`` (MONAI decathlon style). Every function
here returns items with absolute paths, so they can be handed to ``monai.data.Dataset`` directly. Sources:

- a decathlon-style JSON (``monai.data.load_decathlon_datalist`` semantics, extra keys kept),
- a folder holding ``datalist.json`` or ``dataset.json``,
- a CSV with columns ``image, label, boxes, box_labels, class, patient`` (only ``image`` required),
- a plain folder of DICOM / NIfTI / PNG / JPEG / BMP / TIFF files (masks paired by a ``labels`` folder or a
  ``_seg`` / ``_label`` / ``_mask`` suffix),
- ``None``: the embedded demo dataset (:func:`monai_gan_aug.data.demo.get_demo_datalist`).

:func:`check_datalist` turns the usual data mistakes (a missing or empty file, a mask without an image, a box
outside its image) into one clear error before any worker process starts; :func:`load_datalist` runs it on every
split of the source, not only the one requested. :func:`screen_images` (``load_datalist(..., bad_images=...)``)
reads every image once and refuses, or skips with a warning, the ones a network cannot learn from (NaN/infinite
values, one constant value, a degenerate shape).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import load_decathlon_datalist
from monai.utils import optional_import

from monai_gan_aug.data.boxes import box_problems
from monai_gan_aug.data.errors import DatalistError, ImageReadError, InvalidBoxesError
from monai_gan_aug.data.loading import BAD_IMAGE_HINT, BadImageError, LoadMedicalImage, image_problem
from monai_gan_aug.data.readers import DICOM_SUFFIXES, group_by_orientation, has_dicom_magic

pydicom, has_pydicom = optional_import("pydicom")
nib, has_nib = optional_import("nibabel")
PILImage, has_pil = optional_import("PIL.Image")

__all__ = [
    "BAD_IMAGE_MODES",
    "IMAGE_SUFFIXES",
    "LABEL_FOLDER_NAMES",
    "LABEL_SUFFIXES",
    "SPLITS",
    "build_datalist_from_csv",
    "build_datalist_from_folder",
    "check_datalist",
    "image_paths",
    "load_datalist",
    "read_spatial_shape",
    "screen_images",
    "split_datalist",
]

#: The split names of a datalist JSON, in order.
SPLITS = ("training", "validation", "test")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Every file suffix the folder scan recognises (DICOM files without a suffix are found by their magic).
IMAGE_SUFFIXES = DICOM_SUFFIXES + NIFTI_SUFFIXES + RASTER_SUFFIXES
#: Folder names whose files are masks of the images in the sibling folders.
LABEL_FOLDER_NAMES = ("labels", "label", "masks", "mask")
#: File-name endings (before the suffix) that mark a mask of the file without them: ``case1_seg.nii.gz``.
LABEL_SUFFIXES = ("_seg", "_label", "_mask")
PATH_KEYS = ("image", "label", "tissue")
#: Values of ``bad_images``: refuse the datalist, or leave the bad images out with a warning.
BAD_IMAGE_MODES = ("raise", "skip")
DATALIST_FILENAMES = ("datalist.json", "dataset.json")


# ---------------------------------------------------------------------------------------------- file helpers
def _suffix(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def _stem(path: str | os.PathLike) -> str:
    name = Path(path).name
    suffix = _suffix(name)
    return name[: len(name) - len(suffix)] if suffix and suffix in IMAGE_SUFFIXES else name


def _strip_label_suffix(stem: str) -> tuple[str, bool]:
    for token in LABEL_SUFFIXES:
        if stem.lower().endswith(token) and len(stem) > len(token):
            return stem[: -len(token)], True
    return stem, False


def _kind(path: Path) -> str | None:
    suffix = _suffix(path)
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if path.name != "DICOMDIR" and has_dicom_magic(path):
        return "dicom"
    return None


def _dicom_header(path: str) -> Any:
    return pydicom.dcmread(path, stop_before_pixels=True)


def _dicom_shape(ds: Any) -> tuple[int, ...]:
    cols, rows = int(ds.Columns), int(ds.Rows)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return (cols, rows, frames) if frames > 1 else (cols, rows)


def read_spatial_shape(path: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[int, ...] | None:
    """Spatial shape of an image in MONAI axis order (columns, rows[, slices]) without reading its pixels.

    NIfTI: the header; DICOM: ``Columns``/``Rows``/``NumberOfFrames`` (a folder or a list of files: the number
    of image files as the last axis); PNG/JPEG/BMP/TIFF: PIL's lazy header. Returns ``None`` when the format is
    not recognised.

    Args:
        path: an image file, a DICOM series folder, or a list of DICOM files.

    Raises:
        DatalistError: when the file is recognised but its header cannot be read.
    """
    if isinstance(path, (list, tuple)):
        files = [str(p) for p in path]
        if len(files) == 1:
            return read_spatial_shape(files[0])
        try:
            headers = [_dicom_header(f) for f in files if Path(f).is_file()]
        except Exception as e:  # noqa: BLE001 - any failure of a third-party decoder becomes one clear error
            raise DatalistError(f"{files[0]}: cannot read the DICOM headers of this list of files ({e}).") from None
        headers = [h for h in headers if "Rows" in h]
        return (*_dicom_shape(headers[0])[:2], len(headers)) if headers else None
    p = Path(path)
    if p.is_dir():
        files = [str(c) for c in sorted(p.iterdir()) if c.is_file() and _kind(c) == "dicom"]
        if not files:
            return None
        if len(files) == 1:
            return read_spatial_shape(files[0])
        return read_spatial_shape(files)
    kind = _kind(p)
    try:
        if kind == "nifti":
            shape = tuple(int(s) for s in nib.load(str(p)).shape)
            return shape[:3]
        if kind == "dicom":
            ds = _dicom_header(str(p))
            return _dicom_shape(ds) if "Rows" in ds else None
        if kind == "raster":
            with PILImage.open(str(p)) as im:
                return tuple(int(s) for s in im.size)  # (width, height) = (axis 0, axis 1)
    except Exception as e:  # noqa: BLE001 - any failure of a third-party decoder becomes one clear error
        raise DatalistError(
            f"{p}: cannot read the image header ({type(e).__name__}: {e}); the file is corrupt."
        ) from None
    return None


# ---------------------------------------------------------------------------------------------- folder scan
def _matches(rel: str, name: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)


def _readable(path: Path, kind: str) -> tuple[bool, Any]:
    """(ok, info): DICOM header, NIfTI shape or raster size; info is the reason when not ok."""
    try:
        if kind == "dicom":
            ds = _dicom_header(str(path))
            if "Rows" not in ds:
                return False, "DICOM without image (no Rows tag)"
            return True, ds
        if kind == "nifti":
            return True, tuple(int(s) for s in nib.load(str(path)).shape)
        with PILImage.open(str(path)) as im:
            return True, im.size
    except Exception as e:  # noqa: BLE001 - any failure of a third-party decoder becomes one clear error
        return False, f"{type(e).__name__}: {e}"


def _label_folder_of(rel_parts: tuple[str, ...]) -> int | None:
    """Index of the nearest folder in ``rel_parts[:-1]`` named like a label folder."""
    for i in range(len(rel_parts) - 2, -1, -1):
        if rel_parts[i].lower() in LABEL_FOLDER_NAMES:
            return i
    return None


def build_datalist_from_folder(
    folder: str | os.PathLike,
    image_pattern: str | None = None,
    label_folder: str | os.PathLike | None = None,
    spatial_dims: int = 2,
) -> list[dict]:
    """Scan ``folder`` recursively and return one datalist item per image.

    Images: DICOM (by suffix ``.dcm``/``.dicom``/``.ima`` or the ``DICM`` magic), NIfTI (``.nii``/``.nii.gz``),
    PNG/JPEG/BMP/TIFF. With ``spatial_dims=2`` every readable file is an item (a 3D NIfTI or a multi-frame DICOM
    too, for a slicing transform such as ``RandSlice``). With ``spatial_dims=3`` the single-frame DICOM files of
    one series in one folder form one item (``image`` is the folder when it holds only that series, else the list
    of its files), multi-frame DICOM and NIfTI volumes are items, 2D raster files and one-slice series are ignored.
    DICOM items get ``patient`` from ``PatientID`` (for patient-level splits).

    Masks: a file inside a folder named ``labels``/``label``/``masks``/``mask`` (or inside ``label_folder``) pairs
    with the image that has the same relative path and stem next to that folder (``root/images/a.png`` or
    ``root/a.png`` with ``root/labels/a.png``); a file ``name_seg``/``name_label``/``name_mask`` pairs with ``name``
    in the same folder.

    Args:
        folder: the dataset folder.
        image_pattern: optional glob pattern (``fnmatch``) on the path relative to ``folder`` or on the file name,
            e.g. ``"*.dcm"`` or ``"*_t1.nii.gz"``; masks are exempt.
        label_folder: a folder holding the masks, paired by path relative to it; default: the automatic rules.
        spatial_dims: 2 or 3, see above.

    Raises:
        DatalistError: when the folder does not exist or holds no readable image (the message lists what it
            found), when a mask matches no image or several, or when an image has several masks.
    """
    if spatial_dims not in (2, 3):
        raise DatalistError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise DatalistError(f"{root}: not a folder. Pass the folder that holds the images.")
    label_root = Path(label_folder).expanduser().resolve() if label_folder is not None else None
    if label_root is not None and not label_root.is_dir():
        raise DatalistError(f"label_folder {label_root}: not a folder.")

    found: dict[str, int] = {}
    skipped: list[str] = []
    images: list[tuple[Path, str, Any]] = []  # (path, kind, header info)
    candidates: list[Path] = []  # every image-like file outside the mask folders
    labels: list[tuple[Path, tuple[Path, tuple[str, ...]]]] = []  # (path, (base folder, key parts))

    def _walk(base: Path):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield Path(dirpath) / name

    for path in _walk(root):
        kind = _kind(path)
        suffix = _suffix(path) or "<no suffix>"
        found[suffix] = found.get(suffix, 0) + 1
        if kind is None:
            continue
        rel = path.relative_to(root)
        parts = rel.parts
        if label_root is not None and (label_root == path.parent or label_root in path.parents):
            continue  # collected below
        stem, has_token = _strip_label_suffix(_stem(path))
        li = _label_folder_of(parts) if label_root is None else None
        if li is not None:
            key_parts = (*parts[li + 1 : -1], stem)
            labels.append((path, (root.joinpath(*parts[:li]), key_parts)))
            continue
        if has_token:
            labels.append((path, (path.parent, (stem,))))
            continue
        candidates.append(path)
        if not _matches(rel.as_posix(), path.name, image_pattern):
            continue
        ok, info = _readable(path, kind)
        if not ok:
            skipped.append(f"{path} ({info})")
            continue
        images.append((path, kind, info))
    if label_root is not None:
        for path in _walk(label_root):
            if _kind(path) is None:
                continue
            rel = path.relative_to(label_root)
            stem, _ = _strip_label_suffix(_stem(path))
            labels.append((path, (root, (*rel.parts[:-1], stem))))
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable file(s): {skipped[:5]}", stacklevel=2)

    items = _images_to_items(images, spatial_dims)
    if not items:
        what = ", ".join(f"{n} x {s}" for s, n in sorted(found.items())) or "no files"
        raise DatalistError(
            f"{root}: no readable {spatial_dims}D images found (found: {what}; unreadable: {skipped[:5]}). Expected "
            f"DICOM, NIfTI or {'/'.join(s.lstrip('.') for s in RASTER_SUFFIXES)} files"
            + (f" matching {image_pattern!r}" if image_pattern else "")
            + "."
        )
    used = {Path(p) for it in items for p in ([it["image"]] if isinstance(it["image"], str) else it["image"])}
    ignored = [p for p in candidates if p not in used and p.parent not in used]  # a series item is its folder
    _pair_labels(root, items, labels, ignored)
    return items


def _images_to_items(images: list[tuple[Path, str, Any]], spatial_dims: int) -> list[dict]:
    items: list[dict] = []
    series: dict[tuple[Path, str], list[tuple[Path, Any]]] = {}
    dicom_per_folder: dict[Path, int] = {}
    for path, kind, info in images:
        if kind == "dicom":
            dicom_per_folder[path.parent] = dicom_per_folder.get(path.parent, 0) + 1
            frames = int(info.get("NumberOfFrames", 1) or 1)
            if spatial_dims == 3 and frames == 1:
                series.setdefault((path.parent, str(info.get("SeriesInstanceUID", ""))), []).append((path, info))
                continue
            item: dict = {"image": str(path)}
            patient = str(info.get("PatientID", "") or "")
            if patient:
                item["patient"] = patient
            items.append(item)
        elif kind == "nifti":
            if spatial_dims == 3 and (len(info) < 3 or info[2] < 2):
                continue
            items.append({"image": str(path)})
        elif spatial_dims == 2:
            items.append({"image": str(path)})
    for (parent, uid), members in list(series.items()):
        groups = group_by_orientation([info for _, info in members])
        if len(groups) > 1:
            kept = [g for g in groups if len(g) > 1]
            warnings.warn(
                f"{parent}: DICOM series {uid or '<no uid>'} has slices in {len(groups)} different orientations "
                f"(ImageOrientationPatient); it is split into one volume per orientation ({len(kept)} with two or more "
                "slices kept, single slices left out).",
                stacklevel=3,
            )
            del series[(parent, uid)]
            for j, g in enumerate(groups):
                series[(parent, f"{uid}#orientation{j}")] = [members[i] for i in g]
    for (parent, _uid), members in series.items():
        if len(members) < 2:
            continue
        whole_folder = dicom_per_folder.get(parent, 0) == len(members)
        item = {"image": str(parent) if whole_folder else [str(p) for p, _ in sorted(members)]}
        patient = str(members[0][1].get("PatientID", "") or "")
        if patient:
            item["patient"] = patient
        items.append(item)
    return sorted(items, key=lambda it: it["image"] if isinstance(it["image"], str) else it["image"][0])


def _image_keys(root: Path, image: Path) -> set[tuple[Path, tuple[str, ...]]]:
    """The (base folder, relative stem path) keys under which a mask can refer to ``image``."""
    parts = (*image.relative_to(root).parts[:-1], _stem(image))
    keys = set()
    for cut in range(len(parts)):
        base, rel = root.joinpath(*parts[:cut]), parts[cut:]
        keys.add((base, rel))
        if len(rel) > 1:
            keys.add((base, rel[1:]))
    return keys


def _pair_labels(
    root: Path,
    items: list[dict],
    labels: list[tuple[Path, tuple[Path, tuple[str, ...]]]],
    ignored: Sequence[Path] = (),
) -> None:
    index: dict[tuple[Path, tuple[str, ...]], list[int]] = {}
    for i, item in enumerate(items):
        image = Path(item["image"] if isinstance(item["image"], str) else item["image"][0])
        if not isinstance(item["image"], str):
            image = image.parent  # a list of series files pairs by its folder
        for key in _image_keys(root, image):
            index.setdefault(key, []).append(i)
    ignored_keys = set().union(*(_image_keys(root, p) for p in ignored)) if ignored else set()
    for path, key in labels:
        hits = sorted(set(index.get(key, [])))
        if not hits and key in ignored_keys:
            continue  # the mask of an image left out by image_pattern / spatial_dims / unreadable
        if not hits:
            raise DatalistError(
                f"{path}: this mask matches no image (looked for an image with stem {key[1][-1]!r} under {key[0]}). "
                "Rename it after its image (same name in a sibling 'labels' folder, or '<image>_seg' next to it), "
                "or remove it."
            )
        if len(hits) > 1:
            raise DatalistError(
                f"{path}: this mask matches several images: {[items[h]['image'] for h in hits]}. Give the images "
                "distinct names or pass label_folder explicitly."
            )
        item = items[hits[0]]
        if "label" in item:
            raise DatalistError(f"{item['image']}: has two masks, {item['label']} and {path}; keep one.")
        item["label"] = str(path)


# ---------------------------------------------------------------------------------------------- CSV
def _parse_boxes(text: str) -> list[list[float]]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        value = json.loads(text)
        if value and not isinstance(value[0], (list, tuple)):
            value = [value]
        return [[float(v) for v in box] for box in value]
    return [[float(v) for v in re.split(r"[\s,]+", box.strip())] for box in text.split(";") if box.strip()]


def _parse_ints(text: str) -> list[int]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return [int(v) for v in json.loads(text)]
    return [int(float(v)) for v in re.split(r"[\s,;]+", text) if v]


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "t"):
        return True
    if value in ("0", "false", "no", "n", "f", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _abs(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def build_datalist_from_csv(csv_path: str | os.PathLike) -> list[dict]:
    """Read a CSV datalist: one row per image.

    Columns (header required; only ``image`` mandatory): ``image``, ``label``, ``tissue`` (paths, relative to the
    CSV's folder or absolute), ``boxes`` (a JSON list of corner lists, or ``"x0 y0 x1 y1;x0 y0 x1 y1"``),
    ``box_labels`` (JSON list or space-separated ints; all 0 when boxes are given without labels), ``class`` (int),
    ``patient`` (str), ``synthetic`` (bool). Other non-empty columns are kept as strings.

    Args:
        csv_path: the CSV file.

    Raises:
        DatalistError: when the file is missing, has no ``image`` column, or a cell cannot be parsed (the message
            names the line and the column).
    """
    path = Path(csv_path).expanduser().resolve()
    if not path.is_file():
        raise DatalistError(f"{path}: no such CSV file.")
    base = path.parent
    items: list[dict] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "image" not in columns:
            raise DatalistError(f"{path}: the CSV needs a header with an 'image' column; found columns {columns}.")
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("image"):
                if any(row.values()):
                    raise DatalistError(f"{path} line {line}: empty 'image' cell in a non-empty row.")
                continue
            item: dict = {}
            column = ""
            try:
                for column, value in row.items():
                    if value == "" or column == "":
                        continue
                    if column in PATH_KEYS:
                        item[column] = _abs(base, value)
                    elif column == "boxes":
                        item["boxes"] = _parse_boxes(value)
                    elif column == "box_labels":
                        item["box_labels"] = _parse_ints(value)
                    elif column == "class":
                        item["class"] = int(float(value))
                    elif column == "synthetic":
                        item["synthetic"] = _parse_bool(value)
                    else:
                        item[column] = value
            except (ValueError, TypeError) as e:
                raise DatalistError(
                    f"{path} line {line}, column {column!r}: cannot parse {row[column]!r} ({e})."
                ) from None
            if "boxes" in item:
                lengths = {len(b) for b in item["boxes"]}
                if lengths - {4, 6} or len(lengths) > 1:
                    raise DatalistError(
                        f"{path} line {line}: boxes must all have 4 (2D) or 6 (3D) corner values, got {item['boxes']}."
                    )
                if "box_labels" not in item:
                    item["box_labels"] = [0] * len(item["boxes"])
            items.append(item)
    return items


# ---------------------------------------------------------------------------------------------- JSON
def _absolute_paths(items: list[dict], base: Path) -> list[dict]:
    for item in items:
        for key in PATH_KEYS:
            value = item.get(key)
            if isinstance(value, str):
                item[key] = _abs(base, value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                item[key] = [_abs(base, v) for v in value]
    return items


def _load_json_lists(json_path: Path) -> dict[str, list[dict]]:
    try:
        with open(json_path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DatalistError(f"{json_path}: cannot read the datalist JSON ({e}).") from None
    if not isinstance(content, dict):
        raise DatalistError(
            f"{json_path}: a datalist JSON must be an object with 'training'/'validation'/'test' lists."
        )
    present = [k for k in SPLITS if isinstance(content.get(k), list)]
    if not present:
        raise DatalistError(
            f"{json_path}: no 'training', 'validation' or 'test' list; found keys {sorted(content)}. See "
            "docs/conventions.md for the datalist format."
        )
    lists = {}
    for key in present:
        if not content[key]:
            lists[key] = []  # (MONAI's loader cannot read an empty "test" list)
            continue
        try:
            items = load_decathlon_datalist(json_path, is_segmentation=True, data_list_key=key)
        except (TypeError, ValueError) as e:
            raise DatalistError(f"{json_path}: the '{key}' list is malformed ({e}).") from None
        lists[key] = _absolute_paths(items, json_path.parent)
    return lists


# ---------------------------------------------------------------------------------------------- splits
def split_datalist(
    items: Sequence[dict], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, key: str = "patient"
) -> list[list[dict]]:
    """Deterministic group-level split: all items of one ``key`` value (a patient) land in the same part.

    Items without ``key`` are their own group. Groups are shuffled with ``numpy.random.default_rng(seed)`` and
    dealt out so that every part with a positive fraction gets at least one group when there are enough groups;
    the number of groups per part follows the fractions (largest remainder). Items keep their input order within
    a part.

    Args:
        items: the datalist.
        fractions: one non-negative fraction per part, summing to 1.
        seed: shuffling seed.
        key: the grouping key.

    Raises:
        DatalistError: when the fractions are negative or do not sum to 1.
    """
    fr = np.asarray(list(fractions), dtype=float)
    if fr.ndim != 1 or fr.size == 0 or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise DatalistError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}.")
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        gid = item.get(key)
        groups.setdefault(f"k:{gid}" if gid not in (None, "") else f"i:{i}", []).append(i)
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    n = len(names)
    raw = fr * n
    counts = np.floor(raw).astype(int)
    for j in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    positive = np.flatnonzero(fr > 0)
    if n >= positive.size:
        for j in positive:
            if counts[j] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[j] += 1
    parts: list[list[dict]] = []
    start = 0
    for c in counts:
        chosen = sorted(i for g in order[start : start + c] for i in groups[names[g]])
        parts.append([items[i] for i in chosen])
        start += c
    return parts


def _select_split(
    lists: dict[str, list[dict]], split: str, source: str, val_fraction: float, test_fraction: float, seed: int
) -> list[dict]:
    if split == "all":
        return [item for key in SPLITS for item in lists.get(key, [])] + lists.get("all", [])
    filled = {k: v for k, v in lists.items() if v}
    if len(filled) == 1:
        (pool,) = filled.values()
        fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
        return split_datalist(pool, fractions=fractions, seed=seed, key="patient")[SPLITS.index(split)]
    if split in lists:
        return lists[split]
    raise DatalistError(f"{source}: has no '{split}' list (it has {sorted(lists)}); pick one of them or split='all'.")


def load_datalist(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "training",
    spatial_dims: int = 2,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    check: bool = True,
    bad_images: str | None = None,
) -> list[dict]:
    """Load one split of a dataset as a list of dicts with absolute paths.

    ``dataset_dir`` may be ``None`` (the embedded demo dataset for ``spatial_dims``), a ``.json`` datalist, a
    folder holding ``datalist.json`` or ``dataset.json``, a ``.csv``, or a plain folder (scanned with
    :func:`build_datalist_from_folder`).

    Items of a folder scan carry ``patient`` when DICOM names one; when some items of the returned list have
    ``patient``, the others get their image path as ``patient`` (each its own patient, as an item without one is in
    a split), so that batches collate.

    Splits: a JSON with several non-empty lists among ``training``/``validation``/``test`` returns the requested
    list. A source with a single non-empty list (a JSON with one list, a CSV, a scanned folder) is the pool of a deterministic patient-level
    split (:func:`split_datalist` with fractions ``(1 - val_fraction - test_fraction, val_fraction,
    test_fraction)``), for every requested split, so that training, validation and test never share a patient.
    ``split="all"`` returns every item.

    Args:
        dataset_dir: the source, see above.
        split: ``"training"``, ``"validation"``, ``"test"`` or ``"all"``.
        spatial_dims: 2 or 3; picks the demo dataset and the folder scan mode, and the box length checked.
        val_fraction: validation fraction of a single-list split.
        test_fraction: test fraction of a single-list split.
        seed: seed of a single-list split.
        check: run :func:`check_datalist` on every split of the source (so a box outside its image in the
            validation or test list stops training before it starts), not only on the one returned.
        bad_images: ``None`` (default): the images are not read here. ``"raise"``: read every image of the returned
            split (:func:`screen_images`) and raise :class:`BadImageError` listing those with NaN/infinite values,
            one constant value or a degenerate shape. ``"skip"``: leave those images out with a warning.

    Raises:
        DatalistError: for a missing source, an unknown split, or failed checks.
        InvalidBoxesError: for boxes outside their image (when ``check``).
        BadImageError: for bad images with ``bad_images="raise"``, or when ``"skip"`` would leave none.
    """
    if split not in (*SPLITS, "all"):
        raise DatalistError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}.")
    if bad_images is not None and bad_images not in BAD_IMAGE_MODES:
        raise DatalistError(f"bad_images must be one of {BAD_IMAGE_MODES} or None, got {bad_images!r}.")
    if spatial_dims not in (2, 3):
        raise DatalistError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatalistError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) with a sum below 1."
        )
    if dataset_dir is None:
        from monai_gan_aug.data.demo import get_demo_datalist

        dataset_dir = get_demo_datalist(spatial_dims=spatial_dims)
    source = Path(dataset_dir).expanduser().resolve()
    if not source.exists():
        raise DatalistError(f"{source}: no such file or folder. Pass a datalist JSON, a CSV, or a dataset folder.")
    lists: dict[str, list[dict]]
    if source.is_dir():
        json_file = next((source / n for n in DATALIST_FILENAMES if (source / n).is_file()), None)
        if json_file is not None:
            lists = _load_json_lists(json_file)
        else:
            lists = {"all": build_datalist_from_folder(source, spatial_dims=spatial_dims)}
    elif source.suffix.lower() == ".json":
        lists = _load_json_lists(source)
    elif source.suffix.lower() == ".csv":
        lists = {"all": build_datalist_from_csv(source)}
    else:
        raise DatalistError(f"{source}: not a datalist; pass a .json, a .csv, or a folder.")
    if check:
        for key, members in lists.items():
            try:
                check_datalist(members, spatial_dims=spatial_dims)
            except (DatalistError, InvalidBoxesError) as e:
                where = f"{source}" + ("" if key == "all" else f", '{key}' list")
                raise type(e)(f"{where}: {e}") from None
    items = _select_split(lists, split, str(source), val_fraction, test_fraction, seed)
    if any("patient" in item for item in items):
        # one key set for every item: a batch that mixes items with and without 'patient' cannot be collated. An
        # item without a patient is its own patient (as in split_datalist), named after its image
        items = [item if "patient" in item else {**item, "patient": str(item.get("image", ""))} for item in items]
    if bad_images is not None:
        items = screen_images(items, spatial_dims=spatial_dims, bad_images=bad_images)
    return items


def image_paths(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "training",
    spatial_dims: int = 2,
    check: bool = True,
) -> list[str]:
    """The ``image`` path of every item of one split: ``[item["image"] for item in load_datalist(...)]``.

    What the evaluation configs hand to the GAN metrics as the real image set (and the inference configs take the
    reference image from). ``dataset_dir``, ``split``, ``spatial_dims`` and ``check`` are those of
    :func:`load_datalist`, which raises its errors (missing source, unknown split, bad boxes) unchanged.
    """
    return [item["image"] for item in load_datalist(dataset_dir, split=split, spatial_dims=spatial_dims, check=check)]


def _image_name(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{value[0]} (+{len(value) - 1} more files)" if len(value) > 1 else str(value[0]) if value else "[]"
    return str(value)


def screen_images(
    items: Sequence[dict], spatial_dims: int = 2, bad_images: str = "raise", key: str = "image"
) -> list[dict]:
    """Read every ``key`` image of ``items`` once and refuse or leave out those a network cannot learn from.

    An image is bad when it cannot be read (:class:`ImageReadError`) or
    :func:`~monai_gan_aug.data.loading.image_problem` finds a problem: fewer than ``spatial_dims`` axes longer than
    one pixel (a ``(1, 1, 1)`` placeholder), NaN or infinite values, or one constant value everywhere. This reads
    the pixels, so it costs one extra read of the dataset before training; in exchange a bad file is reported by
    name before any dataset is cached, any iteration runs or any checkpoint is written.

    Args:
        items: the datalist (items without ``key`` are kept as they are).
        spatial_dims: 2 or 3: the spatial dims the training images need.
        bad_images: ``"raise"``: raise :class:`BadImageError` listing every bad image; ``"skip"``: return the items
            without them and warn, naming each file and its problem.
        key: the item key holding the image path.

    Returns:
        the items whose image passed (all of them with ``"raise"``).

    Raises:
        BadImageError: with ``"raise"`` when an image is bad; with ``"skip"`` when every image is bad.
    """
    if bad_images not in BAD_IMAGE_MODES:
        raise DatalistError(f"bad_images must be one of {BAD_IMAGE_MODES}, got {bad_images!r}.")
    loader = LoadMedicalImage(image_only=True, check_image=False)
    kept: list[dict] = []
    bad: list[str] = []
    for item in items:
        if key not in item:
            kept.append(item)
            continue
        try:
            problem = image_problem(loader(item[key]), spatial_dims=spatial_dims, allow_constant=False)
            if problem:
                problem = f"{_image_name(item[key])}: {problem}"
        except (ImageReadError, BadImageError) as e:
            problem = str(e)
        if problem:
            bad.append(problem)
        else:
            kept.append(item)
    if not bad:
        return list(items)
    listing = "\n  ".join(bad[:20]) + (f"\n  (and {len(bad) - 20} more)" if len(bad) > 20 else "")
    if bad_images == "raise":
        raise BadImageError(f"{len(bad)} of {len(items)} images cannot be trained on:\n  {listing}\n{BAD_IMAGE_HINT}")
    if not kept:
        raise BadImageError(
            f"all {len(items)} images are bad, so bad_images='skip' leaves nothing to train on:\n  {listing}\n"
            "Fix the files, or point --dataset_dir at another dataset."
        )
    warnings.warn(
        f"bad_images='skip': left out {len(bad)} of {len(items)} images, training on the other {len(kept)}:\n  "
        f"{listing}",
        stacklevel=2,
    )
    return kept


# ---------------------------------------------------------------------------------------------- checks
def _path_problem(value: Any) -> str | None:
    paths = value if isinstance(value, (list, tuple)) else [value]
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            return f"{p!r} is not a path"
        path = Path(p)
        if not path.exists():
            return f"{path} does not exist"
        if path.is_dir():
            if not any(path.iterdir()):
                return f"{path} is an empty folder"
        elif path.stat().st_size == 0:
            return f"{path} is an empty file"
    return None


def check_datalist(items: Sequence[dict], spatial_dims: int = 2, check_boxes: bool = True) -> Sequence[dict]:
    """Check a datalist before training: files exist and are non-empty, boxes are well-formed and inside images.

    Every problem is collected and reported at once. Image sizes for the box check are read cheaply with
    :func:`read_spatial_shape` (headers only). Boxes may have ``2 * spatial_dims`` values or ``2 *`` the image's
    own rank (3D boxes of a volume that a 2D pipeline slices).

    Args:
        items: the datalist.
        spatial_dims: 2 or 3.
        check_boxes: check ``boxes`` / ``box_labels``.

    Returns:
        ``items``, unchanged.

    Raises:
        DatalistError: missing / empty files, an item without ``image``, a malformed item.
        InvalidBoxesError: malformed boxes or boxes outside their image (names the file, the box, the size).
    """

    if not isinstance(items, (list, tuple)):
        raise DatalistError(f"a datalist must be a list of dicts, got {type(items).__name__}.")
    problems: list[str] = []
    box_errors: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"item {i} is a {type(item).__name__}, not a dict")
            continue
        if "image" not in item:
            others = [k for k in ("label", "tissue", "boxes") if k in item]
            problems.append(f"item {i} has {others or sorted(item)} but no 'image' ({item})")
            continue
        item_ok = True
        for key in PATH_KEYS:
            if key in item:
                problem = _path_problem(item[key])
                if problem:
                    problems.append(f"item {i} '{key}': {problem}")
                    item_ok = False
        if check_boxes and ("boxes" in item or "box_labels" in item) and item_ok:
            name = item["image"] if isinstance(item["image"], str) else item["image"][0]
            try:
                shape = read_spatial_shape(item["image"])
            except DatalistError as e:
                problems.append(str(e))
                continue
            box_errors.extend(
                box_problems(
                    item.get("boxes", []),
                    spatial_size=shape,
                    labels=item.get("box_labels"),
                    spatial_dims=spatial_dims,
                    filename=name,
                )
            )
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise DatalistError("datalist check failed:\n  " + "\n  ".join(problems[:20]) + more)
    if box_errors:
        more = f" (and {len(box_errors) - 20} more)" if len(box_errors) > 20 else ""
        raise InvalidBoxesError("invalid boxes:\n  " + "\n  ".join(box_errors[:20]) + more)
    return items
