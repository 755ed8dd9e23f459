# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FastGAN bundle: one tiny training run on the demo images + lesion masks, then generation of image/mask pairs."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, run_config, tiny_demo

TINY = {"image_size": 32, "base_channels": 4, "decoder_channels": 4, "sle_ratio_generator": 4, "sle_ratio_discriminator": 2,
        "batch_size": 2, "latent_size": 8, "save_interval": 1, "sample_interval": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def test_train_then_infer_image_and_mask(demo_dir, tmp_path):
    out = tmp_path / "run"
    wf = run_config("fastgan", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    trainer = wf.parser.get_parsed_content("train#trainer")
    reals = trainer.state.output["reals"]
    assert reals.shape == (2, 2, 32, 32) and set(reals[:, 1].unique().tolist()) <= {-1.0, 1.0}
    losses = {k: float(v) for k, v in trainer.state.output["losses"].items()}
    assert {"d_hinge", "d_recon", "g_loss"} <= set(losses) and all(np.isfinite(v) for v in losses.values())
    assert "checkpoint_2.pt" in os.listdir(out / "checkpoints")

    inf = {"dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3, "batch_size": 2,
           **{k: TINY[k] for k in ("image_size", "base_channels", "latent_size", "sle_ratio_generator")}}
    run_config("fastgan", "inference.json", inf, workflow_type="infer")
    syn = out / "synthetic"
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 3
    first = manifest["files"][0]
    image = np.asarray(nib.load(syn / first["image"]).dataobj)
    label = np.asarray(nib.load(syn / first["label"]).dataobj)
    assert image.shape == label.shape == (32, 32)
    assert image.min() >= -1 and image.max() <= 1 and set(np.unique(label).tolist()) <= {0, 1}
    datalist = json.loads((syn / "datalist.json").read_text())
    assert all("label" in item for item in datalist["training"])

    # evaluate.json: the GAN-metrics hook on the synthetic set against the real test split
    run_config("fastgan", "evaluate.json", {"dataset_dir": demo_dir, "output_dir": str(out), "image_size": 32,
                                           "metrics": ["fid"], "extractor": "random", "n_bootstrap": 0, "device": "cpu"},
               workflow_type="eval")
    report = json.loads((out / "evaluation" / "gan_metrics.json").read_text())
    assert report["fake"]["n"] == 3 and np.isfinite(report["metrics"]["fid"]["value"])


@pytest.mark.slow
def test_images_only(demo_dir, tmp_path):
    wf = run_config("fastgan", "train.json", {**TINY, "mask_channels": 0, "dataset_dir": demo_dir, "output_dir": str(tmp_path),
                                             "policy": "color,translation,cutout", "max_iterations": 1})
    assert wf.parser.get_parsed_content("train#trainer").state.output["reals"].shape == (2, 1, 32, 32)


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(  # raises jsonschema.ValidationError on a schema violation
        meta_file=str(REPO / "bundles" / "fastgan" / "configs" / "metadata.json"),
        filepath=str(REPO / "bundles" / "schemas" / "meta_schema_generator.json"),
    )
    meta = json.loads((REPO / "bundles" / "fastgan" / "configs" / "metadata.json").read_text())
    for name in ("train.json", "inference.json", "evaluate.json", "multi_gpu_train.json", "logging.conf"):
        assert (REPO / "bundles" / "fastgan" / "configs" / name).is_file()
    assert (REPO / "bundles" / "fastgan" / "LICENSE").is_file() and (REPO / "bundles" / "fastgan" / "docs" / "README.md").is_file()
    assert meta["network_data_format"]["outputs"]["pred"]["value_range"] == [-1, 1]
