# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""utils.weights.local_weights_file: the one lookup of pretrained weight files (VGG16, Inception-v3)."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.utils.weights import hub_checkpoints_dir, local_weights_file


def test_lookup_order_and_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("MY_WEIGHTS", raising=False)
    assert hub_checkpoints_dir() == tmp_path / "hub" / "checkpoints"
    assert local_weights_file(None, "MY_WEIGHTS", ["net-*.pth"], "Net weights") is None  # nothing anywhere
    hub = hub_checkpoints_dir()
    hub.mkdir(parents=True)
    (hub / "net-b.pth").write_bytes(b"b")
    (hub / "net-a.pth").write_bytes(b"a")
    (hub / "other-0.pth").write_bytes(b"o")
    assert local_weights_file(None, "MY_WEIGHTS", ["net-*.pth"], "Net weights") == hub / "net-a.pth"
    assert local_weights_file(None, "MY_WEIGHTS", ["other-*.pth", "net-*.pth"], "Net") == hub / "other-0.pth"
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"e")
    monkeypatch.setenv("MY_WEIGHTS", str(env_file))
    assert local_weights_file(None, "MY_WEIGHTS", ["net-*.pth"], "Net weights") == env_file  # env before the hub
    given = tmp_path / "given.pth"
    given.write_bytes(b"g")
    assert local_weights_file(given, "MY_WEIGHTS", ["net-*.pth"], "Net weights") == given  # the argument first
    with pytest.raises(FileNotFoundError, match=r"Net weights: weights_path names .*missing.pth, which does not exist"):
        local_weights_file(tmp_path / "missing.pth", "MY_WEIGHTS", [], "Net weights")
    monkeypatch.setenv("MY_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(FileNotFoundError, match=r"\$MY_WEIGHTS names .*gone.pth"):
        local_weights_file(None, "MY_WEIGHTS", ["net-*.pth"], "Net weights")
