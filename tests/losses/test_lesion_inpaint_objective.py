# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion inpainting (MCGAN-style): the patch transform, the losses, generation that depends on its seed only,
filling new boxes of whole slices, and a tiny training run that lowers the reconstruction error of the box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.lesion_inpaint import LesionInpaintObjective
from monai_gan_aug.networks.nets.lesion_inpaint import LesionInpaintCritic, LesionInpaintGenerator
from monai_gan_aug.transforms.inpaint import LesionContextCropd, inpaint_collate, lesion_items


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _slices(n=8, size=24, seed=0):
    """Slices with a smooth background and one bright 4x4 'lesion' with its box."""
    rng = np.random.default_rng(seed)
    items = []
    ramp = np.linspace(-0.6, 0.2, size, dtype=np.float32)
    for _ in range(n):
        img = np.broadcast_to(ramp[:, None], (size, size)).copy()[None]
        x, y = rng.integers(2, size - 6, 2)
        img[0, x : x + 4, y : y + 4] = 0.9
        items.append({"image": torch.as_tensor(img), "boxes": [[float(x), float(y), float(x + 4), float(y + 4)]]})
    return items


def _nets(size_condition=True):
    torch.manual_seed(0)
    c = 2 if size_condition else 0
    return {
        "generator": LesionInpaintGenerator(2, 1, cond_channels=c, channels=(8, 16, 16), feather=1),
        "context_critic": LesionInpaintCritic(2, 2, cond_channels=c, channels=(8, 16)),
        "box_critic": LesionInpaintCritic(2, 1, cond_channels=c, channels=(8, 16)),
    }


def _batch(items, patch=16, seed=0):
    t = LesionContextCropd("image", patch_size=patch)
    t.set_random_state(seed)
    return inpaint_collate([t(dict(it)) for it in items])


def _ctx(nets, batch):
    return PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))


def test_context_crop_centres_the_box_and_fills_it_with_noise():
    item = {"image": torch.arange(24 * 24, dtype=torch.float32).reshape(1, 24, 24) / 576.0,
            "boxes": [[8.0, 9.0, 12.0, 15.0], [0.0, 0.0, 3.0, 3.0]], "label": torch.ones(1, 24, 24)}
    t = LesionContextCropd(["image", "label"], patch_size=16, box_index=0)
    t.set_random_state(3)
    out = t(item)
    assert out["image"].shape == out["inpaint_input"].shape == out["label"].shape == (1, 16, 16)
    start = out["inpaint_start"].tolist()
    assert start == [2, 4]  # box centre (10, 12) minus half the patch
    torch.testing.assert_close(out["image"], item["image"][:, 2:18, 4:20])
    assert out["inpaint_box"].tolist() == [6, 5, 10, 11] and out["lesion_size"].tolist() == [0.25, 0.375]
    m = out["inpaint_mask"][0].bool()
    assert m.sum() == 24 and m[6:10, 5:11].all()
    assert torch.equal(out["inpaint_input"][0][~m], out["image"][0][~m])  # only the box is replaced
    assert not torch.equal(out["inpaint_input"][0][m], out["image"][0][m])
    t.set_random_state(3)
    assert torch.equal(t(item)["inpaint_input"], out["inpaint_input"])  # noise comes from self.R only
    corner = LesionContextCropd("image", patch_size=16, box_index=1)(item)  # the window stays inside the image
    assert corner["inpaint_start"].tolist() == [0, 0] and corner["inpaint_box"].tolist() == [0, 0, 3, 3]
    # random choice among the boxes that fit: the 14-voxel box never fits a 16 patch with a 2-voxel margin
    t = LesionContextCropd("image", patch_size=16)
    big = {"image": item["image"], "boxes": [[1.0, 1.0, 15.0, 15.0], [8.0, 9.0, 12.0, 15.0]]}
    assert {tuple(t(big)["inpaint_box"].tolist()) for _ in range(5)} == {(6.0, 5.0, 10.0, 11.0)}
    with pytest.raises(ValueError, match="no lesion box that fits"):
        t({"image": item["image"], "boxes": [[1.0, 1.0, 15.0, 15.0]]})
    with pytest.raises(KeyError, match="boxes"):
        t({"image": item["image"]})
    with pytest.raises(ValueError, match="has a box"):
        lesion_items([{"image": "a.nii", "boxes": []}])
    assert len(lesion_items([{"image": "a", "boxes": []}, {"image": "b", "boxes": [[0, 0, 1, 1]]}])) == 1


def test_losses_are_finite_and_train_only_their_networks():
    nets, obj = _nets(), LesionInpaintObjective(patch_size=16, box_crop_size=8)
    batch = _batch(_slices(4))
    assert [p.name for p in obj.phases()] == ["g", "d_context", "d_box"]
    ctx = _ctx(nets, batch)
    loss, terms = obj.g_loss(ctx)
    assert torch.isfinite(loss) and set(terms) == {"adv_context", "adv_box", "l1_box", "l1_context"}
    loss.backward()
    assert nets["generator"].encoder[0].conv1.conv.weight.grad is not None
    for name, fn in (("d_context", obj.context_loss), ("d_box", obj.box_loss)):
        loss, terms = fn(ctx)
        assert torch.isfinite(loss), name
    assert "gp" in obj.box_loss(ctx)[1]  # WGAN-GP lesion critic
    with pytest.raises(ValueError, match="lesion_size"):
        obj.g_loss(_ctx(nets, {k: v for k, v in batch.items() if k != "lesion_size"}))
    with pytest.raises(ValueError, match="label_mode"):
        LesionInpaintObjective(16, label_mode="mask")
    with pytest.raises(ValueError, match="box_mode"):
        LesionInpaintObjective(16, box_mode="wgangp")


def test_generate_depends_on_the_seed_only():
    nets, obj = _nets(), LesionInpaintObjective(patch_size=16)
    for m in nets.values():
        m.eval()
    batch = _batch(_slices(3))
    with torch.no_grad():
        out = obj.generate(nets, 3, batch=batch, seeds=[5, 6, 7])
        again = obj.generate(nets, 1, batch={k: v[1:] for k, v in batch.items()}, seeds=[6])
        other = obj.generate(nets, 3, batch=batch, seeds=[8, 9, 10])
    assert out["image"].shape == (3, 1, 16, 16)
    torch.testing.assert_close(again["image"][0], out["image"][1], rtol=0, atol=1e-6)
    assert not torch.allclose(other["image"], out["image"])  # the noise matters
    mask = batch["inpaint_mask"].bool()
    far = nets["generator"].blend_weights(batch["inpaint_mask"]) == 0
    assert torch.equal(out["image"][far], batch["image"][far])  # the context is kept outside the blend ring
    assert not torch.equal(out["image"][mask], batch["image"][mask])
    assert [b.tolist() for b in out["boxes"]] == [[b] for b in batch["inpaint_box"].tolist()]
    with pytest.raises(ValueError, match="pass a batch"):
        obj.generate(nets, 1, seeds=[1])


def test_fill_slices_adds_lesions_at_new_boxes():
    nets, obj = _nets(), LesionInpaintObjective(patch_size=16, label_mode="box")
    for m in nets.values():
        m.eval()
    image = torch.full((2, 1, 24, 24), -0.5)
    batch = {
        "image": image, "label": torch.zeros(2, 1, 24, 24, dtype=torch.uint8),
        "boxes": [torch.tensor([[1.0, 1.0, 4.0, 4.0]]), torch.zeros(0, 4)],
        "box_labels": [torch.tensor([0]), torch.zeros(0, dtype=torch.long)],
        "new_boxes": [torch.tensor([[10.0, 10.0, 14.0, 15.0], [18.0, 2.0, 22.0, 6.0]]), torch.tensor([[20.0, 19.0, 23.0, 23.0]])],
        "new_box_labels": [torch.tensor([0, 0]), torch.tensor([0])],
    }
    with torch.no_grad():
        out = obj.generate(nets, 2, batch=batch, seeds=[1, 2])
        one = obj.generate(nets, 1, batch={k: v[1:] for k, v in batch.items()}, seeds=[2])
    assert out["image"].shape == (2, 1, 24, 24) and out["label"].dtype == torch.uint8
    assert out["boxes"][0].tolist() == [[1, 1, 4, 4], [10, 10, 14, 15], [18, 2, 22, 6]]
    assert out["boxes"][1].tolist() == [[20, 19, 23, 23]] and out["box_labels"][0].tolist() == [0, 0, 0]
    assert out["label"][0, 0].sum() == 4 * 5 + 4 * 4 and out["label"][0, 0, 10:14, 10:15].all()
    changed = (out["image"] != image)[:, 0]
    ring = torch.zeros(24, 24, dtype=torch.bool)
    ring[9:15, 9:16] = True
    ring[17:23, 1:7] = True
    assert changed[0].any() and not changed[0][~ring].any()  # only the boxes and their 1-voxel ring change
    torch.testing.assert_close(one["image"][0], out["image"][1], rtol=0, atol=1e-6)
    diff = LesionInpaintObjective(patch_size=16, label_mode="difference", diff_threshold=0.0)
    with torch.no_grad():
        lab = diff.generate(nets, 2, batch=batch, seeds=[1, 2])["label"]
    assert lab[0, 0, 10:14, 10:15].any() and not lab[0, 0, 15:, 15:].any()


def test_training_lowers_the_box_reconstruction_error():
    """Bright 4x4 lesions on a ramp: 24 iterations must halve the L1 error inside the box."""
    items = _slices(8, seed=1)
    t = LesionContextCropd("image", patch_size=16)
    t.set_random_state(0)
    loader = DataLoader(Dataset(items, transform=t), batch_size=4, shuffle=False, collate_fn=inpaint_collate)
    nets = _nets()
    obj = LesionInpaintObjective(patch_size=16, box_crop_size=8, lambda_l1_box=10.0)
    opt = {k: torch.optim.Adam(v.parameters(), 2e-3, betas=(0.5, 0.99)) for k, v in nets.items()}
    trainer = AdversarialTrainer("cpu", 12, loader, nets, opt, obj, ema={})
    history = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: history.append(float(e.state.output["losses"]["g_l1_box"])))
    trainer.run()
    assert len(history) == 24 and all(np.isfinite(history))
    assert np.mean(history[-4:]) < 0.5 * np.mean(history[:2]), history


def test_3d_patches_train_and_fill_volumes():
    torch.manual_seed(0)
    vol = torch.full((1, 12, 12, 12), -0.5)
    vol[0, 4:7, 5:8, 4:6] = 0.8
    t = LesionContextCropd("image", patch_size=8)
    batch = inpaint_collate([t({"image": vol, "boxes": [[4.0, 5.0, 4.0, 7.0, 8.0, 6.0]]}) for _ in range(2)])
    assert batch["inpaint_input"].shape == (2, 1, 8, 8, 8) and batch["lesion_size"].shape == (2, 3)
    nets = {
        "generator": LesionInpaintGenerator(3, 1, cond_channels=3, channels=(4, 8), feather=1),
        "context_critic": LesionInpaintCritic(3, 2, cond_channels=3, channels=(4,)),
        "box_critic": LesionInpaintCritic(3, 1, cond_channels=3, channels=(4,)),
    }
    obj = LesionInpaintObjective(patch_size=8, box_crop_size=4)
    ctx = _ctx(nets, batch)
    for fn in (obj.g_loss, obj.context_loss, obj.box_loss):
        assert torch.isfinite(fn(ctx)[0])
    for m in nets.values():
        m.eval()
    slices = {"image": vol[None], "boxes": [torch.zeros(0, 6)], "box_labels": [torch.zeros(0, dtype=torch.long)],
              "new_boxes": [torch.tensor([[2.0, 2.0, 3.0, 5.0, 5.0, 6.0]])]}
    with torch.no_grad():
        out = obj.generate(nets, 1, batch=slices, seeds=[3])
    assert out["image"].shape == (1, 1, 12, 12, 12) and out["label"][0, 0, 2:5, 2:5, 3:6].all()
    assert out["boxes"][0].tolist() == [[2, 2, 3, 5, 5, 6]]
