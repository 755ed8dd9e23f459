# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet's datasets on the data floor: SameClassPairDataset (same-class partners, seeded draws and transforms,
batches) and ReferenceSeedDataset (references, classes and seeds for generation), with their errors."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureTyped, RandFlipd

from monai_gan_aug.data import REFERENCE_KEY, ReferenceSeedDataset, SameClassPairDataset


def _items(classes):
    """Image i is filled with the value i, so the partner of an item can be identified."""
    return [{"image": torch.full((1, 16, 16), float(i)), "class": c} for i, c in enumerate(classes)]


def test_pairs_are_other_images_of_the_same_class():
    classes = [0, 1, 0, 1, 1, 0, 2]
    ds = SameClassPairDataset(_items(classes), Compose([EnsureTyped(keys="image")]), progress=False)
    ds.set_random_state(0)
    seen = {i: set() for i in range(len(classes))}
    for _ in range(10):
        for i in range(len(ds)):
            item = ds[i]
            j = int(item["reference"][0, 0, 0])
            assert classes[j] == classes[i] == item["class"]
            assert item["image"][0, 0, 0] == i
            seen[i].add(j)
    assert all(i not in partners for i, partners in seen.items() if i != 6)
    assert seen[6] == {6}  # the only image of class 2 is paired with itself
    assert seen[0] == {2, 5} and seen[1] == {3, 4}  # every same-class partner gets drawn
    # reproducible from the seed, different for another seed
    def draws(seed):
        ds.set_random_state(seed)
        return [int(ds[i]["reference"][0, 0, 0]) for i in range(6) for _ in range(3)]

    assert draws(5) == draws(5) and draws(5) != draws(6)


def test_pair_dataset_seeds_its_random_transforms_and_batches():
    data = [{"image": torch.arange(16.0).reshape(1, 4, 4) + 100 * i, "class": i % 2} for i in range(6)]
    ds = SameClassPairDataset(data, Compose([RandFlipd(keys="image", prob=0.5, spatial_axis=0)]), progress=False)

    def flips(seed):
        ds.set_random_state(seed)
        return [bool(ds[i]["image"][0, 0, 0] % 100 != 0) for i in range(6) for _ in range(4)]

    assert flips(3) == flips(3)  # set_random_state also seeds the random transforms
    assert flips(3) != flips(4)
    assert 0 < sum(flips(3)) < 24
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=0)))
    assert batch["image"].shape == batch["reference"].shape == (4, 1, 4, 4)
    assert batch["class"].tolist() == [0, 1, 0, 1]


def test_pair_dataset_errors():
    with pytest.raises(ValueError, match="class"):
        SameClassPairDataset([{"image": torch.zeros(1, 4, 4)}], progress=False)
    with pytest.raises(ValueError, match="integer"):
        SameClassPairDataset([{"image": torch.zeros(1, 4, 4), "class": "tumour"}], progress=False)
    with pytest.raises(ValueError, match="empty"):
        SameClassPairDataset([], progress=False)


def test_reference_seed_dataset():
    ds = ReferenceSeedDataset(_items([0, 1, 1]), num_samples=5, seed=100, classes=[1])
    items = [ds[i] for i in range(len(ds))]
    assert [it["seed"] for it in items] == [100, 101, 102, 103, 104]
    assert [int(it["reference"][0, 0, 0]) for it in items] == [1, 2, 1, 2, 1]
    assert all(it["class"] == 1 for it in items)
    with pytest.raises(ValueError, match="no reference"):
        ReferenceSeedDataset(_items([0, 0]), classes=[1])


def test_pair_dataset_keys_and_shapes():
    ds = SameClassPairDataset(_items([0, 0, 1, 1]), Compose([EnsureTyped(keys="image")]), reference_key="x_j",
                              progress=False)
    item = ds[1]
    assert REFERENCE_KEY == "reference" and set(item) == {"image", "class", "x_j"}
    assert item["x_j"].shape == item["image"].shape == (1, 16, 16) and float(item["x_j"][0, 0, 0]) == 0.0
    ds.set_data(_items([1, 1]))  # a new datalist rebuilds the class index
    assert len(ds) == 2 and ds.groups.keys() == {1}


def test_reference_seed_dataset_shapes_and_errors():
    ds = ReferenceSeedDataset(_items([0, 1]), Compose([EnsureTyped(keys="image")]), num_samples=3, seed=7)
    item = ds[2]
    assert set(item) == {"seed", "index", "reference", "class"}
    assert item["seed"] == 9 and item["index"] == 2 and item["class"] == 0 and item["reference"].shape == (1, 16, 16)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="num_samples"):
        ReferenceSeedDataset(_items([0]), num_samples=0)
    with pytest.raises(ValueError, match="has no 'class'"):
        ReferenceSeedDataset([{"image": torch.zeros(1, 4, 4)}])
