# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""PGGANBoxObjective with DiffAugment of the critic's inputs (``diffaugment``): the box map moves and is cut with its
image, colour touches the image only, every critic call sees augmented inputs, the generator's gradient flows through
the augmentation, draws are independent per call but seeded, and a tiny bundle run stays finite."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset
from torch import nn

from monai_gan_aug.data import gan_collate
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
from monai_gan_aug.networks.blocks.progressive import area_downsample
from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator
from monai_gan_aug.transforms import BoxesToConditionMapd

CH = {4: 4, 8: 4, 16: 4}
BG, FG = -1.0, 0.9  # background and lesion value of the synthetic images: image == BG + (FG - BG) * box map
ALL = "color,translation,cutout"
# iterations (1-based) of make_objective()'s schedule: 1-2 stable 4 px, 3-4 fade to 8, 5-6 stable 8, 7-10 fade to 16
STABLE = {1: 4, 5: 8, 13: 16}


def grow(obj, iteration, *nets):
    """What ProgressiveGrowingHandler does at the start of ``iteration`` (1-based)."""
    st = obj.schedule.at(iteration - 1)
    for net in nets:
        net.set_growth(st.stage, st.alpha)
    return st


def make_objective(**kw):
    args = {"latent_size": 8, "max_resolution": 16, "images_per_phase": 8, "batch_size": 4, "batch_sizes": {16: 2}}
    args.update(kw)
    return PGGANBoxObjective(**args)


def make_nets():
    torch.manual_seed(0)
    return {"generator": PGGANGenerator(2, 8, 1, 1, 16, channels=CH), "discriminator": PGGANDiscriminator(2, 1, 1, 16, channels=CH)}


def items(n=4):
    """Images that are exactly ``BG + (FG - BG) * map``; box sets of 1, 2, 1 and 1 boxes (one a single pixel)."""
    sets = [[[2.0, 3.0, 6.0, 7.0]], [[2.0, 3.0, 6.0, 7.0], [9.0, 9.0, 13.0, 12.0]], [[5.0, 9.0, 6.0, 10.0]], [[8.0, 1.0, 14.0, 5.0]]]
    out = []
    for i in range(n):
        boxes = sets[i % len(sets)]
        img = torch.full((1, 16, 16), BG)
        for b in boxes:
            img[0, int(b[0]):int(b[2]), int(b[1]):int(b[3])] = FG
        out.append({"image": img, "boxes": torch.tensor(boxes).reshape(-1, 4), "box_labels": torch.zeros(len(boxes), dtype=torch.int64)})
    return out


def prepared(obj, n=4):
    data = Dataset(items(n), transform=BoxesToConditionMapd(keys="boxes", image_key="image"))
    batch = next(iter(DataLoader(data, batch_size=n, shuffle=False, collate_fn=gan_collate)))
    return obj.prepare_batch(batch, torch.device("cpu"))


def ctx_for(nets, batch, it):
    return PhaseContext(nets=nets, batch=batch, iteration=it, repeat=0, outputs={}, device=torch.device("cpu"))


def assert_aligned(image, cond):
    """Every pixel is either the image of its (augmented) map, ``BG + (FG - BG) * map``, or zero-filled (translation
    fill / cut-out) in BOTH image and map: the map moved and was cut exactly like the pixels."""
    assert image.shape == cond.shape
    follows = torch.isclose(image, BG + (FG - BG) * cond, atol=1e-5)
    filled = (image == 0) & (cond == 0)
    assert bool((follows | filled).all()), "box map and image disagree after augmentation"


class BoxPainter(nn.Module):
    """A generator that paints its box map (pooled to the stage's resolution) like the real images, times a learnable
    gain: its fakes equal the reals at stable stages, so real / fake draws can be compared pixel for pixel."""

    def __init__(self, stage=2):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.growth = (stage, 1.0)

    def forward(self, z, cond, stage, alpha):
        res = 4 * 2**stage
        return BG + (FG - BG) * area_downsample(cond, cond.shape[-1] // res) * self.gain + 0 * z.sum()


class Recorder(nn.Module):
    """Wraps a critic and records every (image, condition) it is called with."""

    def __init__(self, critic):
        super().__init__()
        self.critic, self.calls = critic, []

    def forward(self, x, cond, stage, alpha):
        self.calls.append((x.detach().clone(), cond.detach().clone()))
        return self.critic(x, cond, stage, alpha)


def test_translation_moves_the_box_map_with_the_image():
    """A bright single-pixel box at (5, 9) and its map: after a random translation, the brightest image pixel and the
    map's 1 are still the same pixel, and it did move for some samples (and not by the same shift for all)."""
    obj = make_objective(diffaugment="translation")
    img = torch.full((8, 1, 16, 16), BG)
    img[:, 0, 5, 9] = FG
    cond = torch.zeros(8, 1, 16, 16)
    cond[:, 0, 5, 9] = 1.0
    torch.manual_seed(0)
    (out,), (cmap,) = obj.critic_inputs([img], cond)
    moved = []
    for i in range(8):
        if cmap[i].max() == 0:  # shifted out of the image: the image pixel is gone too
            assert out[i].max() <= 0
            continue
        pix = divmod(int(out[i, 0].argmax()), 16)
        assert pix == divmod(int(cmap[i, 0].argmax()), 16) and out[i, 0][pix] == FG and cmap[i].sum() == 1
        moved.append(pix)
    assert len(set(moved)) > 1 and any(p != (5, 9) for p in moved)
    # shifts are at most 1/8 of the side (2 px at 16 px)
    assert all(abs(r - 5) <= 2 and abs(c - 9) <= 2 for r, c in moved)


@pytest.mark.parametrize("policy", ["translation", "cutout", "translation,cutout"])
def test_geometric_ops_keep_image_and_map_aligned_at_every_resolution(policy):
    """At each stable resolution the maps are pooled to the images' size and one draw moves / cuts both."""
    obj = make_objective(diffaugment=policy)
    batch = prepared(obj)
    torch.manual_seed(1)
    for res in (4, 8, 16):
        reals = area_downsample(batch["image"], 16 // res)
        (out,), (cmap,) = obj.critic_inputs([reals], batch["cond"])
        assert out.shape == cmap.shape == (4, 1, res, res)
        assert_aligned(out, cmap)
        assert not torch.equal(out, reals)  # something happened
    # the single-pixel box at 16 px is also cut out with its image
    cut = make_objective(diffaugment="cutout")
    torch.manual_seed(2)
    (out,), (cmap,) = cut.critic_inputs([batch["image"]], batch["cond"])
    assert_aligned(out, cmap)
    assert bool(((out == 0) & (batch["image"] != 0)).any())


def test_colour_changes_the_image_only():
    obj = make_objective(diffaugment="color")
    batch = prepared(obj)
    torch.manual_seed(3)
    (out,), (cmap,) = obj.critic_inputs([batch["image"]], batch["cond"])
    torch.testing.assert_close(cmap, batch["cond"])  # the map's values are untouched
    assert not torch.allclose(out, batch["image"])  # brightness / contrast changed the image
    # off: identity, the full-size map is passed on as is
    off = make_objective()
    assert off.diffaugment == () and make_objective(diffaugment=None).diffaugment == ()
    (same,), (same_map,) = off.critic_inputs([batch["image"]], batch["cond"])
    assert same is batch["image"] and same_map is batch["cond"]
    assert make_objective(diffaugment=ALL).diffaugment == ("brightness", "saturation", "contrast", "translation", "cutout")
    with pytest.raises(ValueError, match="DiffAugment policy"):
        make_objective(diffaugment="color,rotate")


@pytest.mark.parametrize("it", sorted(STABLE))
def test_every_critic_call_sees_aligned_augmented_inputs_with_independent_seeded_draws(it):
    """d_loss (real, fake, gradient-penalty interpolates, matching-aware term) and g_loss call the critic only with
    augmented, aligned (image, map) pairs at the stage's resolution; reals and fakes (identical here) get different
    draws; the same torch seed gives the same draws."""
    res = STABLE[it]
    obj = make_objective(diffaugment="translation,cutout", mismatch_weight=1.0)
    batch = prepared(obj)
    st = obj.schedule.at(it - 1)
    assert st.resolution == res and st.phase == "stable"
    n = st.batch_size
    reals = area_downsample(batch["image"][:n], 16 // res)

    def run(seed):
        torch.manual_seed(seed)
        critic = Recorder(PGGANDiscriminator(2, 1, 1, 16, channels=CH))
        torch.manual_seed(seed)
        nets = {"generator": BoxPainter(st.stage), "discriminator": critic}
        ctx = ctx_for(nets, batch, it)
        d_loss, terms = obj.d_loss(ctx)
        g_loss, _ = obj.g_loss(ctx)
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and "mismatch" in terms
        return critic.calls, d_loss, terms["gp"], critic.critic

    calls, d_loss, gp, critic = run(11)
    # the penalty is the gradient norm at the critic's own (augmented) input, not through the augmentation
    x_hat = calls[2][0].requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, calls[2][1], st.stage, 1.0).sum(), x_hat)
    torch.testing.assert_close(gp, ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean(), rtol=1e-4, atol=1e-6)
    assert len(calls) == 5  # real, fake, GP interpolates, real with the rolled maps, fake in the generator step
    for x, cond in calls:
        assert x.shape == cond.shape == (n, 1, res, res)
        assert not torch.equal(x, reals)  # never the raw reals
    for k in (0, 1, 2, 4):
        assert_aligned(*calls[k])
    (real_x, real_c), (fake_x, fake_c) = calls[0], calls[1]
    assert not torch.equal(real_x, fake_x) and not torch.equal(real_c, fake_c)  # independent draws, same inputs
    assert not torch.equal(calls[4][0], fake_x)  # the generator step draws afresh
    # the matching-aware term: the same augmented reals with the rolled maps moved by the reals' draw
    assert torch.equal(calls[3][0], real_x)
    assert bool((calls[3][1][real_x == 0] == 0).all())  # zero-filled / cut where the reals are
    assert not torch.equal(calls[3][1], real_c)  # another image's boxes
    again, d_again, _, _ = run(11)
    for (a, ca), (b, cb) in zip(calls, again):
        assert torch.equal(a, b) and torch.equal(ca, cb)
    assert torch.equal(d_loss, d_again)
    other = run(12)[0]
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(calls, other))


def test_generator_gradient_flows_through_the_augmentation():
    """With a cut-out policy the generator's output gets exactly zero gradient inside each sample's cut square (the
    critic never saw those pixels) and non-zero gradient elsewhere: the gradient goes through the augmentation. The
    generator's parameters get finite, non-zero gradients."""
    nets = make_nets()
    fakes_seen = []

    class Keep(nn.Module):
        def __init__(self, g):
            super().__init__()
            self.g = g
            self.growth = g.growth

        def forward(self, *args):
            out = self.g(*args)
            out.retain_grad()
            fakes_seen.append(out)
            return out

    g = nets["generator"]
    obj = make_objective(diffaugment="cutout")
    batch = prepared(obj)
    grow(obj, 13, g)  # 16 px: cut-out squares of 8 x 8
    torch.manual_seed(4)
    loss, _ = obj.g_loss(ctx_for({"generator": Keep(g), "discriminator": nets["discriminator"]}, batch, 13))
    g.zero_grad()
    loss.backward()
    grad = fakes_seen[-1].grad
    assert grad is not None and grad.shape == (2, 1, 16, 16)
    for i in range(2):
        zero = grad[i, 0] == 0
        assert 0 < int(zero.sum()) <= 64  # the (possibly clipped) 8 x 8 square
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert int(zero.sum()) == len(rows) * len(cols)  # a rectangle
    params = [p.grad for p in g.parameters() if p.grad is not None]
    assert params and all(torch.isfinite(p).all() for p in params) and any(p.abs().sum() > 0 for p in params)
    # the same latents without augmentation: no pixel without gradient, and another loss
    plain = make_objective()
    torch.manual_seed(4)
    plain_loss, _ = plain.g_loss(ctx_for({"generator": Keep(g), "discriminator": nets["discriminator"]}, batch, 13))
    plain_loss.backward()
    assert bool((fakes_seen[-1].grad != 0).all()) and not torch.isclose(plain_loss, loss)


def test_full_policy_losses_finite_at_every_stage_including_fade_ins():
    obj = make_objective(diffaugment=ALL, mismatch_weight=1.0)
    nets = make_nets()
    batch = prepared(obj)
    torch.manual_seed(5)
    for it in (1, 3, 5, 8, 13):
        grow(obj, it, *nets.values())
        ctx = ctx_for(nets, batch, it)
        d_loss, terms = obj.d_loss(ctx)
        g_loss, _ = obj.g_loss(ctx)
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and all(torch.isfinite(v) for v in terms.values())
        (d_loss + g_loss).backward()
        for net in nets.values():
            assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
            net.zero_grad()


def test_bundle_trains_with_diffaugment(tmp_path):
    """train.json with ``diffaugment`` on: a tiny run through the 8 px fade-in reaches the objective, every logged
    loss and every weight stays finite, and the generator settings (inference) do not mention it."""
    from monai_gan_aug.bundles import run_bundle
    from monai_gan_aug.data.demo import make_demo_dataset

    demo = make_demo_dataset(str(tmp_path / "demo"), spatial_dims=2, seed=0, n_patients=3, slices_per_patient=2, image_size=32)
    out = tmp_path / "run"
    overrides = {"image_size": 16, "fmap_base": 32, "fmap_max": 8, "latent_size": 8, "batch_size": 2, "images_per_phase": 4,
                 "save_interval": 5, "sample_interval": 100, "fidelity_interval": 100, "fidelity_samples": 4,
                 "train#handlers#7#iteration_log": 1, "dataset_dir": str(demo), "output_dir": str(out),
                 "max_iterations": 5, "diffaugment": ALL, "mismatch_weight": 1.0}
    wf = run_bundle("pggan_bbox", "train.json", overrides, workflow_type="train")
    obj = wf.parser.get_parsed_content("objective")
    assert obj.diffaugment == ("brightness", "saturation", "contrast", "translation", "cutout")
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 5 and trainer.networks["generator"].resolution == 8
    for net in trainer.networks.values():
        assert all(torch.isfinite(p).all() for p in net.parameters())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for f in (out / "tensorboard").glob("events*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    assert {"d_gp", "d_wasserstein", "d_mismatch"} <= set(values)
    assert len(values["d_gp"]) == 5 and all(math.isfinite(v) for vs in values.values() for v in vs)
    settings = wf.parser.get_parsed_content("generator_settings")
    assert "diffaugment" not in settings
    ckpt = torch.load(out / "checkpoints" / "checkpoint_5.pt", weights_only=True)
    assert float(ckpt["networks"]["generator.alpha"]) == 1.0 and int(ckpt["networks"]["generator.stage"]) == 1
