# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GanMetricHandler: periodic evaluation, engine metrics, TensorBoard, best checkpoint, real-stats cache."""

from __future__ import annotations

import glob

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import TensorBoardStatsHandler
from torch import nn

from monai_gan_aug.handlers.metrics import GanMetricHandler
from monai_gan_aug.metrics.extractors import RandomConvFeatures


class _Recorder:
    """Minimal SummaryWriter stand-in that records scalars."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def _real(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 16, 16, generator=g) * 2 - 1) * 0.8


def _engine(max_iter: int = 4) -> Engine:
    return Engine(lambda e, b: None)


def _improving_generator(engine_ref: dict):
    """Samples that approach the real distribution as training goes on (noise shrinks with the iteration)."""

    def generate(n: int) -> torch.Tensor:
        it = engine_ref["engine"].state.iteration
        base = _real(n, seed=100 + it)
        return (base + torch.randn(n, 1, 16, 16) * (1.0 / it)).clamp(-1, 1)

    return generate


def test_periodic_metrics_tensorboard_and_best_checkpoint(tmp_path):
    engine = _engine()
    ref = {"engine": engine}
    gen_net = nn.Linear(2, 2)
    writer = _Recorder()
    handler = GanMetricHandler(
        ["fid", "kid", "1nn"], RandomConvFeatures(dim=8), _real(), _improving_generator(ref),
        num_samples=12, interval=2, batch_size=5, summary_writer=writer,
        save_best={"metric": "fid", "dir": tmp_path / "ckpt", "objects": {"generator": gen_net}},
        n_bootstrap=5,
    )
    handler.attach(engine)
    engine.run(range(6), max_epochs=1)
    assert [s for s, _ in handler.history] == [2, 4, 6]
    for key in ("gan_metrics/fid", "gan_metrics/kid", "gan_metrics/1nn"):
        assert key in engine.state.metrics
    fids = [v["fid"] for _, v in handler.history]
    assert fids[-1] < fids[0]  # the noise decreases, so does FID
    tags = {t for t, _, _ in writer.scalars}
    assert {"gan_metrics/fid", "gan_metrics/fid_ci_low", "gan_metrics/kid"} <= tags
    assert {s for t, _, s in writer.scalars if t == "gan_metrics/fid"} == {2, 4, 6}
    assert handler.best["iteration"] == 6 and handler.best["value"] == pytest.approx(fids[-1])
    files = glob.glob(str(tmp_path / "ckpt" / "best_*.pt"))
    assert len(files) == 1 and handler.best_checkpoint == files[0]
    state = torch.load(files[0], weights_only=True)
    assert torch.equal(state["weight"], gen_net.weight)


def test_uses_writer_of_monai_tensorboard_handler(tmp_path):
    engine = _engine()
    tb = TensorBoardStatsHandler(log_dir=str(tmp_path / "tb"), iteration_log=False, epoch_log=True)
    tb.attach(engine)
    handler = GanMetricHandler(["kid"], RandomConvFeatures(dim=8), _real(), lambda n: _real(n, 5), num_samples=10, interval=3)
    handler.attach(engine)
    engine.run(range(3), max_epochs=1)
    assert handler.summary_writer is tb._writer
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))


def test_real_stats_cached_once(tmp_path):
    class Counting(RandomConvFeatures):
        calls = 0

        def extract(self, images, batch_size=32, with_logits=False):
            Counting.calls += images.shape[0]
            return super().extract(images, batch_size, with_logits)

    real = _real(20)
    loader = torch.utils.data.DataLoader([{"image": x} for x in real], batch_size=8)
    kw = {"num_samples": 6, "interval": 1, "cache_dir": tmp_path / "cache", "real_key": "toy_v1"}
    h1 = GanMetricHandler({"fid": {"n_bootstrap": 0}}, Counting(dim=8), loader, lambda n: _real(n, 3), **kw)
    r1 = h1.compute()
    assert Counting.calls == 20 + 6 and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    h2 = GanMetricHandler({"fid": {"n_bootstrap": 0}}, Counting(dim=8), loader, lambda n: _real(n, 3), **kw)
    r2 = h2.compute()
    assert Counting.calls == 20 + 6 + 6  # the real set was not embedded again
    assert r2["fid"]["value"] == pytest.approx(r1["fid"]["value"], rel=1e-5)


def test_paired_and_image_metrics_and_errors():
    real = _real(12)
    handler = GanMetricHandler(
        {"pa": {}, "msssim": {"kernel_size": 3, "weights": (0.5, 0.5), "n_tests": 2, "n_images": 4}},
        RandomConvFeatures(dim=8), real, lambda n: (real[:n], real[:n]), num_samples=8, interval=1,
    )
    res = handler.compute()
    assert res["pa"]["value"] == 1.0 and 0 < res["msssim"]["value"] <= 1 and "real_value" in res["msssim"]
    with pytest.raises(ValueError, match="logits"):
        GanMetricHandler(["is"], RandomConvFeatures(dim=8), real, lambda n: real[:n])
    with pytest.raises(ValueError, match="not an output"):
        GanMetricHandler(["kid"], RandomConvFeatures(dim=8), real, lambda n: real[:n],
                         save_best={"metric": "fid", "dir": "x", "objects": {"g": nn.Linear(1, 1)}})
    bad = GanMetricHandler(["pa"], RandomConvFeatures(dim=8), real, lambda n: real[:n], num_samples=4)
    with pytest.raises(ValueError, match="targets"):
        bad.compute()
    wrong_n = GanMetricHandler(["kid"], RandomConvFeatures(dim=8), real, lambda n: real[:2], num_samples=4)
    with pytest.raises(ValueError, match="must return"):
        wrong_n.compute()
