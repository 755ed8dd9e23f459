# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DicomReader on real DICOM files from pydicom's test data and the pydicom-data package."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from monai.bundle import ConfigParser
from monai.transforms import EnsureChannelFirst, LoadImage, LoadImaged
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut

from monai_gan_aug.data.errors import ImageReadError
from monai_gan_aug.data.readers import (
    LUMA_WEIGHTS,
    DicomReader,
    has_dicom_magic,
    rgb_to_luma,
)


def _file(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed (pydicom-data)")
    return path


def _read(path, **kwargs):
    reader = DicomReader(**kwargs)
    return reader.get_data(reader.read(path))


def _reference(path: str) -> np.ndarray:
    """pydicom's own decode (+ modality LUT / palette) in MONAI axes: (columns, rows[, frames][, samples])."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    elif int(ds.SamplesPerPixel) == 1:
        arr = apply_modality_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float64)
    if frames > 1:  # (F, R, C[, S]) -> (C, R, F[, S])
        return np.swapaxes(np.moveaxis(arr, 0, 2), 0, 1)
    return np.swapaxes(arr, 0, 1)  # (R, C[, S]) -> (C, R[, S])


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # explicit VR little endian, rescale slope/intercept
        "MR_small_bigendian.dcm",  # explicit VR big endian
        "MR_small_implicit.dcm",  # implicit VR
        "MR_small_RLE.dcm",  # RLE lossless
        "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
        "JPEG2000.dcm",  # JPEG 2000 (multi-frame tag with one frame)
        "JPGExtended.dcm",  # JPEG extended (12 bit)
        "JPEG-LL.dcm",  # JPEG lossless, process 14
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR_FULL
        "SC_rgb_rle.dcm",  # RLE, RGB
        "US1_J2KR.dcm",  # JPEG 2000 lossless, YBR_RCT
        "image_dfl.dcm",  # deflated explicit VR little endian
        "emri_small_jpeg_ls_lossless.dcm",  # multi-frame JPEG-LS
        "mlut_18.dcm",  # Modality LUT Sequence
        "OBXXXX1A_rle.dcm",  # PALETTE COLOR, RLE
    ],
)
def test_decode_matches_pydicom_reference(name):
    path = _file(name)
    arr, meta = _read(path)
    ref = _reference(path)
    assert arr.dtype == np.float32
    assert arr.shape == ref.shape
    np.testing.assert_allclose(arr, ref, rtol=1e-6, atol=1e-3)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert meta["PhotometricInterpretation"] == ds.PhotometricInterpretation
    assert meta["TransferSyntaxUID"] == ds.file_meta.TransferSyntaxUID
    assert meta["filename_or_obj"] == path
    assert meta["synthetic"] is False


@pytest.mark.parametrize(
    "plain, encoded, max_abs, max_mean",
    [
        ("MR_small.dcm", "MR_small_RLE.dcm", 0, 0),
        ("MR_small.dcm", "MR_small_jp2klossless.dcm", 0, 0),
        ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", 0, 0),
        ("emri_small.dcm", "emri_small_RLE.dcm", 0, 0),
        ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", 0, 0),
        ("US1_UNCR.dcm", "US1_J2KR.dcm", 0, 0),
        ("SC_rgb.dcm", "SC_rgb_rle.dcm", 0, 0),
        ("RG3_UNCR.dcm", "RG3_J2KR.dcm", 0, 0),
        # lossy: the *_UNCI files are the decoded lossy images, the *_UNCR files the originals
        ("MR2_UNCI.dcm", "MR2_J2KI.dcm", 1e-2, 1e-3),
        ("MR2_UNCR.dcm", "MR2_J2KI.dcm", 250.0, 25.0),  # 12-bit MR, range ~2300
        ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", 16.0, 2.0),
        ("SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm", 16.0, 2.0),
    ],
)
def test_compressed_equals_uncompressed(plain, encoded, max_abs, max_mean):
    a, meta_a = _read(_file(plain))
    b, meta_b = _read(_file(encoded))
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.float64) - b)
    assert diff.max() <= max_abs
    assert diff.mean() <= max_mean
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    np.testing.assert_allclose(meta_a["affine"], meta_b["affine"], atol=1e-4)


@pytest.mark.parametrize(
    "little, big",
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),
        ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
        ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ],
)
def test_big_endian_equals_little_endian(little, big):
    a, _ = _read(_file(little))
    b, _ = _read(_file(big))
    np.testing.assert_array_equal(a, b)


def test_ct_is_in_hounsfield_units():
    path = _file("CT_small.dcm")
    img = LoadImage(reader=DicomReader(), image_only=True, ensure_channel_first=True)(path)
    ds = pydicom.dcmread(path)
    assert tuple(img.shape) == (1, int(ds.Columns), int(ds.Rows))
    assert img.dtype.is_floating_point
    raw = ds.pixel_array.astype(np.float64)
    np.testing.assert_allclose(img[0].numpy(), (raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).T)
    assert -1100 <= float(img.min()) < -500  # air / lung present
    assert 500 < float(img.max()) < 3100  # bone, no raw 12-bit values
    assert img.meta["Modality"] == "CT"
    np.testing.assert_allclose(img.meta["spacing"], [float(v) for v in ds.PixelSpacing[::-1]])


def test_monochrome1_is_inverted_about_stored_range():
    path = _file("RG3_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    inverted, meta = _read(path)
    plain, _ = _read(path, invert_monochrome1=False)
    top = 2 ** int(ds.BitsStored) - 1
    np.testing.assert_array_equal(plain, ds.pixel_array.T.astype(np.float32))
    np.testing.assert_array_equal(inverted, top - plain)
    assert meta["PhotometricInterpretation"] == "MONOCHROME1"  # the original interpretation is kept


def test_monochrome1_inversion_follows_modality_lut(tmp_path):
    ds = pydicom.dcmread(_file("MR_small.dcm"))  # signed 16 bit
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    out, _ = _read(path)
    raw = ds.pixel_array.T.astype(np.float64)
    lo, hi = -(2**15) * 2 - 100, (2**15 - 1) * 2 - 100
    np.testing.assert_allclose(out, lo + hi - (raw * 2 - 100))
    # brightness order is reversed: the brightest stored pixel becomes the darkest
    assert np.unravel_index(np.argmax(raw), raw.shape) == np.unravel_index(np.argmin(out), out.shape)


def test_rgb_channels_and_grayscale():
    path = _file("SC_rgb.dcm")
    rgb, meta = _read(path)
    assert rgb.shape == (100, 100, 3) and meta["original_channel_dim"] == -1
    first = EnsureChannelFirst()(rgb, meta_dict=meta)
    assert tuple(first.shape) == (3, 100, 100)
    gray, gmeta = _read(path, to_grayscale=True)
    assert gray.shape == (100, 100) and np.isnan(gmeta["original_channel_dim"])
    np.testing.assert_allclose(gray, rgb @ np.asarray(LUMA_WEIGHTS, dtype=np.float32), rtol=1e-6)
    # pure primaries give exactly the weights
    primaries = np.eye(3, dtype=np.float32).reshape(1, 3, 3) * 255
    np.testing.assert_allclose(rgb_to_luma(primaries)[0], 255 * np.asarray(LUMA_WEIGHTS), rtol=1e-6)


def test_palette_color_expands_to_rgb():
    path = _file("OBXXXX1A.dcm")
    arr, meta = _read(path)
    ds = pydicom.dcmread(path)
    assert arr.shape == (int(ds.Columns), int(ds.Rows), 3)
    np.testing.assert_array_equal(arr, np.swapaxes(apply_color_lut(ds.pixel_array, ds), 0, 1))
    assert meta["PhotometricInterpretation"] == "PALETTE COLOR"


def test_multiframe_frames_are_last_spatial_axis():
    path = _file("emri_small.dcm")
    img = LoadImage(reader=DicomReader(), image_only=True, ensure_channel_first=True)(path)
    ds = pydicom.dcmread(path)
    assert tuple(img.shape) == (1, int(ds.Columns), int(ds.Rows), int(ds.NumberOfFrames))
    np.testing.assert_array_equal(img[0, :, :, 3].numpy(), ds.pixel_array[3].T)
    assert len(img.meta["spacing"]) == 3


def _write_series(folder, positions, uid=None, name=lambda i: f"slice_{i}.dcm"):
    """Copies of CT_small with the given z positions; slice i has pixel (0, 0) = 1000 + i (stored value)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(_file("CT_small.dcm"))
    uid = uid or pydicom.uid.generate_uid()
    for i, z in enumerate(positions):
        ds = base.copy()
        arr = ds.pixel_array.copy()
        arr[0, 0] = 1000 + i
        ds.PixelData = arr.tobytes()
        ds.ImagePositionPatient = [-100.0, -120.0, float(z)]
        ds.InstanceNumber = len(positions) - i  # deliberately disagrees with the positions
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / name(i))
    return base


def test_series_folder_sorted_by_position(tmp_path):
    positions = [20.0, 0.0, 30.0, 10.0]
    base = _write_series(tmp_path / "series", positions, name=lambda i: f"IM{i:04d}")  # no suffix: found by magic
    reader = DicomReader()
    assert reader.verify_suffix(tmp_path / "series")
    img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(tmp_path / "series")
    assert tuple(img.shape) == (1, 128, 128, 4)
    slope, intercept = float(base.RescaleSlope), float(base.RescaleIntercept)
    markers = (img[0, 0, 0, :].numpy() - intercept) / slope - 1000
    np.testing.assert_allclose(markers, np.argsort(positions))  # slices ordered by z: 0, 10, 20, 30
    np.testing.assert_allclose(img.meta["spacing"][2], 10.0)
    np.testing.assert_allclose(img.affine[2, 2].item(), 10.0)
    np.testing.assert_allclose(img.affine[2, 3].item(), 0.0)  # origin = lowest slice


def test_series_list_of_files_and_several_series(tmp_path):
    _write_series(tmp_path / "mixed", [0.0, 5.0], uid="1.2.3.1")
    _write_series(tmp_path / "other", [0.0, 5.0, 10.0], uid="1.2.3.2")
    for p in (tmp_path / "other").iterdir():
        shutil.copy(p, tmp_path / "mixed" / f"b_{p.name}")
    with pytest.raises(ImageReadError, match="2 DICOM series") as err:
        _read(tmp_path / "mixed")
    assert "series_uid" in str(err.value) and str(tmp_path / "mixed") in str(err.value)
    arr, _ = _read(tmp_path / "mixed", series_uid="1.2.3.2")
    assert arr.shape == (128, 128, 3)
    files = sorted(str(p) for p in (tmp_path / "other").iterdir())[::-1]
    arr2, _ = _read(files)
    np.testing.assert_array_equal(arr, arr2)


def test_truncated_file_raises_image_read_error(tmp_path):
    src = _file("CT_small.dcm")
    with open(src, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(ImageReadError, match="truncated") as err:
        LoadImage(reader=DicomReader(), image_only=True)(truncated)
    assert str(truncated) in str(err.value)
    header_only = tmp_path / "header_cut.dcm"
    header_only.write_bytes(data[:300])
    with pytest.raises(ImageReadError) as err:
        _read(header_only)
    assert str(header_only) in str(err.value)
    not_dicom = tmp_path / "fake.dcm"
    not_dicom.write_bytes(b"this is not a dicom file" * 20)
    with pytest.raises(ImageReadError, match="not a DICOM Part 10 file"):
        _read(not_dicom)
    with pytest.raises(ImageReadError, match="no such file"):
        _read(tmp_path / "missing.dcm")
    assert isinstance(ImageReadError("x"), ValueError)


def test_verify_suffix(tmp_path):
    src = _file("MR_small.dcm")
    reader = DicomReader()
    for name in ("a.dcm", "b.DICOM", "c.ima", "noext", "1.2.840.10008.5"):
        shutil.copy(src, tmp_path / name)
        assert reader.verify_suffix(tmp_path / name), name
    assert has_dicom_magic(tmp_path / "noext")
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 200)
    assert not reader.verify_suffix(tmp_path / "img.png")
    assert reader.verify_suffix([tmp_path / "a.dcm", tmp_path / "noext"])
    assert not reader.verify_suffix([tmp_path / "a.dcm", tmp_path / "img.png"])
    assert reader.verify_suffix(tmp_path)
    (tmp_path / "empty").mkdir()
    assert not reader.verify_suffix(tmp_path / "empty")


def test_spacing_from_imager_pixel_spacing_or_default(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    for tag in ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient"):
        delattr(ds, tag)
    ds.ImagerPixelSpacing = [0.5, 0.25]  # row spacing, column spacing
    ds.save_as(tmp_path / "cr.dcm")
    _, meta = _read(tmp_path / "cr.dcm")
    np.testing.assert_allclose(meta["spacing"], [0.25, 0.5])  # (columns, rows)
    del ds.ImagerPixelSpacing
    ds.save_as(tmp_path / "none.dcm")
    _, meta = _read(tmp_path / "none.dcm")
    np.testing.assert_allclose(meta["spacing"], [1.0, 1.0])


def test_config_instantiation_and_loadimaged():
    parser = ConfigParser(
        {
            "reader": {"_target_": "monai_gan_aug.data.readers.DicomReader", "to_grayscale": True},
            "load": {"_target_": "LoadImaged", "keys": "image", "reader": "@reader", "ensure_channel_first": True},
        }
    )
    reader = parser.get_parsed_content("reader")
    assert isinstance(reader, DicomReader) and reader.to_grayscale
    out = parser.get_parsed_content("load")({"image": _file("SC_rgb.dcm")})
    assert tuple(out["image"].shape) == (1, 100, 100)
    assert out["image"].meta["PhotometricInterpretation"] == "RGB"
    # the same object works in LoadImaged built in Python
    out = LoadImaged("image", reader=DicomReader())({"image": _file("US1_UNCR.dcm")})
    assert tuple(out["image"].shape) == (640, 480, 3)


def test_enhanced_multiframe_uses_functional_groups():
    """Enhanced CT keeps rescale, spacing, orientation and positions in (shared / per-frame) functional groups,
    which pydicom's apply_modality_lut and MONAI's PydicomReader do not read."""
    path = _file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    arr, meta = _read(path)
    assert arr.shape == (512, 512, 2)
    np.testing.assert_array_equal(arr, np.moveaxis(ds.pixel_array, 0, 2).swapaxes(0, 1) - 1024.0)  # intercept -1024
    np.testing.assert_allclose(meta["spacing"], [0.388672, 0.388672, 10.0])  # frame positions 10 mm apart
    np.testing.assert_allclose(meta["affine"][:3, 3], [-99.5, 301.5, -159.0])  # first frame, LPS -> RAS


def test_series_with_mismatched_slice_size_raises(tmp_path):
    _write_series(tmp_path / "s", [0.0, 5.0], uid="1.2.3.9")
    odd = pydicom.dcmread(_file("MR_small.dcm"))  # 64 x 64
    odd.SeriesInstanceUID = "1.2.3.9"
    odd.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    odd.ImagePositionPatient = [0.0, 0.0, 10.0]
    odd.save_as(tmp_path / "s" / "odd.dcm")
    with pytest.raises(ImageReadError, match="one matrix size") as err:
        _read(tmp_path / "s")
    assert "odd.dcm" in str(err.value)
