# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""alpha-WGAN-GP bundle: one tiny training run per variant (2D), one in 3D, then generation with its manifest."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, run_config, tiny_demo

TINY = {"image_size": 16, "base_channels": 4, "batch_size": 2, "latent_size": 8, "code_hidden_size": 16,
        "save_interval": 1, "sample_interval": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def _losses(wf):
    return {k: float(v) for k, v in wf.parser.get_parsed_content("train#trainer").state.output["losses"].items()}


def test_train_then_infer(demo_dir, tmp_path):
    out = tmp_path / "run"
    wf = run_config("alpha_wgan_gp", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert sorted(trainer.networks) == ["code_discriminator", "discriminator", "encoder", "generator"]
    assert [p.name for p in trainer.objective.phases()] == ["cd", "e", "d", "g"]
    assert all(np.isfinite(v) for v in _losses(wf).values())
    assert "checkpoint_2.pt" in os.listdir(out / "checkpoints")
    assert max(os.listdir(out / "samples")) == "samples_0000002.png"

    inf = {"dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3, "batch_size": 2,
           **{k: TINY[k] for k in ("image_size", "base_channels", "latent_size")}}
    run_config("alpha_wgan_gp", "inference.json", inf, workflow_type="infer")
    manifest = json.loads((out / "synthetic" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and manifest["checkpoint"].endswith("checkpoint_2.pt")
    arr = np.asarray(nib.load(out / "synthetic" / manifest["files"][0]["image"]).dataobj)
    assert arr.shape == (16, 16) and arr.min() >= -1 and arr.max() <= 1 and arr.std() > 0


@pytest.mark.parametrize("variant", ["original", "wgan_gp"])
def test_baseline_variants(variant, demo_dir, tmp_path):
    wf = run_config("alpha_wgan_gp", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(tmp_path),
                                                   "variant": variant, "n_critic": 1, "max_iterations": 1})
    trainer = wf.parser.get_parsed_content("train#trainer")
    expected = {"original": ["code_discriminator", "discriminator", "encoder", "generator"], "wgan_gp": ["discriminator", "generator"]}
    assert sorted(trainer.networks) == expected[variant] and sorted(trainer.optimizers) == expected[variant]
    norms = {type(m).__name__ for m in trainer.networks["discriminator"].modules()}
    assert ("BatchNorm2d" in norms) == (variant == "original") and ("InstanceNorm2d" in norms) == (variant == "wgan_gp")
    assert all(np.isfinite(v) for v in _losses(wf).values())


def test_3d_volumes(tmp_path_factory, tmp_path):
    demo3d = tiny_demo(str(tmp_path_factory.mktemp("demo3d")), spatial_dims=3, image_size=16)
    wf = run_config("alpha_wgan_gp", "train.json", {**TINY, "batch_size": 1, "spatial_dims": 3, "dataset_dir": demo3d,
                                                   "output_dir": str(tmp_path), "max_iterations": 1})
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.output["reals"].shape == (1, 1, 16, 16, 16)
    assert all(np.isfinite(v) for v in _losses(wf).values())


def test_3d_defaults_follow_kwon():
    from monai.bundle import ConfigParser

    from monai_gan_aug.engines.bundles import bundle_config_files

    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files("alpha_wgan_gp", "train.json")])  # with common.json
    assert parser.get_parsed_content("image_size") == 256 and parser.get_parsed_content("batch_size") == 32
    parser["spatial_dims"] = 3
    assert parser.get_parsed_content("image_size") == 64 and parser.get_parsed_content("batch_size") == 4


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(  # raises jsonschema.ValidationError on a schema violation
        meta_file=str(REPO / "bundles" / "alpha_wgan_gp" / "configs" / "metadata.json"),
        filepath=str(REPO / "bundles" / "schemas" / "meta_schema_generator.json"),
    )
    meta = json.loads((REPO / "bundles" / "alpha_wgan_gp" / "configs" / "metadata.json").read_text())
    for name in ("train.json", "inference.json", "evaluate.json", "multi_gpu_train.json", "logging.conf"):
        assert (REPO / "bundles" / "alpha_wgan_gp" / "configs" / name).is_file()
    assert (REPO / "bundles" / "alpha_wgan_gp" / "LICENSE").is_file() and (REPO / "bundles" / "alpha_wgan_gp" / "docs" / "README.md").is_file()
    assert meta["network_data_format"]["outputs"]["pred"]["value_range"] == [-1, 1]
