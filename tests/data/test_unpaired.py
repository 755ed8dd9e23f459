# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Unpaired CycleGAN datalists on the data floor: one B image per A image, never an image with its own copy,
repeatable from the seed, cycled when the domains differ in length, and clear errors."""

from __future__ import annotations

import json

import pytest

from monai_gan_aug.data import load_unpaired_items, unpaired_items


def test_unpaired_items():
    items = [{"image": f"img{i}.nii.gz"} for i in range(5)]
    pairs = unpaired_items(items, seed=0)
    assert len(pairs) == 5 and sorted(p["image_b"] for p in pairs) == sorted(i["image"] for i in items)
    assert all(p["image_a"] != p["image_b"] for p in pairs)  # never an image with its own remapped copy
    other = [{"image": f"b{i}.png"} for i in range(2)]
    mixed = unpaired_items(items, other, key_a="t1", key_b="t2")
    assert len(mixed) == 5 and {p["t2"] for p in mixed} == {"b0.png", "b1.png"}
    with pytest.raises(ValueError, match="at least one"):
        unpaired_items([], other)
    with pytest.raises(ValueError, match="no 'image'"):
        unpaired_items([{"label": "x"}])


def test_unpaired_items_follow_the_seed():
    items = [{"image": f"img{i}.nii.gz"} for i in range(6)]
    assert unpaired_items(items, seed=3) == unpaired_items(items, seed=3)
    assert unpaired_items(items, seed=3) != unpaired_items(items, seed=4)
    assert [p["image_a"] for p in unpaired_items(items, seed=3)] == [i["image"] for i in items]  # A keeps its order
    single = unpaired_items([{"image": "only.png"}])
    assert single == [{"image_a": "only.png", "image_b": "only.png"}]  # one image: nothing else to pair with
    longer_b = unpaired_items(items[:2], [{"image": f"b{i}.png"} for i in range(5)])
    assert len(longer_b) == 5 and [p["image_a"] for p in longer_b] == ["img0.nii.gz", "img1.nii.gz"] * 2 + ["img0.nii.gz"]


def test_load_unpaired_items(tmp_path):
    paths = []
    for name in ("a0", "a1", "a2", "b0"):
        (tmp_path / f"{name}.png").write_bytes(b"not empty")
        paths.append(str(tmp_path / f"{name}.png"))
    val = [{"image": paths[3]}]  # with a second list, 'training' is read as it is (not re-split)
    (tmp_path / "a.json").write_text(json.dumps({"training": [{"image": p} for p in paths[:3]], "validation": val}))
    (tmp_path / "b.json").write_text(json.dumps({"training": [{"image": paths[3]}], "validation": val}))
    same = load_unpaired_items(str(tmp_path / "a.json"), seed=1)
    assert same == unpaired_items([{"image": p} for p in paths[:3]], seed=1)
    two = load_unpaired_items(str(tmp_path / "a.json"), str(tmp_path / "b.json"), key_a="t1", key_b="t2")
    assert [p["t2"] for p in two] == [paths[3]] * 3 and [p["t1"] for p in two] == paths[:3]
