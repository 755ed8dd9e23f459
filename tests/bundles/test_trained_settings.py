# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Issue 13, points 4 and 9: training writes the settings that shape its generator beside its checkpoints, and
inference / evaluation read them (no setting repeated; an override that does not fit gets a clear error); a
failing ``python -m monai.bundle run`` ends with the project's message, not MONAI's wrapper."""

from __future__ import annotations

import json
import sys

import pytest
from bundle_utils import bundle_cli, chain_text, run_config, tiny_demo

from monai_gan_aug.utils.errors import format_user_error, root_cause
from monai_gan_aug.utils.settings import read_settings, settings_differences, trained_setting, write_settings

TRAIN = {"image_size": 16, "base_channels": 4, "batch_size": 2, "latent_size": 8, "save_interval": 1,
         "sample_interval": 100, "max_iterations": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("settings") / "run"
    run_config("dcgan", "train.json", {**TRAIN, "dataset_dir": demo_dir, "output_dir": str(out)})
    return out


def test_training_writes_settings(trained):
    settings = read_settings(trained / "checkpoints")
    assert settings == {"spatial_dims": 2, "image_size": 16, "in_channels": 1, "latent_size": 8, "base_channels": 4}
    assert trained_setting(trained / "checkpoints" / "checkpoint_1.pt", "latent_size", 100) == 8
    assert trained_setting(trained / "checkpoints" / "checkpoint_1.pt", "missing", "d") == "d"
    assert trained_setting(None, "latent_size", 100) == 100


def test_inference_needs_no_repeated_setting(trained, demo_dir):
    # none of image_size / base_channels / latent_size is passed again: they come from settings.json
    run_config("dcgan", "inference.json", {"dataset_dir": demo_dir, "output_dir": str(trained), "num_samples": 2},
               workflow_type="infer")
    manifest = json.loads((trained / "synthetic" / "manifest.json").read_text())
    assert len(manifest["files"]) == 2
    import nibabel as nib

    assert nib.load(trained / "synthetic" / manifest["files"][0]["image"]).shape == (16, 16)


def test_override_that_does_not_fit_names_the_setting(trained, demo_dir, tmp_path):
    with pytest.raises(Exception) as err:
        run_config("dcgan", "inference.json", {"dataset_dir": demo_dir, "output_dir": str(trained), "num_samples": 2,
                                               "latent_size": 100, "synthetic_dir": str(tmp_path / "s")},
                   workflow_type="infer")
    text = chain_text(err.value)
    assert "latent_size=100 but the checkpoint was trained with latent_size=8" in text
    assert not (tmp_path / "s").exists()  # nothing written


def test_resume_with_other_settings_is_refused(trained, demo_dir):
    before = sorted(p.name for p in (trained / "checkpoints").iterdir())
    with pytest.raises(Exception) as err:
        run_config("dcgan", "train.json", {**TRAIN, "image_size": 32, "max_iterations": 2, "dataset_dir": demo_dir,
                                           "output_dir": str(trained)})
    assert "image_size=32 (trained with 16)" in chain_text(err.value)
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == before
    assert read_settings(trained / "checkpoints")["image_size"] == 16


def test_settings_helpers(tmp_path):
    write_settings(tmp_path, {"channels": (8, 16), "norm": "batch"})
    assert read_settings(tmp_path) == {"channels": [8, 16], "norm": "batch"}
    assert settings_differences({"channels": [8, 16], "norm": "instance", "x": 1}, read_settings(tmp_path)) == {
        "norm": ("instance", "batch")}
    (tmp_path / "settings.json").write_text("not json")
    with pytest.raises(ValueError, match="settings.json"):
        read_settings(tmp_path)


def test_root_cause_walks_only_config_wrappers():
    try:
        try:
            try:
                raise OSError("decoder failed")
            except OSError as low:
                raise ValueError("scan.nii: cannot read it") from low
        except ValueError as mine:
            raise RuntimeError("Failed to evaluate ConfigExpression: $f()") from mine
    except RuntimeError as wrapped:
        assert str(root_cause(wrapped)) == "scan.nii: cannot read it"
        assert format_user_error(wrapped).splitlines()[-1] == "ValueError: scan.nii: cannot read it"
    try:
        try:
            raise ValueError("case2.nii: 100 values are not finite")
        except ValueError as mine:
            raise RuntimeError("applying transform <LoadMedicalImaged>") from mine
    except RuntimeError as wrapped:
        try:
            raise RuntimeError("Failed to evaluate ConfigExpression: $@trainer.run()") from wrapped
        except RuntimeError as outer:
            assert format_user_error(outer).splitlines()[-1] == "ValueError: case2.nii: 100 values are not finite"
    plain = ValueError("x")
    assert root_cause(plain) is plain and format_user_error(plain) == ""


def test_bundle_run_ends_with_the_project_message(tmp_path):
    proc = bundle_cli("dcgan", "train.json", "--dataset_dir", str(tmp_path / "nowhere"), "--output_dir",
                      str(tmp_path / "out"))
    assert proc.returncode != 0
    last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1]
    assert last.startswith("DatalistError: ") and str(tmp_path / "nowhere") in last, proc.stderr[-2000:]
    assert "Failed to evaluate" not in "\n".join(proc.stderr.strip().splitlines()[-3:])
    assert not (tmp_path / "out").exists()


def test_excepthook_is_installed_on_import():
    import monai_gan_aug  # noqa: F401

    assert getattr(sys.excepthook, "_monai_gan_aug_hook", False)
