# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The boxes -> lesions request of the MONAI Label app (:func:`monai_gan_aug.label.inpaint.fill_lesions`, the logic of
``LesionInpaintTask``) in the core environment, 2D and 3D, with untrained lesion-inpainting generators: only the
boxes and their feather rings change, in the input's units, the label is the existing mask plus the new boxes, the
seed fixes the result, and every bad request is refused with a message naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_gan_aug.label.inpaint import fill_lesions
from monai_gan_aug.losses.objectives.lesion_inpaint import LesionInpaintObjective
from monai_gan_aug.networks.nets.lesion_inpaint import LesionInpaintGenerator

FEATHER = 2


def _model(dims: int, patch: int, label_mode: str = "box", diff_threshold: float = 0.25):
    torch.manual_seed(0)
    gen = LesionInpaintGenerator(dims, 1, cond_channels=dims, channels=(4, 8), feather=FEATHER).eval()
    obj = LesionInpaintObjective(patch, label_mode=label_mode, diff_threshold=diff_threshold)
    return gen, obj


def _brain(size: int, dims: int) -> np.ndarray:
    """A bright ball (values 100..300, some texture) on a zero background, channel-first, in scanner-like units."""
    grid = np.stack(np.meshgrid(*[np.arange(size)] * dims, indexing="ij"))
    r = np.sqrt(((grid - (size - 1) / 2.0) ** 2).sum(0))
    rng = np.random.default_rng(1)
    img = np.where(r < 0.42 * size, 200.0 + 100.0 * np.sin(grid[0] / 2.0) * np.cos(grid[1] / 3.0), 0.0)
    img = img + (r < 0.42 * size) * rng.normal(0, 5, img.shape)
    return img[None].astype(np.float32)


def _grown(shape, box, dims: int, by: int) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    lo = np.maximum(np.floor(np.asarray(box[:dims])).astype(int) - by, 0)
    hi = np.ceil(np.asarray(box[dims:])).astype(int) + by
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return out


def _fill(gen, obj, image, boxes, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("patch_size", 16)
    return fill_lesions(gen, obj, image, boxes, **kw)


def test_fill_lesions_2d_changes_only_the_boxes_in_input_units():
    gen, obj = _model(2, 16)
    img = _brain(32, 2)
    existing = np.zeros((1, 32, 32), np.uint8)
    existing[0, 18:21, 18:21] = 1
    boxes = [[9, 10, 13, 14], [12.5, 18, 15.5, 22]]
    out = _fill(gen, obj, img, boxes, box_labels=[0, 2], existing_label=existing, seed=5)
    res, lab = out["image"].numpy(), out["label"].numpy()
    assert res.shape == img.shape and res.dtype == np.float32 and lab.shape == (1, 32, 32) and lab.dtype == np.uint8
    touched = _grown(img.shape[1:], boxes[0], 2, FEATHER) | _grown(img.shape[1:], boxes[1], 2, FEATHER)
    np.testing.assert_array_equal(res[0][~touched], img[0][~touched])  # bit for bit beyond the blend rings
    lo, hi = out["scale"]
    for box in boxes:
        inside = _grown(img.shape[1:], box, 2, 0)
        assert not np.allclose(res[0][inside], img[0][inside])  # a lesion was generated
        assert res[0][inside].min() >= lo - 1e-3 and res[0][inside].max() <= hi + 1e-3  # the input's units
    assert 0 < out["changed"] <= touched.sum()
    expected = existing[0].copy()
    expected[_grown((32, 32), boxes[0], 2, 0)] = 1
    expected[_grown((32, 32), boxes[1], 2, 0)] = 3  # box label 2 -> 3
    np.testing.assert_array_equal(lab[0], expected)
    np.testing.assert_array_equal(out["boxes"], boxes)
    assert out["resized"] is False

    again = _fill(gen, obj, img, boxes, box_labels=[0, 2], existing_label=existing, seed=5)["image"]
    torch.testing.assert_close(again, out["image"], rtol=0, atol=0)
    other = _fill(gen, obj, img, boxes, box_labels=[0, 2], existing_label=existing, seed=6)["image"].numpy()
    assert not np.allclose(other, res)

    unchanged = _fill(gen, obj, img, [], existing_label=existing)
    np.testing.assert_array_equal(unchanged["image"].numpy(), img)
    np.testing.assert_array_equal(unchanged["label"].numpy(), existing)
    single = _fill(gen, obj, img[..., None], [boxes[0]], seed=5)  # a 2D slice stored as (1, X, Y, 1)
    assert tuple(single["image"].shape) == (1, 32, 32, 1) and tuple(single["label"].shape) == (1, 32, 32, 1)


def test_fill_lesions_resizes_other_sizes_only_when_asked():
    gen, obj = _model(2, 16)
    img = _brain(48, 2)
    box = [20, 21, 26, 27]
    with pytest.raises(ValueError, match=r"trained on \(32, 32\) images .*resizing is off"):
        _fill(gen, obj, img, [box], resize=False)
    out = _fill(gen, obj, img, [box], resize=True, seed=1)
    res = out["image"].numpy()
    assert out["resized"] is True and res.shape == img.shape
    # the edit, made on the 32 px grid, reaches at most one more 32 px voxel (1.5 px here) past the ring
    near = _grown((48, 48), box, 2, int(np.ceil((FEATHER + 1) * 48 / 32)) + 1)
    np.testing.assert_array_equal(res[0][~near], img[0][~near])
    inside = _grown((48, 48), box, 2, 0)
    assert not np.allclose(res[0][inside], img[0][inside])
    np.testing.assert_array_equal(out["label"].numpy()[0], inside.astype(np.uint8))
    with pytest.raises(ValueError, match=r"box 0 .* too large for the generator: its sides \[16, 16\]"):
        _fill(gen, obj, img, [[10, 10, 32, 32]], resize=True)  # 6.7..21.3 on the 32 px grid: 16 voxels > 16 - 2 * 2


def test_fill_lesions_3d():
    gen, obj = _model(3, 8)
    img = _brain(16, 3)
    box = [6, 7, 6, 9, 10, 9]
    out = _fill(gen, obj, img, [box], image_size=16, patch_size=8, seed=3)
    res = out["image"].numpy()
    touched = _grown(img.shape[1:], box, 3, FEATHER)
    np.testing.assert_array_equal(res[0][~touched], img[0][~touched])
    inside = _grown(img.shape[1:], box, 3, 0)
    assert not np.allclose(res[0][inside], img[0][inside])
    np.testing.assert_array_equal(out["label"].numpy()[0], inside.astype(np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        _fill(gen, obj, img, [[6, 7, 9, 10]], image_size=16, patch_size=8)
    with pytest.raises(ValueError, match="2 spatial dimensions .* 3D"):
        _fill(gen, obj, img[..., 0], [box], image_size=16, patch_size=8)


def test_fill_lesions_difference_labels_follow_the_objective():
    gen, obj = _model(2, 16, label_mode="difference", diff_threshold=10.0)  # no voxel moves by 10 in [-1, 1] units
    out = _fill(gen, obj, _brain(32, 2), [[9, 10, 13, 14]], seed=2)
    assert out["changed"] > 0 and out["label"].max() == 0


@pytest.mark.parametrize(
    "boxes, kw, message",
    [
        ([[0, 0, 40, 4]], {}, r"box 0 \[0.0, 0.0, 40.0, 4.0\] lies outside the image of size \[32, 32\]"),
        ([[-2, 10, 3, 14]], {}, "lies outside the image"),
        ([[0, 0, 4, 4]], {}, r"box 0 .*only 0% of it lies in the image's foreground"),
        ([[17, 17, 19, 19]], {}, "box 0 .* within 1 voxel\\(s\\) of an existing lesion"),
        ([[9, 10, 13, 14], [13, 10, 16, 14]], {}, "box 1 .* another box"),
        ([[2, 2, 16, 16]], {"min_foreground": 0.0}, r"too large for the generator: its sides \[14, 14\]"),
        ([[1, 2, 3]], {}, r"must have shape \(N, 4\)"),
        ("[[1, 2, 3, 4]", {}, "not valid JSON"),
        ([[5, 2, 1, 6]], {}, "x1 <= x0"),
        (None, {}, "boxes missing"),
        ([[9, 10, 13, 14]], {"box_labels": [0, 1]}, "one per box"),
    ],
)
def test_fill_lesions_refuses_bad_requests(boxes, kw, message):
    gen, obj = _model(2, 16)
    existing = np.zeros((1, 32, 32), np.uint8)
    existing[0, 19:21, 19:21] = 1
    with pytest.raises(ValueError, match=message):
        _fill(gen, obj, _brain(32, 2), boxes, existing_label=existing, **kw)


def test_fill_lesions_refuses_bad_images():
    gen, obj = _model(2, 16)
    img = _brain(32, 2)
    with pytest.raises(ValueError, match="2 channels, the generator was trained on 1"):
        _fill(gen, obj, np.concatenate([img, img]), [[9, 10, 13, 14]])
    with pytest.raises(ValueError, match="constant"):
        _fill(gen, obj, np.full_like(img, 7.0), [[9, 10, 13, 14]])
    bad = img.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        _fill(gen, obj, bad, [[9, 10, 13, 14]])
    with pytest.raises(ValueError, match=r"the lesion label is \(16, 16\), the image is \(32, 32\)"):
        _fill(gen, obj, img, [[9, 10, 13, 14]], existing_label=np.zeros((1, 16, 16)))
