# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""LesionBank / RandLesionCopyPaste(d): the copy-paste baseline keeps image, mask, boxes, box labels and class
consistent, pastes only inside the foreground and away from other lesions, changes the image only near the pasted
lesions, is repeatable through ``self.R``, and refuses bad input with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from monai_gan_aug.transforms import (
    LesionBank,
    RandLesionCopyPaste,
    RandLesionCopyPasteD,
    RandLesionCopyPasted,
    RandLesionCopyPasteDict,
    feather_alpha,
)
from monai_gan_aug.transforms.boxes.array import mask_to_boxes

SIZE = 32


def brain_item(seed: int, lesions: list[tuple[int, int, int]], size: int = SIZE, value: int = 1) -> dict:
    """A disk-shaped 'brain' (tissue > 0) on a zero background, smooth texture, bright round lesions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    brain = (yy - c) ** 2 + (xx - c) ** 2 <= (0.45 * size) ** 2
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), 2) * 20
    image = np.where(brain, 100.0 + 0.5 * xx + texture, 0.0)
    label = np.zeros((size, size), np.uint8)
    for x, y, r in lesions:
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= r**2
        label[disk & brain] = value
        image[disk & brain] += 80.0
    tissue = brain.astype(np.uint8) * 2
    tissue[label > 0] = 4
    boxes, labels = mask_to_boxes(label[None])
    return {
        "image": image[None].astype(np.float32),
        "label": label[None],
        "tissue": tissue[None],
        "boxes": boxes.tolist(),
        "box_labels": labels.tolist(),
        "class": int(label.any()),
    }


@pytest.fixture(scope="module")
def bank() -> LesionBank:
    items = [brain_item(0, [(9, 12, 2), (20, 20, 3)]), brain_item(1, []), brain_item(2, [(15, 8, 1)])]
    return LesionBank(items)


def targets() -> list[dict]:
    return [brain_item(10, []), brain_item(11, [(12, 16, 2)]), brain_item(12, [(8, 15, 1), (22, 12, 2)])]


def components(mask: np.ndarray) -> list[list[float]]:
    boxes, _ = mask_to_boxes((mask > 0).astype(np.uint8))
    return sorted(boxes.tolist())


def check_paste(before: dict, after: dict, radius: int, fg_key: str | None = "tissue") -> np.ndarray:
    """Assert every documented property of one paste; returns the boolean mask of the pasted voxels."""
    old_lab, new_lab = np.asarray(before["label"])[0], np.asarray(after["label"])[0]
    pasted = (new_lab > 0) & (old_lab == 0)
    # the label is the old mask OR the pasted masks; old lesions are untouched
    np.testing.assert_array_equal(new_lab > 0, (old_lab > 0) | pasted)
    np.testing.assert_array_equal(new_lab[old_lab > 0], old_lab[old_lab > 0])
    # one new box per pasted lesion; old boxes unchanged; every box is the tight box of one lesion component
    n_old = len(before["boxes"])
    n_new = ndimage.label(pasted)[1]
    boxes = np.asarray(after["boxes"], dtype=np.float64).reshape(-1, 4)
    assert len(boxes) == n_old + n_new
    np.testing.assert_allclose(boxes[:n_old], np.asarray(before["boxes"]).reshape(-1, 4))
    assert sorted(boxes.tolist()) == components(new_lab[None])
    assert sorted(boxes[n_old:].tolist()) == components(pasted[None])
    assert len(after["box_labels"]) == len(boxes)
    assert list(after["box_labels"])[:n_old] == list(before["box_labels"])
    # inside the foreground (and so the image)
    fg = np.asarray(before[fg_key])[0] > 0 if fg_key else None
    if fg is not None:
        assert fg[pasted].all()
    # the image changes only within the feathering radius of the pasted lesions
    changed = np.asarray(after["image"])[0] != np.asarray(before["image"])[0]
    if pasted.any():
        dist = ndimage.distance_transform_edt(~pasted)
        assert (dist[changed] <= radius + 1e-9).all()
        assert changed[pasted].any()
        assert after["class"] == 1
    else:
        assert not changed.any()
    return pasted


@pytest.mark.parametrize("sigma", [0.0, 1.0, 1.5])
def test_paste_properties(bank: LesionBank, sigma: float) -> None:
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=(1, 3), foreground_key="tissue", sigma=sigma)
    total = 0
    for seed in range(4):
        t.set_random_state(seed)
        for before in targets():
            after = t(before)
            pasted = check_paste(before, after, t.feather_radius)
            total += ndimage.label(pasted)[1]
            # pasted lesions are separated from the others: no lesion within max(1, radius) voxels
            old = np.asarray(before["label"])[0] > 0
            if pasted.any() and old.any():
                assert ndimage.distance_transform_edt(~pasted)[old].min() > t.separation
    assert total >= 12  # at least one lesion per call on average: pasting does happen


class LesionBankView(LesionBank):
    """A bank restricted to some lesions of another (to control which lesion is drawn)."""

    def __init__(self, base: LesionBank, keep: list[int]) -> None:
        self.__dict__.update(base.__dict__)
        self.lesions = [base[i] for i in keep]


def test_pasted_lesion_keeps_its_pixels_and_contrast(bank: LesionBank) -> None:
    lesion = bank[1]  # the radius-3 lesion of item 0
    src = lesion.image[0][lesion.mask]
    for match in (False, True):
        one = LesionBankView(bank, [1])
        t = RandLesionCopyPasted(one, prob=1.0, num_lesions=1, foreground_key="tissue", match_intensity=match)
        t.set_random_state(3)
        before = brain_item(10, [])
        after = t(before)
        pasted = check_paste(before, after, t.feather_radius)
        got = np.asarray(after["image"])[0][pasted]
        # same voxels in the same order (row-major over the tight box), shifted by one constant offset
        offset = got - src
        np.testing.assert_allclose(offset, offset[0], atol=1e-3)
        if not match:
            np.testing.assert_allclose(offset, 0.0, atol=1e-3)
        else:
            ring = (ndimage.distance_transform_edt(~pasted) <= 2) & ~pasted
            target_ring = np.asarray(before["image"])[0][ring].mean()
            np.testing.assert_allclose(offset[0], target_ring - lesion.ring_mean[0], rtol=1e-4)


def test_bank_contents() -> None:
    item = brain_item(0, [(9, 12, 2), (20, 20, 3)], value=2)
    item["box_labels"] = [5, 7]  # box labels come from the matching source boxes
    bank = LesionBank([brain_item(1, []), item], margin=3, ring_width=2)
    assert len(bank) == 2 and bank.num_items == 2 and bank.spatial_dims == 2 and bank.channels == 1
    assert sorted(les.box.tolist() for les in bank) == sorted(item["boxes"])
    for les in bank:
        k = item["boxes"].index(les.box.tolist())
        assert les.box_label == [5, 7][k] and les.value == 2 and les.source == 1
        lo = [int(v) for v in les.box[:2]]
        assert tuple(int(b - a) for a, b in zip(les.box[:2], les.box[2:])) == les.size
        # the patch is the source image around the tight box (margin 3, clipped to the image)
        start = [a - s for a, s in zip(lo, les.start)]
        region = tuple(slice(a, a + n) for a, n in zip(start, les.mask.shape))
        np.testing.assert_array_equal(les.image, item["image"][(slice(None), *region)])
        assert les.mask.sum() == (item["label"][0][region] > 0).sum() - les.other.sum()
        assert les.num_voxels == int(les.mask.sum()) and np.isfinite(les.ring_mean).all()
    # without matching boxes the box label is value - 1 (mask_to_boxes' convention)
    del item["boxes"]
    assert {les.box_label for les in LesionBank([item])} == {1}


def test_empty_bank_raises() -> None:
    with pytest.raises(ValueError, match="no lesion in the 2 training items: copy-paste needs labelled lesions"):
        LesionBank([brain_item(0, []), brain_item(1, [])])
    with pytest.raises(ValueError, match="no lesion in the 0 training items"):
        LesionBank([])


def test_bank_rejects_bad_items() -> None:
    good = brain_item(0, [(9, 12, 2)])
    with pytest.raises(ValueError, match="item 1 has no 'label'"):
        LesionBank([good, {"image": good["image"]}])
    with pytest.raises(ValueError, match="item 0 'label' has shape"):
        LesionBank([{"image": good["image"], "label": good["label"][0]}])
    with pytest.raises(ValueError, match="item 0 is marked synthetic"):
        LesionBank([{**good, "synthetic": True}])
    with pytest.raises(ValueError, match="non-negative integers"):
        LesionBank([{**good, "label": good["label"] * 0.5}])
    with pytest.raises(TypeError, match="item 0 must be a data dict"):
        LesionBank([good["image"]])
    with pytest.raises(ValueError, match="ring_width=5 exceeds margin=4"):
        LesionBank([good], ring_width=5)


def test_same_seed_same_output_different_seed_differs(bank: LesionBank) -> None:
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=2, foreground_key="tissue")
    outs = []
    for seed in (0, 0, 1):
        t.set_random_state(seed)
        outs.append(t(brain_item(10, [])))
    np.testing.assert_array_equal(outs[0]["image"], outs[1]["image"])
    np.testing.assert_array_equal(outs[0]["label"], outs[1]["label"])
    assert outs[0]["boxes"] == outs[1]["boxes"] and len(outs[0]["boxes"]) == 2
    assert outs[0]["boxes"] != outs[2]["boxes"]
    assert not np.array_equal(outs[0]["image"], outs[2]["image"])


def test_prob_zero_is_identity(bank: LesionBank) -> None:
    t = RandLesionCopyPasted(bank, prob=0.0, num_lesions=3, foreground_key="tissue")
    t.set_random_state(0)
    for before in targets():
        after = t(before)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] is before[key]


def test_prob_is_per_sample(bank: LesionBank) -> None:
    t = RandLesionCopyPasted(bank, prob=0.5, num_lesions=1, foreground_key="tissue")
    t.set_random_state(0)
    grew = [len(t(brain_item(10, []))["boxes"]) for _ in range(40)]
    assert set(grew) == {0, 1} and 8 <= sum(grew) <= 32


def test_num_lesions_range(bank: LesionBank) -> None:
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=(1, 3), foreground_key="tissue", sigma=0.0)
    counts = set()
    for seed in range(12):
        t.set_random_state(seed)
        counts.add(len(t(brain_item(10, []))["boxes"]))
    assert counts == {1, 2, 3}


def test_too_big_lesion_is_skipped_not_cropped() -> None:
    big = brain_item(0, [(16, 16, 9)])
    bank = LesionBank([big])
    assert bank[0].size == (19, 19)
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=2, foreground_key="tissue", max_tries=3)
    t.set_random_state(0)
    before = brain_item(5, [], size=16)
    after = t(before)
    for key in before:
        assert after[key] is before[key]
    # it fits an image large enough: then it is pasted whole (all 19 x 19 of its box)
    before = brain_item(5, [], size=48)
    before["tissue"] = np.ones_like(before["tissue"])
    after = t(before)
    check_paste(before, after, t.feather_radius)
    boxes = np.asarray(after["boxes"])
    assert len(boxes) >= 1 and (boxes[:, 2:] - boxes[:, :2] == 19).all()


def test_no_room_in_the_foreground_skips() -> None:
    bank = LesionBank([brain_item(0, [(16, 16, 3)])])
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=1, foreground_key="tissue")
    t.set_random_state(0)
    before = brain_item(1, [])
    before["tissue"] = np.zeros_like(before["tissue"])
    before["tissue"][0, 10:15, 10:15] = 1  # 5 x 5 foreground, the lesion's box is 7 x 7
    after = t(before)
    assert after["boxes"] == [] and after["class"] == 0 and after["image"] is before["image"]


def test_foreground_from_intensity_percentile(bank: LesionBank) -> None:
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=3, foreground_percentile=40.0)
    for seed in range(3):
        t.set_random_state(seed)
        before = brain_item(10, [])
        after = t(before)
        pasted = check_paste(before, after, t.feather_radius, fg_key=None)
        img = before["image"][0]
        assert pasted.any() and (img[pasted] > np.percentile(img, 40.0)).all()


def test_types_are_kept(bank: LesionBank) -> None:
    before = brain_item(11, [(12, 16, 2)])
    data = {
        "image": MetaTensor(torch.as_tensor(before["image"]), meta={"filename_or_obj": "a.nii.gz"}),
        "label": MetaTensor(torch.as_tensor(before["label"], dtype=torch.float32)),
        "tissue": torch.as_tensor(before["tissue"]),
        "boxes": torch.as_tensor(before["boxes"], dtype=torch.float32),
        "box_labels": np.asarray(before["box_labels"], dtype=np.int64),
        "class": torch.tensor(1),
    }
    t = RandLesionCopyPasteD(bank, prob=1.0, num_lesions=2, foreground_key="tissue")
    t.set_random_state(0)
    out = t(data)
    assert isinstance(out["image"], MetaTensor) and out["image"].meta["filename_or_obj"] == "a.nii.gz"
    assert isinstance(out["label"], MetaTensor) and out["label"].dtype == torch.float32
    assert isinstance(out["boxes"], torch.Tensor) and out["boxes"].dtype == torch.float32
    assert out["boxes"].shape == (3, 4)
    assert isinstance(out["box_labels"], np.ndarray) and out["box_labels"].dtype == np.int64
    assert out["box_labels"].tolist() == [0, 0, 0] and int(out["class"]) == 1
    assert RandLesionCopyPasteDict is RandLesionCopyPasted


def test_array_version(bank: LesionBank) -> None:
    before = brain_item(10, [])
    t = RandLesionCopyPaste(bank, prob=1.0, num_lesions=2)
    t.set_random_state(0)
    img, lab, boxes, labels = t(before["image"], before["label"], [], [], foreground=before["tissue"])
    after = {**before, "image": img, "label": lab, "boxes": boxes, "box_labels": labels, "class": 1}
    check_paste(before, after, t.feather_radius)
    assert len(boxes) == 2 and isinstance(img, np.ndarray) and lab.dtype == np.uint8
    t.set_random_state(0)
    _, _, none_boxes, none_labels = t(before["image"], before["label"], foreground=before["tissue"])
    assert none_boxes is None and none_labels is None


def test_3d() -> None:
    rng = np.random.default_rng(0)
    size = 16
    zz, yy, xx = np.mgrid[:size, :size, :size]

    def item(centres):
        image = 100 + rng.normal(size=(size,) * 3)
        label = np.zeros((size,) * 3, np.uint8)
        for c in centres:
            ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 4
            label[ball] = 1
            image[ball] += 50
        boxes, labels = mask_to_boxes(label[None])
        return {"image": image[None], "label": label[None], "boxes": boxes, "box_labels": labels, "class": 1}

    bank = LesionBank([item([(4, 4, 4), (10, 11, 9)])])
    assert len(bank) == 2 and bank.spatial_dims == 3
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=2, sigma=0.5)
    t.set_random_state(0)
    before = item([(8, 8, 8)])
    after = t(before)
    assert after["boxes"].shape == (3, 6)
    new_lab = after["label"][0]
    pasted = (new_lab > 0) & (before["label"][0] == 0)
    assert ndimage.label(pasted)[1] == 2
    assert sorted(after["boxes"].tolist()) == sorted(mask_to_boxes((new_lab > 0)[None].astype(np.uint8))[0].tolist())
    changed = after["image"][0] != before["image"][0]
    assert (ndimage.distance_transform_edt(~pasted)[changed] <= t.feather_radius).all()


def test_feather_alpha() -> None:
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    a = feather_alpha(m, sigma=1.0)
    assert a[4, 4] == 1.0 and a[4, 5] == pytest.approx(np.exp(-0.5)) and a[4, 7] > 0 and a[4, 8] == 0
    assert a[0, 0] == 0 and np.array_equal(feather_alpha(m, 0.0), m.astype(float))
    with pytest.raises(ValueError, match="mask is empty"):
        feather_alpha(np.zeros((3, 3), bool), 1.0)


def test_argument_and_call_errors(bank: LesionBank) -> None:
    with pytest.raises(TypeError, match="bank must be a LesionBank"):
        RandLesionCopyPasted([1, 2])
    with pytest.raises(ValueError, match="prob must be in"):
        RandLesionCopyPasted(bank, prob=1.5)
    for bad in (-1, (3, 1), (0, 0), 1.5, (1, 2, 3)):
        with pytest.raises(ValueError, match="num_lesions"):
            RandLesionCopyPasted(bank, num_lesions=bad)
    with pytest.raises(ValueError, match="sigma"):
        RandLesionCopyPasted(bank, sigma=-1)
    with pytest.raises(ValueError, match="feather_radius"):
        RandLesionCopyPasted(bank, feather_radius=-2)
    t = RandLesionCopyPasted(bank, prob=1.0, foreground_key="tissue")
    item = brain_item(10, [])
    with pytest.raises(KeyError, match="no 'tissue' \\(foreground_key\\)"):
        t({k: v for k, v in item.items() if k != "tissue"})
    with pytest.raises(KeyError, match="no 'label'"):
        t({k: v for k, v in item.items() if k != "label"})
    with pytest.raises(ValueError, match="1 boxes but 2 box labels"):
        t({**item, "boxes": [[1, 1, 3, 3]], "box_labels": [0, 0]})
    with pytest.raises(ValueError, match="does not fit the bank"):
        t({**item, "image": np.concatenate([item["image"]] * 2)})
    with pytest.raises(ValueError, match="foreground map of shape"):
        t({**item, "tissue": item["tissue"][:, :8]})
    # allow_missing_keys: boxes / labels / class left out, the foreground falls back to the percentile
    t = RandLesionCopyPasted(bank, prob=1.0, foreground_key="tissue", allow_missing_keys=True)
    t.set_random_state(0)
    out = t({"image": item["image"], "label": item["label"]})
    assert set(out) == {"image", "label"} and (out["label"] > 0).any()


def test_real_demo_items(tmp_path) -> None:
    from monai.data import load_decathlon_datalist
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from monai_gan_aug.data.demo import make_demo_dataset

    path = make_demo_dataset(
        tmp_path / "demo", spatial_dims=2, seed=0, n_patients=3, slices_per_patient=2, image_size=32
    )
    keys = ["image", "label", "tissue"]
    load = Compose([LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys)])
    items = [load(x) for x in load_decathlon_datalist(str(path), data_list_key="training")]
    assert len(items) == 2
    with_lesion = [x for x in items if x["class"] == 1]
    bank = LesionBank(with_lesion)
    assert len(bank) == sum(len(x["boxes"]) for x in with_lesion)
    t = RandLesionCopyPasted(bank, prob=1.0, num_lesions=2, foreground_key="tissue")
    contrasts = []
    for seed, before in enumerate(items):
        t.set_random_state(seed)
        after = t(before)
        pasted = check_paste(before, after, t.feather_radius)
        img = np.asarray(after["image"])[0]
        comps, n = ndimage.label(pasted)
        assert n >= 1
        for k in range(1, n + 1):
            ring = (ndimage.distance_transform_edt(comps != k) <= 2) & (comps != k)
            contrasts.append(img[comps == k].mean() - img[ring].mean())
    assert min(contrasts) > 0  # the metastases stay brighter than their new surroundings


def test_neighbouring_source_lesion_is_not_blended_in() -> None:
    source = brain_item(0, [(12, 14, 2), (18, 14, 2)])  # 2 voxels apart: each lies in the other's feathering zone
    bank = LesionBank([source], margin=6)
    assert len(bank) == 2 and all(les.other.any() for les in bank)
    t = RandLesionCopyPasted(
        LesionBankView(bank, [0]), prob=1.0, num_lesions=1, foreground_key="tissue", sigma=2.0, match_intensity=False
    )
    t.set_random_state(0)
    before = brain_item(10, [])
    after = t(before)
    pasted = check_paste(before, after, t.feather_radius)
    shift = np.asarray(after["boxes"][0][:2]) - bank[0].box[:2]
    other = np.argwhere(source["label"][0] > 0) + shift.astype(int)
    other = other[(other >= 0).all(1) & (other < SIZE).all(1)]
    other = [tuple(v) for v in other if not pasted[tuple(v)]]
    near = ndimage.distance_transform_edt(~pasted)
    assert any(near[v] <= t.feather_radius for v in other)  # the neighbour falls inside the feathering zone ...
    for v in other:  # ... and is not blended into the target
        assert after["image"][0][v] == before["image"][0][v]
