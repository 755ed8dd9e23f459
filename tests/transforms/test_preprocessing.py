# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The papers' preprocessing transforms, array and dictionary versions, with boxes following the geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_gan_aug.transforms.boxes.array import boxes_to_condition_map
from monai_gan_aug.transforms.preprocessing.array import (
    CheckImage,
    CropResizeToPowerOfTwo,
    EnsureGrayscale,
    ForegroundCrop,
    RandSlice,
    RightAlignedSquareCrop,
    ScaleToSymmetricRange,
    is_power_of_two,
    nearest_power_of_two,
)
from monai_gan_aug.transforms.preprocessing.dictionary import (
    CheckImaged,
    CropResizeToPowerOfTwod,
    EnsureGrayscaled,
    ForegroundCropd,
    RandSliced,
    RightAlignedSquareCropD,
    ScaleToSymmetricRanged,
)


def _ramp(*spatial: int) -> torch.Tensor:
    return torch.arange(int(np.prod(spatial)), dtype=torch.float32).reshape(1, *spatial)


# ------------------------------------------------------------------------------------------- right-aligned crop
def test_right_aligned_square_crop_wide_image():
    img = _ramp(7, 5)  # 7 columns (axis 0), 5 rows: like the paper's 1167 x 875 frames
    out = RightAlignedSquareCrop()(img)
    assert tuple(out.shape) == (1, 5, 5)
    torch.testing.assert_close(torch.as_tensor(out), img[:, 2:, :])  # the rightmost columns, all rows


@pytest.mark.parametrize("align, start", [("center", 2), ("start", 0), ("end", 4)])
def test_right_aligned_square_crop_tall_image(align, start):
    img = _ramp(4, 8)
    out = RightAlignedSquareCrop(align=align)(img)
    torch.testing.assert_close(torch.as_tensor(out), img[:, :, start : start + 4])


def test_right_aligned_square_crop_3d_and_errors():
    out = RightAlignedSquareCrop()(_ramp(6, 4, 3))
    assert tuple(out.shape) == (1, 4, 4, 3)
    with pytest.raises(ValueError, match="align"):
        RightAlignedSquareCrop(align="left")
    with pytest.raises(ValueError, match="channel-first"):
        RightAlignedSquareCrop()(torch.zeros(5))


def test_right_aligned_square_cropd_moves_boxes_and_updates_affine():
    img = MetaTensor(_ramp(10, 6))
    label = (img > 30).float()
    data = {
        "image": img,
        "label": label,
        "boxes": np.array([[0.0, 0.0, 3.0, 2.0], [5.0, 1.0, 9.0, 4.0], [2.0, 0.0, 6.0, 1.0]]),
        "box_labels": np.array([7, 8, 9]),
    }
    out = RightAlignedSquareCropD(["image", "label"], box_keys="boxes", box_label_keys="box_labels")(data)
    assert tuple(out["image"].shape) == (1, 6, 6) and tuple(out["label"].shape) == (1, 6, 6)
    np.testing.assert_allclose(out["boxes"], [[1.0, 1.0, 5.0, 4.0], [0.0, 0.0, 2.0, 1.0]])  # the first box is gone
    np.testing.assert_array_equal(out["box_labels"], [8, 9])
    np.testing.assert_allclose(out["image"].affine[0, 3].item(), 4.0)  # origin moved by the 4 cropped columns


# ------------------------------------------------------------------------------------------- power of two
def test_power_of_two_helpers():
    assert [is_power_of_two(n) for n in (1, 2, 64, 256, 0, 3, 100, -4, True)] == [True] * 4 + [False] * 5
    # log-scale rounding: the midpoint of 16 and 32 is 22.6
    assert [nearest_power_of_two(n) for n in (20, 22, 23, 256, 300, 1)] == [16, 16, 32, 256, 256, 1]


@pytest.mark.parametrize("size", [100, 0, -8, 3])
def test_crop_resize_rejects_non_power_of_two(size):
    with pytest.raises(ValueError, match="power of two"):
        CropResizeToPowerOfTwo(size=size)
    with pytest.raises(ValueError, match="power of two"):
        CropResizeToPowerOfTwod("image", size=size)


def test_crop_resize_crop_and_pad_modes():
    img = _ramp(12, 8)
    cropped = CropResizeToPowerOfTwo(size=8, mode="crop")(img)
    torch.testing.assert_close(torch.as_tensor(cropped), img[:, 2:10, :])  # side 8 == size: no resampling
    padded = CropResizeToPowerOfTwo(size=16, mode="pad", value=-1.0)(img)
    assert tuple(padded.shape) == (1, 16, 16)
    assert float(padded.min()) == -1.0  # the padding value shows up after resizing 12 -> 16
    auto = CropResizeToPowerOfTwo()(torch.rand(1, 20, 30))  # square side 20 -> nearest power of two 16
    assert tuple(auto.shape) == (1, 16, 16)
    vol = CropResizeToPowerOfTwo(size=4)(torch.rand(1, 6, 8, 10))
    assert tuple(vol.shape) == (1, 4, 4, 4)
    const = CropResizeToPowerOfTwo(size=4)(torch.full((1, 9, 7), 3.0))
    torch.testing.assert_close(torch.as_tensor(const), torch.full((1, 4, 4), 3.0))
    with pytest.raises(ValueError, match="mode"):
        CropResizeToPowerOfTwo(mode="stretch")


def test_crop_resize_dict_nearest_labels_and_boxes_follow():
    img = torch.zeros(1, 24, 16)
    label = torch.zeros(1, 24, 16)
    label[0, 6:14, 2:10] = 1  # inside the central 16 x 16 square (columns 4..20)
    boxes = np.array([[6.0, 2.0, 14.0, 10.0], [0.0, 0.0, 3.0, 3.0]])
    out = CropResizeToPowerOfTwod(
        ["image", "label"], size=8, interp_mode=("bilinear", "nearest"), box_keys="boxes", box_label_keys="labels"
    )({"image": img, "label": label, "boxes": boxes, "labels": [1, 2]})
    assert tuple(out["image"].shape) == (1, 8, 8)
    assert set(torch.unique(torch.as_tensor(out["label"])).tolist()) == {0.0, 1.0}  # still binary
    np.testing.assert_allclose(out["boxes"], [[1.0, 1.0, 5.0, 5.0]])  # crop shifts by 4 columns, resize halves
    np.testing.assert_array_equal(out["labels"], [1])
    # the box still covers exactly the resized mask
    cond = boxes_to_condition_map(out["boxes"], (8, 8))
    torch.testing.assert_close(cond, torch.as_tensor(out["label"]).float().as_subclass(torch.Tensor))


def test_crop_resize_dict_pad_shifts_boxes():
    out = CropResizeToPowerOfTwod("image", size=8, mode="pad", box_keys="boxes")(
        {"image": torch.rand(1, 8, 4), "boxes": [[0.0, 0.0, 2.0, 4.0]]}
    )
    np.testing.assert_allclose(out["boxes"], [[0.0, 2.0, 2.0, 6.0]])  # 2 rows of padding before


# ------------------------------------------------------------------------------------------- intensity
def test_scale_to_symmetric_range():
    img = torch.tensor([[[0.0, 5.0, 10.0]]])
    torch.testing.assert_close(torch.as_tensor(ScaleToSymmetricRange()(img)), torch.tensor([[[-1.0, 0.0, 1.0]]]))
    window = ScaleToSymmetricRange(a_min=0.0, a_max=5.0)(img)
    torch.testing.assert_close(torch.as_tensor(window), torch.tensor([[[-1.0, 1.0, 1.0]]]))
    unclipped = ScaleToSymmetricRange(a_min=0.0, a_max=5.0, clip=False)(img)
    assert float(torch.as_tensor(unclipped).max()) == pytest.approx(3.0)
    ramp = torch.arange(101, dtype=torch.float32).reshape(1, 101)
    pct = torch.as_tensor(ScaleToSymmetricRange(lower_percentile=10, upper_percentile=90)(ramp))
    assert float(pct[0, 10]) == pytest.approx(-1.0) and float(pct[0, 90]) == pytest.approx(1.0)
    assert float(pct.min()) == -1.0 and float(pct.max()) == 1.0
    const = ScaleToSymmetricRange()(np.full((1, 3, 3), 7.0))
    assert isinstance(const, np.ndarray) and np.all(const == -1.0)
    out = ScaleToSymmetricRanged("image")({"image": MetaTensor(img, meta={"filename_or_obj": "a"})})
    assert isinstance(out["image"], MetaTensor) and out["image"].meta["filename_or_obj"] == "a"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"a_min": 0.0},
        {"a_min": 1.0, "a_max": 1.0},
        {"lower_percentile": 5},
        {"lower_percentile": 50, "upper_percentile": 10},
        {"a_min": 0.0, "a_max": 1.0, "lower_percentile": 1, "upper_percentile": 99},
    ],
)
def test_scale_to_symmetric_range_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="ScaleToSymmetricRange"):
        ScaleToSymmetricRange(**kwargs)


# ------------------------------------------------------------------------------------------- foreground crop
def _head(size: int = 32) -> torch.Tensor:
    y, x = np.mgrid[:size, :size]
    head = ((x - 14) ** 2 / 64 + (y - 17) ** 2 / 100 <= 1).astype(np.float32)  # ellipse, x 6..22, y 7..27
    head[15:19, 12:16] = 0  # a dark ventricle inside: filled, does not split the head
    head[1, 29:31] = 1  # a bright annotation far away: not the largest component
    img = torch.from_numpy(head.T.copy())[None] * 100 + 5  # axes (x, y), background 5
    return img


def test_foreground_crop_largest_component_and_margin():
    img = _head()
    out = ForegroundCrop(threshold=50)(img)
    assert tuple(out.shape) == (1, 17, 21)  # x 6..22, y 7..27
    torch.testing.assert_close(torch.as_tensor(out), img[:, 6:23, 7:28])
    assert tuple(ForegroundCrop(threshold="otsu")(img).shape) == (1, 17, 21)
    assert tuple(ForegroundCrop(threshold=50, margin=2)(img).shape) == (1, 21, 25)
    assert tuple(ForegroundCrop(threshold=50, largest_component=False)(img).shape) == (1, 25, 27)  # annotation kept
    blank = torch.zeros(1, 8, 9)
    assert tuple(ForegroundCrop()(blank).shape) == (1, 8, 9)  # no foreground: whole image
    with pytest.raises(ValueError, match="threshold"):
        ForegroundCrop(threshold="triangle")


def test_foreground_cropd_uses_source_key_and_moves_boxes():
    img = torch.rand(1, 20, 20)
    brain = torch.zeros(1, 20, 20)
    brain[0, 5:15, 4:12] = 1
    out = ForegroundCropd(["image", "brain"], source_key="brain", threshold=0.5, box_keys="boxes", box_label_keys="bl")(
        {"image": img, "brain": brain, "boxes": [[6.0, 5.0, 8.0, 7.0], [16.0, 16.0, 19.0, 19.0]], "bl": [0, 1]}
    )
    torch.testing.assert_close(torch.as_tensor(out["image"]), img[:, 5:15, 4:12])
    np.testing.assert_allclose(out["boxes"], [[1.0, 1.0, 3.0, 3.0]])
    np.testing.assert_array_equal(out["bl"], [0])


# ------------------------------------------------------------------------------------------- grayscale
def test_ensure_grayscale_weights_and_passthrough():
    rgb = torch.zeros(3, 2, 2)
    rgb[0, 0, 0], rgb[1, 0, 1], rgb[2, 1, 0] = 1.0, 1.0, 1.0  # pure red, green, blue pixels
    out = EnsureGrayscale()(rgb)
    torch.testing.assert_close(out, torch.tensor([[[0.299, 0.587], [0.114, 0.0]]]))
    rgba = torch.cat([rgb, torch.full((1, 2, 2), 0.5)])
    torch.testing.assert_close(EnsureGrayscale()(rgba), out)  # alpha ignored
    np_out = EnsureGrayscale()(np.ones((3, 4, 4), dtype=np.uint8) * 10)
    assert isinstance(np_out, np.ndarray) and np_out.dtype == np.float32 and np.allclose(np_out, 10.0)
    one = torch.rand(1, 4, 4)
    assert EnsureGrayscale()(one) is one
    meta = MetaTensor(rgb, meta={"filename_or_obj": "/data/us_001.png"})
    d = EnsureGrayscaled("image")({"image": meta})
    assert isinstance(d["image"], MetaTensor) and d["image"].meta["filename_or_obj"] == "/data/us_001.png"


def test_ensure_grayscale_rejects_other_channel_counts():
    with pytest.raises(ValueError, match=r"/data/two_channel\.nii\.gz.*2 channels"):
        EnsureGrayscale()(MetaTensor(torch.zeros(2, 4, 4), meta={"filename_or_obj": "/data/two_channel.nii.gz"}))


# ------------------------------------------------------------------------------------------- random slice
def test_rand_slice_determinism_and_passthrough():
    vol = MetaTensor(_ramp(4, 5, 12))
    first = RandSlice().set_random_state(seed=7)
    indices_a = []
    for _ in range(6):
        out = first(vol)
        indices_a.append(first.index)
        assert tuple(out.shape) == (1, 4, 5)
        torch.testing.assert_close(out.as_tensor(), vol.as_tensor()[..., first.index])
        assert tuple(out.affine.shape) == (3, 3)
    second = RandSlice().set_random_state(seed=7)
    assert [(second(vol), second.index)[1] for _ in range(6)] == indices_a
    third = RandSlice().set_random_state(seed=8)
    assert [(third(vol), third.index)[1] for _ in range(6)] != indices_a
    flat = torch.rand(1, 4, 5)
    assert RandSlice()(flat) is flat
    axis0 = RandSlice(axis=0).set_random_state(0)(vol)
    assert tuple(axis0.shape) == (1, 5, 12)


def test_rand_slice_foreground_bias():
    vol = torch.rand(1, 4, 4, 20)
    mask = torch.zeros(1, 4, 4, 20)
    mask[0, 1, 1, [3, 15]] = 1
    slicer = RandSlice(prob_foreground=1.0).set_random_state(0)
    picked = set()
    for _ in range(20):
        slicer(vol, foreground=mask)
        picked.add(slicer.index)
    assert picked == {3, 15}
    boxes = np.array([[0.0, 0.0, 8.5, 2.0, 2.0, 10.0]])  # covers slices 8 and 9
    for _ in range(5):
        slicer(vol, foreground=boxes)
        assert slicer.index in (8, 9)
    never = RandSlice(prob_foreground=0.0).set_random_state(0)
    assert len({(never(vol, foreground=mask), never.index)[1] for _ in range(30)}) > 2


def test_rand_sliced_keeps_image_label_boxes_consistent():
    vol = _ramp(6, 5, 8)
    label = torch.zeros(1, 6, 5, 8)
    label[0, 1:3, 1:4, 5] = 1
    data = {
        "image": vol,
        "label": label,
        "boxes": np.array([[1.0, 1.0, 5.0, 3.0, 4.0, 6.0], [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]]),
        "box_labels": np.array([4, 5]),
    }
    t = RandSliced(
        ["image", "label"], foreground_key="label", prob_foreground=1.0, box_keys="boxes", box_label_keys="box_labels"
    ).set_random_state(3)
    out = t(data)
    assert t.slicer.index == 5
    torch.testing.assert_close(torch.as_tensor(out["image"]), vol[..., 5])
    torch.testing.assert_close(torch.as_tensor(out["label"]), label[..., 5])
    np.testing.assert_allclose(out["boxes"], [[1.0, 1.0, 3.0, 4.0]])  # the second box misses slice 5
    np.testing.assert_array_equal(out["box_labels"], [4])
    replay = RandSliced(["image", "label"], foreground_key="boxes", prob_foreground=0.5).set_random_state(11)
    again = RandSliced(["image", "label"], foreground_key="boxes", prob_foreground=0.5).set_random_state(11)
    for _ in range(4):
        replay(data)
        again(data)
        assert replay.slicer.index == again.slicer.index


# ------------------------------------------------------------------------------------------- checks
def test_check_image_names_the_file():
    img = MetaTensor(torch.zeros(3, 8, 8), meta={"filename_or_obj": "/data/case_07.dcm"})
    with pytest.raises(ValueError, match=r"/data/case_07\.dcm: has 3 channel\(s\), expected 1"):
        CheckImage(channels=1)(img)
    with pytest.raises(ValueError, match=r"case_07\.dcm: has spatial shape \(8, 8\), expected \(16, 16\)"):
        CheckImage(spatial_size=(16, 16))(img)
    with pytest.raises(ValueError, match="expected"):
        CheckImage(spatial_size=(8, 8, -1))(img)  # wrong number of spatial dims
    assert CheckImage(channels=(1, 3), spatial_size=(8, None))(img) is img
    with pytest.raises(ValueError, match=r"\[image\] /x/raw\.png"):
        CheckImaged("image", channels=1)(
            {"image": np.zeros((3, 4, 4)), "image_meta_dict": {"filename_or_obj": "/x/raw.png"}}
        )
    out = CheckImaged(["image", "label"], channels=1, spatial_size=(4, 4))(
        {"image": torch.zeros(1, 4, 4), "label": torch.zeros(1, 4, 4)}
    )
    assert set(out) == {"image", "label"}


# ------------------------------------------------------------------------------------------- end to end
def test_thyroid_pipeline_on_real_ultrasound_dicom():
    """Liang & Chen preprocessing on a real colour ultrasound DICOM: load, gray, right square, 2^n, [-1, 1]."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from pydicom.data import get_testdata_file

    from monai_gan_aug.data.readers import DicomReader

    path = get_testdata_file("US1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data not installed")
    pipeline = Compose(
        [
            LoadImaged("image", reader=DicomReader()),
            EnsureChannelFirstd("image"),
            EnsureGrayscaled("image"),
            RightAlignedSquareCropD("image", box_keys="boxes"),
            CropResizeToPowerOfTwod("image", size=64, box_keys="boxes"),
            ScaleToSymmetricRanged("image"),
            CheckImaged("image", channels=1, spatial_size=(64, 64)),
        ]
    )
    out = pipeline({"image": path, "boxes": [[600.0, 100.0, 640.0, 148.0]]})  # image is 640 x 480 (x, y)
    img = out["image"]
    assert tuple(img.shape) == (1, 64, 64)
    assert float(img.min()) == pytest.approx(-1.0) and float(img.max()) == pytest.approx(1.0)
    assert img.meta["filename_or_obj"] == path
    np.testing.assert_allclose(
        out["boxes"], [[(600 - 160) * 64 / 480, 100 * 64 / 480, 64.0, 148 * 64 / 480]], rtol=1e-5
    )


def test_slice_pipeline_on_real_multiframe_dicom():
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from pydicom.data import get_testdata_file

    from monai_gan_aug.data.readers import DicomReader

    path = get_testdata_file("emri_small.dcm")
    if path is None:
        pytest.skip("pydicom-data not installed")
    pipeline = Compose(
        [
            LoadImaged("image", reader=DicomReader()),
            EnsureChannelFirstd("image"),
            RandSliced("image"),
            ForegroundCropd("image", threshold="otsu", margin=1),
            CropResizeToPowerOfTwod("image", size=32, mode="pad"),
            ScaleToSymmetricRanged("image", lower_percentile=0.5, upper_percentile=99.5),
        ]
    ).set_random_state(0)
    out = pipeline({"image": path})
    assert tuple(out["image"].shape) == (1, 32, 32)
    assert -1.0 <= float(out["image"].min()) and float(out["image"].max()) <= 1.0
