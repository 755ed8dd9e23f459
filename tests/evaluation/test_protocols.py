# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the downstream-evaluation plumbing: result tables, draws, loading, training, the thyroid protocol."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation import protocols as pr
from monai_gan_aug.evaluation import tables as tb
from monai_gan_aug.evaluation import thyroid as th
from monai_gan_aug.handlers.writer import SyntheticWriter

SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread for these tiny CPU trainings: on a shared, loaded machine two threads spin-wait for each
    other and make them tens of times slower. The previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo():
    from monai_gan_aug.data.demo import get_demo_datalist

    return get_demo_datalist(n_patients=3, slices_per_patient=2, image_size=SIZE)


def _write_set(folder, images, labels=None, classes=None, formats=("nifti",)):
    writer = SyntheticWriter(folder, formats=formats)
    batch = {"image": images, "index": torch.arange(len(images)), "seed": torch.arange(len(images))}
    if labels is not None:
        batch["label"] = labels.to(torch.uint8)
    if classes is not None:
        batch["class"] = classes
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    return folder


@pytest.fixture(scope="module")
def flipped_set(demo, tmp_path_factory):
    """Synthetic stand-in: the real training + validation slices mirrored left-right (axis 0 = x), with masks."""
    splits = pr.load_splits(demo)
    pre = pr.preload_items(splits["training"] + splits["validation"], SIZE, mask_key="label")
    images = torch.stack([p["image"].flip(-2) for p in pre])
    labels = torch.stack([p["label"].flip(-2) for p in pre])
    classes = torch.tensor([int(p["label"].any()) for p in pre])
    return _write_set(tmp_path_factory.mktemp("syn") / "flipped", images, labels, classes)


@pytest.fixture(scope="module")
def noise_set(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    return _write_set(tmp_path_factory.mktemp("syn") / "noise", torch.rand(6, 1, SIZE, SIZE, generator=g) * 2 - 1,
                      formats=("png",))


# ---------------------------------------------------------------------------------------------- tables
def test_summarize_known_answers():
    s = tb.summarize([1.0, 2.0, 3.0])
    assert s["mean"] == pytest.approx(2.0) and s["std"] == pytest.approx(1.0)  # sample std, ddof = 1
    assert s["sem"] == pytest.approx(1 / math.sqrt(3)) and s["n"] == 3
    s = tb.summarize([0.5, None, float("nan"), 0.7, float("inf")])
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(math.sqrt(0.02))
    assert s["values"] == [0.5, None, None, 0.7, None]
    s = tb.summarize([0.25])
    assert (s["mean"], s["std"], s["sem"], s["n"]) == (0.25, 0.0, 0.0, 1)
    s = tb.summarize([None])
    assert s["mean"] is None and s["std"] is None and s["n"] == 0
    with pytest.raises(TypeError, match="sequence"):
        tb.summarize(0.5)


def test_aggregate_and_format():
    agg = tb.aggregate_runs([{"dice": 0.5, "miou": 0.4}, {"dice": 0.7}])
    assert list(agg) == ["dice", "miou"]
    assert agg["dice"]["mean"] == pytest.approx(0.6) and agg["dice"]["std"] == pytest.approx(math.sqrt(0.02))
    assert agg["miou"]["n"] == 1 and agg["miou"]["values"] == [0.4, None]
    assert tb.format_summary(agg["dice"]) == "0.600 ± 0.141"
    assert tb.format_summary(agg["dice"], digits=2, spread="sem") == "0.60 ± 0.10"
    assert tb.format_summary(agg["miou"]) == "0.400"
    assert tb.format_summary(None) == "n/a"
    with pytest.raises(ValueError, match="empty"):
        tb.aggregate_runs([])
    with pytest.raises(ValueError, match="spread"):
        tb.format_summary(agg["dice"], spread="var")


def test_table_markdown_pivot_and_files(tmp_path):
    rows = [
        {"label": "a", "fields": {"data": "50 R", "aug": False}, "metrics": tb.aggregate_runs([{"dice": 0.2}, {"dice": 0.4}])},
        {"label": "b", "fields": {"data": "50 R + 50 S", "aug": False}, "metrics": tb.aggregate_runs([{"dice": 0.3}])},
        {"label": "c", "fields": {"data": "50 R", "aug": True}, "metrics": tb.aggregate_runs([{"dice": None}])},
    ]
    table = tb.make_table("T", [("dice", "Dice")], rows, fields=[("data", "Data"), ("aug", "Aug.")], config={"seeds": (0, 1)},
                          notes=["note"], extra_entry=np.float32(1.5))
    assert table["config"]["seeds"] == [0, 1] and table["extra_entry"] == 1.5
    md = tb.table_markdown(table)
    lines = md.splitlines()
    assert lines[0] == "T" and "note" in lines
    assert "| Data | Aug. | Dice |" in lines
    assert "| 50 R | no | 0.300 ± 0.141 |" in lines and "| 50 R | yes | n/a |" in lines
    grid = tb.pivot_markdown(table, "dice", "aug", "data").splitlines()
    assert "| Aug. | 50 R | 50 R + 50 S |" in grid
    assert "| no | 0.300 ± 0.141 | 0.300 |" in grid and "| yes | n/a | - |" in grid
    with pytest.raises(ValueError, match="no row"):
        tb.pivot_markdown(table, "auc", "aug", "data")
    with pytest.raises(ValueError, match="metrics"):
        tb.make_table("T", ["dice"], [{"label": "x"}])
    jpath, mpath = tb.write_table(table, tmp_path / "out", "t")
    assert json.loads(jpath.read_text())["rows"][0]["metrics"]["dice"]["n"] == 2
    assert mpath.read_text() == md
    # plain metric keys as columns (the detection table's form) also work
    assert "| a | 0.300 ± 0.141 |" in tb.table_markdown({"title": "D", "columns": ["dice"], "rows": rows[:1]})


def test_run_records_resume_only_with_same_config(tmp_path):
    path = tmp_path / "runs" / "r.json"
    tb.save_run_record(path, {"seed": 0, "sizes": (1, 2)}, {"dice": np.float64(0.5), "bad": float("nan")})
    assert tb.load_run_record(path, {"seed": 0, "sizes": [1, 2]}) == {"dice": 0.5, "bad": None}
    assert tb.load_run_record(path, {"seed": 1, "sizes": [1, 2]}) is None
    assert tb.load_run_record(tmp_path / "missing.json", {}) is None
    path.write_text("{not json")
    assert tb.load_run_record(path, {"seed": 0, "sizes": [1, 2]}) is None


def test_json_safe_is_the_one_in_utils():
    from pathlib import Path

    from monai_gan_aug.utils.misc import json_safe

    assert tb.json_safe is json_safe
    value = {1: (np.float32(0.5), np.int64(3), np.bool_(True)), "a": np.array([[1, 2]]), "nan": float("nan"),
             "inf": np.float64("inf"), "p": Path("/x/y"), "t": torch.tensor(2.5), "s": {4}, "o": object, "n": None}
    out = json_safe(value)
    assert out == {"1": [0.5, 3, True], "a": [[1, 2]], "nan": None, "inf": None, "p": "/x/y", "t": 2.5, "s": [4],
                   "o": str(object), "n": None}
    assert type(out["1"][2]) is bool and type(out["1"][1]) is int
    json.dumps(out, allow_nan=False)


# ---------------------------------------------------------------------------------------------- draws
def test_draw_subset_nested_and_stratified():
    items = list(range(20))
    small, large = pr.draw_subset(items, 5, seed=3), pr.draw_subset(items, 12, seed=3)
    assert len(small) == 5 and len(large) == 12 and set(small) <= set(large)
    assert pr.draw_subset(items, 5, seed=3) == small and pr.draw_subset(items, 5, seed=4) != small
    classes = [0] * 17 + [1] * 3
    for seed in range(5):
        pick = pr.draw_subset(items, 4, seed=seed, stratify=classes)
        assert len(pick) == 4 and any(classes[i] == 1 for i in pick) and any(classes[i] == 0 for i in pick)
    assert len(pr.draw_subset(items, 20, 0, stratify=classes)) == 20
    with pytest.raises(ValueError, match="n must be"):
        pr.draw_subset(items, 21, 0)
    with pytest.raises(ValueError, match="stratify"):
        pr.draw_subset(items, 2, 0, stratify=[0, 1])


def test_synthetic_counts():
    assert pr.synthetic_counts(100, n_synthetic=(0, 32, 64), available=50) == [0, 32, 50]
    assert pr.synthetic_counts(50, ratios=(0, 1, 2)) == [0, 50, 100]
    assert pr.synthetic_counts(50, ratios=(0, 1, 2), available=60) == [0, 50, 60]
    assert pr.synthetic_counts(10, n_synthetic=(0, 20, 30), available=5) == [0, 5]
    assert pr.synthetic_counts(7, available=10) == [0, 7] and pr.synthetic_counts(7, available=0) == [0]
    with pytest.raises(ValueError, match="not both"):
        pr.synthetic_counts(10, n_synthetic=[1], ratios=[1])
    with pytest.raises(ValueError, match="ratios"):
        pr.synthetic_counts(10, ratios=[-1])
    with pytest.raises(ValueError, match="n_synthetic"):
        pr.synthetic_counts(10, n_synthetic=[1.5])


def test_arm_grid_rows():
    pools = {"a": list(range(3)), "b": list(range(10))}
    # the real-only row once per size, then each set's amounts capped by its size (duplicates dropped)
    assert list(pr.arm_grid([2, 5], pools, n_synthetic=(0, 4))) == [
        (2, "a", 0), (2, "a", 3), (2, "b", 4), (5, "a", 0), (5, "a", 3), (5, "b", 4)]
    assert list(pr.arm_grid([4], pools, ratios=(0, 1))) == [(4, "a", 0), (4, "a", 3), (4, "b", 4)]
    assert list(pr.arm_grid([4], pools)) == [(4, "a", 0), (4, "a", 3), (4, "b", 4)]  # default: 0 and n_real
    assert list(pr.arm_grid([1, 3], {}, n_synthetic=(0, 8))) == [(1, None, 0), (3, None, 0)]


def test_draw_training_data_nested_and_paired():
    train = [{"i": i} for i in range(10)]
    pool = [{"s": i} for i in range(6)]
    real_only = pr.draw_training_data(train, 4, seed=1)
    with_syn = pr.draw_training_data(train, 4, seed=1, pool=pool, n_syn=3)
    assert with_syn[:4] == real_only and len(with_syn) == 7  # the same real items first, then the synthetic ones
    order = np.random.default_rng([1, 1]).permutation(6)[:3]
    assert with_syn[4:] == [pool[i] for i in order]
    assert set(map(str, pr.draw_training_data(train, 2, seed=1))) <= set(map(str, real_only))  # nested sizes
    strat = pr.draw_training_data(train, 2, seed=0, stratify=[0] * 8 + [1] * 2)
    assert {d["i"] >= 8 for d in strat} == {True, False}
    with pytest.raises(ValueError, match="without a pool"):
        pr.draw_training_data(train, 2, seed=0, n_syn=1)


def test_cached_run_resumes_only_with_same_config(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"metrics": {"dice": np.float64(0.25)}, "bad": float("nan")}

    path = pr.run_file(tmp_path / "runs", "set/r2_s1/noaug", 3)
    assert path == tmp_path / "runs" / "set_r2_s1_noaug_seed3.json"
    assert pr.cached_run(path, {"seed": 3}, True, compute) == {"metrics": {"dice": 0.25}, "bad": None}
    assert pr.cached_run(path, {"seed": 3}, True, compute) == {"metrics": {"dice": 0.25}, "bad": None}
    assert len(calls) == 1 and path.is_file()
    pr.cached_run(path, {"seed": 4}, True, compute)  # other settings: run again
    pr.cached_run(path, {"seed": 4}, False, compute)  # no resume: run again
    assert len(calls) == 3


def test_arm_row_and_names(tmp_path):
    runs = [{"metrics": {"dice": 0.2, "miou": 0.1}, "train_seconds": 2.0},
            {"metrics": {"dice": 0.4, "miou": None}, "train_seconds": 4.0}]
    row = pr.arm_row("2 R", "real/r2_s0/noaug", {"n_real": 2}, runs, (("dice", "Dice"), ("miou", "mIoU")),
                     tmp_path, (0, 1))
    assert list(row) == ["label", "key", "fields", "metrics", "train_seconds", "runs"]
    assert row["metrics"]["dice"]["mean"] == pytest.approx(0.3) and row["metrics"]["miou"]["n"] == 1
    assert row["train_seconds"]["mean"] == pytest.approx(3.0)
    assert row["runs"] == [str(tmp_path / "real_r2_s0_noaug_seed0.json"), str(tmp_path / "real_r2_s0_noaug_seed1.json")]
    assert pr.slug("WGAN-GP / ours") == "WGAN-GP_ours" and pr.slug("") == "set"
    assert pr.data_label(50, 0) == "50 R" and pr.data_label(50, 25) == "50 R + 25 S"
    assert pr.network_name("unet") == "unet" and pr.network_name(torch.nn.Identity) == "Identity"
    assert pr.source_name("a/b.json") == "a/b.json" and pr.source_name({"training": []}) == "dict"
    assert pr.source_name(None) == "None" and pr.source_name([]) == "list"


# ---------------------------------------------------------------------------------------------- loading
def test_load_splits_and_preload(demo, tmp_path):
    splits = pr.load_splits(demo)
    assert [len(splits[s]) for s in pr.SPLITS] == [2, 2, 2]
    pre = pr.preload_items(splits["test"], SIZE, mask_key="label")
    assert pre[0]["image"].shape == (1, SIZE, SIZE) and pre[0]["label"].shape == (1, SIZE, SIZE)
    assert type(pre[0]["image"]) is torch.Tensor and pre[0]["image"].dtype == torch.float32
    assert pre[0]["image"].min() >= -1 and pre[0]["image"].max() <= 1 and pre[0]["image"].max() > 0.9
    assert set(torch.unique(torch.cat([p["label"] for p in pre])).tolist()) <= {0.0, 1.0}
    assert pr.ensure_preloaded(pre, SIZE, mask_key="label") == pre  # preloaded items pass as they are
    again = pr.ensure_preloaded(splits["test"], SIZE, mask_key="label")
    assert all(torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"]) for a, b in zip(again, pre))
    cls = pr.preload_items(splits["test"], 16, class_key="class")
    assert cls[0]["image"].shape == (1, 16, 16) and cls[0]["label"].dtype == torch.long
    assert sorted(int(c["label"]) for c in cls) == sorted(i["class"] for i in splits["test"])
    # one list is split by patient
    parts = pr.load_splits(splits["training"] + splits["test"], val_fraction=0.0, test_fraction=0.5)
    assert len(parts["training"]) == 2 and len(parts["test"]) == 2 and not parts["validation"]
    with pytest.raises(ValueError, match="no 'label' mask"):
        pr.preload_items([{"image": splits["test"][0]["image"]}], SIZE, mask_key="label")
    with pytest.raises(ValueError, match="outside"):
        pr.preload_items([{**splits["test"][0], "class": 3}], SIZE, class_key="class")
    with pytest.raises(ValueError, match="not both"):
        pr.preload_items(splits["test"], SIZE, mask_key="label", class_key="class")
    with pytest.raises(DatalistError):
        pr.load_splits(tmp_path / "missing.json")


def test_png_masks_0_255_are_binarised(tmp_path):
    from PIL import Image

    img = (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 256).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[4:10, 6:12] = 255
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(mask).save(tmp_path / "a_mask.png")
    (out,) = pr.preload_items([{"image": str(tmp_path / "a.png"), "label": str(tmp_path / "a_mask.png")}], 16, mask_key="label")
    assert set(torch.unique(out["label"]).tolist()) == {0.0, 1.0}
    assert int(out["label"].sum()) == 9  # the 6 x 6 square at half resolution (nearest)


def test_load_synthetic_sets(flipped_set, noise_set, demo):
    sets = pr.load_synthetic_sets(flipped_set, require="label")
    assert list(sets) == ["flipped"] and len(sets["flipped"]) == 4
    assert all(it["synthetic"] and "label" in it and "class" in it for it in sets["flipped"])
    pooled = pr.load_synthetic_sets([flipped_set, noise_set])
    assert list(pooled) == ["flipped+noise"] and len(pooled["flipped+noise"]) == 10
    named = pr.load_synthetic_sets({"A": flipped_set, "B": str(noise_set / "datalist.json")})
    assert [len(v) for v in named.values()] == [4, 6]
    with pytest.raises(DatalistError, match="has no 'label'"):
        pr.load_synthetic_sets(noise_set, require="label")
    with pytest.raises(DatalistError, match="default_class"):
        pr.load_synthetic_sets(noise_set, require="class")
    assert {it["class"] for it in pr.load_synthetic_sets(noise_set, require="class", default_class=1)["noise"]} == {1}
    items = pr.load_splits(demo)["test"]
    assert len(pr.load_synthetic_sets({"given": items})["given"]) == 2
    with pytest.raises(DatalistError, match="missing"):
        pr.load_synthetic_sets({"given": [{"image": "/nonexistent.nii.gz"}]})
    with pytest.raises(TypeError, match="synthetic must be"):
        pr.load_synthetic_sets(3)
    assert pr.load_synthetic_sets(None) == {}


def test_classic_augmentation_changes_images_and_masks_together():
    img = torch.linspace(-1, 1, SIZE * SIZE).reshape(1, SIZE, SIZE)
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, 2:10, 4:20] = 1
    aug = pr.classic_augmentation(True, SIZE, prob=1.0)
    aug.set_random_state(seed=0)
    out = aug({"image": img.clone(), "label": mask.clone()})
    assert not torch.allclose(torch.as_tensor(out["image"]), img)
    lab = torch.as_tensor(out["label"])
    assert set(torch.unique(lab).tolist()) <= {0.0, 1.0} and not torch.equal(lab, mask)
    aug.set_random_state(seed=0)
    again = aug({"image": img.clone(), "label": mask.clone()})
    assert torch.equal(torch.as_tensor(again["label"]), lab)  # replayable from the seed


def test_fit_supervised_reproducible_and_keeps_best():
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(1, 8, 8, generator=g), "label": torch.tensor(i % 2)} for i in range(6)]

    def run(seed):
        with pr.seeded(seed):
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
            info = pr.fit_supervised(net, data, torch.nn.CrossEntropyLoss(), epochs=2, batch_size=4, seed=seed, device="cpu")
        return net, info

    a, info = run(0)
    b, _ = run(0)
    c, _ = run(1)
    assert info["best_epoch"] == -1 and info["n_train"] == 6 and info["train_seconds"] >= 0
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    # NaN never wins the model selection; a finite value beats NaN
    assert not pr._finite_greater(float("nan"), 0.1) and pr._finite_greater(0.1, float("nan"))
    assert pr._finite_greater(0.3, 0.2) and not pr._finite_greater(0.2, 0.3)
    with pytest.raises(ValueError, match="epochs"):
        pr.fit_supervised(a, data, torch.nn.CrossEntropyLoss(), epochs=0)
    with pytest.raises(ValueError, match="empty"):
        pr.fit_supervised(a, [], torch.nn.CrossEntropyLoss(), epochs=1)


class _ScriptedMetric:
    """An Ignite metric whose successive values are scripted; it snapshots the network at every validation."""

    def __new__(cls, values, net):
        from ignite.metrics import Metric

        class Scripted(Metric):
            def __init__(self):
                self.values, self.net, self.snapshots = list(values), net, []
                super().__init__()

            def reset(self):
                pass

            def update(self, output):
                pass

            def compute(self):
                self.snapshots.append({k: v.clone() for k, v in self.net.state_dict().items()})
                return self.values[len(self.snapshots) - 1]

        return Scripted()


@pytest.mark.parametrize("values, best", [([0.2, 0.9, 0.5, 0.1], 2), ([float("nan"), 0.3, float("nan"), 0.2], 2)])
def test_fit_supervised_restores_best_validation_epoch(values, best):
    data = [{"image": torch.full((1, 4, 4), float(v)), "label": torch.tensor(v)} for v in (0, 1) * 4]
    with pr.seeded(0):
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        metric = _ScriptedMetric(values, net)
        info = pr.fit_supervised(net, data, torch.nn.CrossEntropyLoss(), epochs=4, batch_size=8, lr=0.1, seed=0,
                                 val_data=data, val_metric=("val", metric), device="cpu")
    assert info["best_epoch"] == best and info["best_val"] == pytest.approx(values[best - 1])
    assert len(metric.snapshots) == 4
    for k, v in net.state_dict().items():  # the weights of the best epoch are back, not the last ones
        assert torch.equal(v, metric.snapshots[best - 1][k])
    assert not torch.equal(metric.snapshots[best - 1]["1.weight"], metric.snapshots[-1]["1.weight"])


# ---------------------------------------------------------------------------------------------- thyroid protocol
def test_msssim_settings_fit_monai():
    from monai.metrics import MultiScaleSSIMMetric

    assert th.msssim_settings(256) == {"kernel_size": 11, "weights": pytest.approx((0.0448, 0.2856, 0.3001, 0.2363, 0.1333), abs=1e-3)}
    for size in (32, 128):
        s = th.msssim_settings(size)
        assert sum(s["weights"]) == pytest.approx(1.0)
        x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(size))
        m = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=s["kernel_size"], weights=s["weights"])
        assert float(m(x, x).mean()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="8 px"):
        th.msssim_settings(4)


def test_thyroid_protocol_tiny(demo, flipped_set, noise_set, tmp_path):
    result = th.thyroid_protocol(
        demo, {"flipped": flipped_set, "noise": noise_set}, tmp_path / "thy", metrics_split="all", n_tests=2,
        n_images=4, msssim_tests=2, msssim_images=3, feature_size=16, n_synthetic=(0, 2), seeds=(0,), epochs=1,
        image_size=SIZE,
        segmentation_kwargs={"network_kwargs": {"channels": (4, 8), "strides": (2,), "num_res_units": 0}}, device="cpu",
    )
    t1 = result["table1"]
    rows = {r["key"]: r for r in t1["rows"]}
    assert list(rows) == ["flipped", "noise", "real"]
    assert t1["config"]["n_tests"] == 2 and t1["config"]["msssim"]["n_images"] == 3
    flipped, noise = rows["flipped"]["metrics"], rows["noise"]["metrics"]
    # uniform noise is far from brain slices: larger MMD, a 1-NN classifier separates it perfectly, and its images
    # share no structure (MS-SSIM near 0, far below the real slices' own)
    assert noise["mmd"]["mean"] > flipped["mmd"]["mean"] > 0
    assert noise["1nn"]["mean"] == pytest.approx(1.0) and flipped["1nn"]["mean"] < 1.0
    assert noise["msssim"]["mean"] < 0.1 < rows["real"]["metrics"]["msssim"]["mean"]
    assert rows["real"]["metrics"]["mmd"]["mean"] is None
    seg = result["segmentation"]
    assert [(r["fields"]["n_synthetic"], r["fields"]["set"]) for r in seg["rows"]] == [(0, "-"), (2, "flipped")]
    assert result["segmentation_skipped"] == ["noise"]
    for name in ("thyroid_table1.json", "thyroid_table1.md", "thyroid_protocol.json", "thyroid_protocol.md",
                 "segmentation/segmentation_table.md"):
        assert (tmp_path / "thy" / name).is_file()
    md = (tmp_path / "thy" / "thyroid_protocol.md").read_text()
    assert "| Method | Images | MMD | 1-NN | MS-SSIM |" in md and "No segmentation rows for noise" in md
    with pytest.raises(ValueError, match="non-empty dict"):
        th.thyroid_protocol(demo, {}, tmp_path / "x")
    with pytest.raises(ValueError, match="metrics_split"):
        th.thyroid_protocol(demo, {"n": noise_set}, tmp_path / "x", metrics_split="train")


# ---------------------------------------------------------------------------------------------- shared helpers
def test_network_from_factory():
    net = pr.network_from_factory(lambda: torch.nn.Linear(2, 3))
    assert isinstance(net, torch.nn.Linear)
    with pytest.raises(TypeError, match="returned int, not an nn.Module"):
        pr.network_from_factory(lambda: 3)


def test_predict_batches_runs_every_batch_without_gradients():
    net = torch.nn.Linear(4, 2).train()
    x = torch.randn(7, 4)
    seen = []

    def finish(batch, out):
        seen.append((len(batch), out.requires_grad))
        return out * 2

    y = pr.predict_batches(net, x, 3, "cpu", finish)
    assert seen == [(3, False), (3, False), (1, False)] and not net.training
    assert torch.allclose(y, net(x).detach() * 2)
    assert pr.predict_batches(lambda t: t + 1, x, 100, None, lambda b, o: o).equal(x + 1)
