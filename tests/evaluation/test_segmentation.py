# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the downstream segmentation experiment (monai_gan_aug.evaluation.segmentation, handlers.downstream)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation import segmentation as seg
from monai_gan_aug.evaluation.protocols import load_splits, preload_items
from monai_gan_aug.handlers.downstream import SegmentationEvaluationHandler
from monai_gan_aug.handlers.writer import SyntheticWriter

SIZE = 32
TINY_UNET = {"channels": (4, 8), "strides": (2,), "num_res_units": 0}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread for these tiny CPU trainings: on a shared, loaded machine two threads spin-wait for each
    other and make them tens of times slower. The previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    from monai_gan_aug.data.demo import get_demo_datalist

    return get_demo_datalist(n_patients=3, slices_per_patient=2, image_size=SIZE)


def _write(folder, images, labels=None):
    writer = SyntheticWriter(folder, formats=("nifti",))
    batch = {"image": images, "index": torch.arange(len(images)), "seed": torch.arange(len(images))}
    if labels is not None:
        batch["label"] = labels.to(torch.uint8)
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    return folder


@pytest.fixture(scope="module")
def synthetic(demo, tmp_path_factory):
    """Real training + validation slices mirrored left-right, with their masks, written as a synthetic set."""
    splits = load_splits(demo)
    pre = preload_items(splits["training"] + splits["validation"], SIZE, mask_key="label")
    return _write(tmp_path_factory.mktemp("syn") / "mirrored", torch.stack([p["image"].flip(-2) for p in pre]),
                  torch.stack([p["label"].flip(-2) for p in pre]))


def _planted(n=6, seed=0):
    """Images that are their masks (bright lesion on a dark background): a threshold segments them exactly."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, SIZE, SIZE)
    for i in range(n):
        x, y = torch.randint(2, SIZE - 10, (2,), generator=g).tolist()
        masks[i, 0, x : x + 6 + i % 3, y : y + 5] = 1
    return masks * 1.6 - 0.8, masks


class _Threshold(torch.nn.Module):
    """An oracle segmenter: two-channel logits from the intensity (foreground where the image is > 0)."""

    def forward(self, x):
        return torch.cat([-x, x], dim=1) * 10


# ---------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("name, kwargs", [("unet", TINY_UNET), ("unetpp", {"features": (4, 4, 8, 8, 8, 4)}),
                                          ("basicunet", {"features": (4, 4, 8, 8, 8, 4)})])
def test_networks_give_two_channel_logits(name, kwargs):
    net = seg.build_segmentation_network(name, num_classes=2, **kwargs)
    assert net(torch.zeros(2, 1, SIZE, SIZE)).shape == (2, 2, SIZE, SIZE)
    with pytest.raises(ValueError, match="unknown segmentation network"):
        seg.build_segmentation_network("segformer")


# ---------------------------------------------------------------------------------------------- mask fidelity
def test_mask_fidelity_planted_case():
    images, masks = _planted()
    identity = lambda x: (x > 0).float()
    r = seg.mask_fidelity(identity, images, masks, n_shuffles=3)
    assert r["dice"] == pytest.approx(1.0) and r["n_images"] == 6 and r["n_scored"] == 6
    assert r["dice_shuffled"] < 0.3 and r["gap"] > 0.7
    assert r["per_image"] == pytest.approx([1.0] * 6)
    # a generator that ignores its masks (images drawn for other masks) loses the gap
    other, _ = _planted(seed=1)
    ignored = seg.mask_fidelity(identity, other, masks, n_shuffles=3)
    assert ignored["dice"] < 0.3 and abs(ignored["gap"]) < 0.3
    # the two-channel oracle network agrees (argmax path), and empty reference masks are not scored
    masks2 = masks.clone()
    masks2[0] = 0
    r2 = seg.mask_fidelity(_Threshold(), images, masks2, shuffled=False, device="cpu")
    assert r2["n_scored"] == 5 and r2["per_image"][0] is None and r2["dice"] == pytest.approx(1.0)
    assert "dice_shuffled" not in r2


def test_mask_fidelity_errors():
    images, masks = _planted(n=2)
    with pytest.raises(ValueError, match="paired"):
        seg.mask_fidelity(lambda x: x, images, masks[:1])
    with pytest.raises(ValueError, match="at least 2"):
        seg.mask_fidelity(lambda x: (x > 0).float(), images[:1], masks[:1])
    with pytest.raises(ValueError, match="masks"):
        seg.mask_fidelity(lambda x: x, images)
    with pytest.raises(ValueError, match="image_size"):
        seg.mask_fidelity(lambda x: x, "some/folder")
    with pytest.raises(ValueError, match="returned shape"):
        seg.mask_fidelity(lambda x: x[:, :, :4], images, masks)


def test_mask_fidelity_reads_a_synthetic_set(synthetic):
    r = seg.mask_fidelity(lambda x: (x > 0.5).float(), synthetic, image_size=SIZE, n_shuffles=2)
    assert r["n_images"] == 4 and 0 <= r["dice"] <= 1


def test_predict_masks_and_evaluate_oracle(demo):
    images, masks = _planted(n=4)
    pred = seg.predict_masks(_Threshold(), images, device="cpu")
    assert pred.dtype == torch.long and torch.equal(pred, masks.long())
    test = [{"image": i, "label": m} for i, m in zip(images, masks)]
    empty = {"image": torch.full((1, SIZE, SIZE), -0.8), "label": torch.zeros(1, SIZE, SIZE)}
    m = seg.evaluate_segmenter(_Threshold(), test + [empty], image_size=SIZE, device="cpu")
    # MONAI's DiceMetric / MeanIoU on the foreground: the oracle is exact; the empty image counts in dice_all only
    assert m["dice"] == pytest.approx(1.0) and m["miou"] == pytest.approx(1.0) and m["dice_all"] == pytest.approx(1.0)
    assert (m["n_test"], m["n_test_foreground"]) == (5, 4)
    always = seg.evaluate_segmenter(lambda_net(), test + [empty], image_size=SIZE, device="cpu")
    assert always["dice_all"] < always["dice"]  # a false positive on the empty image costs in dice_all only


def lambda_net():
    class AllForeground(torch.nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros_like(x), torch.ones_like(x)], 1)

    return AllForeground()


# ---------------------------------------------------------------------------------------------- experiment
def test_train_segmenter_learns_a_planted_task():
    images, masks = _planted(n=8)
    data = [{"image": i, "label": m} for i, m in zip(images, masks)]
    hist = {}
    net = seg.train_segmenter(data, data[:4], network="unet", epochs=8, image_size=SIZE, seed=0, batch_size=8, lr=3e-2,
                              network_kwargs=TINY_UNET, device="cpu", history=hist)
    m = seg.evaluate_segmenter(net, data, image_size=SIZE, device="cpu")
    assert m["dice"] > 0.8 and hist["best_epoch"] >= 1 and hist["n_train"] == 8


def test_run_segmentation_experiment_end_to_end(demo, synthetic, tmp_path):
    kw = {"real_sizes": (5,), "n_synthetic": (0, 9), "classic_aug": (False, True), "seeds": (0, 1), "epochs": 1,
          "image_size": SIZE, "network_kwargs": TINY_UNET, "out_dir": tmp_path / "seg", "device": "cpu"}
    table = seg.run_segmentation_experiment(demo, synthetic, **kw)
    rows = table["rows"]
    # the real size is capped at the 2 training images, the synthetic count at the 4 synthetic images
    assert [(r["fields"]["n_real"], r["fields"]["n_synthetic"], r["fields"]["classic_aug"]) for r in rows] == [
        (2, 0, False), (2, 4, False), (2, 0, True), (2, 4, True),
    ]
    assert [r["key"] for r in rows[:2]] == ["real/r2_s0/noaug", "mirrored/r2_s4/noaug"]
    for r in rows:
        for k in ("dice", "miou", "dice_all"):
            s = r["metrics"][k]
            assert s["n"] == 2 and all(0.0 <= v <= 1.0 for v in s["values"])
        assert r["metrics"]["miou"]["mean"] <= r["metrics"]["dice"]["mean"] + 1e-6  # IoU <= Dice per image
    assert table["config"]["n_test"] == 2 and table["config"]["real_sizes"] == [2]
    md = (tmp_path / "seg" / "segmentation_table.md").read_text()
    assert "| 2 R + 4 S | mirrored | yes |" in md and "Dice (DF-GAN Table 1 layout)" in md
    saved = json.loads((tmp_path / "seg" / "segmentation_table.json").read_text())
    assert saved["rows"][0]["metrics"]["dice"]["values"] == rows[0]["metrics"]["dice"]["values"]
    # resume: the runs are reused, not retrained (record files untouched), and the table is the same
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "seg" / "runs").glob("*.json")}
    assert len(stamps) == 8
    again = seg.run_segmentation_experiment(demo, synthetic, **kw)
    assert [r["metrics"] for r in again["rows"]] == [r["metrics"] for r in rows]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_experiment_argument_errors(demo, synthetic, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        seg.run_segmentation_experiment(demo, synthetic, n_synthetic=[1], ratios=[1], out_dir=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        seg.run_segmentation_experiment(demo, None, seeds=[], out_dir=tmp_path)
    with pytest.raises(DatalistError, match="has no 'tissue_mask'"):
        seg.run_segmentation_experiment(demo, synthetic, label_key="tissue_mask", out_dir=tmp_path, epochs=1)
    items = load_splits(demo)
    with pytest.raises(ValueError, match="test split is empty"):
        seg.run_segmentation_experiment({"training": items["training"]}, None, out_dir=tmp_path, epochs=1, image_size=SIZE)


def test_handler_logs_table_into_engine_metrics(demo, tmp_path):
    images, masks = _planted(n=3)
    writer = SyntheticWriter(tmp_path / "gen", formats=("nifti",))
    handler = SegmentationEvaluationHandler(
        demo, tmp_path / "eval", n_synthetic=(0, 3), classic_aug=(False,), seeds=(0,), epochs=1, image_size=SIZE,
        network_kwargs=TINY_UNET, device="cpu",
    )
    batch = {"image": images, "label": masks.to(torch.uint8), "index": torch.arange(3), "seed": torch.arange(3)}
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    handler.attach(engine)  # after the writer: the writer's datalist is complete when the experiment runs
    engine.run([batch], max_epochs=1)
    keys = sorted(k for k in engine.state.metrics if k.startswith("segmentation/"))
    assert keys == sorted(f"segmentation/{r}/{m}" for r in ("real/r2_s0/noaug", "gen/r2_s3/noaug")
                          for m in ("dice", "miou", "dice_all"))
    assert all(np.isfinite(engine.state.metrics[k]) for k in keys)
    assert engine.state.segmentation_table["rows"][1]["fields"]["set"] == "gen"
    assert (tmp_path / "eval" / "segmentation_table.md").is_file()
    with pytest.raises(TypeError, match="once"):
        SegmentationEvaluationHandler(demo, tmp_path, out_dir=tmp_path)
    with pytest.raises(ValueError, match="interval"):
        SegmentationEvaluationHandler(demo, tmp_path, interval=0)


def test_command_line(demo, synthetic, tmp_path, capsys):
    table = seg.main([
        "--real", str(demo), "--synthetic", f"mine={synthetic}", "--ratios", "0,1", "--classic_aug", "0",
        "--seeds", "3", "--epochs", "1", "--image_size", str(SIZE), "--device", "cpu", "--out", str(tmp_path / "cli"),
        "--network_kwargs", json.dumps({"channels": [4, 8], "strides": [2], "num_res_units": 0}),
    ])
    assert [r["key"] for r in table["rows"]] == ["real/r2_s0/noaug", "mine/r2_s2/noaug"]
    assert table["config"]["seeds"] == [3] and "| 2 R + 2 S | mine | no |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        seg.main(["--out", str(tmp_path), "--classic_aug", "maybe"])
