# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GA-UNet bundle: one tiny training run on same-class pairs of the demo set, then class-conditional generation
from reference images."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, run_config, tiny_demo

TINY = {"image_size": 16, "base_channels": 4, "layers_per_block": 1, "noise_size": 8, "batch_size": 2,
        "save_interval": 1, "sample_interval": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def test_train_then_infer(demo_dir, tmp_path):
    out = tmp_path / "run"
    wf = run_config("ga_unet", "train.json", {**TINY, "critic_channels": 4, "growth_rate": 4, "n_critic": 2,
                                             "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    trainer = wf.parser.get_parsed_content("train#trainer")
    batch = trainer.state.batch
    assert batch["reference"].shape == batch["image"].shape == (2, 1, 16, 16)
    datalist = wf.parser.get_parsed_content("train#datalist")
    assert {int(d["class"]) for d in datalist} == set(batch["class"].tolist())
    losses = {k: float(v) for k, v in trainer.state.output["losses"].items()}
    assert {"d_loss", "d_gp", "g_loss"} <= set(losses) and all(np.isfinite(v) for v in losses.values())
    assert "checkpoint_2.pt" in os.listdir(out / "checkpoints")

    inf = {"dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3, "batch_size": 2, "classes": [1],
           **{k: TINY[k] for k in ("image_size", "base_channels", "layers_per_block", "noise_size")}}
    run_config("ga_unet", "inference.json", inf, workflow_type="infer")
    syn = out / "synthetic"
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and [f["class"] for f in manifest["files"]] == [1, 1, 1]
    arr = np.asarray(nib.load(syn / manifest["files"][0]["image"]).dataobj)
    assert arr.shape == (16, 16) and arr.min() >= -1 and arr.max() <= 1
    # the same seeds and references regenerate the same images
    run_config("ga_unet", "inference.json", {**inf, "synthetic_dir": str(out / "again")}, workflow_type="infer")
    again = np.asarray(nib.load(out / "again" / manifest["files"][0]["image"]).dataobj)
    np.testing.assert_allclose(again, arr, atol=1e-6)


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(  # raises jsonschema.ValidationError on a schema violation
        meta_file=str(REPO / "bundles" / "ga_unet" / "configs" / "metadata.json"),
        filepath=str(REPO / "bundles" / "schemas" / "meta_schema_generator.json"),
    )
    meta = json.loads((REPO / "bundles" / "ga_unet" / "configs" / "metadata.json").read_text())
    for name in ("train.json", "inference.json", "evaluate.json", "multi_gpu_train.json", "logging.conf"):
        assert (REPO / "bundles" / "ga_unet" / "configs" / name).is_file()
    assert (REPO / "bundles" / "ga_unet" / "LICENSE").is_file() and (REPO / "bundles" / "ga_unet" / "docs" / "README.md").is_file()
    assert meta["network_data_format"]["outputs"]["pred"]["value_range"] == [-1, 1]
