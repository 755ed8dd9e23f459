# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Mask DCGAN bundle: one tiny training iteration on the demo tissue maps, inference writing valid label maps,
evaluation against real maps, metadata."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, run_config, tiny_demo

TINY = {"image_size": 16, "base_channels": 4, "latent_size": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.mark.parametrize("mask_key,num_classes,mask_mode", [("tissue", 5, "onehot"), ("label", 2, "scaled")])
def test_train_generate_evaluate(demo_dir, tmp_path, mask_key, num_classes, mask_mode):
    out = tmp_path / "run"
    keys = {"mask_key": mask_key, "num_classes": num_classes, "mask_mode": mask_mode}
    wf = run_config("mask_dcgan", "train.json", {**TINY, **keys, "batch_size": 2, "dataset_dir": demo_dir,
                                                 "output_dir": str(out), "max_iterations": 2, "save_interval": 1,
                                                 "sample_interval": 1})
    reals = wf.parser.get_parsed_content("train#trainer").state.output["reals"]
    assert reals.shape[1] == (num_classes if mask_mode == "onehot" else 1)  # the DCGAN learns encoded masks
    assert "checkpoint_2.pt" in [p.name for p in (out / "checkpoints").iterdir()]

    run_config("mask_dcgan", "inference.json", {**TINY, **keys, "dataset_dir": demo_dir, "output_dir": str(out),
                                                "num_samples": 3, "batch_size": 2}, workflow_type="infer")
    manifest = json.loads((out / "synthetic" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3
    for rec in manifest["files"]:
        mask = np.asarray(nib.load(out / "synthetic" / rec["label"]).dataobj)
        assert mask.shape == (16, 16) and set(np.unique(mask)) <= set(range(num_classes))  # valid maps
        preview = np.asarray(nib.load(out / "synthetic" / rec["image"]).dataobj)
        np.testing.assert_allclose(preview, mask * (2.0 / (num_classes - 1)) - 1.0, atol=1e-6)

    run_config("mask_dcgan", "evaluate.json", {**TINY, **keys, "dataset_dir": demo_dir, "output_dir": str(out),
                                               "num_samples": 4, "batch_size": 2}, workflow_type="infer")
    metrics = json.loads((out / "eval" / "gan_metrics.json").read_text())
    assert metrics["fid"]["n_fake"] == 4 and metrics["fid"]["value"] >= 0


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(REPO / "bundles/mask_dcgan/configs/metadata.json"),
                    filepath=str(REPO / "bundles/schemas/meta_schema_generator.json"))
