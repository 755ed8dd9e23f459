# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Issue 14: the "does it help?" protocol: nested patient subsets, the generator sees its subset only, paired arms,
bad input before any training, and the whole command in quick mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monai_gan_aug.data.samplers import PairedOrderSampler
from monai_gan_aug.evaluation import benefit as B


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from monai_gan_aug.data.demo import make_demo_dataset

    return str(make_demo_dataset(tmp_path_factory.mktemp("demo"), spatial_dims=2, seed=0, n_patients=10,
                                 slices_per_patient=2, image_size=32))


def _items(n_patients, per=2):
    return [{"image": f"/data/P{p}_{s}.nii", "patient": f"P{p}"} for p in range(n_patients) for s in range(per)]


def test_nested_patient_subsets():
    items = _items(20)
    subsets = B.nested_patient_subsets(items, [1.0, 0.25, 0.5], seed=3)
    assert list(subsets) == [0.25, 0.5, 1.0]
    pats = {f: {i["patient"] for i in s} for f, s in subsets.items()}
    assert [len(p) for p in pats.values()] == [5, 10, 20]
    assert pats[0.25] <= pats[0.5] <= pats[1.0]
    for f, s in subsets.items():  # whole patients: both slices of every chosen patient
        assert len(s) == 2 * len(pats[f])
    assert B.nested_patient_subsets(items, [0.25], seed=3)[0.25] == subsets[0.25]  # same seed, same subset
    assert {i["patient"] for i in B.nested_patient_subsets(items, [0.25], seed=4)[0.25]} != pats[0.25]
    for bad in (0.0, 1.5, -0.1, True):
        with pytest.raises(B.BenefitError, match=r"\(0, 1\]"):
            B.nested_patient_subsets(items, [bad])


def test_paired_order_keeps_the_real_order():
    real_only = PairedOrderSampler(10, 10, seed=5)
    with_added = PairedOrderSampler(10, 25, seed=5)
    for epoch in range(3):
        a = real_only.order(epoch)
        b = [i for i in with_added.order(epoch) if i < 10]
        assert a == b and sorted(a) == list(range(10))
        assert sorted(with_added.order(epoch)) == list(range(25))
    assert PairedOrderSampler(10, 10, seed=6).order(0) != real_only.order(0)
    assert list(iter(real_only)) == real_only.order(0) and list(iter(real_only)) == real_only.order(1)


def test_generator_datalist_refuses_outside_files(tmp_path):
    subset = [{"image": str(tmp_path / "a.nii"), "label": str(tmp_path / "a_l.nii")}]
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"training": subset}))
    B.check_generator_data(good, subset)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"training": subset + [{"image": str(tmp_path / "poison.nii")}]}))
    with pytest.raises(B.BenefitError, match="poison.nii"):
        B.check_generator_data(bad, subset)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"training": subset, "test": subset}))
    with pytest.raises(B.BenefitError, match="'training' list only"):
        B.check_generator_data(other, subset)


def test_bad_input_fails_before_training(demo, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(B, "train_and_generate", lambda *a, **k: calls.append(a))
    monkeypatch.setitem(B.TASKS, "detection", B.SegmentationTask)  # a task that pix2pix does not serve
    with pytest.raises(B.BenefitError, match="cannot serve the detection"):
        B.run_benefit("pix2pix", "detection", demo, tmp_path)
    with pytest.raises(B.BenefitError, match="unknown task"):
        B.run_benefit("pix2pix", "nope", demo, tmp_path)
    with pytest.raises(B.BenefitError, match="no benefit protocol"):
        B.run_benefit("dcgan", "segmentation", demo, tmp_path)
    with pytest.raises(B.BenefitError, match=r"\(0, 1\]"):
        B.run_benefit("pix2pix", "segmentation", demo, tmp_path, fractions=[0.5, 2.0], quick=True)
    data = json.loads(Path(demo).read_text())
    for item in data["training"]:
        item.pop("label")
    no_labels = tmp_path / "no_labels.json"
    base = Path(demo).parent
    for split in ("training", "validation", "test"):
        for item in data[split]:
            for k in ("image", "label", "tissue"):
                if k in item:
                    item[k] = str(base / item[k])
    no_labels.write_text(json.dumps(data))
    with pytest.raises(B.BenefitError, match="no 'label'"):
        B.run_benefit("pix2pix", "segmentation", str(no_labels), tmp_path, quick=True)
    assert not calls and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_quick_run_end_to_end(demo, tmp_path, monkeypatch):
    """The whole command on tiny sizes: the generator of the small row loads only its subset's files, the arms are
    paired, the report has every arm with a verdict, and a second call reuses every run."""
    from monai_gan_aug.data import loading
    from monai_gan_aug.evaluation import segmentation

    loaded: list[str] = []
    phase = {"generator": False}
    original_call = loading.LoadMedicalImage.__call__

    def spy(self, filename, reader=None):
        if phase["generator"]:
            loaded.append(str(filename))
        return original_call(self, filename, reader)

    monkeypatch.setattr(loading.LoadMedicalImage, "__call__", spy)
    original_tg = B.train_and_generate
    per_row_files = []

    def tracked(bundle, subset, n, work, *a, **k):
        loaded.clear()
        phase["generator"] = True
        try:
            return original_tg(bundle, subset, n, work, *a, **k)
        finally:
            phase["generator"] = False
            per_row_files.append(({str(Path(i["image"]).resolve()) for i in subset}, set(loaded)))

    monkeypatch.setattr(B, "train_and_generate", tracked)
    seen = []
    original_fit = segmentation.fit_supervised

    def fit(network, train_data, *a, n_real=None, seed=0, **k):
        init = float(sum(p.double().sum() for p in network.parameters()))
        order = [i for i in PairedOrderSampler(n_real, len(train_data), seed).order(0) if i < n_real]
        first_real = [float(train_data[i]["image"].sum()) for i in order]
        seen.append((seed, n_real, init, first_real))
        return original_fit(network, train_data, *a, n_real=n_real, seed=seed, **k)

    monkeypatch.setattr(segmentation, "fit_supervised", fit)
    out = tmp_path / "benefit"
    report = B.run_benefit("pix2pix", "segmentation", demo, out, fractions=[0.5, 1.0], seeds=[0, 1], quick=True,
                           n_boot=200, progress=False)
    # the small row's generator read only its subset (the poison: every other training patient's files)
    small_subset, small_loaded = per_row_files[0]
    assert small_loaded and {str(Path(f).resolve()) for f in small_loaded if "/images/" in f} <= small_subset
    all_train = {str((Path(demo).parent / i["image"]).resolve()) for i in json.loads(Path(demo).read_text())["training"]}
    assert all_train - small_subset, "the small subset must leave patients out for the test to mean anything"
    assert not ({str(Path(f).resolve()) for f in small_loaded} & (all_train - small_subset))
    # paired: per (seed, real size) one initialisation and one real order across the 6 arms
    by_key: dict = {}
    for seed, n_real, init, first_real in seen:
        by_key.setdefault((seed, n_real), set()).add((init, tuple(first_real)))
    assert len(seen) == 2 * 7 * 2 and all(len(v) == 1 for v in by_key.values())
    arms = [a["name"] for a in report["arms"]]
    assert arms == ["real", "real+classic", "real+repeat x1+classic", "real+copy_paste x1", "real+copy_paste x1+classic",
                    "real+gan x1", "real+gan x1+classic"]
    for row in report["rows"]:
        for name, entry in row["arms"].items():
            assert np.isfinite(entry["dice_all"]["mean"])
            if name != "real+classic":
                assert entry["dice"]["vs_baseline"]["verdict"] in ("helps", "hurts", "cannot tell")
            if name.startswith("real+gan"):  # each GAN arm against copy-paste with the same classic setting
                twin = "real+copy_paste x1+classic" if name.endswith("+classic") else "real+copy_paste x1"
                assert entry["dice"]["vs_copy_paste"]["arm"] == twin
                assert entry["dice"]["vs_copy_paste"]["verdict"] in ("helps", "hurts", "cannot tell")
            else:
                assert "vs_copy_paste" not in entry["dice"]
            if name in ("real+copy_paste x1+classic", "real+gan x1+classic"):  # against the same-steps control
                assert entry["dice"]["vs_repeat"]["arm"] == "real+repeat x1+classic"
            else:
                assert "vs_repeat" not in entry["dice"]
    for ext in ("json", "md", "png"):
        assert (out / f"benefit_segmentation.{ext}").is_file()
    assert "Verdict" in (out / "benefit_segmentation.md").read_text()
    assert "vs copy-paste" in (out / "benefit_segmentation.md").read_text()
    assert "vs real+repeat, same steps" in (out / "benefit_segmentation.md").read_text()
    # resume: nothing is trained again
    seen.clear()
    again = B.run_benefit("pix2pix", "segmentation", demo, out, fractions=[0.5, 1.0], seeds=[0, 1], quick=True,
                          n_boot=200, progress=False)
    assert not seen and again["rows"][0]["arms"]["real"]["dice_all"] == report["rows"][0]["arms"]["real"]["dice_all"]
    # a synthetic image regenerated in place (same path, other bytes) retrains exactly the runs that added it
    import nibabel as nib

    (img,) = sorted((out / "generators").glob("pix2pix_50pct_*/synthetic_*/images/syn_000000.nii.gz"))
    vol = nib.load(str(img))
    nib.save(nib.Nifti1Image(np.asarray(vol.dataobj, np.float32) * 0.5, vol.affine), str(img))
    B.run_benefit("pix2pix", "segmentation", demo, out, fractions=[0.5, 1.0], seeds=[0, 1], quick=True, n_boot=200,
                  progress=False)
    n_small = report["rows"][0]["n_real"]
    assert len(seen) == 2 * 2 and {n for _, n, _, _ in seen} == {n_small}  # gan x1 with / without classic, 2 seeds


def test_detection_needs_boxes(demo, tmp_path):
    data = json.loads(Path(demo).read_text())
    base = Path(demo).parent
    for split in ("training", "validation", "test"):
        for item in data[split]:
            item["boxes"], item["box_labels"] = [], []
            for k in ("image", "label", "tissue"):
                if k in item:
                    item[k] = str(base / item[k])
    no_boxes = tmp_path / "no_boxes.json"
    no_boxes.write_text(json.dumps(data))
    with pytest.raises(B.BenefitError, match="no training item has a box"):
        B.run_benefit("pggan_bbox", "detection", str(no_boxes), tmp_path / "out", quick=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_quick_detection_run(demo, tmp_path):
    """pggan_bbox -> YOLO on tiny sizes: every arm is scored with the paper's columns, CPM and a verdict, and the
    copy-paste set keeps one box per pasted lesion."""
    out = tmp_path / "det"
    report = B.run_benefit("pggan_bbox", "detection", demo, out, fractions=[1.0], seeds=[0, 1], quick=True,
                           n_boot=100, progress=False)
    entry = report["rows"][0]["arms"]["real+gan x1"]
    assert {"sensitivity@0.25", "fp_per_slice@0.25", "sensitivity@0.5", "fp_per_slice@0.5", "cpm@0.25", "map@0.5",
            "map@0.25"} <= set(entry)
    froc = entry["curves"]["froc@0.25"]
    assert len(froc["fps_per_slice"]) == len(froc["sensitivity"]) and np.all(np.diff(froc["sensitivity"]) >= 0)
    assert (out / "benefit_detection_froc.png").is_file() and "mAP@0.5" in (out / "benefit_detection.md").read_text()
    assert entry["sensitivity@0.25"]["vs_baseline"]["verdict"] in ("helps", "hurts", "cannot tell")
    assert report["config"]["task_settings"]["imgsz"] == 64
    cp = json.loads(next((out / "copy_paste").glob("*/datalist.json")).read_text())["training"]
    import nibabel as nib
    from scipy import ndimage

    for item in cp[:5]:
        lab = np.asarray(nib.load(item["label"]).dataobj)
        _, n = ndimage.label(lab > 0)
        assert len(item["boxes"]) == n  # one box per connected lesion, old and pasted


@pytest.mark.slow
def test_benefit_handler_logs_verdict_numbers(demo, tmp_path):
    from ignite.engine import Engine

    from monai_gan_aug.handlers import BenefitHandler

    engine = Engine(lambda e, b: None)
    handler = BenefitHandler("pix2pix", "segmentation", demo, str(tmp_path / "b"), fractions=[1.0], seeds=[0, 1],
                             quick=True, n_boot=50, progress=False, copy_paste=False)
    handler.attach(engine)
    engine.run([0], max_epochs=1)
    m = engine.state.metrics
    assert {"benefit/1/real", "benefit/1/real+classic", "benefit/1/real+gan x1/delta", "benefit/1/real+gan x1/low"} <= set(m)
    assert m["benefit/1/real+gan x1/low"] <= m["benefit/1/real+gan x1/delta"] <= m["benefit/1/real+gan x1/high"]
    assert (tmp_path / "b" / "benefit_segmentation.md").is_file()
    with pytest.raises(ValueError, match="ignite Events"):
        BenefitHandler("pix2pix", "segmentation", event="NOPE")


def test_operating_threshold_is_chosen_on_the_given_images():
    gt = [{"boxes": [[0, 0, 10, 10]]}, {"boxes": []}]
    preds = [{"boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float), "scores": np.array([0.9, 0.6])},
             {"boxes": np.array([[20, 20, 30, 30], [40, 40, 45, 45]], float), "scores": np.array([0.8, 0.3])}]
    # false positives score 0.8, 0.6, 0.3 on 2 images: 1 FP/slice allows two of them
    t = B.operating_threshold(preds, gt, 1.0)
    assert 0.3 < t <= 0.3 + 1e-9
    t = B.operating_threshold(preds, gt, 0.5)  # one false positive allowed: keep 0.8, drop 0.6
    assert 0.6 < t < 0.61
    assert B.operating_threshold(preds, gt, 5.0) == 0.0


@pytest.mark.slow
def test_quick_classification_run(demo, tmp_path):
    """The third task through the same runner: no copy-paste arm (classic augmentation is its cheap alternative),
    accuracy per patient with a verdict, AUC per run."""
    report = B.run_benefit("pggan_bbox", "classification", demo, tmp_path / "cls", fractions=[1.0], seeds=[0, 1],
                           quick=True, n_boot=100, progress=False)
    assert [a["name"] for a in report["arms"]] == ["real", "real+classic", "real+repeat x1+classic", "real+gan x1",
                                                   "real+gan x1+classic"]
    assert report["rows"][0]["arms"]["real+gan x1+classic"]["accuracy"]["vs_repeat"]["arm"] == "real+repeat x1+classic"
    entry = report["rows"][0]["arms"]["real+gan x1"]
    assert 0.0 <= entry["accuracy"]["mean"] <= 1.0 and "auc" in entry
    assert entry["accuracy"]["vs_baseline"]["verdict"] in ("helps", "hurts", "cannot tell")


def test_detection_run_metrics_on_known_answers():
    """mAP and the FROC curve from a run's per-image records: a ranked hit then a miss, two lesions."""
    records = [{"n_gt": 1.0, "tp_scores@0.5": [0.9], "fp_scores@0.5": [0.8], "tp_scores@0.25": [0.9],
                "fp_scores@0.25": [0.8]},
               {"n_gt": 1.0, "tp_scores@0.5": [], "fp_scores@0.5": [], "tp_scores@0.25": [0.7], "fp_scores@0.25": [0.1]}]
    # (MONAI's compute_froc_curve_data skips the lowest score as a threshold: the FP at 0.1 keeps 0.7 in the curve)
    assert B.DetectionTask.ap(records, 0.5) == pytest.approx(0.5)  # one of two found, at precision 1
    assert B.DetectionTask.ap(records, 0.25) == pytest.approx(1.0 * 0.5 + (2 / 3) * 0.5)  # second hit after the FP
    curve = B.DetectionTask().curves(records)["froc@0.25"]
    at = dict(zip(curve["fps_per_slice"], curve["sensitivity"]))
    assert at[0.125] == pytest.approx(0.5) and at[1.0] == pytest.approx(1.0)  # 0.5 FPs/slice buys the second lesion


def test_copy_paste_arms_match_every_gan_ratio():
    arms = B.make_arms([1.0, 2.0], repeat=False)
    names = [a.name for a in arms]
    assert names == ["real", "real+classic", "real+copy_paste x1", "real+copy_paste x1+classic", "real+copy_paste x2",
                     "real+copy_paste x2+classic", "real+gan x1", "real+gan x1+classic", "real+gan x2",
                     "real+gan x2+classic"]
    for a in arms:
        twin = B.copy_paste_twin(a, arms)
        if a.added != "gan":
            assert twin is None
        else:  # the same quantity of added images and the same classic setting
            assert (twin.added, twin.ratio, twin.classic) == ("copy_paste", a.ratio, a.classic)
    assert [a.name for a in B.make_arms([2.0], copy_paste=False)] == ["real", "real+classic", "real+repeat x2+classic",
                                                                       "real+gan x2", "real+gan x2+classic"]


def test_repeat_arm_is_the_same_steps_control():
    """real + repeat x r + classic adds the subset's real images again (as many images as the other arms of ratio r,
    cycled), and every classic-augmented arm with added images is compared with the one of its ratio."""
    arms = B.make_arms([1.0, 2.5], mixed_ratios=[1.0])
    repeats = [a for a in arms if a.added == B.REPEAT]
    assert [a.name for a in repeats] == ["real+repeat x1+classic", "real+repeat x2.5+classic"]
    assert all(a.classic for a in repeats)
    for a in arms:
        twin = B.repeat_twin(a, arms)
        if a.added in ("gan", "copy_paste", B.MIXED) and a.classic:
            assert (twin.added, twin.ratio) == (B.REPEAT, a.ratio)
        else:
            assert twin is None
    subset = [{"image": f"r{k}"} for k in range(4)]
    x25 = B.added_items(repeats[1], {B.REPEAT: subset}, len(subset))
    assert [i["image"] for i in x25] == ["r0", "r1", "r2", "r3", "r0", "r1", "r2", "r3", "r0", "r1"]  # round(2.5 * 4)
    assert not any(a.added == B.REPEAT for a in B.make_arms([1.0], repeat=False))


def test_generator_key_follows_the_training_configs_not_the_metadata(tmp_path):
    import shutil

    root = tmp_path / "lesion_inpaint"
    shutil.copytree(Path(B.__file__).resolve().parents[2] / "bundles" / "lesion_inpaint" / "configs", root / "configs")
    before = B.bundle_config_digest(str(root))
    meta = root / "configs" / "metadata.json"
    meta.write_text(meta.read_text().replace('"version": "', '"version": "9'))  # a release note: same generator
    assert B.bundle_config_digest(str(root)) == before
    train = root / "configs" / "train.json"
    train.write_text(train.read_text().replace('"lambda_l1_box": 10.0', '"lambda_l1_box": 1.0'))
    assert B.bundle_config_digest(str(root)) != before  # a training setting: the generator is trained again


def test_mixed_arms_and_nested_synthetic_sets():
    arms = B.make_arms([1.0, 2.0], mixed_ratios=[2.0])
    mixed = [a for a in arms if a.added == B.MIXED]
    assert [a.name for a in mixed] == ["real+gan+copy_paste x2", "real+gan+copy_paste x2+classic"]
    for a in mixed:  # compared with copy-paste adding as many images
        twin = B.copy_paste_twin(a, arms)
        assert (twin.added, twin.ratio, twin.classic) == ("copy_paste", 2.0, a.classic)
    with pytest.raises(B.BenefitError, match="not among the ratios"):
        B.make_arms([1.0], mixed_ratios=[2.0])
    with pytest.raises(B.BenefitError, match="copy-paste"):
        B.make_arms([2.0], copy_paste=False, mixed_ratios=[2.0])
    pools = {"gan": [{"image": f"g{k}"} for k in range(20)], "copy_paste": [{"image": f"c{k}"} for k in range(20)]}
    by_name = {a.name: a for a in arms}
    x1 = B.added_items(by_name["real+gan x1"], pools, 10)
    x2 = B.added_items(by_name["real+gan x2"], pools, 10)
    assert len(x1) == 10 and len(x2) == 20 and x1 == x2[:10]  # nested: x1 does not change when x2 enlarges the pool
    mix = B.added_items(by_name["real+gan+copy_paste x2"], pools, 10)
    assert [i["image"] for i in mix] == [f"g{k}" for k in range(10)] + [f"c{k}" for k in range(10)]
    assert B.added_items(by_name["real"], pools, 10) == []


def test_content_digest_ignores_provenance(tmp_path):
    img = tmp_path / "a.nii.gz"
    img.write_bytes(b"same bytes")
    a = {"image": str(img), "boxes": [[1, 2, 3, 4]], "config_hash": "x", "checkpoint": "/a/b.pt"}
    b = {**a, "config_hash": "y", "checkpoint": "/c/d.pt"}
    assert B.content_digest([a]) == B.content_digest([b])
    assert B.content_digest([a]) != B.content_digest([{**a, "boxes": [[1, 2, 3, 5]]}])


def test_lesions_per_image_in_both_added_sets(demo, tmp_path, monkeypatch):
    """--lesions_per_image K: every copy-paste image gets K pasted lesions (one box each), the GAN's inference gets
    num_lesions K in a folder of its own (a set made with other inference settings is never reused), and a bundle
    whose inference takes no num_lesions is refused before anything runs."""
    splits = B.load_splits(demo)
    subset = [i for i in splits["training"] if i.get("boxes")][:3]
    one = B.copy_paste_set(subset, 3, tmp_path / "cp1", seed=0)
    two = B.copy_paste_set(subset, 3, tmp_path / "cp2", seed=0, num_lesions=2)
    src = {i["image"]: len(i["boxes"]) for i in subset}
    assert [len(i["boxes"]) - src[i["pasted_into"]] for i in one] == [1, 1, 1]
    assert [len(i["boxes"]) - src[i["pasted_into"]] for i in two] == [2, 2, 2]
    calls = []

    def fake_run(bundle, config, overrides, **kwargs):
        calls.append((config, dict(overrides)))

    for inf, name in (({}, "synthetic_4"), ({"num_lesions": 2}, f"synthetic_4_{B._digest({'num_lesions': 2})}")):
        assert B._generate(fake_run, "lesion_inpaint", tmp_path / "d.json", 4, tmp_path, {}, inf, 0).name == name
    assert calls[-1][0] == "inference.json" and calls[-1][1]["num_lesions"] == 2
    monkeypatch.setattr(B, "train_and_generate", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(B.BenefitError, match="num_lesions"):
        B.run_benefit("pix2pix", "segmentation", demo, tmp_path / "out", lesions_per_image=2, quick=True)


def test_steps_give_every_arm_the_same_optimizer_steps():
    """With ``steps`` the epochs follow from the training-set size, so an arm with added images takes as many optimizer
    steps as real + classic (within half an epoch); the epochs count of each loader is what the trainers build."""
    from torch.utils.data import DataLoader

    seg = B.SegmentationTask(steps=600, batch_size=16)
    for n in (1, 5, 16, 17, 24, 33, 48, 100):  # fit_supervised's loader: batch min(b, n), a single leftover dropped
        b = min(16, n)
        loader = DataLoader(list(range(n)), batch_size=b, drop_last=(n % b == 1 and n > 1))
        assert seg.steps_per_epoch(n) == len(loader)
        assert abs(seg.epochs_for(n) * len(loader) - 600) <= len(loader) / 2
    assert B.SegmentationTask(epochs=7).epochs_for(24) == 7  # by epochs unless steps is set
    det = B.DetectionTask(steps=600, batch=16)
    from ultralytics.data.build import build_dataloader

    for n in (1, 5, 16, 17, 24, 33, 48, 100):  # ultralytics' own training loader keeps a trailing single image
        loader = build_dataloader(list(range(n)), batch=16, workers=0, shuffle=True, rank=-1, device="cpu")
        assert det.steps_per_epoch(n) == len(loader), n
        assert abs(det.epochs_for(n) * len(loader) - 600) <= len(loader) / 2
    assert det.epochs_for(24) == 300 and det.epochs_for(48) == 200  # 2 and 3 batches an epoch: 600 steps each
    epochs, kw = det.yolo_schedule(48)
    assert epochs == 200 and kw["val"] is False and kw["patience"] > epochs  # no early stop, the last model
    assert kw["warmup_epochs"] * 3 == pytest.approx(0.075 * 600)  # the recipe's 3 of 40 epochs: 7.5 % of the steps
    assert kw["optimizer"] == "SGD" and kw["lr0"] == 0.01  # the recipe's other settings are kept
    for task in (B.DetectionTask, B.SegmentationTask, B.ClassificationTask):  # no 'steps' key unless given: the run
        assert "steps" not in task().settings  # records of every earlier table keep their keys (resume reuses them)
    epochs, kw = B.DetectionTask().yolo_schedule(48)  # by epochs: the recipe as it was
    assert epochs == 40 and "val" not in kw and kw["patience"] == 15
    for bad in (0, -3, 2.5, True, "600"):
        with pytest.raises(B.BenefitError, match="'steps' must be a positive integer"):
            B.DetectionTask(steps=bad).epochs_for(24)
    for bad in (-1, 0.7):  # ultralytics' AutoBatch (-1) and a memory fraction cannot be counted in steps
        with pytest.raises(B.BenefitError, match="'batch' must be a positive integer"):
            B.DetectionTask(steps=600, batch=bad).epochs_for(24)


def test_select_arms_keeps_the_baseline_and_names_unknown_arms():
    arms = B.make_arms([1.0])
    kept = B.select_arms(arms, ["real+gan x1+classic"])
    assert [a.name for a in kept] == ["real+classic", "real+gan x1+classic"]
    assert B.select_arms(arms, None) == arms
    with pytest.raises(B.BenefitError, match=r"unknown arm\(s\) \['real\+gan x2'\].*real\+gan x1\+classic"):
        B.select_arms(arms, ["real+gan x2"])


def test_steps_run_end_to_end(demo, tmp_path, monkeypatch):
    """A quick run with ``steps`` and ``--arms``: only the named arms and the baseline train, no repeat arm (real +
    classic is the same-steps control), every run takes the same optimizer steps; bad steps fail before training."""
    from monai_gan_aug.evaluation import segmentation

    with pytest.raises(B.BenefitError, match="'steps' must be a positive integer"):
        B.run_benefit("pix2pix", "segmentation", demo, tmp_path / "bad", fractions=[1.0], seeds=[0, 1], quick=True,
                      task_settings={"steps": 0}, progress=False)
    assert not (tmp_path / "bad").exists()  # nothing written
    with pytest.raises(B.BenefitError, match="unknown arm"):
        B.run_benefit("pix2pix", "segmentation", demo, tmp_path / "bad", fractions=[1.0], seeds=[0, 1], quick=True,
                      arms=["real+gan x3"], progress=False)
    assert not (tmp_path / "bad").exists()
    steps = []
    original_fit = segmentation.fit_supervised

    def fit(network, train_data, loss_function, epochs, *a, batch_size=16, val_data=None, **k):
        assert val_data is None  # the last model: no best-of-epochs pick (a smaller arm has more epochs to pick from)
        b = min(batch_size, len(train_data))
        per_epoch = len(train_data) // b if len(train_data) % b == 1 else -(-len(train_data) // b)
        steps.append((len(train_data), epochs * per_epoch, per_epoch))
        return original_fit(network, train_data, loss_function, epochs, *a, batch_size=batch_size, val_data=val_data,
                            **k)

    monkeypatch.setattr(segmentation, "fit_supervised", fit)
    report = B.run_benefit("pix2pix", "segmentation", demo, tmp_path / "out", fractions=[1.0], seeds=[0, 1],
                           quick=True, task_settings={"steps": 12}, arms=["real+gan x1+classic"], n_boot=100,
                           progress=False)
    assert [a["name"] for a in report["arms"]] == ["real+classic", "real+gan x1+classic"]
    assert report["config"]["repeat"] is False and report["config"]["arms"] == ["real+classic", "real+gan x1+classic"]
    sizes = sorted({n for n, _, _ in steps})
    assert len(sizes) == 2 and sizes[1] == 2 * sizes[0]  # real + classic and real + 1x GAN images
    assert all(abs(s - 12) <= per / 2 for _, s, per in steps), steps  # the same steps (whole epochs) whatever the size
    assert "same 12 optimizer steps" in (tmp_path / "out" / "benefit_segmentation.md").read_text()
    entry = report["rows"][0]["arms"]["real+gan x1+classic"]["dice"]
    assert "vs_repeat" not in entry and entry["vs_baseline"]["verdict"] in ("helps", "hurts", "cannot tell")


def test_cli_arms_and_steps_errors_are_the_last_line(demo, tmp_path, capsys):
    from monai_gan_aug import benefit as cli

    base = ["--bundle", "lesion_inpaint", "--task", "detection", "--dataset_dir", demo, "--out", str(tmp_path / "o"),
            "--fractions", "1.0", "--seeds", "0", "1", "--quick"]
    assert cli.main(base + ["--arms", "real+gan x1+classic", "real+gan x7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: unknown arm(s) ['real+gan x7']") and "real+copy_paste x1+classic" in err
    assert cli.main(base + ["--task_settings", '{"steps": -5}']) == 2
    assert "'steps' must be a positive integer" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()
