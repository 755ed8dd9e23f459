# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Training handlers: SampleGridSaver (fixed seeds, conditions gathered from the first training items, not one
batch tiled) and GanProgressBar (losses read only on its interval)."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from PIL import Image

from monai_gan_aug.handlers import SampleGridSaver


class _RecordingEngine(Engine):
    """An engine whose ``generate`` returns each condition's value as its image and records what it was given."""

    def __init__(self):
        super().__init__(lambda engine, batch: None)
        self.calls = []

    def generate(self, num, batch=None, seeds=None, use_ema=True):
        self.calls.append({"num": num, "batch": batch, "seeds": list(seeds)})
        img = batch["source"].float() if batch is not None else torch.zeros(num, 1, 8, 8)
        return {"image": img}


def _loader(n, batch_size):
    items = [torch.full((1, 8, 8), float(i) / n) for i in range(n)]
    return [{"source": torch.stack(items[i:i + batch_size]), "name": [f"item{j}" for j in range(i, i + batch_size)]}
            for i in range(0, n, batch_size)]


def test_batch_one_grid_shows_different_conditions(tmp_path):
    engine = _RecordingEngine()
    saver = SampleGridSaver(tmp_path, interval=4, num_samples=6, seed=7)
    saver.attach(engine)
    engine.run(_loader(8, 1), max_epochs=1, epoch_length=5)
    first, final = engine.calls  # grid at iteration 4 and the final one at 5
    assert first["num"] == 6 and first["seeds"] == list(range(7, 13))
    # four items were seen before the first grid: they are cycled to fill six tiles, not item 0 six times
    assert first["batch"]["name"] == ["item0", "item1", "item2", "item3", "item0", "item1"]
    values = first["batch"]["source"].flatten(1)[:, 0]
    torch.testing.assert_close(values, torch.tensor([0, 1, 2, 3, 0, 1]) / 8.0)
    # the conditions stay fixed for every later grid
    assert final["batch"] is first["batch"] and final["seeds"] == first["seeds"]
    assert Image.open(saver.last_path).size[0] > 8


def test_larger_batches_fill_the_grid_without_repeats(tmp_path):
    engine = _RecordingEngine()
    SampleGridSaver(tmp_path, interval=2, num_samples=5).attach(engine)
    engine.run(_loader(8, 2), max_epochs=1)
    assert engine.calls[0]["batch"]["name"] == ["item0", "item1", "item2", "item3", "item0"]
    assert engine.calls[-1]["batch"]["name"] == engine.calls[0]["batch"]["name"]


def test_interval_one_uses_what_it_has(tmp_path):
    engine = _RecordingEngine()
    SampleGridSaver(tmp_path, interval=1, num_samples=3).attach(engine)
    engine.run(_loader(4, 2), max_epochs=1)
    assert engine.calls[0]["batch"]["name"] == ["item0", "item1", "item0"]  # the first batch, cycled; no double count


def test_progress_bar_reads_losses_only_on_its_interval(monkeypatch):
    """The bar moves every iteration; the losses (a device sync each) are read on the first iteration and then
    every ``every`` iterations only."""
    import monai_gan_aug.handlers.progress as progress
    from monai_gan_aug.handlers import GanProgressBar

    reads = []
    real = progress.losses_from_output
    monkeypatch.setattr(progress, "losses_from_output", lambda out: reads.append(1) or real(out))
    engine = Engine(lambda e, b: {"losses": {"g_loss": torch.tensor(float(e.state.iteration))}})
    GanProgressBar(every=10).attach(engine)
    engine.run(range(25), max_epochs=1)
    assert len(reads) == 3  # iterations 1, 10 and 20


def test_sample_grid_logged_to_tensorboard(tmp_path):
    """Issue 17: sample grids (2D) and volumes (3D) appear as TensorBoard image summaries."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from monai_gan_aug.handlers import SampleGridSaver

    class _Engine:
        def __init__(self, shape):
            self.shape = shape
            self.state = type("S", (), {"iteration": 7, "batch": None})()

        def generate(self, n, batch=None, seeds=None, use_ema=True):
            g = torch.Generator().manual_seed(0)
            return {"image": torch.rand((n, *self.shape), generator=g) * 2 - 1}

    for name, shape in (("2d", (1, 16, 16)), ("3d", (1, 8, 8, 8))):
        saver = SampleGridSaver(tmp_path / name / "png", interval=1, num_samples=4, log_dir=tmp_path / name / "tb")
        saver(_Engine(shape))
        assert (tmp_path / name / "png" / "samples_0000007.png").is_file()
        acc = EventAccumulator(str(tmp_path / name / "tb"), size_guidance={"images": 0})
        acc.Reload()
        tags = acc.Tags()["images"]
        assert "samples/grid" in tags
        grid = acc.Images("samples/grid")[0]
        assert grid.step == 7 and grid.width > 16
        if name == "3d":
            assert any(t.startswith("samples/volume_0") for t in tags), tags
