# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Issue 15: lesion realism of a written synthetic set: detector recall of generated vs real lesions at the
validation operating point (with controls), box contrast, FID / KID next to the real floor, bad input before any
training, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_gan_aug.evaluation import realism as R

SIZE = 32


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from monai_gan_aug.data.demo import make_demo_dataset

    return str(make_demo_dataset(tmp_path_factory.mktemp("demo"), spatial_dims=2, seed=0, n_patients=10,
                                 slices_per_patient=2, image_size=SIZE))


def _slice(rng, size=SIZE):
    """A dim disc ("brain", 0.4 +- noise) on a black background."""
    x, y = np.mgrid[:size, :size]
    disc = ((x - size / 2) ** 2 + (y - size / 2) ** 2) < (0.42 * size) ** 2
    return (disc * (0.4 + 0.03 * rng.standard_normal((size, size)))).astype(np.float32)


def _write_set(root: Path, box_sets, size=SIZE, bright=None, new=None, source=False, seed=0, sizes=None, boxes=True,
               stripes=0.0):
    """A synthetic set as SyntheticWriter lays it out: images/*.nii.gz and datalist.json with relative paths. Boxes
    listed in ``bright`` (default: all) are filled with 1.0; ``new`` lists each item's added boxes (lesion_inpaint);
    ``source`` also writes the unedited slices and names them in ``source_image``; ``stripes`` adds rows of
    alternating brightness (period 5 px along axis 1) of that amplitude inside the disc."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for i, bs in enumerate(box_sets):
        side = sizes[i] if sizes else size
        img = _slice(rng, side)
        if stripes:
            img = np.where(img > 0, img + stripes * np.sin(2 * np.pi * np.arange(side) / 5.0)[None, :], 0.0)
            img = img.astype(np.float32)
        clean = img.copy()
        for b in (bright[i] if bright is not None else bs):
            x0, y0, x1, y1 = (int(v) for v in b)
            img[x0:x1, y0:y1] = 1.0
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "images" / f"syn_{i:06d}.nii.gz"))
        item = {"synthetic": True, "image": f"images/syn_{i:06d}.nii.gz", "class": 1}
        if boxes:
            item |= {"boxes": [list(map(float, b)) for b in bs], "box_labels": [0] * len(bs)}
        if new is not None:
            item["new_boxes"] = [list(map(float, b)) for b in new[i]]
        if source:
            src = root / "sources" / f"src_{i:06d}.nii.gz"
            src.parent.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(clean, np.eye(4)), str(src))
            item["source_image"] = str(src)
        items.append(item)
    (root / "datalist.json").write_text(json.dumps({"name": "test set", "synthetic": True, "training": items}))
    return root


BOX_SETS = [[[6, 8, 10, 12]], [[20, 10, 24, 15], [9, 18, 13, 22]], [[14, 6, 18, 10]], [[10, 12, 15, 16]]]


class BlobDetector:
    """Finds the bright squares: connected components above 0.6 (images in [-1, 1]), score 0.9 each."""

    def __init__(self):
        self.calls = []

    def __call__(self, images):
        self.calls.append(images.shape[0])
        out = []
        for img in images:
            lab, n = ndimage.label(img[0].numpy() > 0.6)
            boxes = [[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in ndimage.find_objects(lab)]
            out.append((np.asarray(boxes, float).reshape(-1, 4), np.full(n, 0.9)))
        return out


class NullDetector:
    def __call__(self, images):
        return [(np.zeros((0, 4)), np.zeros(0)) for _ in images]


class EverywhereDetector:
    """Fires everywhere: boxes of 1-6 px at every position, all at score 0.9."""

    def __call__(self, images):
        size = images.shape[-1]
        boxes = [[x, y, x + s, y + s] for s in (1, 2, 3, 4, 5, 6) for x in range(size - s + 1)
                 for y in range(size - s + 1)]
        return [(np.asarray(boxes, float), np.full(len(boxes), 0.9)) for _ in images]


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a detector was trained")

    monkeypatch.setattr(R, "train_real_detector", fail)
    monkeypatch.setattr("monai_gan_aug.evaluation.detection.train_yolo", fail)


@pytest.fixture
def fixed_threshold(monkeypatch):
    """The operating point spied: record what it was chosen on, return 0.5."""
    calls = []

    def spy(predictions, items, fp_per_slice, iou=0.25):
        calls.append({"n": len(items), "boxes": [np.asarray(i["boxes"]).tolist() for i in items], "fp": fp_per_slice})
        return 0.5

    monkeypatch.setattr(R, "operating_threshold", spy)
    return calls


# ---------------------------------------------------------------------------------------------- counting
def test_lesion_recall_known_answers():
    boxes = [np.array([[0, 0, 4, 4], [10, 10, 14, 14], [20, 20, 24, 24]], float),  # real, generated, generated
             np.array([[2, 2, 6, 6], [12, 2, 16, 6]], float)]  # real, generated
    scored = [np.array([False, True, True]), np.array([False, True])]
    dets = [
        {"boxes": [[0, 0, 4, 4], [10, 10, 14, 14], [21, 21, 25, 25], [28, 28, 31, 31], [20, 20, 24, 24]],
         "scores": [0.9, 0.8, 0.7, 0.95, 0.1]},  # real hit, generated hit, IoU 9/23 with the 3rd, a FP, below threshold
        {"boxes": [[2, 2, 6, 6]], "scores": [0.9]},  # only the real lesion: no generated hit
    ]
    r = R.lesion_recall(dets, boxes, scored, threshold=0.5)
    assert r["n_lesions"] == 3 and r["n_images"] == 2
    assert r["found@0.25"] == 2 and r["recall@0.25"] == pytest.approx(2 / 3)
    assert r["found@0.5"] == 1 and r["recall@0.5"] == pytest.approx(1 / 3)
    assert r["fp_per_slice@0.25"] == pytest.approx(1 / 2) and r["fp_per_slice@0.5"] == pytest.approx(2 / 2)
    assert R.lesion_recall(dets, boxes, scored, threshold=0.0)["found@0.5"] == 2  # the 0.1 detection now counts
    exact = [{"boxes": b, "scores": np.ones(len(b))} for b in boxes]
    assert R.lesion_recall(exact, boxes, scored, 0.5)["recall@0.5"] == 1.0
    none = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0)} for _ in boxes]
    assert R.lesion_recall(none, boxes, scored, 0.5)["recall@0.25"] == 0.0


def test_control_boxes_avoid_every_box():
    boxes = [np.array([[2, 2, 6, 6], [20, 20, 24, 24]], float), np.array([[3, 3, 7, 7], [10, 10, 14, 14]], float)]
    scored = [np.array([False, True]), np.array([True, True])]
    ctrl = R.control_boxes(boxes, scored, (32, 32))
    # image 0 gets image 1's boxes minus [3, 3, 7, 7], which touches its real lesion; image 1 gets image 0's scored one
    assert ctrl[0].tolist() == [[10, 10, 14, 14]] and ctrl[1].tolist() == [[20, 20, 24, 24]]


# ---------------------------------------------------------------------------------------------- the evaluation
def test_exact_detector_gives_recall_one_and_controls_zero(demo, tmp_path, no_training, fixed_threshold):
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    det = BlobDetector()
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=det, extractor="random")
    gen = rep["recall"]["generated"]
    assert gen["n_lesions"] == 5 and gen["recall@0.25"] == 1.0 and gen["recall@0.5"] == 1.0
    assert rep["recall"]["control_generated"]["recall@0.25"] == 0.0  # nothing bright at the rolled boxes
    assert rep["recall"]["control_generated"]["n_lesions"] > 0
    assert rep["synthetic"]["kind"].startswith("whole generated") and rep["synthetic"]["image_size"] == [SIZE, SIZE]
    assert rep["detector"]["threshold"] == 0.5 and rep["detector"]["chosen_on"] == "validation"
    for f in ("realism.json", "realism.md", "realism_patches.png"):
        assert (tmp_path / "out" / f).is_file()
    md = (tmp_path / "out" / "realism.md").read_text()
    assert ">= 0.7" in md and "random_conv2d" in md


def test_silent_detector_gives_recall_zero(demo, tmp_path, no_training, fixed_threshold):
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=NullDetector(), extractor="random")
    assert rep["recall"]["generated"]["recall@0.25"] == 0.0 and rep["recall"]["real_test"]["recall@0.25"] == 0.0
    assert rep["recall"]["generated"]["found@0.5"] == 0
    assert all(t["pass"] is not True for t in rep["targets"][:2])  # 0 / 0: no pass


def test_detector_firing_everywhere_does_not_pass(demo, tmp_path, no_training, fixed_threshold):
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=EverywhereDetector(), extractor="random")
    rec = rep["recall"]
    assert rec["generated"]["recall@0.25"] == 1.0 and rec["ratio@0.25"] == 1.0  # the raw ratio is fooled...
    assert rec["control_generated"]["recall@0.25"] == 1.0 and rec["control_test"]["recall@0.25"] == 1.0
    corrected = next(t for t in rep["targets"] if "control-corrected" in t["name"])
    assert corrected["pass"] is not True  # ...the control-corrected one is not


def test_threshold_is_chosen_on_validation_not_test(demo, tmp_path, no_training, monkeypatch):
    from monai_gan_aug.evaluation.protocols import load_splits

    splits = load_splits(demo)
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    calls = []

    def spy(predictions, items, fp_per_slice, iou=0.25):
        calls.append({"n": len(items), "boxes": [np.asarray(i["boxes"]).tolist() for i in items], "fp": fp_per_slice})
        return 0.95  # above every score of the fake: nothing is kept

    monkeypatch.setattr(R, "operating_threshold", spy)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=BlobDetector(), extractor="random", operating_fp=2.0)
    assert len(calls) == 1
    call = calls[0]
    assert call["n"] == len(splits["validation"]) != len(splits["test"]) and call["fp"] == 2.0
    assert call["boxes"] == [np.asarray(i["boxes"], float).reshape(-1, 4).tolist() for i in splits["validation"]]
    assert rep["detector"]["threshold"] == 0.95
    assert rep["recall"]["generated"]["recall@0.25"] == 0.0  # the validation threshold gates every recall


def test_operating_point_rule_on_real_validation(demo, tmp_path, no_training):
    """Without the spy: the benefit rule (at most operating_fp FPs per validation slice) sets the threshold."""
    from monai_gan_aug.evaluation.protocols import load_splits

    n_val = len(load_splits(demo)["validation"])

    class Ranked:  # per image 5 far-away false positives at scores 0.9, 0.8, ... 0.5
        def __call__(self, images):
            b = np.asarray([[0, 0, 1, 1]] * 5, float)
            return [(b, np.array([0.9, 0.8, 0.7, 0.6, 0.5])) for _ in images]

    rep = R.evaluate_realism(_write_set(tmp_path / "syn", BOX_SETS), demo, tmp_path / "out", detector=Ranked(),
                             extractor="random", operating_fp=2.0)
    # 2 FPs per validation slice allowed: the (2 * n_val + 1)-th highest validation FP score must be cut
    ranked = sorted([0.9, 0.8, 0.7, 0.6, 0.5] * n_val, reverse=True)
    assert rep["detector"]["threshold"] == pytest.approx(np.nextafter(ranked[2 * n_val], 1.0))


def test_contrast_of_bright_boxes_and_added_lesions(demo, tmp_path, no_training, fixed_threshold):
    # lesion_inpaint-like: each item has a real (dim, unscored) box and a new bright one; sources recorded
    real_boxes = [[[4, 14, 8, 18]], [[22, 8, 26, 12]], [[6, 6, 10, 10]], [[18, 18, 22, 22]]]
    new_boxes = [[[14, 6, 18, 10]], [[10, 20, 14, 24]], [[20, 16, 24, 20]], [[8, 16, 12, 20]]]
    box_sets = [r + n for r, n in zip(real_boxes, new_boxes)]
    syn = _write_set(tmp_path / "syn", box_sets, bright=new_boxes, new=new_boxes, source=True)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=BlobDetector(), extractor="random")
    assert rep["synthetic"]["n_generated_boxes"] == 4 and rep["synthetic"]["n_other_boxes"] == 4
    assert "new_boxes" in rep["synthetic"]["kind"]
    c = rep["contrast"]
    assert c["generated"]["n"] == 4 and c["generated"]["mean"] > 2.0  # bright squares on a dim disc
    assert abs(c["control_generated"]["mean"]) < 0.5  # nothing at the control boxes
    assert rep["recall"]["generated"]["recall@0.5"] == 1.0 and rep["recall"]["generated"]["n_lesions"] == 4
    src = rep["recall"]["source_control"]
    assert src is not None and src["n_lesions"] == 4 and src["recall@0.25"] == 0.0  # the unedited slices: no lesion
    # the same set scored as if every box were generated: the dim real boxes pull the contrast down
    flat = _write_set(tmp_path / "flat", box_sets, bright=new_boxes)
    rep_all = R.evaluate_realism(flat, demo, tmp_path / "out2", detector=BlobDetector(), extractor="random")
    assert rep_all["contrast"]["generated"]["n"] == 8 and rep_all["contrast"]["generated"]["mean"] < c["generated"]["mean"]
    # --new_boxes_last reads the last box of each item as the added one
    rep_last = R.evaluate_realism(flat, demo, tmp_path / "out3", detector=BlobDetector(), extractor="random",
                                  new_boxes_last=1)
    assert rep_last["contrast"]["generated"]["mean"] == pytest.approx(c["generated"]["mean"])


def test_fid_and_kid_next_to_their_floor(demo, tmp_path, no_training, fixed_threshold):
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", detector=NullDetector(), extractor="random", patch_size=8)
    d = rep["distribution"]
    assert d["extractor"].startswith("random_conv2d") and d["patch_size"] == 8
    floor, pair = d["slices"]["floor_validation_vs_test"], d["slices"]["generated_vs_test"]
    assert floor["n_a"] == rep["real"]["n_validation"] and floor["n_b"] == rep["real"]["n_test"]
    assert pair["n_a"] == 4 and np.isfinite(floor["fid"]) and floor["fid"] >= 0 and np.isfinite(pair["fid"])
    assert pair["fid"] > floor["fid"]  # discs with white squares are farther from MR slices than MR slices are
    assert d["slices"]["fid_over_floor"] == pytest.approx(pair["fid"] / floor["fid"])
    p = d["patches"]
    assert p["generated_vs_test"]["n_a"] == 5 and p["generated_vs_test"]["n_b"] == rep["real"]["n_test_lesions"]
    assert np.isfinite(p["floor_validation_vs_test"]["fid"])


def test_lesion_patches_are_centred_and_inside():
    images = torch.zeros(1, 1, 32, 32)
    patches, local = R.lesion_patches(images, [np.array([[10, 10, 14, 14], [0, 0, 2, 2], [29, 28, 32, 32]], float)], 8)
    assert patches.shape == (3, 1, 8, 8)
    assert local.tolist() == [[2, 2, 6, 6], [0, 0, 2, 2], [5, 4, 8, 8]]  # the last two moved inside at the border


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_fails_before_training(demo, tmp_path, no_training):
    nobox = _write_set(tmp_path / "nobox", BOX_SETS, boxes=False)
    with pytest.raises(R.RealismError, match=r"nobox/datalist.json: no item has 'boxes'"):
        R.evaluate_realism(nobox, demo, tmp_path / "out")
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    with pytest.raises(R.RealismError, match=r"detector weights .*missing_best.pt do not exist"):
        R.evaluate_realism(syn, demo, tmp_path / "out", detector=tmp_path / "missing_best.pt")
    with pytest.raises(R.RealismError, match=r"syn_000000.nii.gz is 32x32, the set is scored at 64x64"):
        R.evaluate_realism(syn, demo, tmp_path / "out", image_size=64)
    mixed = _write_set(tmp_path / "mixed", BOX_SETS, sizes=[32, 32, 16, 32])
    with pytest.raises(R.RealismError, match=r"mixed/images/syn_000002.nii.gz is 16x16"):
        R.evaluate_realism(mixed, demo, tmp_path / "out")
    added = _write_set(tmp_path / "added", BOX_SETS, source=True)  # a lesion-adding set without 'new_boxes'
    with pytest.raises(R.RealismError, match=r"added/datalist.json: .*new_boxes_last"):
        R.evaluate_realism(added, demo, tmp_path / "out")
    with pytest.raises(R.RealismError, match=r"nowhere"):
        R.evaluate_realism(tmp_path / "nowhere", demo, tmp_path / "out")
    outside = _write_set(tmp_path / "outside", [[[28, 28, 36, 30]]] + BOX_SETS[1:])
    with pytest.raises(R.RealismError, match=r"syn_000000.nii.gz: a box .* lies outside"):
        R.evaluate_realism(outside, demo, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written either


def test_command_reports_bad_input(demo, tmp_path, no_training, capsys):
    from monai_gan_aug.realism import main

    syn = _write_set(tmp_path / "syn", BOX_SETS)
    assert main(["--synthetic_dir", str(syn), "--dataset_dir", demo, "--detector", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "none.pt do not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- detector cache
def test_detector_trained_on_real_only_and_reused(demo, tmp_path, monkeypatch, fixed_threshold):
    calls = []

    def fake_train(data_yaml, **kw):
        import yaml

        data = yaml.safe_load(Path(data_yaml).read_text())
        root = Path(data["path"])
        calls.append({"imgsz": kw["imgsz"], "train": sorted(p.name for p in (root / data["train"]).iterdir()),
                      "val": len(list((root / data["val"]).iterdir())), "mosaic": kw["mosaic"],
                      "model": kw["model"], "patience": kw["patience"]})
        best = Path(kw["project_dir"]) / kw["name"] / "weights" / "best.pt"
        best.parent.mkdir(parents=True, exist_ok=True)
        best.write_bytes(b"weights")
        return best

    made = []

    class FakeYolo(BlobDetector):
        def __init__(self, weights, conf, imgsz, device=None):
            super().__init__()
            made.append((weights, conf, imgsz))

    monkeypatch.setattr("monai_gan_aug.evaluation.detection.train_yolo", fake_train)
    monkeypatch.setattr(R, "YoloDetector", FakeYolo)
    syn = _write_set(tmp_path / "syn", BOX_SETS)
    rep = R.evaluate_realism(syn, demo, tmp_path / "out", extractor="random", detector_settings={"epochs": 1})
    assert len(calls) == 1
    c = calls[0]
    assert c["imgsz"] == SIZE and c["mosaic"] == 0.0 and c["patience"] == 15 and c["model"].endswith("-p2.yaml")
    assert len(c["train"]) == 14 and all(n.startswith("real_") for n in c["train"]) and c["val"] == 2
    assert rep["detector"]["trained_here"] and made[0][1] == R.LOW_CONF and made[0][2] == SIZE
    R.evaluate_realism(syn, demo, tmp_path / "out", extractor="random", detector_settings={"epochs": 1})
    assert len(calls) == 1 and made[1][0] == made[0][0]  # the cached weights, no second training
    R.evaluate_realism(syn, demo, tmp_path / "out", extractor="random", detector_settings={"epochs": 2})
    assert len(calls) == 2  # another recipe: another detector


def test_command_end_to_end_with_a_tiny_yolo(demo, tmp_path):
    """The whole command with a real YOLO (1 epoch at 32 px) trained on the real demo slices (21 s here, so not
    marked slow), then the same weights given with --detector."""
    from monai_gan_aug.realism import main

    syn = _write_set(tmp_path / "syn", BOX_SETS)
    out = tmp_path / "out"
    args = ["--synthetic_dir", str(syn), "--dataset_dir", demo, "--out", str(out), "--extractor", "random",
            "--detector_settings", json.dumps({"epochs": 1, "batch": 4, "device": "cpu"})]
    assert main(args) == 0
    rep = json.loads((out / "realism.json").read_text())
    weights = next(out.glob("detector_*/yolo/run/weights/*.pt"))
    assert rep["detector"]["source"] == str(weights) and rep["detector"]["trained_here"]
    assert rep["recall"]["generated"]["n_lesions"] == 5 and rep["real"]["n_test_lesions"] == 3
    assert 0.0 <= rep["detector"]["threshold"] <= 1.0
    assert main(args + ["--detector", str(weights)]) == 0  # the same weights given explicitly


def test_recall_by_size_separates_size_from_look():
    """A detector that finds every lesion of side >= 5 px and none smaller: generated lesions skewed to small sizes
    have a lower raw recall than real ones, but the same recall per size, so the size-matched ratio is 1."""
    def one(side, at=20.0):
        return np.asarray([[at, at, at + side, at + side]], float)

    def detect(boxes):
        return [{"boxes": b[(b[:, 2] - b[:, 0]) >= 5], "scores": np.full(int(((b[:, 2] - b[:, 0]) >= 5).sum()), 0.9)}
                for b in boxes]

    real = [one(2), one(6), one(10)]
    gen = [one(2), one(2), one(6), one(10)]
    out = R.recall_by_size((detect(gen), gen, [None] * 4), (detect(real), real, [None] * 3), threshold=0.5)
    assert [b["real_test"]["recall"] for b in out["bins"]] == [0.0, 1.0, 1.0]
    assert [b["generated"]["n"] for b in out["bins"]] == [2, 1, 1]
    assert out["size_matched_ratio"] == pytest.approx(1.0)
    raw = R.lesion_recall(detect(gen), gen)["recall@0.25"] / R.lesion_recall(detect(real), real)["recall@0.25"]
    assert raw == pytest.approx(0.75)
    # a generator that never makes a large lesion has no size-matched figure
    small = [one(2), one(6)]
    assert np.isnan(R.recall_by_size((detect(small), small, [None] * 2), (detect(real), real, [None] * 3), 0.5)
                    ["size_matched_ratio"])


def test_false_positives_on_generated_slices_are_reported(demo, tmp_path, no_training, fixed_threshold):
    """A generated slice with a bright blob outside its boxes (what pggan_bbox's 128 px slices provoke) raises the
    ratio of false positives per slice, generated over real, next to the recall target."""
    det = BlobDetector()
    clean = R.evaluate_realism(_write_set(tmp_path / "clean", BOX_SETS), demo, tmp_path / "o1", detector=det,
                               extractor="random")
    extra = [bs + [[24, 24, 28, 28]] for bs in BOX_SETS]  # an unlabelled bright square in every slice
    noisy = R.evaluate_realism(_write_set(tmp_path / "noisy", BOX_SETS, bright=extra), demo, tmp_path / "o2",
                               detector=det, extractor="random")
    for rep in (clean, noisy):
        row = next(t for t in rep["targets"] if t["name"].startswith("False positives per slice"))
        rec = rep["recall"]
        assert row["target"] is None and row["pass"] is None
        expected = R._ratio(rec["generated"]["fp_per_slice@0.25"], rec["real_test"]["fp_per_slice@0.25"])
        assert row["value"] == pytest.approx(expected, nan_ok=True) and rec["fp_ratio@0.25"] == row["value"] or (
            np.isnan(expected) and np.isnan(row["value"]))
    assert noisy["recall"]["generated"]["fp_per_slice@0.25"] >= clean["recall"]["generated"]["fp_per_slice@0.25"] + 1
    assert noisy["recall"]["generated"]["recall@0.25"] == clean["recall"]["generated"]["recall@0.25"] == 1.0
    assert "False positives per slice" in (tmp_path / "o2" / "realism.md").read_text()


def test_stripes_are_reported_next_to_the_real_floor(demo, tmp_path, no_training, fixed_threshold):
    """Rows of alternating brightness across the generated slices (pggan_bbox's 128 px streaks) raise the stripe
    index, on the striped axis, far above the real validation-vs-test floor; clean slices stay near it."""
    clean = R.evaluate_realism(_write_set(tmp_path / "clean", BOX_SETS), demo, tmp_path / "o1",
                               detector=NullDetector(), extractor="random")
    striped = R.evaluate_realism(_write_set(tmp_path / "striped", BOX_SETS, stripes=0.15), demo, tmp_path / "o2",
                                 detector=NullDetector(), extractor="random")
    floor = striped["spectral"]["floor_validation_vs_test"]["stripe_index"]
    assert floor == pytest.approx(clean["spectral"]["floor_validation_vs_test"]["stripe_index"])
    s_clean, s_striped = clean["spectral"]["generated_vs_test"], striped["spectral"]["generated_vs_test"]
    assert s_striped["stripe_index"] > 1.5 * s_clean["stripe_index"] and s_striped["stripe_index"] > 1.5 * floor
    assert s_striped["stripe_axis"] == 1
    row = next(t for t in striped["targets"] if t["name"].startswith("Stripe index"))
    assert row["value"] == pytest.approx(s_striped["stripe_index"]) and row["target"] is None and row["pass"] is None
    assert f"real floor {floor:.2f}" in row["note"]
    text = (tmp_path / "o2" / "realism.md").read_text()
    assert "Stripes and checkerboards" in text and "floor, real validation vs real test" in text
