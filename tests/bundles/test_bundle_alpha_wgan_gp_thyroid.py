# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""alpha-WGAN-GP bundle, ``evaluate_thyroid.json``: the thyroid paper's protocol (Table I metrics on every named
synthetic set, Table II segmentation for the sets with masks) run through the config on two tiny synthetic sets."""

from __future__ import annotations

import json
import math

import pytest
import torch
from bundle_utils import chain_text, run_config, tiny_demo
from ignite.engine import Engine

from monai_gan_aug.evaluation import protocols as pr
from monai_gan_aug.handlers import SyntheticWriter

SIZE = 32  # tiny_demo's image side
# every cost of the protocol at its smallest: 2 metric tests of 4 images, 1 segmentation epoch at 32 px (the
# config's default U-Net halves the side 4 times; batch norm needs more than a 1 x 1 bottleneck)
TINY = {"n_tests": 2, "n_images": 4, "msssim_tests": 2, "msssim_images": 3, "feature_size": 8,
        "segmentation_epochs": 1, "segmentation_seeds": [0], "n_synthetic": [0, 2], "segmentation_image_size": 32,
        "device": "$torch.device('cpu')"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


def _write_set(folder, images, labels=None):
    """A synthetic set in the SyntheticWriter layout (NIfTI files + datalist.json), written as inference does."""
    writer = SyntheticWriter(str(folder), formats=("nifti",))
    batch = {"image": images, "index": torch.arange(len(images)), "seed": torch.arange(len(images))}
    if labels is not None:
        batch["label"] = labels.to(torch.uint8)
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    return str(folder)


@pytest.fixture(scope="module")
def synthetic_sets(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    # with masks: the real training slices mirrored left-right, masks mirrored with them
    train = pr.load_splits(demo_dir)["training"]
    pre = pr.preload_items(train, SIZE, mask_key="label")
    masked = _write_set(root / "mirrored", torch.stack([p["image"].flip(-2) for p in pre]),
                        torch.stack([p["label"].flip(-2) for p in pre]))
    # without masks: uniform noise images
    g = torch.Generator().manual_seed(0)
    noise = _write_set(root / "noise", torch.rand(4, 1, SIZE, SIZE, generator=g) * 2 - 1)
    return {"mirrored": masked, "noise": noise}


def _overrides(demo_dir, sets, out):
    return {**TINY, "dataset_dir": demo_dir, "synthetic_sets": sets, "evaluation_dir": str(out),
            "output_dir": str(out.parent)}


def test_evaluate_thyroid_config(demo_dir, synthetic_sets, tmp_path):
    out = tmp_path / "thyroid"
    run_config("alpha_wgan_gp", "evaluate_thyroid.json", _overrides(demo_dir, synthetic_sets, out),
               workflow_type="infer")
    for name in ("thyroid_table1.json", "thyroid_table1.md", "thyroid_protocol.json", "thyroid_protocol.md"):
        assert (out / name).is_file(), name

    # Table I: one row per synthetic set, then the real split's row
    table1 = json.loads((out / "thyroid_table1.json").read_text())
    rows = {r["key"]: r for r in table1["rows"]}
    assert list(rows) == ["mirrored", "noise", "real"]
    assert table1["config"]["n_tests"] == 2 and table1["config"]["msssim"]["n_images"] == 3
    for name in ("mirrored", "noise"):
        m = rows[name]["metrics"]
        assert math.isfinite(m["mmd"]["mean"]) and m["mmd"]["mean"] >= 0, (name, m["mmd"])
        assert math.isfinite(m["1nn"]["mean"]) and 0 <= m["1nn"]["mean"] <= 1, (name, m["1nn"])
    assert rows["real"]["metrics"]["mmd"]["mean"] is None and rows["real"]["metrics"]["1nn"]["mean"] is None
    assert rows["mirrored"]["fields"]["n"] == len(pr.load_splits(demo_dir)["training"])
    assert rows["noise"]["fields"]["n"] == 4

    # Table II: segmentation rows for the set with masks only; the other is listed as skipped
    result = json.loads((out / "thyroid_protocol.json").read_text())
    assert result["segmentation_skipped"] == ["noise"]
    seg_rows = result["segmentation"]["rows"]
    assert [(r["fields"]["n_synthetic"], r["fields"]["set"]) for r in seg_rows] == [(0, "-"), (2, "mirrored")]
    assert result["segmentation"]["config"]["epochs"] == 1
    md = (out / "thyroid_protocol.md").read_text()
    assert "| Method | Images | MMD | 1-NN | MS-SSIM |" in md
    assert "No segmentation rows for noise" in md


def test_evaluate_thyroid_missing_set_names_path(demo_dir, synthetic_sets, tmp_path):
    missing = tmp_path / "no_such_run" / "synthetic"
    sets = {"mirrored": synthetic_sets["mirrored"], "absent": str(missing)}
    with pytest.raises(Exception) as info:
        run_config("alpha_wgan_gp", "evaluate_thyroid.json", _overrides(demo_dir, sets, tmp_path / "thyroid"),
                   workflow_type="infer")
    text = chain_text(info.value)
    assert str(missing) in text, text
    assert "DatalistError" in text, text
