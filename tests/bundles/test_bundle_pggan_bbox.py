# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""pggan_bbox bundle: tiny training through a resolution change and its resume, generation with YOLO labels from
sampled or user box sets, the fidelity evaluation, and the metadata schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, run_config, tiny_demo
from PIL import Image

NET = {"image_size": 16, "fmap_base": 32, "fmap_max": 8, "latent_size": 8}
TINY = {**NET, "batch_size": 2, "images_per_phase": 4, "save_interval": 1, "sample_interval": 1,
        "fidelity_interval": 2, "fidelity_samples": 4, "train#handlers#7#iteration_log": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    """Iterations 1-2: stable 4 px; 3-4: fade-in to 8 px (2 images per iteration, 4 per phase). Train 3, resume to 5."""
    out = tmp_path_factory.mktemp("run")
    run_config("pggan_bbox", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 3})
    first = torch.load(out / "checkpoints" / "checkpoint_3.pt", weights_only=True)
    wf = run_config("pggan_bbox", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 5})
    return out, first, wf


def growth(ckpt, entry="networks", name="generator"):
    return int(ckpt[entry][f"{name}.stage"]), float(ckpt[entry][f"{name}.alpha"])


def test_train_resumes_across_a_resolution_change(trained):
    """The growth state is in the networks' state dict (the handler sets it from the iteration): the checkpoint of
    iteration 3 is at the start of the 8 px fade-in, that of iteration 5 in the 8 px stable phase."""
    out, first, wf = trained
    assert first["trainer"]["iteration"] == 3 and first["objective"] == {}
    assert growth(first) == growth(first, "ema") == growth(first, name="discriminator") == (1, 0.0)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 5
    handler = next(h for h in wf.parser.get_parsed_content("train#handlers") if type(h).__name__ == "GanCheckpointHandler")
    assert handler.resumed_from.endswith("checkpoint_3.pt")
    grower = next(h for h in wf.parser.get_parsed_content("train#handlers") if type(h).__name__ == "ProgressiveGrowingHandler")
    assert (grower.current.resolution, grower.current.phase, grower.current.images_shown) == (8, "stable", 8)
    last = torch.load(out / "checkpoints" / "checkpoint_5.pt", weights_only=True)
    assert growth(last) == growth(last, "ema") == growth(last, name="discriminator") == (1, 1.0)
    # the box maps come from the dataset (built before the random flip, flipped with the image)
    item = wf.parser.get_parsed_content("train#dataset")[0]
    from monai_gan_aug.transforms import boxes_to_condition_map

    assert torch.equal(item["cond"], boxes_to_condition_map(item["boxes"], (16, 16)))
    assert max(os.listdir(out / "samples")) == "samples_0000005.png"
    sampler = json.loads((out / "box_sampler.json").read_text())
    assert sampler["image_size"] == [16, 16] and len(sampler["box_sets"]) == len(wf.parser.get_parsed_content("train#datalist"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in (out / "tensorboard").glob("events*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"fidelity_contrast", "fidelity_contrast_shuffled", "g_alpha", "d_gp"} <= tags
    fid = next(h for h in wf.parser.get_parsed_content("train#handlers") if type(h).__name__ == "BoxFidelityHandler")
    assert [it for it, _ in fid.history] == [4, 5]


def test_inference_writes_images_boxes_and_yolo_labels(trained, demo_dir, tmp_path):
    out, _, _ = trained
    inf = {**NET, "dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3, "batch_size": 2,
           "synthetic_dir": str(tmp_path / "syn")}
    run_config("pggan_bbox", "inference.json", inf, workflow_type="infer")
    manifest = json.loads((tmp_path / "syn" / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and manifest["checkpoint"].endswith("checkpoint_5.pt")
    assert [f["seed"] for f in manifest["files"]] == [1000000, 1000001, 1000002]
    from monai_gan_aug.transforms.conditions import BoxSampler

    sampler = BoxSampler.from_file(out / "box_sampler.json")
    for rec in manifest["files"]:
        boxes = np.asarray(rec["boxes"]).reshape(-1, 4)
        np.testing.assert_allclose(boxes, sampler.sample(rec["seed"])[0])  # the boxes are a function of the seed
        lines = (tmp_path / "syn" / rec["yolo"]).read_text().splitlines()
        assert len(lines) == len(boxes)
    nii = nib.load(tmp_path / "syn" / manifest["files"][0]["image"])
    assert nii.shape == (16, 16) and b"SYNTHETIC" in nii.header["descrip"].tobytes()
    assert Image.open(tmp_path / "syn" / manifest["files"][0]["png"]).size == (16, 16)
    datalist = json.loads((tmp_path / "syn" / "datalist.json").read_text())
    assert all("boxes" in d and d["synthetic"] for d in datalist["training"])
    assert all(d["class"] == int(len(d["boxes"]) > 0) for d in datalist["training"])  # image-level lesion label
    # same seeds, same images
    run_config("pggan_bbox", "inference.json", {**inf, "synthetic_dir": str(tmp_path / "again")}, workflow_type="infer")
    a = np.asarray(nii.dataobj)
    b = np.asarray(nib.load(tmp_path / "again" / manifest["files"][0]["image"]).dataobj)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_inference_from_a_user_box_file(trained, demo_dir, tmp_path):
    out, _, _ = trained
    box_file = tmp_path / "my_boxes.json"
    sets = [{"boxes": [[2, 3, 6, 7]], "box_labels": [0]}, {"boxes": [[1, 1, 4, 5], [9, 9, 14, 12]], "box_labels": [0, 0]}]
    box_file.write_text(json.dumps({"image_size": [16, 16], "box_sets": sets}))
    run_config("pggan_bbox", "inference.json", {**NET, "dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3,
                                                "box_file": str(box_file), "synthetic_dir": str(tmp_path / "syn")},
               workflow_type="infer")
    files = json.loads((tmp_path / "syn" / "manifest.json").read_text())["files"]
    assert [f["boxes"] for f in files] == [sets[0]["boxes"], sets[1]["boxes"], sets[0]["boxes"]]
    assert (tmp_path / "syn" / files[1]["yolo"]).read_text().splitlines()[1] == "0 0.718750 0.656250 0.312500 0.187500"


def test_evaluate_writes_fidelity_report(trained, demo_dir):
    out, _, _ = trained
    run_config("pggan_bbox", "evaluate.json", {**NET, "dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 4,
                                               "batch_size": 2}, workflow_type="infer")
    report = json.loads((out / "evaluation" / "fidelity.json").read_text())
    assert report["generated"]["num_images"] == 4 and report["real"]["num_images"] >= 1
    assert report["config"]["resolution"] == 8 and report["config"]["checkpoint"].endswith("checkpoint_5.pt")
    assert np.isfinite(report["real"]["contrast"])
    assert "| generated | 4 |" in (out / "evaluation" / "fidelity.md").read_text()


def test_evaluate_detection_hook_and_detector_recall(trained, demo_dir, tmp_path):
    """evaluate.json --run_detection true writes the Table-1 comparison for the synthetic set of inference.json; its
    real-only YOLO then serves as the fidelity report's detector (recall at requested vs control boxes)."""
    out, _, _ = trained
    syn = tmp_path / "syn"
    run_config("pggan_bbox", "inference.json", {**NET, "dataset_dir": demo_dir, "output_dir": str(out),
                                                "synthetic_dir": str(syn), "num_samples": 6}, workflow_type="infer")
    common = {**NET, "dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 4, "batch_size": 2,
              "synthetic_dir": str(syn), "evaluation_dir": str(tmp_path / "eval")}
    run_config("pggan_bbox", "evaluate.json", {
        **common, "run_detection": True, "detection#seeds": [0], "detection#epochs": 1, "detection#imgsz": 64,
        "detection#batch": 4, "detection#model": "yolov3-tinyu.yaml"}, workflow_type="infer")
    table = json.loads((tmp_path / "eval" / "detection" / "detection_table.json").read_text())
    assert [r["ratio"] for r in table["rows"]] == [0.0, 1.0]
    assert table["rows"][1]["n_synthetic"] > 0 and table["config"]["synthetic"] == [str(syn)]
    weights = tmp_path / "eval" / "detection" / "runs" / "ratio0_seed0" / "weights" / "best.pt"
    assert weights.is_file()

    run_config("pggan_bbox", "evaluate.json", {**common, "detector_weights": str(weights), "detector_conf": 0.0},
               workflow_type="infer")
    report = json.loads((tmp_path / "eval" / "fidelity.json").read_text())
    for part in ("generated", "real"):
        for key in ("recall@0.25", "recall@0.5"):
            assert 0.0 <= report[part][key] <= 1.0, (part, key, report[part])
        # 16 px images leave little room for non-overlapping control boxes: NaN when none could be placed
        assert "recall_shuffled@0.25" in report[part]
    assert "recall@0.25" in (tmp_path / "eval" / "fidelity.md").read_text()


def test_metadata_verifies():
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "bundles/pggan_bbox/configs/metadata.json",
         "--filepath", "bundles/schemas/meta_schema_generator.json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert "metadata is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]
