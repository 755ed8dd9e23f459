# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet objective: same-class pairing, one WGAN-GP step, gradients per phase, and generation that is diverse
across noise seeds and deterministic for one seed."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureTyped, RandFlipd

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.ga_unet import (
    GAUNetObjective,
    ReferenceSeedDataset,
    SameClassPairDataset,
)
from monai_gan_aug.networks.nets.ga_unet import GAUNetCritic, GAUNetGenerator

NOISE = 8


def _items(classes):
    """Image i is filled with the value i, so the partner of an item can be identified."""
    return [{"image": torch.full((1, 16, 16), float(i)), "class": c} for i, c in enumerate(classes)]


def _nets():
    torch.manual_seed(0)
    return {
        "generator": GAUNetGenerator(2, 1, 1, 2, 16, NOISE, base_channels=4, layers_per_block=1, noise_channels=2, class_channels=2),
        "discriminator": GAUNetCritic(2, 1, 2, 16, base_channels=4, growth_rate=4, layers_per_block=1),
    }


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


def test_training_step_and_phase_gradients():
    nets = _nets()
    data = [{"image": torch.rand(1, 16, 16) * 2 - 1, "class": i % 2} for i in range(4)]
    ds = SameClassPairDataset(data, Compose([EnsureTyped(keys="image", track_meta=False)]), progress=False)
    loader = DataLoader(ds, batch_size=2, shuffle=False)
    opts = {k: torch.optim.Adam(v.parameters(), 1e-4, betas=(0.0, 0.9)) for k, v in nets.items()}
    obj = GAUNetObjective(NOISE, 2, n_critic=2)
    trainer = AdversarialTrainer("cpu", 1, loader, nets, opts, obj, max_iterations=1)
    trainer.run()
    losses = trainer.state.output["losses"]
    assert set(losses) == {"d_loss", "d_wasserstein", "d_gp", "g_loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert trainer.state.output["fakes"].shape == (2, 1, 16, 16)

    batch = obj.prepare_batch(next(iter(loader)), torch.device("cpu"))
    for phase, owner in zip(obj.phases(), ("discriminator", "generator")):
        for name, m in nets.items():
            m.zero_grad(set_to_none=True)
            m.requires_grad_(name == owner)
        ctx = PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))
        loss, _ = phase.loss(ctx)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[owner].parameters())
        other = "generator" if owner == "discriminator" else "discriminator"
        assert all(p.grad is None for p in nets[other].parameters())


def test_generation_diversity_and_determinism():
    nets = _nets()
    nets["generator"].eval()
    obj = GAUNetObjective(NOISE, 2)
    x_j = torch.rand(1, 1, 16, 16).repeat(3, 1, 1, 1)  # the same reference three times
    batch = {"reference": x_j, "class": torch.tensor([1, 1, 1])}
    out = obj.generate(nets, 3, batch=batch, seeds=[1, 2, 3])
    assert out["image"].shape == (3, 1, 16, 16) and out["class"].tolist() == [1, 1, 1]
    imgs = out["image"]
    assert not torch.allclose(imgs[0], imgs[1]) and not torch.allclose(imgs[1], imgs[2])  # other noise, other image
    again = obj.generate(nets, 3, batch=batch, seeds=[1, 2, 3])["image"]
    torch.testing.assert_close(again, imgs)  # same noise, same image
    alone = obj.generate(nets, 1, batch={"reference": x_j[:1], "class": torch.tensor([1])}, seeds=[2])["image"]
    torch.testing.assert_close(alone[0], imgs[1])  # independent of the batch it is generated in


def test_errors():
    obj = GAUNetObjective(NOISE, 2)
    with pytest.raises(ValueError, match="reference"):
        obj.generate(_nets(), 2)
    with pytest.raises(ValueError, match="0..1"):
        obj.prepare_batch({"image": torch.zeros(2, 1, 16, 16), "class": torch.tensor([0, 3])}, torch.device("cpu"))
    ctx = PhaseContext(nets=_nets(), batch={"image": torch.zeros(2, 1, 16, 16)}, iteration=1, repeat=0, outputs={},
                       device=torch.device("cpu"))
    with pytest.raises(ValueError, match="SameClassPairDataset"):
        obj.d_loss(ctx)
    with pytest.raises(ValueError, match="n_critic"):
        GAUNetObjective(n_critic=0)
