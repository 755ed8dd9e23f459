# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A DICOM reader for MONAI's ``LoadImage`` that returns what a GAN pipeline needs: calibrated, correctly
oriented, consistently shaped arrays.

``DicomReader`` plugs into MONAI like any other reader::

    LoadImaged(keys="image", reader=DicomReader(to_grayscale=True))
    # or in a bundle config
    {"_target_": "LoadImaged", "keys": "image", "reader": {"_target_": "monai_gan_aug.data.readers.DicomReader"}}

It reads one file, a list of files (one series) or a folder (one series), decodes every transfer syntax
pydicom 3 can decode with the pylibjpeg / pyjpegls plugins (JPEG baseline / extended / lossless, JPEG 2000,
JPEG-LS, RLE, deflate, big endian), applies the modality LUT, makes MONOCHROME1 images bright-is-dense,
handles colour (RGB, YBR_*, PALETTE COLOR) and returns MONAI's axis order.

Why not MONAI's ``PydicomReader`` as it is: it sorts series by ``InstanceNumber`` only (not by position along
the slice normal), applies ``RescaleSlope``/``RescaleIntercept`` but not a Modality LUT Sequence, leaves
MONOCHROME1 and PALETTE COLOR images as stored, ignores ``ImagerPixelSpacing`` (projection radiographs), swaps
only the first two axes (a multi-frame ``(frames, rows, columns)`` array becomes ``(rows, frames, columns)``)
and raises raw pydicom errors. The affine it builds is the one used here (LPS, converted to RAS by default);
``orientation_ras_lps`` is MONAI's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.data.utils import orientation_ras_lps
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple, optional_import

from monai_gan_aug.data.errors import ImageReadError

pydicom, has_pydicom = optional_import("pydicom")

__all__ = [
    "DICOM_SUFFIXES",
    "LUMA_WEIGHTS",
    "ORIENTATION_TOLERANCE",
    "DicomReader",
    "group_by_orientation",
    "has_dicom_magic",
    "is_dicom_file",
    "list_dicom_files",
    "rgb_to_luma",
]

#: File suffixes accepted as DICOM without looking inside the file (lower case).
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: ITU-R BT.601 luma weights for R, G, B, used for every colour -> grayscale conversion in this package.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Largest difference of a direction cosine (``ImageOrientationPatient``) between slices of one stacked volume.
ORIENTATION_TOLERANCE = 1e-3

_PATH_TYPES = (str, os.PathLike)


def has_dicom_magic(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with the DICOM Part 10 preamble: 128 bytes followed by ``b"DICM"``.

    Args:
        path: file to check; folders and unreadable files return ``False``.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that should be read as DICOM: a DICOM suffix or the ``DICM`` magic.

    Args:
        path: file to check.
    """
    p = Path(path)
    if not p.is_file():
        return False
    return p.suffix.lower() in DICOM_SUFFIXES or has_dicom_magic(p)


def list_dicom_files(folder: str | os.PathLike) -> list[str]:
    """The DICOM files directly inside ``folder`` (not recursive), sorted by name.

    Args:
        folder: the folder to list.
    """
    return sorted(str(p) for p in Path(folder).iterdir() if p.name != "DICOMDIR" and is_dicom_file(p))


def rgb_to_luma(arr: np.ndarray, axis: int = -1) -> np.ndarray:
    """ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` along ``axis`` (a 4th, alpha channel is ignored).

    Args:
        arr: array with 3 or 4 entries along ``axis``.
        axis: the colour axis, removed from the output.

    Raises:
        ValueError: when ``arr`` has neither 3 nor 4 entries along ``axis``.
    """
    if arr.shape[axis] not in (3, 4):
        raise ValueError(f"rgb_to_luma needs 3 (RGB) or 4 (RGBA) channels along axis {axis}, got shape {arr.shape}.")
    rgb = np.take(arr, [0, 1, 2], axis=axis).astype(np.float32)
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return np.moveaxis(rgb, axis, -1) @ weights


def _header_orientation(ds: Any) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        value = _functional_attr(ds, "PlaneOrientationSequence", "ImageOrientationPatient", 0)
    if value is None or len(value) != 6:
        return None
    iop = np.asarray([float(v) for v in value])
    return iop if np.all(np.isfinite(iop)) and np.linalg.norm(iop[:3]) > 0 and np.linalg.norm(iop[3:]) > 0 else None


def group_by_orientation(datasets: Sequence[Any], tolerance: float = ORIENTATION_TOLERANCE) -> list[list[int]]:
    """Indices of ``datasets`` grouped by ``ImageOrientationPatient``, in order of first appearance.

    Two slices share a group when every direction cosine differs by at most ``tolerance``; slices without a valid
    orientation form one group of their own.

    Args:
        datasets: pydicom datasets (headers are enough).
        tolerance: largest difference of a direction cosine within a group.
    """
    groups: list[tuple[np.ndarray | None, list[int]]] = []
    for i, ds in enumerate(datasets):
        iop = _header_orientation(ds)
        for ref, members in groups:
            if (ref is None and iop is None) or (
                ref is not None and iop is not None and float(np.max(np.abs(ref - iop))) <= tolerance
            ):
                members.append(i)
                break
        else:
            groups.append((iop, [i]))
    return [members for _, members in groups]


@dataclass
class _DicomInput:
    """What ``DicomReader.read`` hands to ``get_data``: the datasets of one image, or the error reading them."""

    name: str
    datasets: list = field(default_factory=list)
    filenames: list = field(default_factory=list)
    error: Exception | None = None


def _first_item(ds: Any, sequence: str) -> Any:
    seq = ds.get(sequence) if ds is not None else None
    return seq[0] if seq else None


def _functional_attr(ds: Any, macro: str, attr: str, frame: int | None = 0) -> Any:
    """``attr`` from a functional-group ``macro`` of an enhanced multi-frame object (per-frame, then shared)."""
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame is not None and len(per_frame) > frame:
        groups.append(per_frame[frame])
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    if shared is not None:
        groups.append(shared)
    for group in groups:
        item = _first_item(group, macro)
        if item is not None and attr in item:
            return item.get(attr)
    return None


class DicomReader(ImageReader):
    """Read DICOM files, multi-frame objects and series for ``monai.transforms.LoadImage``.

    Output array (before ``EnsureChannelFirst``), float32, MONAI axis order (as MONAI's ``PydicomReader``):

    - single-frame grayscale: ``(columns, rows)``;
    - multi-frame or series: ``(columns, rows, frames_or_slices)``;
    - colour: the same with a trailing channel axis of 3 (``original_channel_dim = -1``), or no channel axis
      with ``to_grayscale=True``.

    Intensities:

    - grayscale: the modality LUT is applied (``RescaleSlope``/``RescaleIntercept``, the Modality LUT Sequence, or
      the Pixel Value Transformation functional group of enhanced objects), so CT is in Hounsfield units;
    - MONOCHROME1 (low values displayed bright, common in CR/DX) is inverted about its *stored range*:
      ``out = lo + hi - value`` with ``[lo, hi]`` the modality-LUT image of the range allowed by ``BitsStored``
      and ``PixelRepresentation``. This does not depend on the VOI window or on the image content, so every image
      of a collection maps the same way, the result stays in the same units and range, and bright means dense;
    - colour: YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT are converted to RGB by pydicom, PALETTE COLOR goes
      through its lookup table (values in the LUT's bit depth, 0..65535 for 16-bit tables); with
      ``to_grayscale=True`` the RGB values are combined with the ITU-R BT.601 luma weights.

    Geometry: the affine maps voxel indices ``(column, row, slice)`` to patient space. With
    ``ImageOrientationPatient``/``ImagePositionPatient`` (top level or in the functional groups) it is the DICOM
    affine (LPS, converted to RAS when ``affine_lps_to_ras``); without them it is a plain scaling by the spacing
    (``PixelSpacing``, else ``ImagerPixelSpacing``, else 1.0; slice spacing from the positions, else
    ``SpacingBetweenSlices``, else ``SliceThickness``, else 1.0).

    Series: the slices of a folder or a list of files are sorted by ``ImagePositionPatient`` projected on the slice
    normal (``ImageOrientationPatient`` row x column cosines), else by ``InstanceNumber``, else by file name.
    Files that belong to several ``SeriesInstanceUID`` raise :class:`ImageReadError` unless ``series_uid`` picks one.
    Slices whose ``ImageOrientationPatient`` differ (by more than ``ORIENTATION_TOLERANCE`` in any direction
    cosine, or present on some slices only) are separate planes, such as a localizer, not one volume: they raise
    :class:`ImageReadError` naming the orientations found and their files, instead of being stacked with wrong
    slice positions.

    Metadata: ``filename_or_obj``, ``affine``, ``original_affine``, ``spatial_shape``, ``spacing``, ``space``,
    ``original_channel_dim``, the tags ``Modality``, ``PhotometricInterpretation`` (as stored, before any
    conversion), ``TransferSyntaxUID``, ``SeriesInstanceUID``, ``PatientID`` (empty strings when absent) and
    ``synthetic=False`` (the provenance flag of :class:`monai_gan_aug.utils.enums.Provenance`).

    Errors: a file that cannot be parsed or decoded raises :class:`ImageReadError` naming the file, the problem and
    the fix. ``LoadImage`` turns any exception raised by a user-designated reader's ``read`` into a generic
    ``RuntimeError``; so ``read`` records the problem and ``get_data`` raises it, and the clear error reaches the
    caller.

    Args:
        to_grayscale: convert colour images to one luma channel.
        series_uid: the ``SeriesInstanceUID`` to read when a folder or a list holds several series.
        channel_dim: set ``original_channel_dim`` in the metadata instead of the automatic ``nan`` (no channel)
            or ``-1`` (colour); read by ``EnsureChannelFirst``.
        affine_lps_to_ras: convert a patient-space affine from DICOM's LPS to RAS (as ``NibabelReader``).
        invert_monochrome1: invert MONOCHROME1 images as described above.
        apply_modality_lut: apply the modality LUT / rescale to grayscale images.
        kwargs: passed to ``pydicom.dcmread`` (e.g. ``force=True`` for raw datasets without the Part 10 preamble).
    """

    def __init__(
        self,
        to_grayscale: bool = False,
        series_uid: str | None = None,
        channel_dim: str | int | None = None,
        affine_lps_to_ras: bool = True,
        invert_monochrome1: bool = True,
        apply_modality_lut: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not has_pydicom:
            raise ImportError("DicomReader needs pydicom>=3: pip install 'pydicom>=3' pylibjpeg pyjpegls.")
        if "stop_before_pixels" in kwargs:
            raise TypeError("DicomReader reads pixel data; do not pass stop_before_pixels.")
        self.to_grayscale = bool(to_grayscale)
        self.series_uid = series_uid
        self.channel_dim = float("nan") if channel_dim == "no_channel" else channel_dim
        self.affine_lps_to_ras = bool(affine_lps_to_ras)
        self.invert_monochrome1 = bool(invert_monochrome1)
        self.apply_modality_lut = bool(apply_modality_lut)
        self.kwargs = kwargs

    # ------------------------------------------------------------------ ImageReader API
    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether every entry is a DICOM file (suffix ``.dcm``/``.dicom``/``.ima`` or the ``DICM`` magic) or a
        folder that holds at least one such file.

        Args:
            filename: a path or a sequence of paths.
        """
        if not has_pydicom:
            return False
        names = ensure_tuple(filename)
        if not names:
            return False
        for name in names:
            if not isinstance(name, _PATH_TYPES):
                return False
            p = Path(name)
            if p.is_dir():
                if not any(is_dicom_file(c) for c in p.iterdir()):
                    return False
            elif p.suffix.lower() not in DICOM_SUFFIXES and not has_dicom_magic(p):
                return False
        return True

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs: Any) -> _DicomInput:
        """Parse the files of one image: a file, a list of files of one series, or a folder of one series.

        Problems are recorded in the returned object and raised by :meth:`get_data` (see the class docstring).

        Args:
            data: a path, a sequence of file paths, or a folder.
            kwargs: passed to ``pydicom.dcmread``, overriding the constructor's.
        """
        names = [str(n) for n in ensure_tuple(data)]
        label = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} files)"
        result = _DicomInput(name=names[0] if names else "")
        try:
            if not names:
                raise ImageReadError("DicomReader.read got no file name; pass a file, a list of files or a folder.")
            read_kwargs = {**self.kwargs, **kwargs}
            dirs = [n for n in names if Path(n).is_dir()]
            if dirs and len(names) > 1:
                raise ImageReadError(
                    f"DicomReader: got {len(names)} paths including the folder(s) {dirs}; pass one folder (one "
                    "series) or a list of files."
                )
            if dirs:
                files = list_dicom_files(dirs[0])
                if not files:
                    found = sorted(p.name for p in Path(dirs[0]).iterdir())[:10]
                    raise ImageReadError(
                        f"{dirs[0]}: no DICOM files in this folder (by suffix {DICOM_SUFFIXES} or 'DICM' magic); "
                        f"found {found}. Point the datalist at the folder that holds the slices."
                    )
                headers = [self._dcmread(f, stop_before_pixels=True, **read_kwargs) for f in files]
                keep = [i for i, h in enumerate(headers) if "Rows" in h]
                if not keep:
                    raise ImageReadError(
                        f"{dirs[0]}: none of the {len(files)} DICOM files holds an image (no Rows tag); it may "
                        "hold only reports or structure sets."
                    )
                files = self._select_series(dirs[0], [files[i] for i in keep], [headers[i] for i in keep])
            else:
                for n in names:
                    if not Path(n).is_file():
                        raise ImageReadError(f"{n}: no such file. Check the path in the datalist.")
                files = names
            datasets = [self._dcmread(f, **read_kwargs) for f in files]
            if not dirs and len(files) > 1:
                files = self._select_series(label, files, datasets)
                datasets = [datasets[names.index(f)] for f in files]
            result.datasets, result.filenames = datasets, files
        except ImageReadError as e:
            result.error = e
        return result

    def get_data(self, img: _DicomInput) -> tuple[np.ndarray, dict]:
        """Decode the datasets read by :meth:`read` into a float32 array and its metadata.

        Args:
            img: the object returned by :meth:`read`.

        Raises:
            ImageReadError: when reading or decoding failed.
        """
        if not isinstance(img, _DicomInput):
            raise TypeError(f"DicomReader.get_data expects the output of DicomReader.read, got {type(img).__name__}.")
        if img.error is not None:
            raise img.error
        datasets, files = img.datasets, img.filenames
        if len(datasets) == 1:
            ds, fname = datasets[0], files[0]
            arr = self._decode(ds, fname)  # (X, Y, F, S)
            n_frames = arr.shape[2]
            geometry = self._geometry(ds, n_frames)
            is_volume = n_frames > 1
            if not is_volume:
                arr = arr[:, :, 0]
        else:
            self._check_orientations(img.name, datasets, files)
            order = self._sort_slices(datasets, files)
            datasets = [datasets[i] for i in order]
            files = [files[i] for i in order]
            slices = []
            for ds, fname in zip(datasets, files):
                a = self._decode(ds, fname)
                if a.shape[2] != 1:
                    raise ImageReadError(
                        f"{fname}: a multi-frame file ({a.shape[2]} frames) inside a series of {len(files)} files; "
                        "read multi-frame files one at a time."
                    )
                if slices and a.shape[:2] + a.shape[3:] != slices[0].shape[:2] + slices[0].shape[2:]:
                    raise ImageReadError(
                        f"{fname}: slice shape {a.shape[:2]} (columns, rows) differs from {slices[0].shape[:2]} of "
                        f"{files[0]}; a series must have one matrix size. Pass series_uid or remove the odd file."
                    )
                slices.append(a[:, :, 0])
            arr = np.stack(slices, axis=2)
            geometry = self._series_geometry(datasets)
            is_volume = True
        has_channel = arr.shape[-1] > 1
        if not has_channel:
            arr = arr[..., 0]
        elif self.to_grayscale:
            arr = rgb_to_luma(arr, axis=-1)
            has_channel = False
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        spatial_rank = 3 if is_volume else 2
        meta = self._meta(datasets[0], img.name, geometry, arr.shape[:spatial_rank], has_channel)
        return arr, meta

    # ------------------------------------------------------------------ reading helpers
    def _dcmread(self, filename: str, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return pydicom.dcmread(filename, **kwargs)
        except pydicom.errors.InvalidDicomError as e:
            raise ImageReadError(
                f"{filename}: not a DICOM Part 10 file ({e}). If it is a raw DICOM dataset without the 128-byte "
                "preamble and 'DICM' magic, use DicomReader(force=True); otherwise remove it from the datalist."
            ) from None
        except FileNotFoundError:
            raise ImageReadError(f"{filename}: no such file. Check the path in the datalist.") from None
        except Exception as e:  # noqa: BLE001 - truncated headers raise EOFError, struct.error, ValueError, ...
            raise ImageReadError(
                f"{filename}: cannot parse the DICOM header ({type(e).__name__}: {e}); the file is corrupt or "
                "truncated. Re-export or re-download it, or remove it from the datalist."
            ) from None

    @staticmethod
    def _check_orientations(source: str, datasets: list, files: list[str]) -> None:
        groups = group_by_orientation(datasets)
        if len(groups) < 2:
            return
        found = []
        for members in groups:
            iop = _header_orientation(datasets[members[0]])
            cosines = "missing" if iop is None else "[" + ", ".join(f"{v:.4g}" for v in iop) + "]"
            names = [Path(files[i]).name for i in members]
            found.append(f"{cosines}: {len(names)} file(s) {names[:3]}{' ...' if len(names) > 3 else ''}")
        if len(found) > 10:
            found = [*found[:10], f"(and {len(found) - 10} more orientations)"]
        where = source if Path(source).is_dir() else f"{source} and {len(files) - 1} other file(s)"
        raise ImageReadError(
            f"{where}: the {len(files)} slices of this DICOM series have {len(groups)} different orientations "
            "(ImageOrientationPatient):\n  " + "\n  ".join(found) + "\nThey are separate planes (e.g. a localizer or "
            "a radial acquisition), not one volume, and stacking them would put the slices in wrong places. Use its "
            "files as 2D images (spatial_dims=2, one datalist item per file), or list only the files of one "
            "orientation in the datalist item."
        )

    def _select_series(self, source: str, files: list[str], datasets: list) -> list[str]:
        uids: dict[str, list[str]] = {}
        for f, ds in zip(files, datasets):
            uids.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(f)
        if self.series_uid is not None:
            if self.series_uid not in uids:
                raise ImageReadError(
                    f"{source}: series_uid={self.series_uid!r} not found; available series: "
                    f"{ {u: len(v) for u, v in uids.items()} }."
                )
            return uids[self.series_uid]
        if len(uids) > 1:
            raise ImageReadError(
                f"{source}: holds {len(uids)} DICOM series ({ {u or '<no uid>': len(v) for u, v in uids.items()} } "
                "files); pass DicomReader(series_uid=...) to read one of them, or split the folder."
            )
        return files

    def _decode(self, ds: Any, filename: str) -> np.ndarray:
        """Pixel data of one dataset as float32 ``(columns, rows, frames, samples)`` in output units."""
        tsyntax = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
        tsname = getattr(tsyntax, "name", str(tsyntax))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                raw = ds.pixel_array
        except Exception as e:  # noqa: BLE001 - any failure of a third-party decoder becomes one clear error
            text = str(e)
            if "plugin" in text.lower() or ("missing" in text.lower() and "decod" in text.lower()):
                hint = (
                    "install the decoder plugins: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
                    "pylibjpeg-rle pyjpegls"
                )
            else:
                hint = "the file is corrupt or truncated; re-export or re-download it, or remove it from the datalist"
            raise ImageReadError(
                f"{filename}: cannot decode the pixel data (transfer syntax {tsname}): {type(e).__name__}: {text}. "
                f"To fix: {hint}."
            ) from None
        rows, cols = int(ds.Rows), int(ds.Columns)
        n_frames = raw.size // (rows * cols * max(1, int(ds.get("SamplesPerPixel", 1))))
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        try:
            if photometric == "PALETTE COLOR":
                arr = pydicom.pixels.apply_color_lut(raw.reshape(n_frames, rows, cols), ds)[..., :3]
                arr = arr.astype(np.float32)
            elif raw.size == n_frames * rows * cols:
                arr = raw.reshape(n_frames, rows, cols).astype(np.float64)
                if self.apply_modality_lut:
                    arr = np.stack([self._modality(arr[i], ds, i) for i in range(n_frames)])
                if self.invert_monochrome1 and photometric == "MONOCHROME1":
                    lo, hi = self._stored_range(ds)
                    arr = (lo + hi) - arr
                arr = arr.astype(np.float32)[..., None]
            else:
                arr = raw.reshape(n_frames, rows, cols, -1)[..., :3].astype(np.float32)
        except ImageReadError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of a third-party decoder becomes one clear error
            raise ImageReadError(
                f"{filename}: cannot convert the decoded pixels ({photometric}, shape {raw.shape}): "
                f"{type(e).__name__}: {e}. The image tags (Rows, Columns, SamplesPerPixel, LUTs) may be inconsistent; "
                "re-export the file or remove it from the datalist."
            ) from None
        # (frames, rows, columns, samples) -> (columns, rows, frames, samples)
        return np.transpose(arr, (2, 1, 0, 3))

    @staticmethod
    def _rescale(ds: Any, frame: int | None) -> tuple[float, float] | None:
        if "RescaleSlope" in ds or "RescaleIntercept" in ds:
            return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
        slope = _functional_attr(ds, "PixelValueTransformationSequence", "RescaleSlope", frame)
        intercept = _functional_attr(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame)
        if slope is None and intercept is None:
            return None
        return float(slope if slope is not None else 1.0), float(intercept if intercept is not None else 0.0)

    def _modality(self, values: np.ndarray, ds: Any, frame: int | None = 0) -> np.ndarray:
        if ds.get("ModalityLUTSequence"):
            stored = np.asarray(values).astype(np.int64)
            return pydicom.pixels.apply_modality_lut(stored, ds).astype(np.float64)
        rescale = self._rescale(ds, frame)
        if rescale is None:
            return np.asarray(values, dtype=np.float64)
        return np.asarray(values, dtype=np.float64) * rescale[0] + rescale[1]

    def _stored_range(self, ds: Any) -> tuple[float, float]:
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
        if int(ds.get("PixelRepresentation", 0)) == 1:
            lo_s, hi_s = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            lo_s, hi_s = 0, 2**bits - 1
        if not self.apply_modality_lut:
            return float(lo_s), float(hi_s)
        if ds.get("ModalityLUTSequence"):
            lut = np.asarray(ds.ModalityLUTSequence[0].LUTData, dtype=np.float64)
            return float(lut.min()), float(lut.max())
        mapped = self._modality(np.asarray([lo_s, hi_s]), ds, 0)
        return float(mapped.min()), float(mapped.max())

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _pixel_spacing(ds: Any) -> tuple[float, float]:
        """(row spacing, column spacing) in mm: the distance between rows, then between columns."""
        for value in (
            ds.get("PixelSpacing"),
            _functional_attr(ds, "PixelMeasuresSequence", "PixelSpacing", 0),
            ds.get("ImagerPixelSpacing"),
        ):
            if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
                return float(value[0]), float(value[1])
        return 1.0, 1.0

    @staticmethod
    def _slice_thickness(ds: Any) -> float:
        for value in (
            ds.get("SpacingBetweenSlices"),
            _functional_attr(ds, "PixelMeasuresSequence", "SpacingBetweenSlices", 0),
            ds.get("SliceThickness"),
            _functional_attr(ds, "PixelMeasuresSequence", "SliceThickness", 0),
        ):
            if value is not None and float(value) > 0:
                return float(value)
        return 1.0

    @staticmethod
    def _orientation(ds: Any) -> np.ndarray | None:
        return _header_orientation(ds)

    @staticmethod
    def _position(ds: Any, frame: int = 0) -> np.ndarray | None:
        value = ds.get("ImagePositionPatient") if frame == 0 else None
        if value is None:
            value = _functional_attr(ds, "PlanePositionSequence", "ImagePositionPatient", frame)
        if value is None or len(value) != 3:
            return None
        ipp = np.asarray([float(v) for v in value])
        return ipp if np.all(np.isfinite(ipp)) else None

    def _geometry(self, ds: Any, n_frames: int) -> dict:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        last = self._position(ds, n_frames - 1) if n_frames > 1 and per_frame and len(per_frame) == n_frames else None
        return {
            "pixel_spacing": self._pixel_spacing(ds),
            "orientation": self._orientation(ds),
            "first": self._position(ds, 0),
            "last": last,
            "n": n_frames,
            "thickness": self._slice_thickness(ds),
        }

    def _series_geometry(self, datasets: list) -> dict:
        first, last = self._position(datasets[0]), self._position(datasets[-1])
        return {
            "pixel_spacing": self._pixel_spacing(datasets[0]),
            "orientation": self._orientation(datasets[0]),
            "first": first,
            "last": last if (first is not None and last is not None) else None,
            "n": len(datasets),
            "thickness": self._slice_thickness(datasets[0]),
        }

    def _sort_slices(self, datasets: list, files: list[str]) -> list[int]:
        positions = [self._position(ds) for ds in datasets]
        iop = self._orientation(datasets[0])
        instance = [ds.get("InstanceNumber") for ds in datasets]
        if iop is not None and all(p is not None for p in positions):
            normal = np.cross(iop[:3], iop[3:])
            keys: list = [float(np.dot(p, normal)) for p in positions]
            if len(set(np.round(keys, 4))) < len(keys):
                warnings.warn(
                    f"{files[0]}: several slices of this series share a position; they are ordered by InstanceNumber.",
                    stacklevel=3,
                )
            tiebreak = [int(i) if i is not None else 0 for i in instance]
            return sorted(range(len(datasets)), key=lambda i: (keys[i], tiebreak[i], files[i]))
        if all(i is not None for i in instance):
            return sorted(range(len(datasets)), key=lambda i: (int(instance[i]), files[i]))
        warnings.warn(
            f"{files[0]}: the series has neither ImagePositionPatient/ImageOrientationPatient nor InstanceNumber on "
            "every slice; slices are ordered by file name.",
            stacklevel=3,
        )
        return sorted(range(len(datasets)), key=lambda i: files[i])

    def _affine(self, geometry: dict) -> tuple[np.ndarray, bool]:
        """4x4 affine from voxel (column, row, slice) to world; second value: whether it is a patient-space affine."""
        row_sp, col_sp = geometry["pixel_spacing"]
        iop, first, last, n = geometry["orientation"], geometry["first"], geometry["last"], geometry["n"]
        affine = np.eye(4)
        if iop is None:
            slice_sp = geometry["thickness"]
            if first is not None and last is not None and n > 1:
                slice_sp = float(np.linalg.norm(last - first)) / (n - 1) or slice_sp
            affine[0, 0], affine[1, 1], affine[2, 2] = col_sp, row_sp, slice_sp
            return affine, False
        row_dir, col_dir = iop[:3], iop[3:]
        normal = np.cross(row_dir, col_dir)
        affine[:3, 0] = row_dir * col_sp  # moving along a row = increasing column index
        affine[:3, 1] = col_dir * row_sp  # moving down a column = increasing row index
        if first is not None and last is not None and n > 1:
            affine[:3, 2] = (last - first) / (n - 1)
        else:
            affine[:3, 2] = normal * geometry["thickness"]
        if first is not None:
            affine[:3, 3] = first
        if self.affine_lps_to_ras:
            affine = orientation_ras_lps(affine)
        return affine, True

    def _meta(self, ds: Any, name: str, geometry: dict, spatial_shape: tuple, has_channel: bool) -> dict:
        affine, patient_space = self._affine(geometry)
        rank = len(spatial_shape)
        meta: dict = {
            "filename_or_obj": name,
            MetaKeys.SPATIAL_SHAPE: np.asarray(spatial_shape),
            MetaKeys.AFFINE: affine.copy(),
            MetaKeys.ORIGINAL_AFFINE: affine,
            MetaKeys.SPACE: SpaceKeys.RAS if (patient_space and self.affine_lps_to_ras) else SpaceKeys.LPS,
            # norms of the affine's voxel-axis columns (MONAI's affine_to_spacing reads only the top-left block,
            # which under-reports the in-plane spacing of oblique or sagittal planes)
            "spacing": np.linalg.norm(affine[:3, :rank], axis=0),
            "Modality": str(ds.get("Modality", "") or ""),
            "PhotometricInterpretation": str(ds.get("PhotometricInterpretation", "") or ""),
            "TransferSyntaxUID": str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "",
            "SeriesInstanceUID": str(ds.get("SeriesInstanceUID", "") or ""),
            "PatientID": str(ds.get("PatientID", "") or ""),
            "synthetic": False,
        }
        if self.channel_dim is None:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if has_channel else float("nan")
        else:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
        return meta
