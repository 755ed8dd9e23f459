# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""No load path runs code from a checkpoint: a file whose pickle holds an object that creates a marker file when
unpickled is refused with a clear error by inference (dcgan, pggan_bbox), training resume and the metrics'
network loader, and the marker never appears. Real checkpoints of the project still load."""

from __future__ import annotations

import os
import pathlib
import pickle
import random

import numpy as np
import pytest
import torch

from monai_gan_aug.engines import AdversarialTrainer, load_generator_weights
from monai_gan_aug.engines.utils import RandomStates
from monai_gan_aug.handlers import GanCheckpointHandler
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
from monai_gan_aug.metrics.extractors import MonaiNetworkFeatures, _load_network
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator
from monai_gan_aug.networks.nets.pggan import PGGANGenerator
from monai_gan_aug.utils import CheckpointError, UnsafeCheckpointError, load_checkpoint


class TouchPayload:
    """Unpickling calls ``pathlib.Path.touch(marker)``."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class SystemPayload:
    """Unpickling calls ``os.system("touch <marker>")``."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


PAYLOADS = {"path_touch": (TouchPayload, "pathlib"), "os_system": (SystemPayload, "system")}


def make_trainer(loader, handlers=(), max_iterations=2):
    torch.manual_seed(0)
    g, d = DCGANGenerator(2, 8, 1, 16, 8), DCGANDiscriminator(2, 1, 16, 8, norm=None)
    return AdversarialTrainer(
        "cpu", 3, loader, {"generator": g, "discriminator": d},
        {"generator": torch.optim.Adam(g.parameters(), 1e-3), "discriminator": torch.optim.Adam(d.parameters(), 1e-3)},
        DCGANObjective(8, 2), ema={"generator": 0.9}, handlers=list(handlers), max_iterations=max_iterations,
    )


@pytest.fixture
def real_checkpoint(tiny_image_loader, tmp_path):
    """A checkpoint written by a tiny training run, and the trainer that wrote it."""
    folder = tmp_path / "real"
    trainer = make_trainer(tiny_image_loader, [GanCheckpointHandler(folder, save_interval=1)], max_iterations=2)
    trainer.run()
    return folder / "checkpoint_2.pt", trainer


@pytest.fixture(params=sorted(PAYLOADS))
def poisoned(request, real_checkpoint, tmp_path):
    """The real checkpoint with a payload hidden in its random-state entry; returns (file, marker, global name)."""
    cls, global_name = PAYLOADS[request.param]
    marker = tmp_path / f"marker_{request.param}"
    ckpt = torch.load(real_checkpoint[0], weights_only=True)
    ckpt["rng"]["extra"] = cls(marker)
    folder = tmp_path / "poisoned"
    folder.mkdir()
    path = folder / "checkpoint_5.pt"
    torch.save(ckpt, path)
    assert not marker.exists()
    # the payload is live: unpickling it without restrictions creates the marker
    live = tmp_path / f"live_{request.param}"
    pickle.loads(pickle.dumps(cls(live)))
    assert live.exists()
    return path, marker, global_name


def _check_refusal(err: BaseException, path: pathlib.Path, global_name: str) -> None:
    text = str(err)
    assert str(path) in text and global_name in text and "execute arbitrary code" in text and "not loaded" in text


def test_safe_loader_refuses_and_names_the_global(poisoned):
    path, marker, global_name = poisoned
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    _check_refusal(info.value, path, global_name)
    assert not marker.exists()


def test_generation_refuses_poisoned_checkpoint(poisoned):
    path, marker, global_name = poisoned
    with pytest.raises(ValueError) as info:
        load_generator_weights(DCGANGenerator(2, 8, 1, 16, 8), str(path))
    _check_refusal(info.value, path, global_name)
    assert not marker.exists()


def test_pggan_generation_refuses_poisoned_checkpoint(poisoned):
    path, marker, global_name = poisoned
    with pytest.raises(ValueError) as info:
        load_generator_weights(PGGANGenerator(2, 8, 1, 1, 16, channels={4: 4, 8: 4, 16: 4}), str(path))
    _check_refusal(info.value, path, global_name)
    # the deprecated objective-state loader (bundles exported before the growth state moved into the networks)
    objective = PGGANBoxObjective(latent_size=8, max_resolution=16, images_per_phase=8, batch_size=4)
    with pytest.raises(UnsafeCheckpointError) as info:
        objective.load_checkpoint_state(str(path))
    _check_refusal(info.value, path, global_name)
    assert not marker.exists()


def test_resume_refuses_poisoned_checkpoint(poisoned, tiny_image_loader):
    path, marker, global_name = poisoned
    trainer = make_trainer(tiny_image_loader, [GanCheckpointHandler(path.parent, save_interval=1)], max_iterations=8)
    before = [p.clone() for p in trainer.networks.parameters()]
    with pytest.raises(UnsafeCheckpointError) as info:
        trainer.run()
    _check_refusal(info.value, path, global_name)
    assert not marker.exists()
    assert trainer.state.iteration == 0 and all(torch.equal(a, b) for a, b in zip(before, trainer.networks.parameters()))


def test_metrics_network_loader_refuses_pickles(poisoned, tmp_path):
    path, marker, global_name = poisoned
    with pytest.raises(TypeError) as info:
        _load_network(path)
    assert global_name in str(info.value) and "state-dict file as `checkpoint`" in str(info.value)
    assert not marker.exists()
    # a pickled nn.Module (no payload, still arbitrary code in general) is refused as well
    module_file = tmp_path / "net.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), module_file)
    with pytest.raises(TypeError, match="(?s)pickled.*not loaded.*execute arbitrary code"):
        MonaiNetworkFeatures(module_file)


def test_metrics_network_loader_explains_state_dicts(tmp_path):
    sd_file = tmp_path / "weights.pt"
    torch.save(torch.nn.Conv2d(1, 2, 3).state_dict(), sd_file)
    with pytest.raises(TypeError, match="(?s)state dict.*`network`.*`checkpoint`"):
        _load_network(sd_file)
    ts_file = tmp_path / "net.ts"
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))).save(str(ts_file))
    assert isinstance(_load_network(ts_file), torch.jit.ScriptModule)


def test_real_checkpoint_loads_in_every_path(real_checkpoint, tiny_image_loader, tmp_path):
    path, trained = real_checkpoint
    # plain weights_only load, no extra global needed
    ckpt = torch.load(path, weights_only=True)
    assert {"trainer", "networks", "optimizers", "objective", "rng", "data", "ema"} <= set(ckpt)
    # inference: the EMA generator
    gen = load_generator_weights(DCGANGenerator(2, 8, 1, 16, 8), str(path))
    for a, b in zip(gen.parameters(), trained.ema_networks["generator"].parameters()):
        assert torch.equal(a, b)
    # resume
    handler = GanCheckpointHandler(path.parent, save_interval=1)
    resumed = make_trainer(tiny_image_loader, [handler], max_iterations=3)
    resumed.run()
    assert handler.resumed_from == str(path) and resumed.state.iteration == 3
    # PGGAN growth state: buffers of the networks, plain tensors for weights_only
    grown = PGGANGenerator(2, 8, 1, 1, 16, channels={4: 4, 8: 4, 16: 4}).set_growth(1, 0.5)
    pg_file = tmp_path / "pggan.pt"
    torch.save({"generator": grown.state_dict()}, pg_file)
    loaded = load_generator_weights(PGGANGenerator(2, 8, 1, 1, 16, channels={4: 4, 8: 4, 16: 4}), str(pg_file))
    assert loaded.growth == (1, 0.5)


def test_checkpoint_with_legacy_numpy_random_state_loads(tmp_path):
    """Checkpoints written before the random states were stored as tensors hold numpy's state tuple."""
    np.random.seed(5)
    expected = np.random.rand(3)
    np.random.seed(5)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    path = tmp_path / "legacy.pt"
    torch.save({"rng": legacy}, path)
    np.random.seed(0)
    RandomStates().load_state_dict(load_checkpoint(path)["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_truncated_or_foreign_files_get_clear_errors(real_checkpoint, tmp_path, tiny_image_loader):
    path, _ = real_checkpoint
    folder = tmp_path / "broken"
    folder.mkdir()
    truncated = folder / "checkpoint_9.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="(?s)cannot read checkpoint .*checkpoint_9.pt.*truncated"):
        load_checkpoint(truncated)
    trainer = make_trainer(tiny_image_loader, [GanCheckpointHandler(folder, save_interval=1)])
    with pytest.raises(CheckpointError, match="(?s)checkpoint_9.pt.*Delete it to resume from the one before"):
        trainer.run()
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
