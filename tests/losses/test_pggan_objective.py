# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""PGGANBoxObjective: the growth schedule as a pure function of the iteration, fade-in of the reals, ragged box
batches, generation per seed, the box sampler, and an exact resume across a resolution change."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset

from monai_gan_aug.data import gan_collate
from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.handlers import GanCheckpointHandler
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pggan import (
    PGGANBoxObjective,
    ProgressiveSchedule,
    boxes_as_list,
)
from monai_gan_aug.networks.blocks.progressive import area_downsample, nearest_upsample
from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator
from monai_gan_aug.transforms.conditions import BoxConditionDataset, BoxSampler

CH = {4: 4, 8: 4, 16: 4}


def fake_engine(iteration):
    return types.SimpleNamespace(state=types.SimpleNamespace(iteration=iteration))


def test_schedule_alpha_is_a_function_of_images_shown():
    s = ProgressiveSchedule(16, images_per_phase=8, batch_sizes={"4": 4, 8: 2, 16: 2}, batch_size=4)
    assert [(r, k, n) for r, k, n, _ in s.phases] == [(4, "stable", 2), (8, "fade", 4), (8, "stable", 4),
                                                      (16, "fade", 4), (16, "stable", 4)]
    states = [s.at(i) for i in range(20)]
    assert [st.resolution for st in states[:2]] == [4, 4]
    fade8 = states[2:6]
    assert [st.phase for st in fade8] == ["fade"] * 4
    assert [st.alpha for st in fade8] == [0.0, 0.25, 0.5, 0.75]  # 0 -> 1 across the fade-in
    assert all(st.alpha == 1.0 and st.phase == "stable" for st in states[6:10])
    assert [st.alpha for st in states[10:14]] == [0.0, 0.25, 0.5, 0.75] and states[10].resolution == 16
    assert all(st.alpha == 1.0 and st.resolution == 16 for st in states[14:])
    assert [st.images_shown for st in states[:4]] == [0, 4, 8, 10]
    assert [st.batch_size for st in (states[0], states[2])] == [4, 2]
    assert s.at(10_000).resolution == 16 and s.at(10_000).stage == 2  # the last phase never ends
    assert s.iterations_until(16, "fade") == 10
    # the same answer whatever was asked before (pure function)
    assert s.at(3) == ProgressiveSchedule(16, 8, {"4": 4, 8: 2, 16: 2}, 4).at(3)


def test_schedule_start_resolution_and_errors():
    s = ProgressiveSchedule(16, 10, batch_size=5, start_resolution=8, fade_images=5)
    assert s.at(0).resolution == 8 and s.at(0).stage == 1 and s.at(2).phase == "fade"
    assert s.at(2).alpha == 0.0 and s.at(3).alpha == 1.0  # a 5-image fade takes one iteration of 5
    with pytest.raises(ValueError, match="start_resolution"):
        ProgressiveSchedule(16, 10, start_resolution=12)
    with pytest.raises(ValueError, match="batch_sizes"):
        ProgressiveSchedule(16, 10, batch_sizes={32: 4})
    with pytest.raises(ValueError, match="images_per_phase"):
        ProgressiveSchedule(16, 0)
    # more images where lesions are visible: a per-resolution budget
    s = ProgressiveSchedule(16, {"4": 4, "8": 8, "16": 16}, batch_size=4, fade_images={4: 4, 8: 4, 16: 8})
    assert [(r, k, n) for r, k, n, _ in s.phases] == [(4, "stable", 1), (8, "fade", 1), (8, "stable", 2),
                                                      (16, "fade", 2), (16, "stable", 4)]
    with pytest.raises(ValueError, match="not \\[16\\]"):
        ProgressiveSchedule(16, {"4": 4, "8": 8})


def make_objective(**kw):
    args = {"latent_size": 8, "max_resolution": 16, "images_per_phase": 8, "batch_size": 4, "batch_sizes": {16: 2}}
    args.update(kw)
    return PGGANBoxObjective(**args)


def make_nets(max_res=16):
    torch.manual_seed(0)
    ch = {r: CH[r] for r in CH if r <= max_res}
    return {"generator": PGGANGenerator(2, 8, 1, 1, max_res, channels=ch),
            "discriminator": PGGANDiscriminator(2, 1, 1, max_res, channels=ch)}


def items(n=8, size=16):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        img = -torch.ones(1, size, size) + 0.05 * torch.rand(1, size, size, generator=g)
        boxes = [[2.0, 3.0, 6.0, 7.0], [9.0, 9.0, 13.0, 12.0]][: i % 3]
        for b in boxes:
            img[0, int(b[0]):int(b[2]), int(b[1]):int(b[3])] = 0.9
        out.append({"image": img, "boxes": torch.tensor(boxes).reshape(-1, 4), "box_labels": torch.zeros(len(boxes), dtype=torch.int64)})
    return out


def loader(n=8, batch_size=4):
    return DataLoader(Dataset(items(n)), batch_size=batch_size, shuffle=False, collate_fn=gan_collate)


def test_collate_keeps_ragged_boxes_and_prepare_batch_builds_maps():
    batch = next(iter(loader()))
    assert batch["image"].shape == (4, 1, 16, 16)
    assert [tuple(b.shape) for b in batch["boxes"]] == [(0, 4), (1, 4), (2, 4), (0, 4)]
    assert [b.dtype for b in batch["box_labels"]] == [torch.int64] * 4
    obj = make_objective()
    prepared = obj.prepare_batch(batch, torch.device("cpu"))
    cond = prepared["cond"]
    assert cond.shape == (4, 1, 16, 16)
    assert cond[0].sum() == 0 and cond[1, 0, 2:6, 3:7].min() == 1 and cond[1].sum() == 16
    assert cond[2].sum() == 16 + 12
    # MONAI's default collate of equal box counts gives one (n, M, 4) tensor: accepted too
    eq = {"image": batch["image"][:2], "boxes": torch.tensor([[[0.0, 0, 4, 4]], [[4.0, 4, 8, 8]]])}
    assert obj.prepare_batch(eq, torch.device("cpu"))["cond"][:, 0].sum((1, 2)).tolist() == [16.0, 16.0]
    with pytest.raises(ValueError, match="boxes"):
        obj.prepare_batch({"image": batch["image"]}, torch.device("cpu"))
    with pytest.raises(ValueError, match="max_resolution"):
        obj.prepare_batch({"image": torch.zeros(1, 1, 8, 8), "boxes": [[]]}, torch.device("cpu"))
    with pytest.raises(TypeError, match="gan_collate"):
        boxes_as_list(torch.zeros(4), 1, 2)


def test_reals_fade_in_with_the_networks_alpha():
    obj = make_objective()
    x = torch.rand(2, 1, 16, 16)
    obj.on_iteration_started(fake_engine(3 + 1))  # 3 iterations done: 2nd of the 8 px fade-in, alpha 4/8
    st = obj.current
    assert (st.resolution, st.phase, st.alpha) == (8, "fade", 0.5)
    x8 = area_downsample(x, 2)
    expected = torch.lerp(nearest_upsample(area_downsample(x8, 2), 2), x8, 0.5)
    torch.testing.assert_close(obj._real_at_resolution(x, st), expected)
    obj.on_iteration_started(fake_engine(5 + 1))
    assert obj.current.phase == "stable" and obj.current.alpha == 1.0
    torch.testing.assert_close(obj._real_at_resolution(x, obj.current), x8)


def test_losses_use_the_resolution_batch_size_and_are_finite():
    obj = make_objective()
    nets = make_nets()
    batch = obj.prepare_batch(next(iter(loader())), torch.device("cpu"))
    for it, (res, n) in {1: (4, 4), 3: (8, 4), 13: (16, 2)}.items():
        obj.on_iteration_started(fake_engine(it))
        ctx = PhaseContext(nets=nets, batch=batch, iteration=it, repeat=0, outputs={}, device=torch.device("cpu"))
        d_loss, terms = obj.d_loss(ctx)
        g_loss, g_terms = obj.g_loss(ctx)
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
        assert set(terms) == {"wasserstein", "gp", "drift"} and g_terms["resolution"].item() == res
        assert ctx.outputs["fakes"].shape == (n, 1, res, res)


def test_optional_mismatch_term():
    """mismatch_weight > 0: the critic also ranks each real image with its own boxes above the same image with the
    boxes of the next one; images whose rolled map is identical (both without boxes) do not count."""
    obj = make_objective(mismatch_weight=2.0, mismatch_margin=0.5)
    nets = make_nets()
    batch = obj.prepare_batch(next(iter(loader())), torch.device("cpu"))
    obj.on_iteration_started(fake_engine(1))
    ctx = PhaseContext(nets=nets, batch=batch, iteration=1, repeat=0, outputs={}, device=torch.device("cpu"))
    torch.manual_seed(5)
    loss, terms = obj.d_loss(ctx)
    d = nets["discriminator"]
    reals, cond = batch["image"][:4], batch["cond"][:4]
    x4 = area_downsample(reals, 4)
    with torch.no_grad():
        own, wrong = d(x4, cond, 0, 1.0).reshape(-1), d(x4, cond.roll(1, 0), 0, 1.0).reshape(-1)
    differs = torch.tensor([float(not torch.equal(cond[i], cond.roll(1, 0)[i])) for i in range(4)])
    assert differs.tolist() == [0.0, 1.0, 1.0, 1.0]  # images 0 and 3 have no boxes: rolling 3 -> 0 changes nothing
    expected = (torch.relu(0.5 - own + wrong) * differs).sum() / differs.sum()
    torch.testing.assert_close(terms["mismatch"], expected, rtol=1e-4, atol=1e-5)
    base = make_objective()
    base.on_iteration_started(fake_engine(1))
    torch.manual_seed(5)
    base_loss, _ = base.d_loss(ctx)
    torch.testing.assert_close(loss, base_loss + 2.0 * expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="mismatch"):
        make_objective(mismatch_weight=-1.0)


def test_generate_per_seed_with_batch_or_sampler_boxes():
    obj = make_objective()
    nets = {k: v.eval() for k, v in make_nets().items()}
    obj.on_iteration_started(fake_engine(4))  # fading to 8 px: images come back at 16 px
    with pytest.raises(ValueError, match="box"):
        obj.generate(nets, 2, seeds=[1, 2])
    batch = {"boxes": [torch.tensor([[1.0, 1, 5, 5]]), torch.zeros(0, 4), torch.tensor([[8.0, 8, 12, 12]])]}
    with torch.no_grad():
        out = obj.generate(nets, 3, batch=batch, seeds=[5, 6, 7])
        one = obj.generate(nets, 1, batch={"boxes": batch["boxes"][2:]}, seeds=[7])
    assert out["image"].shape == (3, 1, 16, 16) and out["cond"].shape == (3, 1, 16, 16)
    torch.testing.assert_close(out["image"][2:], one["image"])  # sample i depends on seeds[i] (and its boxes) only
    assert out["cond"][0, 0, 1:5, 1:5].min() == 1 and out["cond"][1].sum() == 0
    assert [b.shape[0] for b in out["boxes"]] == [1, 0, 1] and [len(lb) for lb in out["box_labels"]] == [1, 0, 1]

    sampler = BoxSampler([np.array([[2.0, 2, 6, 6]]), np.array([[8.0, 8, 14, 12], [1.0, 9, 4, 14]])], (16, 16))
    obj.box_sampler = sampler
    with torch.no_grad():
        a = obj.generate(nets, 2, seeds=[11, 12])
        b = obj.generate(nets, 2, seeds=[11, 12])
    torch.testing.assert_close(a["image"], b["image"])
    assert all(torch.equal(x, y) for x, y in zip(a["boxes"], b["boxes"]))
    torch.testing.assert_close(a["boxes"][0], torch.as_tensor(sampler.sample(11)[0]))
    # a fresh objective (not driven by a trainer) generates with the final stage
    assert make_objective().current.resolution == 16


def test_box_sampler_deterministic_inside_image_and_foreground():
    rng = np.random.default_rng(0)
    sets = []
    for _ in range(30):
        k = rng.integers(0, 4)
        lo = rng.uniform(8, 40, (k, 2))
        side = rng.uniform(3, 10, (k, 2))
        sets.append(np.concatenate([lo, lo + side], 1))
    fg = np.zeros((64, 64), bool)
    fg[6:58, 6:58] = True
    s = BoxSampler(sets, (64, 64), position_jitter=0.5, size_jitter=0.3, foreground=fg)
    draws = [s.sample(seed) for seed in range(200)]
    assert all(np.array_equal(s.sample(seed)[0], draws[seed][0]) for seed in range(0, 200, 17))
    assert any(not np.array_equal(draws[0][0], d[0]) for d in draws[1:])
    counts = np.bincount([len(b) for b, _ in draws], minlength=4)
    assert counts[0] > 0 and counts[1:].sum() > 0
    for boxes, labels in draws:
        assert boxes.dtype == np.float32 and labels.dtype == np.int64 and len(labels) == len(boxes)
        if len(boxes):
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all() and (boxes[:, 2:] > boxes[:, :2]).all()
            for b in boxes:  # jittered boxes stay in the "brain" (or are the training box itself)
                region = fg[int(b[0]):int(np.ceil(b[2])), int(b[1]):int(np.ceil(b[3]))]
                in_training = any(np.allclose(b, t) for st in sets for t in st)
                assert region.mean() >= 0.9 or in_training
    # jitter makes the boxes "slightly different from training", not identical
    moved = sum(not any(np.allclose(b, t) for st in sets for t in st) for boxes, _ in draws for b in boxes)
    assert moved > 0.5 * sum(len(b) for b, _ in draws)
    s2 = BoxSampler(sets, (64, 64), allow_empty=False)
    assert all(len(s2.sample(seed)[0]) for seed in range(50))
    s.set_random_state(3)
    first = s()
    s.set_random_state(3)
    assert np.array_equal(first[0], s()[0])
    with pytest.raises(ValueError, match="outside"):
        BoxSampler([np.array([[0.0, 0, 70, 10]])], (64, 64))


def test_box_sampler_files_and_dataset(tmp_path):
    user = tmp_path / "boxes.json"
    user.write_text(json.dumps({"image_size": [16, 16], "box_sets": [
        {"boxes": [[1, 1, 4, 4]], "box_labels": [0]}, {"boxes": []}]}))
    # a user's file (no "params"): its sets are used as given, in order
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"boxes": [[1, 1, 4, 4]]}, {"boxes": [[5, 5, 9, 9], [10, 1, 12, 3]]}]))
    s = BoxSampler.from_file(plain, image_size=(16, 16))
    ds = BoxConditionDataset(3, s, seed=100)
    got = [ds[i] for i in range(3)]
    assert [g["seed"] for g in got] == [100, 101, 102]
    assert got[1]["boxes"].tolist() == [[5, 5, 9, 9], [10, 1, 12, 3]] and got[2]["boxes"].tolist() == [[1, 1, 4, 4]]
    batch = gan_collate(got)
    assert batch["seed"].tolist() == [100, 101, 102] and [len(b) for b in batch["boxes"]] == [1, 2, 1]
    with pytest.raises(ValueError, match="image_size"):
        BoxSampler.from_file(plain)
    with pytest.raises(FileNotFoundError):
        BoxSampler.from_file(tmp_path / "missing.json")
    # a fitted sampler round-trips through save/from_file
    fitted = BoxSampler.from_dataset(items(6), foreground_threshold=-0.5)
    assert fitted.image_size == (16, 16) and len(fitted) == 6 and fitted.foreground is not None
    again = BoxSampler.from_file(fitted.save(tmp_path / "sampler.json"))
    assert all(np.array_equal(fitted.sample(k)[0], again.sample(k)[0]) for k in range(20))
    from_user = BoxSampler.from_file(user)
    assert from_user.sample(0, index=1)[0].shape == (0, 4) and from_user.sample(5, index=2)[0].tolist() == [[1, 1, 4, 4]]


def trainer_for(tmp_path, max_iterations, handlers=None):
    nets = make_nets()
    opt = {k: torch.optim.Adam(v.parameters(), 1e-3, betas=(0.0, 0.99)) for k, v in nets.items()}
    obj = make_objective()
    return AdversarialTrainer("cpu", 100, loader(n=4), nets, opt, obj, max_iterations=max_iterations,
                      ema={"generator": 0.9}, handlers=handlers)


def test_resume_across_a_resolution_change(tmp_path):
    """Schedule (4 images per iteration at 4 and 8 px, 2 at 16 px, 8 per phase): iterations 1-2 stable 4 px,
    3-4 fade to 8 px, 5-6 stable 8 px, 7-10 fade to 16 px. Stop inside the 8 px fade-in, resume, and continue
    to iteration 8 (inside the 16 px fade-in): stage, alpha and weights match an uninterrupted run."""
    seen_straight, seen_resumed = [], []
    torch.manual_seed(1)
    straight = trainer_for(tmp_path / "a", 8)
    straight.add_event_handler(Events.ITERATION_STARTED, lambda e: seen_straight.append((e.state.iteration, e.objective.current.resolution, e.objective.current.alpha)))
    straight.run()

    torch.manual_seed(1)
    first = trainer_for(tmp_path, 3, handlers=[GanCheckpointHandler(tmp_path / "ck", save_interval=1)])
    first.run()
    assert first.objective.state_dict()["resolution"] == 8 and first.objective.state_dict()["alpha"] == 0.0
    torch.manual_seed(999)
    handler = GanCheckpointHandler(tmp_path / "ck", save_interval=1, n_saved=None)  # keeps checkpoint_3 (used below)
    second = trainer_for(tmp_path, 8, handlers=[handler])
    second.add_event_handler(Events.ITERATION_STARTED, lambda e: seen_resumed.append((e.state.iteration, e.objective.current.resolution, e.objective.current.alpha)))
    second.run()
    assert handler.resumed_from.endswith("checkpoint_3.pt")
    assert seen_resumed == seen_straight[3:]
    assert seen_resumed[0] == (4, 8, 0.5) and seen_resumed[-1] == (8, 16, 0.25)
    state = torch.load(tmp_path / "ck" / "checkpoint_8.pt", weights_only=True)["objective"]
    assert (state["iterations_done"], state["resolution"], state["alpha"]) == (7, 16, 0.25)
    for name in ("generator", "discriminator"):
        for a, b in zip(straight.networks[name].parameters(), second.networks[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # generation from the checkpoint uses the stage it was at
    fresh = make_objective().load_checkpoint_state(str(tmp_path / "ck" / "checkpoint_3.pt"))
    assert (fresh.current.resolution, fresh.current.alpha) == (8, 0.0)
