# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DF-GAN bundle: one tiny training iteration with the Frechet term (real statistics stored in the checkpoint),
inference writing image + label pairs, evaluation, metadata."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, run_config, tiny_demo

TINY = {"image_size": 16, "base_channels": 4, "max_channels": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def test_train_infer_evaluate(demo_dir, tmp_path):
    out = tmp_path / "run"
    wf = run_config("dfgan", "train.json", {**TINY, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2,
                                            "save_interval": 1, "sample_interval": 1, "dataset_dir": demo_dir,
                                            "output_dir": str(out), "max_iterations": 2})
    losses = wf.parser.get_parsed_content("train#trainer").state.output["losses"]
    assert {"g_fid", "g_l1", "g_adv", "d_loss"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    assert float(losses["g_fid"]) > 0
    ckpt = torch.load(out / "checkpoints" / "checkpoint_2.pt", weights_only=True)
    assert ckpt["objective"]["real_mu"].shape == (64,) and ckpt["objective"]["real_sigma"].shape == (64, 64)

    run_config("dfgan", "inference.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "batch_size": 2},
               workflow_type="infer")
    manifest = json.loads((out / "synthetic" / "manifest.json").read_text())
    assert manifest["num_samples"] >= 2
    rec = manifest["files"][0]
    assert nib.load(out / "synthetic" / rec["image"]).shape == (16, 16)
    assert set(np.unique(np.asarray(nib.load(out / "synthetic" / rec["label"]).dataobj))) <= {0, 1}

    run_config("dfgan", "evaluate.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "batch_size": 2,
                                          "segmenter_epochs": 1}, workflow_type="infer")
    assert json.loads((out / "eval" / "honours_mask.json").read_text())["n"] >= 2


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(REPO / "bundles/dfgan/configs/metadata.json"),
                    filepath=str(REPO / "bundles/schemas/meta_schema_generator.json"))
