# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FastGAN objective: one training step with image + mask channels, gradients per phase, reconstruction on real
images only, DiffAugment on everything D sees, mask splitting and seeded generation."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.fastgan import FastGANObjective
from monai_gan_aug.networks.nets.fastgan import FastGANDiscriminator, FastGANGenerator
from monai_gan_aug.transforms import AppendMaskChannelsd

LATENT = 8


def _nets(channels=2):
    torch.manual_seed(0)
    return {
        "generator": FastGANGenerator(LATENT, channels, 32, base_channels=4, sle_ratio=4),
        "discriminator": FastGANDiscriminator(channels, 32, base_channels=4, sle_ratio=2, decoder_channels=4),
    }


def _loader(n=4):
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(n):
        label = torch.zeros(1, 32, 32)
        label[:, 8:16, 10:20] = 1
        data.append({"image": torch.rand(1, 32, 32, generator=g) * 2 - 1, "label": label})
    # the masks join the image in the dataset, as in the bundle's preprocessing
    return torch.utils.data.DataLoader([AppendMaskChannelsd("image", "label", 1)(d) for d in data], batch_size=2)


def _ctx(nets, batch, outputs=None):
    return PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={} if outputs is None else outputs,
                        device=torch.device("cpu"))


def test_training_step_with_masks():
    nets = _nets()
    opts = {k: torch.optim.Adam(v.parameters(), 2e-4, betas=(0.5, 0.999)) for k, v in nets.items()}
    obj = FastGANObjective(LATENT, image_channels=1, mask_channels=1)
    trainer = AdversarialTrainer("cpu", 1, _loader(), nets, opts, obj, max_iterations=2)
    trainer.run()
    out = trainer.state.output
    assert {"d_loss", "d_hinge", "d_recon", "d_real_logit", "d_fake_logit", "g_loss"} <= set(out["losses"])
    assert all(torch.isfinite(v) for v in out["losses"].values())
    assert out["reals"].shape == (2, 2, 32, 32) and set(out["reals"][:, 1].unique().tolist()) == {-1.0, 1.0}
    assert out["fakes"].shape == (2, 2, 32, 32)


def test_gradients_only_in_phase_networks():
    nets = _nets()
    obj = FastGANObjective(LATENT, mask_channels=1)
    batch = obj.prepare_batch(next(iter(_loader())), torch.device("cpu"))
    for phase, owner in zip(obj.phases(), ("discriminator", "generator")):
        for name, m in nets.items():  # what the engine does: only the phase's network is trainable
            m.zero_grad(set_to_none=True)
            m.requires_grad_(name == owner)
        loss, _ = phase.loss(_ctx(nets, batch))
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[owner].parameters())
        other = "generator" if owner == "discriminator" else "discriminator"
        assert all(p.grad is None for p in nets[other].parameters())
        assert all(torch.isfinite(p.grad).all() for p in nets[owner].parameters() if p.grad is not None)


def test_reconstruction_on_reals_only_and_augmentation_everywhere():
    nets = _nets()
    obj = FastGANObjective(LATENT, mask_channels=1, policy="")  # identity augmentation: inputs are traceable
    batch = obj.prepare_batch(next(iter(_loader())), torch.device("cpu"))
    d_calls = []
    inner = nets["discriminator"].forward
    nets["discriminator"].forward = lambda x, x_small=None, part=None: (d_calls.append((x, part)), inner(x, x_small, part))[1]
    aug_calls = []
    real_augment = obj.augment
    obj.augment = lambda *t: (aug_calls.append(len(t)), real_augment(*t))[1]
    obj.d_loss(_ctx(nets, batch))
    with_part = [(x, p) for x, p in d_calls if p is not None]
    assert len(d_calls) == 2 and len(with_part) == 1
    torch.testing.assert_close(with_part[0][0], batch["image"])  # the decoders see the real batch, not fakes
    assert aug_calls == [1, 2]  # reals, then the fake and its low-resolution twin with one shared draw
    obj.g_loss(_ctx(nets, batch))
    assert aug_calls == [1, 2, 2]  # the generator's loss goes through the same augmentation


def test_hinge_loss_values():
    from monai_gan_aug.losses.adversarial import hinge_margin_loss

    logits = torch.tensor([[2.0, 0.5, -1.5]])
    assert hinge_margin_loss(logits, True).item() == pytest.approx((0 + 0.5 + 2.5) / 3)
    assert hinge_margin_loss(logits, False).item() == pytest.approx((3 + 1.5 + 0) / 3)
    jittered = hinge_margin_loss(logits, True, 0.2).item()  # margins in [0.8, 1]: never above the plain hinge
    assert (0 + 0.3 + 2.3) / 3 - 1e-6 <= jittered <= (0 + 0.5 + 2.5) / 3 + 1e-6


def test_mask_channels_join_the_image_in_the_dataset():
    item = {"image": torch.zeros(1, 4, 4), "label": torch.tensor([0.0, 1.0]).repeat(8).reshape(1, 4, 4)}
    out = AppendMaskChannelsd("image", "label", 1)(item)
    assert out["image"].shape == (2, 4, 4) and set(out["image"][1].unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(out["image"][1], item["label"][0] * 2 - 1) and torch.equal(out["label"], item["label"])
    assert AppendMaskChannelsd("image", "label", 0)({"image": torch.zeros(1, 4, 4)})["image"].shape == (1, 4, 4)
    with pytest.raises(ValueError, match="'label' mask of every item"):
        AppendMaskChannelsd("image", "label", 1)({"image": torch.zeros(1, 4, 4)})
    with pytest.raises(ValueError, match="'label' of shape"):
        AppendMaskChannelsd("image", "label", 1)({"image": torch.zeros(1, 4, 4), "label": torch.zeros(1, 4, 2)})
    obj = FastGANObjective(LATENT, mask_channels=1)  # prepare_batch only moves: a batch without the masks is refused
    with pytest.raises(ValueError, match="AppendMaskChannelsd"):
        obj.d_loss(_ctx(_nets(), obj.prepare_batch({"image": torch.zeros(2, 1, 32, 32)}, torch.device("cpu"))))


def test_generate_splits_image_and_label_and_is_seeded():
    nets = _nets()
    for m in nets["generator"].modules():  # make the noise injections matter
        if m.__class__.__name__ == "NoiseInjection":
            m.weight.data.fill_(1.0)
    nets["generator"].eval()
    obj = FastGANObjective(LATENT, mask_channels=1)
    a = obj.generate(nets, 3, seeds=[10, 11, 12])
    assert a["image"].shape == (3, 1, 32, 32) and a["label"].shape == (3, 1, 32, 32)
    assert a["label"].dtype == torch.uint8 and set(a["label"].unique().tolist()) <= {0, 1}
    b = obj.generate(nets, 1, seeds=[11])
    torch.testing.assert_close(b["image"][0], a["image"][1])  # independent of batch composition, noise maps included
    torch.testing.assert_close(b["label"][0], a["label"][1])
    assert "label" not in FastGANObjective(LATENT).generate(_nets(1), 2, seeds=[1, 2])


def test_errors():
    with pytest.raises(ValueError, match="recon_loss"):
        FastGANObjective(recon_loss="lpips")
    with pytest.raises(ValueError, match="policy"):
        FastGANObjective(policy="color,warp")
    obj = FastGANObjective(LATENT, mask_channels=1)
    with pytest.raises(ValueError, match="channels"):
        obj.d_loss(_ctx(_nets(), {"image": torch.zeros(2, 3, 32, 32)}))
