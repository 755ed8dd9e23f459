# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix objective: one step with finite losses, gradients only where expected, conditions encoded in the dataset
(prepare_batch only moves them) or, for raw maps, by the same encoder, generation, perceptual loss, and a tiny
training run that lowers the reconstruction error (the encoding itself: tests/transforms/test_condition_encoding.py)."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from torch.utils.data import default_collate
from torchvision.models.vgg import cfgs, make_layers

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.losses.perceptual import (
    PerceptualFeatureLoss,
    VGG16Features,
    find_vgg16_weights,
)
from monai_gan_aug.networks.blocks.patchgan import PatchGANDiscriminator
from monai_gan_aug.networks.nets.pix2pix import Pix2PixGenerator
from monai_gan_aug.transforms import EncodeConditiond, encode_condition, mask_to_display


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _maps(n=4, size=16, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(n, 1, size, size)
    for i in range(n):  # blocky maps: a square of class 1 and one of class 2 at random places
        for c in range(1, classes):
            x, y = torch.randint(0, size - 6, (2,), generator=g).tolist()
            maps[i, 0, x : x + 6, y : y + 6] = c
    return maps


def _nets(cond_channels=3, size=16, field=10):
    torch.manual_seed(0)
    g = Pix2PixGenerator(2, cond_channels, 1, image_size=size, base_channels=4)
    d = PatchGANDiscriminator(2, cond_channels + 1, receptive_field=field, base_channels=4)
    return {"generator": g, "discriminator": d}


def _ctx(nets, batch):
    return PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))


def test_one_step_finite_losses_and_gradients_where_expected():
    nets = _nets()
    obj = Pix2PixObjective(cond_key="tissue", num_classes=3)
    maps = _maps()
    batch = obj.prepare_batch({"image": mask_to_display(maps, 3), "tissue": maps}, torch.device("cpu"))
    assert "cond" not in batch and obj.condition(batch).shape == (4, 3, 16, 16)  # prepare_batch only moves
    ctx = _ctx(nets, batch)

    nets["discriminator"].requires_grad_(False)  # what the engine does during the g phase
    loss, terms = obj.g_loss(ctx)
    assert set(terms) == {"adv", "l1"} and torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    torch.testing.assert_close(loss, terms["adv"] + 100 * terms["l1"])
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in nets["generator"].parameters())
    assert all(p.grad is None for p in nets["discriminator"].parameters())
    assert not ctx.outputs["fakes"].requires_grad

    nets["generator"].zero_grad(set_to_none=True)
    nets["discriminator"].requires_grad_(True)
    d_loss, d_terms = obj.d_loss(ctx)  # reuses this iteration's fakes, detached
    assert torch.isfinite(d_loss) and {"real_logit", "fake_logit"} == set(d_terms)
    d_loss.backward()
    assert all(p.grad is None for p in nets["generator"].parameters())
    assert all(p.grad is not None for p in nets["discriminator"].parameters())


def test_prepare_batch_only_moves_and_raw_maps_are_encoded_the_same_way():
    maps = _maps()
    obj = Pix2PixObjective(cond_key="tissue", num_classes=3)
    encode = EncodeConditiond(keys="tissue", cond_mode="onehot", num_classes=3)
    items = [encode({"image": mask_to_display(m, 3), "tissue": m}) for m in maps]
    loader = DataLoader(Dataset(items), batch_size=4)
    built = next(iter(loader))
    assert built["cond"].shape == (4, 3, 16, 16)
    moved = obj.prepare_batch(built, torch.device("cpu"))
    assert moved["cond"] is built["cond"] and torch.equal(moved["tissue"], maps)  # nothing re-encoded
    raw = obj.prepare_batch({"image": mask_to_display(maps, 3), "tissue": maps}, torch.device("cpu"))
    assert "cond" not in raw  # nothing built in prepare_batch; a raw map is encoded by the same encoder when used
    assert torch.equal(obj.condition(raw), moved["cond"]) and torch.equal(obj.condition(raw), encode_condition(maps, "onehot", 3))
    nets = _nets()
    nets["discriminator"].requires_grad_(False)
    torch.manual_seed(1)  # dropout
    from_dataset = obj.g_loss(_ctx(nets, moved))[1]
    torch.manual_seed(1)
    from_raw = obj.g_loss(_ctx(nets, raw))[1]
    assert from_dataset.keys() == from_raw.keys() and all(torch.equal(from_dataset[k], from_raw[k]) for k in from_raw)


def test_lsgan_and_missing_condition():
    nets = _nets(cond_channels=1)
    obj = Pix2PixObjective(cond_key="label", cond_mode="scaled", num_classes=2, mode="lsgan")
    maps = (_maps(classes=2) > 0).float()
    batch = obj.prepare_batch({"image": maps * 2 - 1, "label": maps}, torch.device("cpu"))
    ctx = _ctx(nets, batch)
    g_loss, _ = obj.g_loss(ctx)
    d_loss, _ = obj.d_loss(ctx)
    assert torch.isfinite(g_loss) and torch.isfinite(d_loss)
    with pytest.raises(ValueError, match=r"lacks \['label'\].*EncodeConditiond"):
        obj.g_loss(_ctx(nets, obj.prepare_batch({"image": maps}, torch.device("cpu"))))
    with pytest.raises(ValueError, match="mode"):
        Pix2PixObjective(mode="wgan")
    with pytest.raises(ValueError, match="reconstruction"):
        Pix2PixObjective(lambda_l1=0.0)


def test_generate_returns_image_and_label():
    nets = _nets()
    obj = Pix2PixObjective(cond_key="tissue", num_classes=3, label_values=[2])
    maps = _maps()
    for m in nets.values():
        m.eval()
    with torch.no_grad():
        out = obj.generate(nets, 3, batch={"tissue": maps})
        again = obj.generate(nets, 3, batch={"tissue": maps})
    assert out["image"].shape == (3, 1, 16, 16)
    torch.testing.assert_close(out["image"], again["image"])  # deterministic from the condition
    assert torch.equal(out["cond"], maps[:3].long()) and torch.equal(out["tissue"], maps[:3].long())
    assert torch.equal(out["label"], (maps[:3] == 2).to(torch.uint8))
    with pytest.raises(ValueError, match="generates from conditions"):
        obj.generate(nets, 3)
    with pytest.raises(ValueError, match="label_values"):
        Pix2PixObjective(num_classes=3, label_values=[3])


def _vgg_file(tmp_path):
    body = make_layers(cfgs["D"])[:9]  # up to relu2_2
    torch.manual_seed(0)
    path = tmp_path / "vgg16-test.pth"
    torch.save({f"features.{k}": v for k, v in body.state_dict().items()}, path)
    return path


def test_perceptual_loss_local_weights_and_missing_file(tmp_path, monkeypatch):
    path = _vgg_file(tmp_path)
    loss_fn = PerceptualFeatureLoss(weights_path=path, layers=["relu1_2", "relu2_2"], layer_weights=(100, 200))
    x = (torch.rand(2, 1, 16, 16) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 1, 16, 16) * 2 - 1
    value = loss_fn(x, y)
    assert value > 0 and float(loss_fn(y, y)) == 0.0
    value.backward()
    assert x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss_fn.parameters())
    # the extractor's layers are the requested ones: relu1_2 keeps 64 channels at full size, relu2_2 128 at half
    feats = VGG16Features(["relu1_2", "relu2_2"], weights_path=path)(y)
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 16, 16), (128, 8, 8)]
    # 3D volumes go through the 2D extractor slice by slice
    loss3d = PerceptualFeatureLoss(weights_path=path, layers=["relu1_2"], layer_weights=(1.0,), spatial_dims=3)
    assert torch.isfinite(loss3d(torch.rand(1, 1, 8, 8, 3) * 2 - 1, torch.zeros(1, 1, 8, 8, 3)))
    # nothing is downloaded: without a file the error says where to put one
    monkeypatch.delenv("MONAI_GAN_AUG_VGG16_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        find_vgg16_weights()
    with pytest.raises(ValueError, match="lack"):
        VGG16Features(["relu3_3"], weights_path=path)  # the file stops at relu2_2


def test_perceptual_term_in_objective(tmp_path):
    nets = _nets()
    perc = PerceptualFeatureLoss(weights_path=_vgg_file(tmp_path), layers=["relu1_2", "relu2_2"], layer_weights=(100, 200))
    obj = Pix2PixObjective(cond_key="tissue", num_classes=3, lambda_l1=0.0, perceptual=perc)
    maps = _maps()
    batch = obj.prepare_batch({"image": mask_to_display(maps, 3), "tissue": maps}, torch.device("cpu"))
    nets["discriminator"].requires_grad_(False)
    loss, terms = obj.g_loss(_ctx(nets, batch))
    assert set(terms) == {"adv", "perceptual"} and terms["perceptual"] > 0
    loss.backward()
    assert nets["generator"].out[1].weight.grad.abs().sum() > 0


def test_training_lowers_reconstruction_error():
    """Target image = the map shown as intensities; 20 steps must halve the L1 error."""
    maps = _maps(n=8, seed=1)
    data = [{"image": mask_to_display(m, 3), "tissue": m} for m in maps]
    encode = EncodeConditiond(keys="tissue", cond_mode="onehot", num_classes=3)  # as in the bundle's preprocessing
    loader = DataLoader(Dataset(data, transform=encode), batch_size=4, shuffle=False)
    nets = _nets()
    obj = Pix2PixObjective(cond_key="tissue", num_classes=3)
    opt = {k: torch.optim.Adam(v.parameters(), 5e-3, betas=(0.5, 0.999)) for k, v in nets.items()}
    trainer = AdversarialTrainer("cpu", 10, loader, nets, opt, obj)
    history = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: history.append(float(e.state.output["losses"]["g_l1"])))
    trainer.run()
    assert len(history) == 20
    assert sum(history[-4:]) / 4 < 0.5 * sum(history[:2]) / 2, history


# ------------------------------------------------------------------------------------------ two-stage generation
def test_mask_dcgan_objective_trains_on_encoded_masks_and_generates_valid_maps():
    from monai_gan_aug.losses.objectives import MaskDCGANObjective
    from monai_gan_aug.networks.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    obj = MaskDCGANObjective(mask_key="tissue", num_classes=3, mask_mode="onehot", latent_size=8)
    maps = _maps()
    encode = EncodeConditiond("tissue", "onehot", 3, output_keys="image")  # the bundle's last transform
    batch = obj.prepare_batch(default_collate([encode({"tissue": m}) for m in maps]), torch.device("cpu"))
    assert torch.equal(batch["image"], encode_condition(maps, "onehot", 3))
    assert obj.prepare_batch({"seed": torch.tensor([1])}, torch.device("cpu")).keys() == {"seed"}
    with pytest.raises(ValueError, match="EncodeConditiond"):  # prepare_batch builds nothing: a raw map is refused
        obj.prepare_batch({"tissue": maps}, torch.device("cpu"))
    torch.manual_seed(0)
    nets = {"generator": DCGANGenerator(2, 8, obj.mask_channels, 16, 4), "discriminator": DCGANDiscriminator(2, 3, 16, 4)}
    ctx = _ctx(nets, batch)
    assert torch.isfinite(obj.d_loss(ctx)[0]) and torch.isfinite(obj.g_loss(ctx)[0])
    nets["generator"].eval()
    with torch.no_grad():
        out = obj.generate(nets, 3, seeds=[5, 6, 7])
        again = obj.generate(nets, 1, seeds=[6])
    assert out["label"].shape == (3, 1, 16, 16) and out["label"].dtype == torch.int64
    assert set(out["label"].unique().tolist()) <= {0, 1, 2}
    assert torch.equal(again["label"][0], out["label"][1])  # sample i depends on seeds[i] only
    torch.testing.assert_close(out["image"], mask_to_display(out["label"], 3))


def test_two_stage_objective_writes_pairs_from_seeds():
    from monai_gan_aug.losses.objectives import MaskDCGANObjective, TwoStageObjective
    from monai_gan_aug.networks.nets.dcgan import DCGANGenerator

    mask_obj = MaskDCGANObjective(mask_key="tissue", num_classes=3, latent_size=8)
    image_obj = Pix2PixObjective(cond_key="tissue", num_classes=3, label_values=[2])
    two = TwoStageObjective(image_obj, mask_obj)
    nets = {**_nets(), "mask_generator": DCGANGenerator(2, 8, 3, 16, 4)}
    for m in nets.values():
        m.eval()
    with torch.no_grad():
        out = two.generate(nets, 2, seeds=[1, 2])
        mask_only = mask_obj.generate({"generator": nets["mask_generator"]}, 2, seeds=[1, 2])
    assert out["image"].shape == (2, 1, 16, 16)
    assert torch.equal(out["cond"], mask_only["label"])  # the image was made from the generated map
    assert torch.equal(out["label"], (mask_only["label"] == 2).to(torch.uint8))
    with pytest.raises(TypeError, match="only generates"):
        two.phases()
    with pytest.raises(ValueError, match="same map"):
        TwoStageObjective(Pix2PixObjective(cond_key="tissue", num_classes=5), mask_obj)
    with pytest.raises(ValueError, match="mask_generator"):
        two.generate(_nets(), 1, seeds=[0])


def test_honours_mask_separates_matched_from_shuffled():
    from monai_gan_aug.metrics import honours_mask

    masks = _maps(n=6, classes=3).long()
    perfect = honours_mask(masks, masks, num_classes=3)
    assert perfect["dice"] == pytest.approx(1.0) and perfect["n"] == 6
    assert perfect["dice_shuffled"] < 0.5 and perfect["margin"] > 0.5
    noise = honours_mask(torch.randint(0, 3, masks.shape), masks, num_classes=3)
    assert abs(noise["margin"]) < 0.15  # a segmentation unrelated to the masks: no margin
    empty = honours_mask(torch.zeros_like(masks), torch.zeros_like(masks), num_classes=3)
    assert empty["n_scored"] == 0  # empty targets are not scored
    with pytest.raises(ValueError, match=">= 2 samples"):
        honours_mask(masks[:1], masks[:1], 3)


def test_datalist_helpers():
    from monai_gan_aug.data import seeded_items, select_keys

    items = [{"image": "a", "tissue": "t", "boxes": [[1, 2, 3, 4]]}, {"image": "b", "tissue": "u", "boxes": []}]
    assert select_keys(items, ["tissue"]) == [{"tissue": "t"}, {"tissue": "u"}]
    assert select_keys(items, ["image"], ["label"]) == [{"image": "a"}, {"image": "b"}]
    with pytest.raises(ValueError, match="has no \\['label'\\]"):
        select_keys(items, ["label"])
    seeded = seeded_items(items, seed=10, num_samples=3, keys=["tissue"])
    assert seeded == [{"tissue": "t", "seed": 10, "index": 0}, {"tissue": "u", "seed": 11, "index": 1},
                      {"tissue": "t", "seed": 12, "index": 2}]
    with pytest.raises(ValueError, match="empty"):
        seeded_items([], 0)
