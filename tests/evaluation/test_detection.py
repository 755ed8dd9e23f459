# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the YOLO detection experiment (monai_gan_aug.evaluation.detection / yolo_data, handlers.detection)."""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation import detection as det
from monai_gan_aug.evaluation import yolo_data as yd
from monai_gan_aug.handlers.writer import SyntheticWriter
from monai_gan_aug.transforms.boxes.array import yolo_lines_to_boxes

# ---------------------------------------------------------------------------------------------- hand-made boxes
# image 1: lesions A, B; p1 hits A exactly, p2 is a second detection of A, p3 hits B with IoU 100/150
# image 2: lesion C; q1 overlaps it with IoU 50/150 = 1/3 (a hit at 0.25 only), q2 is far away
# image 3: no lesion; r1 is a false positive
PREDS = [
    {"boxes": [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 35]], "scores": [0.9, 0.8, 0.7]},
    {"boxes": [[45, 0, 55, 10], [100, 100, 110, 110]], "scores": [0.95, 0.3]},
    {"boxes": [[0, 0, 5, 5]], "scores": [0.4]},
]
TARGETS = [
    {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "box_labels": [0, 0]},
    {"boxes": [[40, 0, 50, 10]], "box_labels": [0]},
    {"boxes": [], "box_labels": []},
]


def test_match_detections_greedy_by_score():
    tp, matched = det.match_detections(PREDS[0]["boxes"], PREDS[0]["scores"], TARGETS[0]["boxes"], 0.5)
    np.testing.assert_array_equal(tp, [True, False, True])
    np.testing.assert_array_equal(matched, [True, True])
    # the duplicate has the higher score now: it takes A (IoU 81/119), the exact box becomes the false positive
    tp, _ = det.match_detections(PREDS[0]["boxes"], [0.8, 0.9, 0.7], TARGETS[0]["boxes"], 0.5)
    np.testing.assert_array_equal(tp, [False, True, True])
    tp, matched = det.match_detections(PREDS[1]["boxes"], PREDS[1]["scores"], TARGETS[1]["boxes"], 0.5)
    assert not tp.any() and not matched.any()
    tp, matched = det.match_detections(PREDS[1]["boxes"], PREDS[1]["scores"], TARGETS[1]["boxes"], 0.25)
    np.testing.assert_array_equal(tp, [True, False])
    assert matched.all()
    # a prediction of another class never matches; empty inputs give empty answers
    tp, _ = det.match_detections([[0, 0, 10, 10]], [0.9], [[0, 0, 10, 10]], 0.5, pred_labels=[1], gt_labels=[0])
    assert not tp.any()
    tp, matched = det.match_detections(np.zeros((0, 4)), [], [[0, 0, 1, 1]])
    assert tp.shape == (0,) and matched.tolist() == [False]
    with pytest.raises(ValueError, match="pred_scores"):
        det.match_detections([[0, 0, 1, 1]], [0.1, 0.2], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="iou_threshold"):
        det.match_detections([[0, 0, 1, 1]], [0.1], [[0, 0, 1, 1]], 0.0)


def test_detection_metrics_known_answers():
    m = det.detection_metrics(PREDS, TARGETS, iou_thresholds=(0.5, 0.25), conf=0.0)
    assert (m["n_images"], m["n_gt"], m["n_pred"]) == (3, 3, 6)
    assert m["sensitivity@0.5"] == pytest.approx(2 / 3)
    assert m["fp_per_slice@0.5"] == pytest.approx(4 / 3)  # p2, q1, q2, r1
    assert m["sensitivity@0.25"] == pytest.approx(1.0)
    assert m["fp_per_slice@0.25"] == pytest.approx(1.0)  # p2, q2, r1
    # ranking q1 p1 p2 p3 r1 q2 -> TP pattern F T F T F F at 0.5: AP = 1/3 * 0.5 + 1/3 * 0.5
    assert m["map@0.5"] == pytest.approx(1 / 3)
    # T T F T F F at 0.25: AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/4
    assert m["map@0.25"] == pytest.approx(1 / 3 + 1 / 3 + 0.25)
    assert (m["tp@0.5"], m["fp@0.5"], m["tp@0.25"], m["fp@0.25"]) == (2, 4, 3, 3)
    # the detection threshold drops q2 (0.3) first
    m = det.detection_metrics(PREDS, TARGETS, conf=0.35)
    assert m["fp_per_slice@0.5"] == pytest.approx(1.0) and m["n_pred"] == 5
    with pytest.raises(ValueError, match="one per image"):
        det.detection_metrics(PREDS[:2], TARGETS)


def test_average_precision_toy_ranking():
    # TP, FP, TP over 2 objects: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 0.5 * 1 + 0.5 * 2/3
    assert det.average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 1 / 3)
    assert det.average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    assert det.average_precision([0.1, 0.9], [True, False], 1) == pytest.approx(0.5)  # ranked by score
    assert det.average_precision([], [], 3) == 0.0
    assert np.isnan(det.average_precision([0.5], [False], 0))
    with pytest.raises(ValueError, match="1:1"):
        det.average_precision([0.5, 0.4], [True, True], 1)


def test_matching_agrees_with_monai_coco_matching():
    from monai.apps.detection.metrics.matching import matching_batch
    from monai.data.box_utils import box_iou

    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(20):
        g = rng.uniform(0, 50, (rng.integers(0, 5), 2))
        p = rng.uniform(0, 50, (rng.integers(0, 8), 2))
        gts.append(np.concatenate([g, g + rng.uniform(3, 15, g.shape)], 1))
        preds.append(np.concatenate([p, p + rng.uniform(3, 15, p.shape)], 1))
    scores = [rng.uniform(0, 1, len(p)) for p in preds]
    thresholds = [0.25, 0.5]
    ref = matching_batch(
        box_iou, thresholds, preds, [np.zeros(len(p), int) for p in preds], scores, gts,
        [np.zeros(len(g), int) for g in gts], max_detections=1000,
    )
    for i, (p, s, g) in enumerate(zip(preds, scores, gts)):
        for t_idx, t in enumerate(thresholds):
            tp, matched = det.match_detections(p, s, g, t)
            r = ref[i].get(0)
            n_tp_ref = int(r["dtMatches"][t_idx].sum()) if r is not None and len(p) else 0
            n_gt_ref = int(r["gtMatches"][t_idx].sum()) if r is not None and len(g) else 0
            assert int(tp.sum()) == n_tp_ref and int(matched.sum()) == n_gt_ref


# ---------------------------------------------------------------------------------------------- export
W, H = 40, 24  # non-square on purpose: catches a swapped axis


def _save_nifti(path: Path, arr: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(arr.astype(np.float32), np.eye(4)), str(path))


def _real_dataset(root: Path, n_train: int = 4) -> tuple[Path, list[list[float]]]:
    """NIfTI images (W x H, axis 0 = x) with one bright rectangle each at a known box; 70-ish MR-like values."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    splits = {"training": [], "validation": [], "test": []}
    boxes = []
    for i in range(n_train + 2):
        x0, y0 = int(rng.integers(0, W - 12)), int(rng.integers(0, H - 10))
        x1, y1 = x0 + int(rng.integers(3, 12)), y0 + int(rng.integers(3, 10))
        arr = 100.0 + rng.normal(0, 3, (W, H))
        arr[x0:x1, y0:y1] = 900.0
        _save_nifti(root / "images" / f"r{i}.nii.gz", arr)
        item = {"image": f"images/r{i}.nii.gz", "boxes": [[x0, y0, x1, y1]], "box_labels": [0], "patient": f"p{i}"}
        split = "training" if i < n_train else ("validation" if i == n_train else "test")
        splits[split].append(item)
        boxes.append([x0, y0, x1, y1])
    path = root / "datalist.json"
    path.write_text(json.dumps({"name": "toy", "box_labels": {"0": "lesion"}, **splits}))
    return path, boxes


def _synthetic_set(out: Path, images: torch.Tensor, boxes: list, seed0: int = 100) -> Path:
    """Write ``images`` (B, 1, W, H) in [-1, 1] with their boxes through the real SyntheticWriter."""
    writer = SyntheticWriter(out, formats=("nifti", "png"))
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    batch = {
        "image": images,
        "boxes": [torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4) for b in boxes],
        "box_labels": [torch.zeros(len(b), dtype=torch.long) for b in boxes],
        "index": torch.arange(images.shape[0]),
        "seed": torch.arange(images.shape[0]) + seed0,
    }
    engine.run([batch], max_epochs=1)
    return out


def _toy_synthetic(out: Path, n: int = 10) -> Path:
    images = -torch.ones(n, 1, W, H)
    boxes = []
    for i in range(n):
        x0, y0 = 2 + i, 3 + (i % 5)
        images[i, 0, x0 : x0 + 6, y0 : y0 + 4] = 0.9 if i % 2 == 0 else -0.8  # odd ones: "unclear" lesions
        boxes.append([[x0, y0, x0 + 6, y0 + 4]])
    return _synthetic_set(out, images, boxes)


def _bright_extent(png: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    px = np.asarray(Image.open(png))
    rows, cols = np.nonzero(px > 200)
    return (cols.min(), cols.max() + 1), (rows.min(), rows.max() + 1)


def test_export_layout_and_yolo_round_trip(tmp_path):
    datalist, boxes = _real_dataset(tmp_path / "real")
    export = yd.export_yolo_dataset(datalist, tmp_path / "yolo")
    root = export.root
    assert export.counts == {"train_real": 4, "train_synthetic": 0, "val": 1, "test": 1}
    data = __import__("yaml").safe_load((root / "data.yaml").read_text())
    assert data["path"] == str(root) and data["names"] == {0: "lesion"}
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    pngs = sorted((root / "images" / "train").glob("*.png"))
    assert len(pngs) == 4 and len(list((root / "labels" / "train").glob("*.txt"))) == 4
    for png, box in zip(pngs, boxes):
        assert Image.open(png).size == (W, H) and Image.open(png).mode == "L"  # PNG width = spatial axis 0
        lines = (root / "labels" / "train" / f"{png.stem}.txt").read_text().splitlines()
        yb, yl = yolo_lines_to_boxes(lines, (W, H))
        np.testing.assert_allclose(yb[0], box, atol=1e-4)
        assert yl.tolist() == [0]
        # the drawn rectangle's pixel columns / rows are exactly the box's x / y range
        (c0, c1), (r0, r1) = _bright_extent(png)
        assert (c0, r0, c1, r1) == tuple(box)
    test_items = json.loads((root / "test.json").read_text())
    assert test_items == export.test_items and test_items[0]["boxes"] == [boxes[-1]]
    assert Path(test_items[0]["image"]).parent == root / "images" / "test"


def test_window_to_uint8_is_range_free():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(1, 16, 12))
    a = yd.window_to_uint8(img)
    np.testing.assert_array_equal(a, yd.window_to_uint8(img * 350.0 + 20.0))  # MR range vs GAN range
    assert a.shape == (16, 12) and a.dtype == np.uint8 and a.min() == 0 and a.max() == 255
    assert not yd.window_to_uint8(np.full((4, 4), 7.0)).any()
    with pytest.raises(ValueError, match="2D"):
        yd.window_to_uint8(np.zeros((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="percentiles"):
        yd.window_to_uint8(img, (50, 10))


def test_export_ratio_max_and_determinism(tmp_path, caplog):
    datalist, _ = _real_dataset(tmp_path / "real")
    syn = _toy_synthetic(tmp_path / "syn", n=10)

    def train_files(e):
        return sorted(p.name for p in (e.root / "images" / "train").glob("*.png"))

    e1 = yd.export_yolo_dataset(datalist, tmp_path / "r1", synthetic=syn, ratio=1, seed=3)
    e2 = yd.export_yolo_dataset(datalist, tmp_path / "r2", synthetic=[syn], ratio=2, seed=3)
    e05 = yd.export_yolo_dataset(datalist, tmp_path / "r05", synthetic=syn, ratio=0.5, seed=3)
    emax = yd.export_yolo_dataset(datalist, tmp_path / "rmax", synthetic=syn, ratio=2, max_synthetic=3, seed=3)
    assert [e.counts["train_synthetic"] for e in (e1, e2, e05, emax)] == [4, 8, 2, 3]
    syn1 = {n for n in train_files(e1) if n.startswith("syn_")}
    syn2 = {n for n in train_files(e2) if n.startswith("syn_")}
    assert len(syn1) == 4 and syn1 < syn2  # a larger ratio adds images to the same draw
    for e in (e1, e2):  # synthetic images only ever in train
        assert not any(p.name.startswith("syn_") for s in ("val", "test") for p in (e.root / "images" / s).glob("*"))
        assert all(not item["synthetic"] for item in e.test_items)
    # same seed -> byte-identical dataset; another seed -> another draw
    again = yd.export_yolo_dataset(datalist, tmp_path / "r1_again", synthetic=syn, ratio=1, seed=3)
    for sub in ("images/train", "labels/train", "images/test"):
        a, b = sorted((e1.root / sub).iterdir()), sorted((again.root / sub).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    other = yd.export_yolo_dataset(datalist, tmp_path / "r1_seed4", synthetic=syn, ratio=2, seed=4)
    assert {n for n in train_files(other) if n.startswith("syn_")} != syn2
    # more requested than available: all of them, with a warning
    with caplog.at_level(logging.WARNING):
        big = yd.export_yolo_dataset(datalist, tmp_path / "big", synthetic=syn, ratio=5, seed=0)
    assert big.counts["train_synthetic"] == 10 and "only 10 available" in caplog.text
    # an existing identical export is reused, a foreign folder is refused
    assert yd.export_yolo_dataset(datalist, tmp_path / "r1", synthetic=syn, ratio=1, seed=3).info == e1.info
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        yd.export_yolo_dataset(datalist, tmp_path / "foreign")


def test_synthetic_png_matches_real_windowing(tmp_path):
    """A synthetic image equal to a real one up to an intensity scaling is exported to the same PNG."""
    datalist, _ = _real_dataset(tmp_path / "real", n_train=1)
    real_item = json.loads(datalist.read_text())["training"][0]
    arr = np.asarray(nib.load(str(tmp_path / "real" / real_item["image"])).dataobj)
    scaled = torch.as_tensor((arr - arr.min()) / (arr.max() - arr.min()) * 2 - 1, dtype=torch.float32)[None, None]
    syn = _synthetic_set(tmp_path / "syn", scaled, [real_item["boxes"]])
    e = yd.export_yolo_dataset(datalist, tmp_path / "yolo", synthetic=syn, ratio=1)
    pngs = sorted((e.root / "images" / "train").glob("*.png"))
    assert [p.name[:4] for p in pngs] == ["real", "syn_"]
    a, b = (np.asarray(Image.open(p)).astype(int) for p in pngs)
    assert np.abs(a - b).max() <= 1  # float32 rounding only
    txt = [(e.root / "labels" / "train" / f"{p.stem}.txt").read_text() for p in pngs]
    assert txt[0] == txt[1]


def test_export_errors(tmp_path):
    datalist, _ = _real_dataset(tmp_path / "real")
    with pytest.raises(ValueError, match="ratio"):
        yd.export_yolo_dataset(datalist, tmp_path / "a", ratio=-1)
    with pytest.raises(ValueError, match="synthetic"):
        yd.export_yolo_dataset(datalist, tmp_path / "b", ratio=1)
    with pytest.raises(DatalistError, match="datalist.json"):
        yd.export_yolo_dataset(datalist, tmp_path / "c", synthetic=tmp_path / "nowhere", ratio=1)
    with pytest.raises(ValueError, match="max_synthetic"):
        yd.export_yolo_dataset(datalist, tmp_path / "d", max_synthetic=-2)
    vol = tmp_path / "vol.nii.gz"
    _save_nifti(vol, np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match="vol.nii.gz"):
        yd.write_yolo_item({"image": str(vol), "boxes": []}, tmp_path / "v.png", tmp_path / "v.txt")
    flat = tmp_path / "flat.nii.gz"
    _save_nifti(flat, np.zeros((8, 8)))
    nobox = tmp_path / "nobox.json"
    nobox.write_text(json.dumps({"training": [{"image": str(flat)}], "test": [{"image": str(flat)}]}))
    with pytest.raises(DatalistError, match="boxes"):
        yd.load_real_splits(nobox)
    with pytest.raises(ValueError, match="synthetic set"):
        det.run_detection_experiment(datalist, None, ratios=(0, 1), out_dir=tmp_path / "exp")
    with pytest.raises(ValueError, match="ratios"):
        det.run_detection_experiment(datalist, None, ratios=(-1,), out_dir=tmp_path / "exp")


def test_load_real_splits_is_load_splits_with_boxes_required(tmp_path):
    from monai_gan_aug.evaluation.protocols import load_splits

    datalist, _ = _real_dataset(tmp_path / "real", n_train=6)
    lists = yd.load_real_splits(datalist)
    assert [len(lists[s]) for s in ("training", "validation", "test")] == [6, 1, 1]
    assert lists == load_splits(datalist)
    # a JSON without a "validation" list: an empty split, as in load_splits
    content = json.loads(datalist.read_text())
    del content["validation"]
    (tmp_path / "real" / "noval.json").write_text(json.dumps(content))
    assert yd.load_real_splits(tmp_path / "real" / "noval.json")["validation"] == []
    # one list is split by patient with load_datalist's fractions (0.1 validation, 0.1 test), not load_splits' 0.2
    single = tmp_path / "real" / "single.json"
    single.write_text(json.dumps({"training": [it for s in ("training", "validation", "test") for it in content.get(s, [])]
                                  + [dict(content["training"][0], patient=f"q{i}") for i in range(10)]}))
    assert yd.load_real_splits(single) == load_splits(single, val_fraction=0.1, test_fraction=0.1)
    given = {"training": lists["training"], "test": lists["test"]}
    assert yd.load_real_splits(given) == {"training": lists["training"], "validation": [], "test": lists["test"]}
    with pytest.raises(DatalistError, match="the given datalist dict: no item has 'boxes'"):
        yd.load_real_splits({"training": [{"image": lists["training"][0]["image"]}]})
    with pytest.raises(DatalistError, match="all empty"):
        yd.load_real_splits({"training": []})
    with pytest.raises(DatalistError, match="has no 'image'"):
        yd.load_real_splits({"training": [{"boxes": []}]})


def test_box_contrast_filter(tmp_path, monkeypatch):
    syn = _toy_synthetic(tmp_path / "syn", n=6)

    def contrast(image, boxes):  # mean inside the box minus mean outside: negative for the "unclear" odd images
        img = np.asarray(image)[0]
        x0, y0, x1, y1 = (int(v) for v in np.asarray(boxes)[0])
        inside = np.zeros(img.shape, bool)
        inside[x0:x1, y0:y1] = True
        return float(img[inside].mean() - img[~inside].mean())

    filt = yd.BoxContrastFilter(0.5, score_fn=contrast)
    assert filt(np.zeros((1, 4, 4)), np.zeros((0, 4)))  # no box: nothing unclear, kept
    items, info = yd.collect_synthetic_items(syn, filt)
    assert (info["n_total"], info["n_kept"]) == (6, 3)
    assert all(item["box_contrast"] >= 0.5 for item in items)
    assert sorted(Path(i["image"]).name for i in items) == [f"syn_{k:06d}.nii.gz" for k in (0, 2, 4)]
    # the filter lives in evaluation.fidelity (yolo_data re-exports it); its default score is fidelity.box_contrast
    from monai_gan_aug.evaluation import fidelity, protocols

    assert yd.BoxContrastFilter is fidelity.BoxContrastFilter
    assert yd.collect_synthetic_items is protocols.collect_synthetic_items
    monkeypatch.setattr(fidelity, "box_contrast", contrast)
    items, info = yd.collect_synthetic_items(syn, det._as_filter(None, 0.5))
    assert info["n_kept"] == 3
    with pytest.raises(TypeError):
        yd.BoxContrastFilter("high")
    with pytest.raises(ValueError, match="not both"):
        det._as_filter(lambda i, b: True, 1.0)


# ---------------------------------------------------------------------------------------------- ultralytics
@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection / DNS look-up is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_ultralytics_offline_blocks_downloads(no_network, tmp_path, monkeypatch):
    first_import = "ultralytics" not in sys.modules
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    det._import_ultralytics(tmp_path / "settings")
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import USER_CONFIG_DIR, checks, downloads

    if first_import:  # ultralytics' settings file lands in the folder we gave, not in ~/.config
        assert USER_CONFIG_DIR == (tmp_path / "settings" / "Ultralytics").absolute()
        assert (USER_CONFIG_DIR / "settings.json").is_file()

    orig = downloads.safe_download
    with det.ultralytics_offline():
        with pytest.raises(det.OfflineDownloadError):
            downloads.attempt_download_asset("yolo11n.pt")  # the AMP check's weights
        font = data_utils.check_font("Arial.ttf")  # check_det_dataset's font check
        assert font is None or Path(font).is_file()
        assert not downloads.is_url("https://example.com/a.pt", check=True)
        assert not checks.check_pip_update_available()
    assert downloads.safe_download is orig
    assert no_network == []


def test_end_to_end_handler_table(tmp_path, no_network):
    """Demo data + a synthetic set written by SyntheticWriter during a generation run; the handler trains
    yolov3-tinyu for 1 epoch per row at COMPLETED and writes the table."""
    from monai.transforms import LoadImage

    from monai_gan_aug.data.demo import make_demo_dataset
    from monai_gan_aug.handlers.detection import DetectionEvaluationHandler

    datalist = make_demo_dataset(tmp_path / "demo", n_patients=5, slices_per_patient=2, image_size=64)
    train = json.loads(datalist.read_text())["training"]
    # a "perfect generator": the real training slices rescaled to [-1, 1], with their boxes
    loader = LoadImage(image_only=True, ensure_channel_first=True)
    imgs = [torch.as_tensor(np.asarray(loader(str(datalist.parent / it["image"]))), dtype=torch.float32)
            for it in train]
    imgs = torch.stack([(x - x.min()) / (x.max() - x.min()) * 2 - 1 for x in imgs])
    writer = SyntheticWriter(tmp_path / "syn", formats=("nifti",))
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    handler = DetectionEvaluationHandler(
        datalist, tmp_path / "exp", ratios=(0, 1), seeds=(0,), model="yolov3-tinyu.yaml", epochs=1, imgsz=64,
        batch=4, device="cpu",
    )
    handler.attach(engine)
    batch = {
        "image": imgs,
        "boxes": [torch.as_tensor(it["boxes"], dtype=torch.float32).reshape(-1, 4) for it in train],
        "box_labels": [torch.as_tensor(it["box_labels"], dtype=torch.long) for it in train],
        "index": torch.arange(len(train)),
        "seed": torch.arange(len(train)),
    }
    engine.run([batch], max_epochs=1)

    exp = tmp_path / "exp"
    table = json.loads((exp / "detection_table.json").read_text())
    md = (exp / "detection_table.md").read_text()
    assert [r["label"] for r in table["rows"]] == ["6 real images", "+ 6 synthetic (ratio 1)"]
    assert "| 6 real images |" in md and "FPs per slice (IoU ≥ 0.25)" in md and "Sensitivity (IoU ≥ 0.5)" in md
    for row in table["rows"]:
        assert set(det.metric_keys((0.5, 0.25))) <= set(row["metrics"])
        fp = row["metrics"]["fp_per_slice@0.5"]["mean"]
        assert fp is not None and fp >= 0
        sens = row["metrics"]["sensitivity@0.25"]["mean"]
        assert 0 <= sens <= 1
    assert table["test"]["n_images"] == 2 and table["test"]["n_gt"] > 0
    assert engine.state.metrics["detection/ratio1/sensitivity@0.5"] == table["rows"][1]["metrics"][
        "sensitivity@0.5"]["mean"]
    assert engine.state.detection_table["rows"][0]["n_synthetic"] == 0
    for run in ("ratio0_seed0", "ratio1_seed0"):
        assert (exp / "runs" / run / "weights" / "best.pt").is_file()
        preds = json.loads((exp / "runs" / run / "predictions.json").read_text())
        assert len(preds) == 2 and all(min(p["scores"], default=1) >= 0.001 for p in preds)
    assert no_network == []

    # the command line reuses the finished runs (same settings) and rewrites the same table
    weights = exp / "runs" / "ratio1_seed0" / "weights" / "best.pt"
    mtime = weights.stat().st_mtime_ns
    cli = ["--real", str(datalist), "--synthetic", str(tmp_path / "syn"), "--ratios", "0,1", "--model",
           "yolov3-tinyu.yaml", "--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--out", str(exp)]
    again = det.main([*cli, "--seeds", "0"])
    assert weights.stat().st_mtime_ns == mtime
    assert [r["metrics"] for r in again["rows"]] == [r["metrics"] for r in table["rows"]]
    # adding a seed trains only the new runs
    more = det.main([*cli, "--seeds", "0,1", "--ratios", "1"])
    assert weights.stat().st_mtime_ns == mtime
    assert (exp / "runs" / "ratio1_seed1" / "detection_metrics.json").is_file()
    assert not (exp / "runs" / "ratio0_seed1").exists()
    assert len(more["rows"]) == 1 and len(more["rows"][0]["runs"]) == 2


def test_yolo_detector_matches_file_predictions(tmp_path, no_network):
    """YoloDetector on in-memory (C, W, H) tensors gives the predictions predict_detections gives on the same images
    saved as NIfTI (same window, same box frame), and refuses missing weights with the file named."""
    from ultralytics import YOLO

    det._import_ultralytics(tmp_path / "settings")
    torch.manual_seed(0)
    with det.ultralytics_offline():
        model = YOLO("yolov3-tinyu.yaml")
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.normal(0, 1, (2, 1, 48, 32)), dtype=torch.float32)
    images[0, 0, 5:20, 4:10] = 6.0  # a bright blob, in an image that is not square (x = axis 0 = 48 columns)
    items = []
    for i, img in enumerate(images):
        _save_nifti(tmp_path / f"i{i}.nii.gz", img[0].numpy())
        items.append({"image": str(tmp_path / f"i{i}.nii.gz")})
    detector = det.YoloDetector(model, conf=0.0, imgsz=64, device="cpu")
    got = detector(images)
    ref = det.predict_detections(model, items, conf=0.0, imgsz=64, device="cpu")
    assert len(got) == 2
    for (boxes, scores), r in zip(got, ref):
        assert boxes.shape == (len(scores), 4) and len(scores) > 0
        np.testing.assert_allclose(boxes, r["boxes"], atol=1e-3)
        np.testing.assert_allclose(scores, r["scores"], atol=1e-5)
        assert boxes[:, 2].max() <= 48 + 1e-3 and boxes[:, 3].max() <= 32 + 1e-3  # array frame: x < W = 48, y < H
    assert "conf=0" in repr(detector)
    with pytest.raises(FileNotFoundError, match="missing_best.pt"):
        det.YoloDetector(tmp_path / "missing_best.pt")
    with pytest.raises(ValueError, match="conf"):
        det.YoloDetector(model, conf=2.0)
    assert no_network == []
