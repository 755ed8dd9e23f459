# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN bundle: one tiny training iteration on the demo dataset (domain B = remapped contrast, or a second
dataset), image pools in the checkpoint, inference translating A -> B with the masks kept, evaluation, metadata."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, run_config, tiny_demo

NETS = {"image_size": 32, "base_channels": 4, "n_blocks": 1}
TRAIN = {**NETS, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2, "pool_size": 3, "save_interval": 1,
         "sample_interval": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def test_train_translate_evaluate(demo_dir, tmp_path):
    out = tmp_path / "run"
    wf = run_config("cyclegan", "train.json", {**TRAIN, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    trainer = wf.parser.get_parsed_content("train#trainer")
    losses = trainer.state.output["losses"]
    assert {"g_cycle_a", "g_cycle_b", "g_idt_a", "g_adv_ab", "d_a", "d_b"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    batch = trainer.state.batch  # domain B is the inverted "T2-like" contrast of other slices
    assert batch["image_b"].shape == batch["image_a"].shape == (2, 1, 32, 32)
    ckpt = torch.load(out / "checkpoints" / "checkpoint_2.pt", weights_only=True)
    assert ckpt["objective"]["pool_a"]["images"].shape[0] == 3  # the pools are saved for an exact resume

    run_config("cyclegan", "inference.json", {**NETS, "dataset_dir": demo_dir, "output_dir": str(out), "batch_size": 2,
                                              "num_samples": 3}, workflow_type="infer")
    manifest = json.loads((out / "synthetic" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3
    rec = manifest["files"][0]
    img = np.asarray(nib.load(out / "synthetic" / rec["image"]).dataobj)
    assert img.shape == (32, 32) and -1 <= img.min() and img.max() <= 1
    assert set(np.unique(np.asarray(nib.load(out / "synthetic" / rec["label"]).dataobj))) <= {0, 1}  # mask kept

    run_config("cyclegan", "evaluate.json", {**NETS, "dataset_dir": demo_dir, "output_dir": str(out), "batch_size": 2},
               workflow_type="infer")
    metrics = json.loads((out / "eval" / "gan_metrics.json").read_text())
    assert metrics["fid"]["value"] >= 0 and metrics["fid"]["n_fake"] >= 2


def test_second_dataset_as_domain_b(demo_dir, tmp_path):
    wf = run_config("cyclegan", "train.json", {**TRAIN, "dataset_dir": demo_dir, "dataset_dir_b": demo_dir,
                                               "output_dir": str(tmp_path / "run"), "max_iterations": 1})
    assert wf.parser.get_parsed_content("remap_b") is False
    names = [t.__class__.__name__ for t in wf.parser.get_parsed_content("train#preprocessing").transforms]
    assert "Lambdad" not in names  # no contrast remap when B is real data


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(REPO / "bundles/cyclegan/configs/metadata.json"),
                    filepath=str(REPO / "bundles/schemas/meta_schema_generator.json"))
