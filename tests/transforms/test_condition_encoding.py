# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Condition encoding of mask -> image generators: encode_condition / decode_mask on batches, the array and
dictionary transforms (shapes, values, metadata, batching equal to the batch encoder) and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.data.utils import list_data_collate

from monai_gan_aug.transforms import (
    COND_MODES,
    EncodeCondition,
    EncodeConditionD,
    EncodeConditiond,
    EncodeConditionDict,
    condition_channels,
    decode_mask,
    encode_condition,
    mask_to_display,
)


def _maps(n=4, size=16, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(n, 1, size, size)
    for i in range(n):  # blocky maps: a square of each foreground class at random places
        for c in range(1, classes):
            x, y = torch.randint(0, size - 6, (2,), generator=g).tolist()
            maps[i, 0, x : x + 6, y : y + 6] = c
    return maps


def test_condition_encoding_roundtrip():
    maps = _maps(classes=5)
    onehot = encode_condition(maps, "onehot", 5)
    assert onehot.shape == (4, 5, 16, 16) and set(onehot.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(decode_mask(onehot, "onehot", 5), maps.long())
    scaled = encode_condition(maps, "scaled", 5)
    assert scaled.shape == (4, 1, 16, 16) and scaled.min() >= -1 and scaled.max() <= 1
    noisy = scaled + 0.2 * (torch.rand_like(scaled) - 0.5)  # less than half a class step (0.5)
    assert torch.equal(decode_mask(noisy, "scaled", 5), maps.long())
    assert torch.equal(mask_to_display(maps.long(), 5), scaled)
    img = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(encode_condition(img, "image"), img)
    assert condition_channels("onehot", 5) == 5 and condition_channels("scaled", 5) == 1
    assert condition_channels("image", image_channels=3) == 3 and COND_MODES == ("onehot", "scaled", "image")
    with pytest.raises(ValueError, match="outside 0..1"):
        encode_condition(maps, "onehot", 2, name="tissue")
    with pytest.raises(ValueError, match="single-channel"):
        encode_condition(torch.zeros(1, 2, 4, 4), "onehot", 2)
    with pytest.raises(ValueError, match="cond_mode"):
        encode_condition(maps, "rgb", 2)
    with pytest.raises(ValueError, match="image condition"):
        decode_mask(img, "image")


def test_array_transform_values_and_shapes():
    onehot = EncodeCondition("onehot", num_classes=3)(torch.tensor([[[0, 2]]]))
    assert onehot.dtype == torch.float32 and onehot.shape == (3, 1, 2)
    assert onehot.tolist() == [[[1.0, -1.0]], [[-1.0, -1.0]], [[-1.0, 1.0]]]
    scaled = EncodeCondition("scaled", num_classes=3)(np.array([[[0.0, 1.0, 2.0]]]))  # numpy in, tensor out
    assert isinstance(scaled, torch.Tensor) and scaled.tolist() == [[[-1.0, 0.0, 1.0]]]
    rounded = EncodeCondition("scaled", num_classes=3)(torch.tensor([[[0.2, 1.9]]]))  # interpolated maps round
    assert rounded.tolist() == [[[-1.0, 1.0]]]
    image = torch.rand(3, 4, 4, 4, dtype=torch.float64) * 2 - 1  # an image condition, 3 channels, 3D
    out = EncodeCondition("image")(image)
    assert out.dtype == torch.float32 and torch.equal(out, image.float())
    meta = EncodeCondition("onehot", 3)(MetaTensor(torch.tensor([[[1, 2]]]), affine=torch.eye(4) * 2))
    assert isinstance(meta, MetaTensor) and torch.equal(meta.affine, torch.eye(4, dtype=torch.float64) * 2)


def test_items_encoded_then_batched_equal_the_batch_encoder():
    maps = _maps(classes=3)
    for mode in ("onehot", "scaled"):
        encoder = EncodeCondition(mode, num_classes=3)
        batched = torch.stack([encoder(m) for m in maps])
        assert torch.equal(batched, encode_condition(maps, mode, 3))


def test_dictionary_transform():
    assert EncodeConditionD is EncodeConditionDict is EncodeConditiond
    maps = _maps(n=2, classes=3)
    items = [EncodeConditiond(keys="tissue", num_classes=3)({"tissue": m, "image": m * 0}) for m in maps]
    assert all(torch.equal(it["tissue"], m) for it, m in zip(items, maps))  # the raw map is kept for the label
    batch = list_data_collate(items)
    assert torch.equal(batch["cond"], encode_condition(maps, "onehot", 3))
    two = EncodeConditiond(keys=["a", "b"], cond_mode="scaled", num_classes=2, output_keys=["ca", "cb"])
    out = two({"a": torch.zeros(1, 2, 2), "b": torch.ones(1, 2, 2)})
    assert out["ca"].unique().tolist() == [-1.0] and out["cb"].unique().tolist() == [1.0]
    assert "cond" not in EncodeConditiond(keys="tissue", allow_missing_keys=True)({"image": maps[0]})


def test_errors():
    with pytest.raises(ValueError, match="cond_mode"):
        EncodeCondition("rgb")
    with pytest.raises(ValueError, match="num_classes"):
        EncodeCondition("onehot", num_classes=1)
    with pytest.raises(ValueError, match="single-channel label map \\(1, \\*spatial\\)"):
        EncodeCondition("onehot", num_classes=3)(torch.zeros(3, 4, 4))  # already one-hot
    with pytest.raises(ValueError, match="channel-first"):
        EncodeCondition("onehot")(torch.zeros(4))
    with pytest.raises(ValueError, match="'tissue' holds values outside 0..2"):
        EncodeConditiond(keys="tissue", num_classes=3)({"tissue": torch.full((1, 2, 2), 4.0)})
    assert EncodeCondition("onehot", 3, check=False)(torch.full((1, 2, 2), 1.0)).shape == (3, 2, 2)
    with pytest.raises(KeyError):
        EncodeConditiond(keys="tissue")({"image": torch.zeros(1, 2, 2)})
    with pytest.raises(ValueError, match="output_keys"):
        EncodeConditiond(keys=["a", "b"], output_keys=["x", "y", "z"])
