# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""PGGANBoxObjective: the growth schedule as a pure function of the iteration, driven into the networks by
ProgressiveGrowingHandler, fade-in of the reals, ragged box batches and their maps built in the dataset, generation per
seed, the box sampler, an exact resume across a resolution change, and checkpoints written before the growth state
moved into the networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset

from monai_gan_aug.data import gan_collate
from monai_gan_aug.engines import AdversarialTrainer, load_generator_weights
from monai_gan_aug.handlers import GanCheckpointHandler, ProgressiveGrowingHandler
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
from monai_gan_aug.networks.blocks.progressive import area_downsample, nearest_upsample
from monai_gan_aug.networks.blocks.progressive_inputs import real_at_resolution
from monai_gan_aug.networks.growth import ProgressiveSchedule
from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator
from monai_gan_aug.transforms import BoxesToConditionMapd
from monai_gan_aug.transforms.boxes.batch import boxes_as_list, condition_map_batch
from monai_gan_aug.transforms.conditions import BoxConditionDataset, BoxSampler

CH = {4: 4, 8: 4, 16: 4}


def grow(nets, obj, iteration):
    """What ProgressiveGrowingHandler does at the start of ``iteration`` (1-based)."""
    st = obj.schedule.at(iteration - 1)
    for net in nets.values():
        net.set_growth(st.stage, st.alpha)
    return st


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
    """The bundle's pipeline: the box maps are built by a transform in the dataset."""
    data = Dataset(items(n), transform=BoxesToConditionMapd(keys="boxes", image_key="image"))
    return DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=gan_collate)


def test_collate_keeps_ragged_boxes_the_dataset_builds_maps_and_prepare_batch_only_moves():
    batch = next(iter(loader()))
    assert batch["image"].shape == (4, 1, 16, 16)
    assert [tuple(b.shape) for b in batch["boxes"]] == [(0, 4), (1, 4), (2, 4), (0, 4)]
    assert [b.dtype for b in batch["box_labels"]] == [torch.int64] * 4
    obj = make_objective()
    prepared = obj.prepare_batch(batch, torch.device("cpu"))
    cond = prepared["cond"]
    assert cond.shape == (4, 1, 16, 16) and torch.equal(cond, batch["cond"])
    assert cond[0].sum() == 0 and cond[1, 0, 2:6, 3:7].min() == 1 and cond[1].sum() == 16
    assert cond[2].sum() == 16 + 12
    assert prepared["boxes"] is batch["boxes"]  # nothing is converted
    torch.testing.assert_close(condition_map_batch(boxes_as_list(batch["boxes"], 4, 2), (16, 16)), cond)
    # MONAI's default collate of equal box counts gives one (n, M, 4) tensor: accepted too
    eq = boxes_as_list(torch.tensor([[[0.0, 0, 4, 4]], [[4.0, 4, 8, 8]]]), 2, 2)
    assert condition_map_batch(eq, (16, 16))[:, 0].sum((1, 2)).tolist() == [16.0, 16.0]
    with pytest.raises(TypeError, match="gan_collate"):
        boxes_as_list(torch.zeros(4), 1, 2)
    # the losses say what is missing
    ctx = PhaseContext(nets=make_nets(), batch={"image": batch["image"]}, iteration=1, repeat=0, outputs={},
                       device=torch.device("cpu"))
    with pytest.raises(ValueError, match="BoxesToConditionMapd"):
        obj.d_loss(ctx)
    ctx.batch = {"image": torch.zeros(1, 1, 8, 8), "cond": torch.zeros(1, 1, 8, 8)}
    with pytest.raises(ValueError, match="max_resolution"):
        obj.g_loss(ctx)


def test_reals_fade_in_with_the_networks_alpha():
    obj = make_objective()
    x = torch.rand(2, 1, 16, 16)
    st = obj.schedule.at(3)  # 3 iterations done: 2nd of the 8 px fade-in, alpha 4/8
    assert (st.resolution, st.phase, st.alpha) == (8, "fade", 0.5)
    x8 = area_downsample(x, 2)
    expected = torch.lerp(nearest_upsample(area_downsample(x8, 2), 2), x8, 0.5)
    torch.testing.assert_close(real_at_resolution(x, 8, 0.5), expected)
    st = obj.schedule.at(5)
    assert st.phase == "stable" and st.alpha == 1.0
    torch.testing.assert_close(real_at_resolution(x, 8, 1.0), x8)


def test_losses_use_the_networks_resolution_and_batch_size_and_are_finite():
    obj = make_objective()
    nets = make_nets()
    batch = obj.prepare_batch(next(iter(loader())), torch.device("cpu"))
    for it, (res, n) in {1: (4, 4), 3: (8, 4), 13: (16, 2)}.items():
        grow(nets, obj, it)
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
    grow(nets, obj, 1)
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
    torch.manual_seed(5)
    base_loss, _ = base.d_loss(ctx)
    torch.testing.assert_close(loss, base_loss + 2.0 * expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="mismatch"):
        make_objective(mismatch_weight=-1.0)


def test_generate_per_seed_with_batch_or_sampler_boxes():
    obj = make_objective()
    nets = {k: v.eval() for k, v in make_nets().items()}
    assert nets["generator"].resolution == 16  # a new generator is fully grown
    grow(nets, obj, 4)  # fading to 8 px: images come back at 16 px
    assert nets["generator"].growth == (1, 0.5)
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

    # the generator's own stage: the same images as asking it explicitly
    g = nets["generator"]
    z, cond = out["latents"], out["cond"]
    with torch.no_grad():
        torch.testing.assert_close(out["image"], nearest_upsample(g(z, cond, 1, 0.5), 2))

    sampler = BoxSampler([np.array([[2.0, 2, 6, 6]]), np.array([[8.0, 8, 14, 12], [1.0, 9, 4, 14]])], (16, 16))
    drawn = gan_collate([BoxConditionDataset(2, sampler, seed=11)[i] for i in range(2)])
    with torch.no_grad():
        a = obj.generate(nets, 2, batch=drawn, seeds=drawn["seed"].tolist())
        b = obj.generate(nets, 2, batch=drawn, seeds=[11, 12])
    torch.testing.assert_close(a["image"], b["image"])
    assert all(torch.equal(x, y) for x, y in zip(a["boxes"], b["boxes"]))
    torch.testing.assert_close(a["boxes"][0], torch.as_tensor(sampler.sample(11)[0]))


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


def trainer_for(tmp_path, max_iterations, handlers=()):
    nets = make_nets()
    opt = {k: torch.optim.Adam(v.parameters(), 1e-3, betas=(0.0, 0.99)) for k, v in nets.items()}
    obj = make_objective()
    return AdversarialTrainer("cpu", 100, loader(n=4), nets, opt, obj, max_iterations=max_iterations,
                              ema={"generator": 0.9}, handlers=[ProgressiveGrowingHandler(), *handlers])


def seen_growth(trainer):
    """(iteration, resolution, alpha) of the generator, its EMA copy and the critic at every iteration's start."""
    seen = []

    def record(e):
        nets = [e.networks["generator"], e.ema_networks["generator"], e.networks["discriminator"]]
        assert len({n.growth for n in nets}) == 1  # every network is driven
        seen.append((e.state.iteration, nets[0].resolution, nets[0].growth[1]))

    trainer.add_event_handler(Events.ITERATION_STARTED, record)
    return seen


def test_resume_across_a_resolution_change(tmp_path):
    """Schedule (4 images per iteration at 4 and 8 px, 2 at 16 px, 8 per phase): iterations 1-2 stable 4 px,
    3-4 fade to 8 px, 5-6 stable 8 px, 7-10 fade to 16 px. Stop inside the 8 px fade-in, resume, and continue
    to iteration 8 (inside the 16 px fade-in): stage, alpha and weights match an uninterrupted run; the growth state
    is in the networks' state dict, and a generator loaded from a checkpoint alone generates at its stage."""
    torch.manual_seed(1)
    straight = trainer_for(tmp_path / "a", 8)
    seen_straight = seen_growth(straight)
    straight.run()

    torch.manual_seed(1)
    first = trainer_for(tmp_path, 3, handlers=[GanCheckpointHandler(tmp_path / "ck", save_interval=1)])
    first.run()
    assert (first.networks["generator"].resolution, first.networks["generator"].growth[1]) == (8, 0.0)
    torch.manual_seed(999)
    handler = GanCheckpointHandler(tmp_path / "ck", save_interval=1, n_saved=None)  # keeps checkpoint_3 (used below)
    second = trainer_for(tmp_path, 8, handlers=[handler])
    seen_resumed = seen_growth(second)
    second.run()
    assert handler.resumed_from.endswith("checkpoint_3.pt")
    assert seen_resumed == seen_straight[3:]
    assert seen_resumed[0] == (4, 8, 0.5) and seen_resumed[-1] == (8, 16, 0.25)
    state = torch.load(tmp_path / "ck" / "checkpoint_8.pt", weights_only=True)
    for entry, name in (("networks", "generator"), ("networks", "discriminator"), ("ema", "generator")):
        assert (int(state[entry][f"{name}.stage"]), float(state[entry][f"{name}.alpha"])) == (2, 0.25)
    assert state["objective"] == {}  # no objective state any more
    for name in ("generator", "discriminator"):
        for a, b in zip(straight.networks[name].parameters(), second.networks[name].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # generation from the checkpoint's generator alone uses the stage it was at
    g = load_generator_weights(make_nets()["generator"], str(tmp_path / "ck" / "checkpoint_3.pt")).eval()
    assert g.growth == (1, 0.0) and g.resolution == 8
    with torch.no_grad():
        out = make_objective().generate({"generator": g}, 1, batch={"boxes": [torch.tensor([[1.0, 1, 5, 5]])]}, seeds=[3])
        torch.testing.assert_close(out["image"], nearest_upsample(g(out["latents"], out["cond"], 1, 0.0), 2))


def test_checkpoints_written_before_the_growth_state_moved_into_the_networks(tmp_path):
    """An older checkpoint kept stage / alpha in its 'objective' entry and none in the networks: it still resumes
    (the handler sets the stage from the iteration) and its generator loads at the stage of the old entry (the
    generation loader gives it to the networks' buffers; the deprecated load_checkpoint_state, which bundles exported
    before call, reads it too)."""
    torch.manual_seed(1)
    straight = trainer_for(tmp_path / "a", 5)
    seen_straight = seen_growth(straight)
    straight.run()
    torch.manual_seed(1)
    trainer_for(tmp_path, 3, handlers=[GanCheckpointHandler(tmp_path / "new", save_interval=3)]).run()
    state = torch.load(tmp_path / "new" / "checkpoint_3.pt", weights_only=True)
    for entry in ("networks", "ema"):
        state[entry] = {k: v for k, v in state[entry].items() if not k.endswith((".stage", ".alpha"))}
    state["objective"] = {"iterations_done": 2, "stage": 1, "resolution": 8, "alpha": 0.0, "phase": "fade",
                          "phase_index": 1, "batch_size": 4, "images_shown": 8}
    (tmp_path / "old").mkdir()
    torch.save(state, tmp_path / "old" / "checkpoint_3.pt")

    g = load_generator_weights(make_nets()["generator"], str(tmp_path / "old" / "checkpoint_3.pt"))
    assert g.growth == (1, 0.0)  # strict load; the stage of the old 'objective' entry, not the final one
    obj = make_objective()
    with pytest.warns(FutureWarning, match="deprecated"):
        assert obj.load_checkpoint_state(str(tmp_path / "old" / "checkpoint_3.pt")) is obj
    with torch.no_grad():
        out = obj.generate({"generator": g.eval()}, 1, batch={"boxes": [torch.zeros(0, 4)]}, seeds=[1])
        torch.testing.assert_close(out["image"], nearest_upsample(g(out["latents"], out["cond"], 1, 0.0), 2))
    with pytest.warns(FutureWarning):
        obj.load_checkpoint_state(str(tmp_path / "new" / "checkpoint_3.pt"))  # a new file: the networks' own stage
    assert obj._legacy_growth is None

    torch.manual_seed(999)
    resumed = trainer_for(tmp_path, 5, handlers=[GanCheckpointHandler(tmp_path / "old", save_interval=1)])
    seen = seen_growth(resumed)
    resumed.run()
    assert seen == seen_straight[3:] and resumed.state.iteration == 5
