# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Wire format of the MONAI Label generation tasks, without MONAI Label: request parameters in, result out.

MONAI Label's ``/infer/{model}`` answers with ONE result file (multipart field ``image``) plus a JSON (field
``params``). A generation task returns the synthetic image as that file and its label inside the JSON, as a
gzip-compressed NIfTI in base64 (:func:`encode_nifti`; ``params["label"]``), so a client gets image and label from one
request. These helpers build and read that format; they need only numpy, nibabel and the standard library, so clients
and tests use them in any environment.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import numpy as np

__all__ = [
    "LABEL_ENCODING",
    "SYNTHETIC_DESCRIP",
    "decode_label",
    "decode_nifti",
    "encode_label",
    "encode_nifti",
    "nifti_bytes",
    "parse_box_labels",
    "parse_boxes",
    "read_nifti_bytes",
    "split_multipart",
]

LABEL_ENCODING = "nifti+gzip+base64"
"""Value of ``params["label"]["encoding"]`` in a generation result."""

SYNTHETIC_DESCRIP = b"SYNTHETIC monai_gan_aug"
"""NIfTI ``descrip`` of every synthetic image (the same mark as :class:`monai_gan_aug.handlers.SyntheticWriter`)."""


def _affine4(affine: Any) -> np.ndarray:
    if affine is None:
        return np.eye(4)
    a = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=np.float64)
    if a.shape == (4, 4):
        return a
    if a.shape == (3, 3):  # a 2D affine (MONAI's PIL reader): embed it
        out = np.eye(4)
        out[:2, :2], out[:2, 3] = a[:2, :2], a[:2, 2]
        return out
    raise ValueError(f"affine must be 3x3 or 4x4, got shape {a.shape}.")


def nifti_bytes(array: Any, affine: Any = None, descrip: bytes | None = None, dtype: Any = None) -> bytes:
    """A gzip-compressed NIfTI-1 file (``.nii.gz`` bytes) of a channel-first array.

    Args:
        array: ``(C, *spatial)`` array or tensor; one channel is written as a plain 2D/3D image, several channels as
            the last axis (nibabel's layout).
        affine: 4x4 (or 2D 3x3) voxel-to-world matrix as MONAI's readers give it; identity when None.
        descrip: NIfTI ``descrip`` header field (e.g. :data:`SYNTHETIC_DESCRIP`).
        dtype: output dtype (default: the array's).

    Raises:
        ValueError: an array without a channel axis or of more than 3 spatial dimensions.
    """
    import nibabel as nib

    arr = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
    if arr.ndim not in (3, 4):
        raise ValueError(f"expected a channel-first (C, X, Y[, Z]) array, got shape {arr.shape}.")
    data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if dtype is not None:
        data = data.astype(dtype)
    img = nib.Nifti1Image(np.ascontiguousarray(data), _affine4(affine))
    if descrip:
        img.header["descrip"] = descrip
    return gzip.compress(img.to_bytes(), compresslevel=6)


def read_nifti_bytes(data: bytes) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Read ``.nii`` or ``.nii.gz`` bytes: ``(array as stored by nibabel, 4x4 affine, descrip)``."""
    import nibabel as nib

    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    img = nib.Nifti1Image.from_bytes(data)
    return np.asarray(img.dataobj), np.asarray(img.affine), bytes(img.header["descrip"].tobytes()).rstrip(b"\x00")


def encode_nifti(array: Any, affine: Any = None, descrip: bytes | None = None, dtype: Any = None) -> str:
    """:func:`nifti_bytes` as base64 text (for a JSON field)."""
    return base64.b64encode(nifti_bytes(array, affine, descrip, dtype)).decode("ascii")


def decode_nifti(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_nifti`: ``(array as stored, 4x4 affine)``.

    Raises:
        ValueError: the text is not base64 of a (gzip-compressed) NIfTI file.
    """
    try:
        raw = base64.b64decode(text, validate=True)
        arr, aff, _ = read_nifti_bytes(raw)
    except Exception as err:  # binascii.Error, nibabel errors, gzip errors
        raise ValueError(f"not a base64-encoded NIfTI file ({type(err).__name__}: {err}).") from err
    return arr, aff


def encode_label(label: Any, affine: Any = None) -> dict[str, Any]:
    """The ``params["label"]`` entry of a generation result: a uint8 label map as base64 ``.nii.gz`` plus its shape
    and the values it holds."""
    arr = np.asarray(label.detach().cpu() if hasattr(label, "detach") else label)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"label values must lie in [0, 255] for a uint8 label map, got [{arr.min()}, {arr.max()}].")
    return {
        "encoding": LABEL_ENCODING,
        "data": encode_nifti(arr, affine, dtype=np.uint8),
        "shape": [int(s) for s in arr.shape[1:]],
        "values": [int(v) for v in np.unique(arr)],
    }


def decode_label(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``params["label"]`` of a generation result: ``(label map as stored in the NIfTI file, affine)``.

    Raises:
        ValueError: the entry is not a label of this format.
    """
    if not isinstance(entry, Mapping) or entry.get("encoding") != LABEL_ENCODING or "data" not in entry:
        raise ValueError(f"expected a label entry with encoding {LABEL_ENCODING!r} and 'data', got {entry!r:.200}.")
    return decode_nifti(entry["data"])


def parse_boxes(value: Any, spatial_dims: int, name: str = "boxes") -> np.ndarray:
    """Boxes of a request (``params["boxes"]``): a list of ``[x0, y0, x1, y1]`` (2D) or ``[x0, y0, z0, x1, y1, z1]``
    (3D) corner lists in voxel coordinates of the request's image (``docs/conventions.md``), or that list as a JSON
    string. Returns a float64 ``(N, 2 * spatial_dims)`` array (``N = 0`` allowed: an image without lesions).

    Raises:
        ValueError: missing, not a list of equal-length number lists, the wrong number of corners, non-finite values,
            or ``x1 <= x0`` on an axis.
    """
    if value is None:
        raise ValueError(
            f'{name} missing: send params {{"{name}": [[x0, y0, x1, y1], ...]}} in voxel coordinates of the image '
            "(an empty list for an image without lesions)."
        )
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise ValueError(f"{name} is not valid JSON ({err}); send a list of corner lists.") from err
    width = 2 * int(spatial_dims)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a list of {width}-number corner lists, got {value!r:.200} ({err}).") from err
    if arr.size == 0:
        return np.zeros((0, width))
    if arr.ndim == 1 and arr.shape[0] == width:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != width:
        corners = "[x0, y0, x1, y1]" if width == 4 else "[x0, y0, z0, x1, y1, z1]"
        raise ValueError(f"{name} must have shape (N, {width}) ({corners} per box for this model), got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} hold non-finite values: {arr.tolist()}.")
    d = int(spatial_dims)
    bad = np.nonzero((arr[:, d:] <= arr[:, :d]).any(axis=1))[0]
    if len(bad):
        raise ValueError(
            f"{name}: box {int(bad[0])} {arr[bad[0]].tolist()} has x1 <= x0 on some axis (corners are "
            "[min corner, max corner])."
        )
    return arr


def parse_box_labels(value: Any, num_boxes: int, name: str = "box_labels") -> np.ndarray:
    """Integer class per box (``params["box_labels"]``); all 0 (lesion) when absent.

    Raises:
        ValueError: not one non-negative integer per box.
    """
    if value is None:
        return np.zeros(num_boxes, dtype=np.int64)
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    arr = np.asarray(value)
    if arr.shape != (num_boxes,) or (arr.size and (not np.all(np.equal(np.mod(arr, 1), 0)) or arr.min() < 0)):
        raise ValueError(f"{name} must be {num_boxes} non-negative integers (one per box), got {value!r:.200}.")
    return arr.astype(np.int64)


def split_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """Parts of a ``multipart/form-data`` body by field name (MONAI Label's ``/infer`` answer: ``params`` and
    ``image``), with the standard library only.

    Raises:
        ValueError: the content type is not multipart or a part has no name.
    """
    if not content_type.lower().startswith("multipart/"):
        raise ValueError(f"expected a multipart answer, got content type {content_type!r}.")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a multipart part has no name.")
        parts[str(name)] = part.get_payload(decode=True) or b""
    return parts
