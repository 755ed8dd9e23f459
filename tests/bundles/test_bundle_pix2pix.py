# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix bundle: one tiny training iteration on the demo dataset, inference writing image + label pairs,
the "output honours its mask" evaluation, two-stage generation from the mask DCGAN, receptive fields, metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, run_config, tiny_demo
from monai.bundle import ConfigParser

from monai_gan_aug.engines.bundles import bundle_config_files
from monai_gan_aug.networks.blocks.patchgan import patchgan_receptive_field

TINY = {"image_size": 16, "base_channels": 4, "max_channels": 16}
TRAIN = {**TINY, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2, "save_interval": 1, "sample_interval": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pix2pix") / "run"
    run_config("pix2pix", "train.json", {**TRAIN, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    return out


def _labels(path):
    return np.asarray(nib.load(path).dataobj)


def test_train_writes_checkpoints_and_samples(trained):
    assert "checkpoint_2.pt" in os.listdir(trained / "checkpoints")
    assert max(os.listdir(trained / "samples")) == "samples_0000002.png"
    ckpt = torch.load(trained / "checkpoints" / "checkpoint_2.pt", weights_only=True)
    assert {"generator", "discriminator"} <= {k.split(".")[0] for k in ckpt["networks"]}


def test_inference_writes_image_and_label_pairs(trained, demo_dir):
    overrides = {**TINY, "dataset_dir": demo_dir, "output_dir": str(trained), "batch_size": 2}
    run_config("pix2pix", "inference.json", overrides, workflow_type="infer")
    syn = trained / "synthetic"
    manifest = json.loads((syn / "manifest.json").read_text())
    n_train = len(json.loads(Path(demo_dir).read_text())["training"])
    assert manifest["num_samples"] == n_train and manifest["checkpoint"].endswith("checkpoint_2.pt")
    rec = manifest["files"][0]
    img = nib.load(syn / rec["image"])
    assert img.shape == (16, 16) and b"SYNTHETIC" in img.header["descrip"].tobytes()
    arr = np.asarray(img.dataobj)
    assert -1 <= arr.min() and arr.max() <= 1
    lab = _labels(syn / rec["label"])
    assert lab.shape == (16, 16) and set(np.unique(lab)) <= {0, 1}  # label_values [4]: the lesion class of the map
    assert (syn / rec["png"]).is_file() and (syn / "labels" / os.path.basename(rec["png"])).is_file()
    datalist = json.loads((syn / "datalist.json").read_text())
    assert all("label" in d and d["synthetic"] for d in datalist["training"])
    # the same seeds (and the same mask deformations) regenerate the same files
    run_config("pix2pix", "inference.json", {**overrides, "synthetic_dir": str(trained / "again")}, workflow_type="infer")
    np.testing.assert_allclose(np.asarray(nib.load(trained / "again" / rec["image"]).dataobj), arr, atol=1e-6)
    np.testing.assert_array_equal(_labels(trained / "again" / rec["label"]), lab)


def test_evaluate_honours_mask(trained, demo_dir):
    overrides = {**TINY, "dataset_dir": demo_dir, "output_dir": str(trained), "batch_size": 2, "segmenter_epochs": 1}
    wf = run_config("pix2pix", "evaluate.json", overrides, workflow_type="infer")
    result = json.loads((trained / "eval" / "honours_mask.json").read_text())
    assert {"dice", "dice_shuffled", "margin", "n"} <= set(result) and result["n"] >= 2
    assert set(result["dice_per_class"]) == {"1", "2", "3", "4"}
    metrics = json.loads((trained / "eval" / "gan_metrics.json").read_text())
    assert metrics["fid"]["value"] >= 0 and "kid" in metrics
    assert (trained / "eval" / "segmenter.pt").is_file()  # the reference segmenter, reusable via segmenter_checkpoint
    assert wf.parser.get_parsed_content("downstream_segmentation") is None  # the hook of the downstream U-Net table


def test_two_stage_generation_needs_no_annotation(trained, demo_dir, tmp_path):
    masks = tmp_path / "mask_dcgan"
    run_config("mask_dcgan", "train.json", {"image_size": 16, "base_channels": 4, "latent_size": 8, "batch_size": 2,
                                            "dataset_dir": demo_dir, "output_dir": str(masks), "max_iterations": 1,
                                            "save_interval": 1, "sample_interval": 1})
    overrides = {**TINY, "dataset_dir": demo_dir, "output_dir": str(trained), "mask_output_dir": str(masks),
                 "mask_latent_size": 8, "mask_base_channels": 4, "num_samples": 3, "batch_size": 2,
                 "synthetic_dir": str(tmp_path / "pairs")}
    run_config("pix2pix", "inference_two_stage.json", overrides, workflow_type="infer")
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and [f["seed"] for f in manifest["files"]] == [3000000, 3000001, 3000002]
    for rec in manifest["files"]:
        assert nib.load(tmp_path / "pairs" / rec["image"]).shape == (16, 16)
        assert set(np.unique(_labels(tmp_path / "pairs" / rec["label"]))) <= {0, 1}

    # the honours-mask check of the two-stage pairs (evaluate.json + the evaluate_two_stage.json overlay)
    ev = {**overrides, "segmenter_epochs": 1, "num_samples": 4}
    ev.pop("synthetic_dir")
    run_config("pix2pix", ["evaluate.json", "evaluate_two_stage.json"], ev, workflow_type="infer")
    result = json.loads((trained / "eval_two_stage" / "honours_mask.json").read_text())
    assert result["n"] == 4 and {"dice", "dice_shuffled", "margin"} <= set(result)
    assert (trained / "eval_two_stage" / "segmenter.pt").is_file()


@pytest.mark.parametrize("field", [10, 22, 46, 70])
def test_configured_receptive_field_is_built(field):
    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files("pix2pix", "train.json")])  # with common.json
    parser["receptive_field"] = field
    parser["d_base_channels"] = 2
    assert patchgan_receptive_field(parser.get_parsed_content("discriminator_def")) == field


def test_metadata_verifies():
    from monai.bundle import verify_metadata

    # in-process (the schema is the offline copy, so nothing is downloaded); raises ValueError when invalid
    verify_metadata(meta_file=str(REPO / "bundles/pix2pix/configs/metadata.json"),
                    filepath=str(REPO / "bundles/schemas/meta_schema_generator.json"))


def test_image_condition_trains(demo_dir, tmp_path):
    """Any image can be the condition (cond_mode image): it is resized linearly and scaled to [-1, 1] as well."""
    wf = run_config("pix2pix", "train.json", {**TRAIN, "dataset_dir": demo_dir, "output_dir": str(tmp_path / "run"),
                                              "cond_mode": "image", "cond_key": "tissue", "label_values": None,
                                              "max_iterations": 1})
    batch = wf.parser.get_parsed_content("train#trainer").state.batch
    cond = batch["tissue"]
    assert cond.shape == (2, 1, 16, 16) and cond.min() >= -1 and cond.max() <= 1
    assert not torch.all(cond == cond.round())  # linearly interpolated, not a label map any more
