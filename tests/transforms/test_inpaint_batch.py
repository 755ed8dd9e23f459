# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Batch-side lesion inpainting: the lesion critic's box crop, and filling new boxes of whole slices with a patch
inpainter (patches pasted back whole, masks and box lists of the edited slices, seeded noise)."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.transforms.inpaint_batch import box_crop_resize, inpaint_slices


def test_box_crop_resize_matches_the_box_region():
    x = torch.randn(2, 1, 12, 10)
    boxes = torch.tensor([[2.0, 3.0, 6.0, 7.0], [0.0, 6.0, 4.0, 10.0]])
    crops = box_crop_resize(x, boxes, 4)
    torch.testing.assert_close(crops[0], x[0, :, 2:6, 3:7])
    torch.testing.assert_close(crops[1], x[1, :, 0:4, 6:10])
    x3 = torch.randn(1, 1, 8, 6, 4)
    torch.testing.assert_close(box_crop_resize(x3, torch.tensor([[1.0, 2.0, 0.0, 5.0, 6.0, 4.0]]), 4)[0], x3[0, :, 1:5, 2:6, 0:4])
    x.requires_grad_(True)
    box_crop_resize(x, boxes, 4).sum().backward()
    assert x.grad[0, :, 2:6, 3:7].abs().sum() > 0 and x.grad[0, :, 8:].abs().sum() == 0


def _batch():
    return {
        "image": torch.full((2, 1, 24, 24), -0.5), "label": torch.zeros(2, 1, 24, 24, dtype=torch.uint8),
        "boxes": [torch.tensor([[1.0, 1.0, 4.0, 4.0]]), torch.zeros(0, 4)],
        "box_labels": [torch.tensor([3]), torch.zeros(0, dtype=torch.long)],
        "new_boxes": [torch.tensor([[10.0, 10.0, 14.0, 15.0], [18.0, 2.0, 22.0, 6.0]]), torch.tensor([[20.0, 19.0, 23.0, 23.0]])],
        "new_box_labels": [torch.tensor([1, 2]), torch.tensor([1])], "source_image": ["a.png", "b.png"],
    }


def test_inpaint_slices_pastes_filled_patches_and_extends_masks_and_boxes():
    calls = []

    def fill(x, mask, size):  # the box becomes its noise + 10, the rest of the patch is kept
        calls.append((x.shape, mask.shape, size.clone()))
        return x + 10.0 * mask

    batch = _batch()
    out = inpaint_slices(batch, fill, 2, 16, seeds=[1, 2])
    assert [c[0] for c in calls] == [(2, 1, 16, 16), (1, 1, 16, 16)]  # the first new box of both slices, then the second
    torch.testing.assert_close(calls[0][2][0], torch.tensor([4 / 16, 5 / 16]))
    changed = (out["image"] != batch["image"])[:, 0]
    assert changed[0, 10:14, 10:15].all() and changed[0, 18:22, 2:6].all() and changed[1, 20:23, 19:23].all()
    assert int(changed.sum()) == 4 * 5 + 4 * 4 + 3 * 4  # only the boxes change
    assert out["label"].dtype == torch.uint8 and torch.equal(out["label"][:, 0].bool(), changed)
    assert out["boxes"][0].tolist() == [[1, 1, 4, 4], [10, 10, 14, 15], [18, 2, 22, 6]] and out["boxes"][1].tolist() == [[20, 19, 23, 23]]
    assert out["box_labels"][0].tolist() == [3, 1, 2] and out["box_labels"][1].tolist() == [1]
    assert [b.tolist() for b in out["new_box_labels"]] == [[1, 2], [1]] and out["class"].tolist() == [1, 1]
    assert out["source_image"] == ["a.png", "b.png"]
    assert torch.equal(batch["image"], torch.full((2, 1, 24, 24), -0.5))  # the batch is not edited
    again = inpaint_slices({k: v[1:] for k, v in batch.items()}, fill, 1, 16, seeds=[2])
    torch.testing.assert_close(again["image"][0], out["image"][1], rtol=0, atol=0)  # the noise of slice i: seeds[i]


def test_inpaint_slices_difference_labels_and_defaults():
    batch = {"image": torch.zeros(1, 1, 24, 24), "new_boxes": [torch.tensor([[4.0, 4.0, 8.0, 8.0]])]}

    def fill(x, mask, size):  # the box becomes 1 in the patch's first 6 columns, 0 elsewhere
        return x * (1 - mask) + mask * (torch.arange(x.shape[-1]) < 6).float()

    out = inpaint_slices(batch, fill, 1, 16, label_mode="difference", diff_threshold=0.5)
    changed = out["image"][:, 0] > 0.5
    assert 0 < int(changed.sum()) < 16 and torch.equal(out["label"][:, 0].bool(), changed)
    assert out["boxes"][0].tolist() == [[4, 4, 8, 8]] and out["box_labels"][0].tolist() == [0]
    assert "source_image" not in out
    with pytest.raises(ValueError, match="label_mode"):
        inpaint_slices(batch, fill, 1, 16, label_mode="mask")
