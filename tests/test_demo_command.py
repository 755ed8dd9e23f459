# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The README's main job (`make demo` = `python -m monai_gan_aug demo`), shortened to a few iterations."""

from __future__ import annotations

import json

from monai_gan_aug.__main__ import main


def test_demo_command_trains_generates_and_reports(tmp_path, capsys):
    assert main(["demo", "--bundle", "pggan_bbox", "--output_dir", str(tmp_path), "--max_iterations", "2", "--num_samples", "3"]) == 0
    out = capsys.readouterr().out
    for word in ("checkpoints", "sample grid", "synthetic set", "manifest"):
        assert word in out
    syn = tmp_path / "pggan_bbox" / "synthetic"
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 3
    assert all("boxes" in f and (syn / f["yolo"]).is_file() for f in manifest["files"])
    # a second demo run resumes training and writes a new synthetic folder instead of overwriting the first
    assert main(["demo", "--bundle", "pggan_bbox", "--output_dir", str(tmp_path), "--max_iterations", "2", "--num_samples", "2"]) == 0
    assert json.loads((tmp_path / "pggan_bbox" / "synthetic_2" / "manifest.json").read_text())["num_samples"] == 2
    assert manifest == json.loads((syn / "manifest.json").read_text())


def test_default_demo_bundle_runs(tmp_path, capsys):
    """`make demo` with no arguments: the default bundle, shortened."""
    from monai_gan_aug.__main__ import DEFAULT_BUNDLE

    assert main(["demo", "--output_dir", str(tmp_path), "--max_iterations", "2", "--num_samples", "2"]) == 0
    assert (tmp_path / DEFAULT_BUNDLE / "synthetic" / "manifest.json").is_file()
    assert "synthetic set" in capsys.readouterr().out


def test_demo_amp_flag_reaches_training_only(tmp_path, monkeypatch):
    """`demo --amp` trains with bf16 autocast (the bundle's `amp`); inference still writes float32 samples."""
    import monai_gan_aug.bundles as bundles

    calls = []
    monkeypatch.setattr(bundles, "run_bundle", lambda name, config, overrides, **kw: calls.append((config, dict(overrides))))
    assert main(["demo", "--bundle", "dcgan", "--output_dir", str(tmp_path), "--amp"]) == 0
    (train_cfg, train), (inf_cfg, inf) = calls
    assert (train_cfg, inf_cfg) == ("train.json", "inference.json")
    assert train["amp"] is True and "amp" not in inf
    calls.clear()
    assert main(["demo", "--bundle", "dcgan", "--output_dir", str(tmp_path)]) == 0
    assert "amp" not in calls[0][1]  # default: the bundle's own setting (CUDA only)
