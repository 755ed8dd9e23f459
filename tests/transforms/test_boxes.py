# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Box transforms: condition maps, mask -> boxes, validation, YOLO lines and the box geometry helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_gan_aug.data.errors import InvalidBoxesError
from monai_gan_aug.transforms.boxes.array import (
    BoxesToConditionMap,
    BoxesToYolo,
    MaskToBoxes,
    ValidateBoxes,
    as_box_array,
    boxes_to_yolo_lines,
    crop_boxes,
    mask_to_boxes,
    resize_boxes,
    shift_boxes,
    slice_boxes,
    yolo_lines_to_boxes,
)
from monai_gan_aug.transforms.boxes.dictionary import (
    BoxesToConditionMapd,
    BoxesToYolod,
    MaskToBoxesd,
    ValidateBoxesd,
)


def test_condition_map_2d_follows_the_voxel_rule():
    cond = BoxesToConditionMap(spatial_size=(6, 5))([[1.0, 2.0, 3.0, 4.0], [4.2, 0.5, 4.8, 1.1]])
    expected = torch.zeros(1, 6, 5)
    expected[0, 1:3, 2:4] = 1  # integer corners: voxels 1..2 x 2..3
    expected[0, 4, 0:2] = 1  # fractional corners: floor(x0) <= i < ceil(x1)
    assert cond.dtype == torch.float32
    torch.testing.assert_close(cond, expected)


def test_condition_map_3d_label_mode_empty_and_clipping():
    cond = BoxesToConditionMap(mode="label")(
        np.array([[0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3.0]]), spatial_size=(4, 4, 4), labels=[0, 2]
    )
    assert tuple(cond.shape) == (1, 4, 4, 4)
    assert cond[0, 0, 0, 0] == 1 and cond[0, 1, 1, 1] == 3 and cond[0, 2, 2, 2] == 3 and cond[0, 3, 3, 3] == 0
    empty = BoxesToConditionMap((3, 3))(np.zeros((0, 4)))
    torch.testing.assert_close(empty, torch.zeros(1, 3, 3))
    torch.testing.assert_close(BoxesToConditionMap((3, 3))([]), torch.zeros(1, 3, 3))
    clipped = BoxesToConditionMap((3, 3))([[-2.0, -2.0, 1.0, 10.0]])
    assert clipped.sum() == 3 and clipped[0, 0].sum() == 3
    with pytest.raises(ValueError, match="mode"):
        BoxesToConditionMap(mode="gaussian")
    with pytest.raises(ValueError, match="labels"):
        BoxesToConditionMap((3, 3), mode="label")([[0, 0, 1, 1]])
    with pytest.raises(InvalidBoxesError, match=r"\(N, 4\)"):
        BoxesToConditionMap((3, 3))([[0, 0, 0, 1, 1, 1]])  # 3D boxes for a 2D map
    with pytest.raises(ValueError, match="spatial_size"):
        BoxesToConditionMap()([[0, 0, 1, 1]])


def test_condition_mapd_takes_shape_and_meta_from_image():
    image = MetaTensor(torch.zeros(1, 8, 6), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])))
    out = BoxesToConditionMapd("boxes")({"image": image, "boxes": [[0, 0, 4, 3]]})
    assert tuple(out["cond"].shape) == (1, 8, 6) and out["cond"].sum() == 12
    assert isinstance(out["cond"], MetaTensor)
    torch.testing.assert_close(out["cond"].affine, image.affine)
    out = BoxesToConditionMapd("boxes", image_key=None, spatial_size=(3, 3), cond_keys="c")({"boxes": []})
    assert out["c"].sum() == 0


def test_mask_to_boxes_components_labels_min_size():
    mask = torch.zeros(1, 10, 12)
    mask[0, 1:3, 2:5] = 1
    mask[0, 6:9, 7:12] = 1
    mask[0, 5, 0] = 1  # a single voxel
    boxes, labels = MaskToBoxes()(mask)
    assert isinstance(boxes, torch.Tensor) and boxes.dtype == torch.float32 and labels.dtype == torch.int64
    torch.testing.assert_close(boxes, torch.tensor([[1.0, 2.0, 3.0, 5.0], [5.0, 0.0, 6.0, 1.0], [6.0, 7.0, 9.0, 12.0]]))
    torch.testing.assert_close(labels, torch.zeros(3, dtype=torch.int64))
    big, _ = MaskToBoxes(min_size=2)(mask)
    assert big.shape == (2, 4)
    label_map = np.zeros((1, 6, 6, 4), dtype=np.int64)
    label_map[0, 0:2, 0:2, 0:2] = 1
    label_map[0, 3:6, 3:5, 1:4] = 3
    b3, l3 = mask_to_boxes(label_map)
    assert isinstance(b3, np.ndarray)
    np.testing.assert_array_equal(b3, [[0, 0, 0, 2, 2, 2], [3, 3, 1, 6, 5, 4]])
    np.testing.assert_array_equal(l3, [0, 2])  # mask value v -> class v - 1
    empty_boxes, empty_labels = mask_to_boxes(np.zeros((1, 4, 4)))
    assert empty_boxes.shape == (0, 4) and empty_labels.shape == (0,)
    with pytest.raises(ValueError, match="one channel"):
        mask_to_boxes(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="min_size"):
        MaskToBoxes(min_size=0)


def test_mask_boxes_map_round_trip_agrees():
    rng = np.random.default_rng(0)
    mask = np.zeros((1, 20, 16), dtype=np.float32)
    mask[0, 2:7, 3:5] = 1
    mask[0, 10:12, 9:15] = 1
    mask[0, 15:19, 1:4] = 1
    blob = rng.random((5, 5)) > 0.4  # an irregular component: its box covers exactly its bounding voxels
    blob[2, :] = True
    blob[:, 2] = True
    mask[0, 3:8, 8:13] = blob
    boxes, _ = mask_to_boxes(mask)
    cond = BoxesToConditionMap((20, 16))(boxes).numpy()
    assert np.all(cond[mask > 0] == 1)
    for box in boxes.astype(int):
        x0, y0, x1, y1 = box
        region = mask[0, x0:x1, y0:y1]
        assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()  # tight
    rect_only = mask.copy()
    rect_only[0, 3:8, 8:13] = 0
    b, _ = mask_to_boxes(rect_only)
    np.testing.assert_array_equal(BoxesToConditionMap((20, 16))(b).numpy(), rect_only)  # boxes -> map == mask
    b2, _ = mask_to_boxes(BoxesToConditionMap((20, 16))(b).numpy())
    np.testing.assert_array_equal(b2, b)  # map -> boxes == boxes


def test_mask_to_boxesd():
    mask = torch.zeros(1, 5, 5)
    mask[0, 1:3, 1:4] = 1
    out = MaskToBoxesd("label")({"label": mask})
    torch.testing.assert_close(out["boxes"], torch.tensor([[1.0, 1.0, 3.0, 4.0]]))
    torch.testing.assert_close(out["box_labels"], torch.tensor([0]))


def test_validate_boxes_names_file_box_and_size():
    image = MetaTensor(torch.zeros(1, 30, 20), meta={"filename_or_obj": "/data/scan_3.png"})
    ok = {"image": image, "boxes": [[0, 0, 30, 20]], "box_labels": [1]}
    assert ValidateBoxesd("boxes", box_label_keys="box_labels")(ok)["boxes"] == [[0, 0, 30, 20]]
    with pytest.raises(InvalidBoxesError) as err:
        ValidateBoxesd("boxes")({"image": image, "boxes": [[0, 0, 31, 5]]})
    msg = str(err.value)
    assert "/data/scan_3.png" in msg and "[0.0, 0.0, 31.0, 5.0]" in msg and "(30, 20)" in msg
    with pytest.raises(InvalidBoxesError, match="empty or inverted"):
        ValidateBoxes()([[5, 5, 4, 8]], spatial_size=(10, 10))
    with pytest.raises(InvalidBoxesError, match="one label per box"):
        ValidateBoxesd("boxes", box_label_keys="box_labels")(
            {"image": image, "boxes": [[0, 0, 1, 1]], "box_labels": []}
        )
    with pytest.raises(InvalidBoxesError, match="expected one of"):
        ValidateBoxes(spatial_dims=2)([[0, 0, 0, 1, 1, 1]], spatial_size=(4, 4))
    assert isinstance(InvalidBoxesError("x"), ValueError)


def test_yolo_round_trip():
    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 50, size=(6, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(1, 40, size=(6, 2))], axis=1)
    labels = rng.integers(0, 3, size=6)
    lines = boxes_to_yolo_lines(boxes, labels, (100, 90))
    assert len(lines) == 6 and all(len(line.split()) == 5 for line in lines)
    first = lines[0].split()
    assert int(first[0]) == labels[0]
    assert float(first[1]) == pytest.approx((boxes[0, 0] + boxes[0, 2]) / 200, abs=1e-6)  # cx / width (axis 0)
    assert float(first[4]) == pytest.approx((boxes[0, 3] - boxes[0, 1]) / 90, abs=1e-6)  # h / height (axis 1)
    back, back_labels = yolo_lines_to_boxes("\n".join(lines) + "\n\n", (100, 90))
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    np.testing.assert_array_equal(back_labels, labels)
    assert boxes_to_yolo_lines(np.zeros((0, 4)), [], (10, 10)) == []
    assert BoxesToYolo((10, 10))([[0, 0, 5, 5]]) == ["0 0.250000 0.250000 0.500000 0.500000"]
    with pytest.raises(ValueError, match="2D"):
        boxes_to_yolo_lines([[0, 0, 0, 1, 1, 1]], [0], (4, 4, 4))
    with pytest.raises(ValueError, match="5 fields"):
        yolo_lines_to_boxes(["0 0.5 0.5 0.1"], (10, 10))
    with pytest.raises(ValueError, match="labels"):
        boxes_to_yolo_lines([[0, 0, 1, 1]], [0, 1], (4, 4))


def test_yolod_uses_image_size():
    out = BoxesToYolod("boxes")({"image": torch.zeros(1, 20, 10), "boxes": [[0, 0, 10, 10]], "box_labels": [2]})
    assert out["yolo"] == ["2 0.250000 0.500000 0.500000 1.000000"]


def test_box_geometry_helpers():
    boxes = np.array([[1.0, 1.0, 4.0, 4.0], [8.0, 8.0, 9.0, 9.0], [2.5, 0.0, 3.0, 0.5]])
    cropped, labels, keep = crop_boxes(boxes, (2, 0), (6, 6), labels=np.array([0, 1, 2]))
    np.testing.assert_allclose(cropped, [[0.0, 1.0, 2.0, 4.0], [0.5, 0.0, 1.0, 0.5]])  # thin box kept
    np.testing.assert_array_equal(labels, [0, 2])
    np.testing.assert_array_equal(keep, [True, False, True])
    padded, _, _ = crop_boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), (-3, -1), (5, 5))
    assert isinstance(padded, torch.Tensor)
    torch.testing.assert_close(padded, torch.tensor([[3.0, 1.0, 5.0, 3.0]]))  # negative start = padding
    np.testing.assert_allclose(shift_boxes([[0, 0, 1, 1]], (2, 3)), [[2, 3, 3, 4]])
    np.testing.assert_allclose(resize_boxes([[2, 4, 6, 8]], (16, 16), (8, 32)), [[1, 8, 3, 16]])
    sliced, sl_labels, _ = slice_boxes(
        np.array([[0, 1, 2, 3, 4, 5.0], [0, 0, 6, 1, 1, 7]]), axis=-1, index=4, labels=[3, 4]
    )
    np.testing.assert_allclose(sliced, [[0, 1, 3, 4]])
    np.testing.assert_array_equal(sl_labels, [3])
    sliced_x, _, _ = slice_boxes(np.array([[0, 1, 2, 3, 4, 5.0]]), axis=0, index=2)
    np.testing.assert_allclose(sliced_x, [[1, 2, 4, 5]])
    assert as_box_array(None).shape == (0, 4) and as_box_array([], spatial_dims=3).shape == (0, 6)
    with pytest.raises(InvalidBoxesError, match="equal-length"):
        as_box_array([[0, 0, 1, 1], [0, 0, 1]])
