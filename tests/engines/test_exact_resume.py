# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A run killed after a mid-epoch checkpoint and resumed in a fresh trainer ends bit-identical to an uninterrupted
run: same shuffled batch order, same random transforms (MONAI ``Randomizable.R`` of a CacheDataset's chain), same
global random streams. And the checkpoint folder keeps at most ``n_saved`` regular checkpoints across resumes."""

from __future__ import annotations

import os

import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, EnsureTyped, RandFlipd, RandScaleIntensityd
from monai.utils import set_determinism

from monai_gan_aug.engines import AdversarialTrainer, find_latest_checkpoint
from monai_gan_aug.handlers import GanCheckpointHandler
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator

N_ITEMS, BATCH = 10, 2  # 5 batches per epoch


class Killed(Exception):
    """Stands in for SIGKILL: training stops right after an iteration."""


class KillAt:
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), self._kill)

    def _kill(self, engine) -> None:
        raise Killed(f"killed at iteration {engine.state.iteration}")


def make_loader(seed: int) -> DataLoader:
    """Shuffling loader over a CacheDataset whose chain ends in two random transforms; ``seed`` is the process's
    ``set_determinism`` seed, which (through MONAI's DataLoader) also seeds the transforms."""
    set_determinism(seed=seed)
    g = torch.Generator().manual_seed(1234)  # the data themselves never change
    data = [{"image": torch.rand(1, 16, 16, generator=g) * 2 - 1} for _ in range(N_ITEMS)]
    transform = Compose([
        EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        RandFlipd(keys="image", prob=0.5, spatial_axis=0),
        RandScaleIntensityd(keys="image", factors=0.3, prob=0.7),
    ])
    dataset = CacheDataset(data, transform, cache_rate=1.0, progress=False)
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=0)


def make_trainer(loader, max_epochs: int, handlers=(), init_seed: int = 0, max_iterations=None) -> AdversarialTrainer:
    torch.manual_seed(init_seed)
    gen = DCGANGenerator(2, 8, 1, 16, 8)
    disc = DCGANDiscriminator(2, 1, 16, 8, norm="batch")
    return AdversarialTrainer(
        "cpu", max_epochs, loader, {"generator": gen, "discriminator": disc},
        {"generator": torch.optim.Adam(gen.parameters(), 2e-3, betas=(0.5, 0.9)),
         "discriminator": torch.optim.Adam(disc.parameters(), 2e-3, betas=(0.5, 0.9))},
        DCGANObjective(8, 2), ema={"generator": 0.9}, handlers=list(handlers), max_iterations=max_iterations,
    )


def all_tensors(trainer: AdversarialTrainer) -> dict[str, torch.Tensor]:
    out = {f"net.{k}": v for k, v in trainer.networks.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in trainer.ema_networks.state_dict().items()})
    for name, opt in trainer.optimizers.items():
        for pid, st in opt.state_dict()["state"].items():
            out.update({f"opt.{name}.{pid}.{k}": torch.as_tensor(v) for k, v in st.items()})
    return out


def differing(a: AdversarialTrainer, b: AdversarialTrainer) -> list[str]:
    ta, tb = all_tensors(a), all_tensors(b)
    assert ta.keys() == tb.keys()
    return [k for k in ta if not torch.equal(ta[k], tb[k])]


@pytest.fixture(scope="module")
def uninterrupted():
    trainer = make_trainer(make_loader(0), max_epochs=3)
    trainer.run()
    assert trainer.state.iteration == 15
    return trainer


@pytest.mark.parametrize("save_interval,kill_at,resumed_at", [(3, 8, 6), (5, 7, 5)], ids=["mid_epoch", "epoch_end"])
def test_resume_is_bit_identical(uninterrupted, tmp_path, save_interval, kill_at, resumed_at):
    first = make_trainer(make_loader(0), max_epochs=3,
                         handlers=[GanCheckpointHandler(tmp_path, save_interval=save_interval), KillAt(kill_at)])
    with pytest.raises(Killed):
        first.run()
    assert find_latest_checkpoint(tmp_path).endswith(f"checkpoint_{resumed_at}.pt")

    # a fresh process: other seeds for everything (global streams, transforms, initial weights)
    handler = GanCheckpointHandler(tmp_path, save_interval=save_interval)
    second = make_trainer(make_loader(123), max_epochs=3, handlers=[handler], init_seed=7)
    second.run()
    assert handler.resumed_from.endswith(f"checkpoint_{resumed_at}.pt")
    assert second.state.iteration == 15 and second.state.epoch == 3
    assert differing(uninterrupted, second) == []


def test_resume_without_data_state_is_not_exact(uninterrupted, tmp_path):
    """The control: the same resume, but without the data pipeline's entry in the checkpoint, differs (so the test
    above would catch a regression in the data replay)."""

    def handler(**kw):
        return _NoDataHandler(tmp_path, save_interval=3, **kw)

    first = make_trainer(make_loader(0), max_epochs=3, handlers=[handler(), KillAt(8)])
    with pytest.raises(Killed):
        first.run()
    second = make_trainer(make_loader(123), max_epochs=3, handlers=[handler()], init_seed=7)
    second.run()
    assert second.state.iteration == 15
    assert len(differing(uninterrupted, second)) > 10


class _NoDataHandler(GanCheckpointHandler):
    def attach(self, engine) -> None:
        self.objects = {k: v for k, v in engine.checkpoint_objects().items() if k != "data"}
        super().attach(engine)


def _regular(folder) -> list[str]:
    return sorted((f for f in os.listdir(folder) if f.startswith("checkpoint_")), key=lambda f: int(f[11:-3]))


def test_resume_prunes_the_earlier_runs_checkpoints(tmp_path):
    first = make_trainer(make_loader(0), max_epochs=3, handlers=[GanCheckpointHandler(tmp_path, save_interval=2, n_saved=3),
                                                         KillAt(7)])
    with pytest.raises(Killed):
        first.run()
    assert _regular(tmp_path) == ["checkpoint_2.pt", "checkpoint_4.pt", "checkpoint_6.pt"]
    assert "interrupted_7.pt" in os.listdir(tmp_path)
    (tmp_path / "nonfinite_1.pt").write_bytes(b"kept for inspection")

    handler = GanCheckpointHandler(tmp_path, save_interval=2, n_saved=3)
    make_trainer(make_loader(0), max_epochs=3, handlers=[handler]).run()
    assert handler.resumed_from.endswith("checkpoint_6.pt")
    # 8, 10, 12, 14 and the final 15 were written; only the 3 newest regular ones remain, the others untouched
    assert _regular(tmp_path) == ["checkpoint_12.pt", "checkpoint_14.pt", "checkpoint_15.pt"]
    assert {"interrupted_7.pt", "nonfinite_1.pt"} <= set(os.listdir(tmp_path))


def test_resumed_checkpoint_is_kept_until_a_newer_one_is_written(tmp_path, monkeypatch):
    """n_saved=1: the checkpoint resumed from must survive a failed write of the next one (ignite's own pruning
    deletes the old file before writing the new one)."""
    first = make_trainer(make_loader(0), max_epochs=3,
                         handlers=[GanCheckpointHandler(tmp_path, save_interval=3, n_saved=1), KillAt(4)])
    with pytest.raises(Killed):
        first.run()
    assert _regular(tmp_path) == ["checkpoint_3.pt"]

    from ignite.handlers import DiskSaver

    def failing_write(self, checkpoint, filename, metadata=None):
        raise OSError("disk full")

    monkeypatch.setattr(DiskSaver, "__call__", failing_write)
    second = make_trainer(make_loader(0), max_epochs=3,
                          handlers=[GanCheckpointHandler(tmp_path, save_interval=3, n_saved=1)])
    with pytest.raises(OSError, match="disk full"):
        second.run()
    assert second.state.iteration == 6  # it trained on and failed writing checkpoint_6
    assert _regular(tmp_path) == ["checkpoint_3.pt"]
    monkeypatch.undo()

    third = make_trainer(make_loader(0), max_epochs=3,
                         handlers=[GanCheckpointHandler(tmp_path, save_interval=3, n_saved=1)])
    third.run()
    assert _regular(tmp_path) == ["checkpoint_15.pt"]


def test_n_saved_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="n_saved"):
        GanCheckpointHandler(tmp_path, n_saved=0)


def test_resuming_a_run_finished_on_max_iterations_trains_nothing(tmp_path):
    """A run that stops on max_iterations (as pggan_bbox's growth schedule) and is resumed when already there must not
    train one more iteration (it did: the engine's own check ran before the checkpoint was loaded)."""
    make_trainer(make_loader(0), max_epochs=100, max_iterations=4,
                 handlers=[GanCheckpointHandler(tmp_path, save_interval=2)]).run()
    assert _regular(tmp_path) == ["checkpoint_2.pt", "checkpoint_4.pt"]
    again = make_trainer(make_loader(0), max_epochs=100, max_iterations=4,
                         handlers=[GanCheckpointHandler(tmp_path, save_interval=2)])
    again.run()
    assert again.state.iteration == 4
    assert _regular(tmp_path) == ["checkpoint_2.pt", "checkpoint_4.pt"]
