# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the embedded demo dataset (monai_gan_aug.data.demo)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from monai_gan_aug.data import demo

demo_params, get_demo_datalist, main = demo.demo_params, demo.get_demo_datalist, demo.main
make_demo_dataset = demo.make_demo_dataset

TINY_2D = {"spatial_dims": 2, "n_patients": 3, "slices_per_patient": 2, "image_size": 64}
TINY_3D = {"spatial_dims": 3, "n_patients": 3, "image_size": 32}
SPLITS = ("training", "validation", "test")


def _items(datalist_path: Path) -> list[dict]:
    data = json.loads(Path(datalist_path).read_text())
    return [item for split in SPLITS for item in data[split]]


def _load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.load(str(root / rel)).dataobj)


def _component_boxes(label: np.ndarray, structure: np.ndarray | None = None) -> list[list[float]]:
    comps, _ = ndi.label(label, structure=structure)
    # find_objects gives one slice per array axis; array axis 0 is x (conventions.md)
    return sorted([float(s.start) for s in sl] + [float(s.stop) for s in sl] for sl in ndi.find_objects(comps))


@pytest.fixture(scope="module")
def ds2d(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo2d") / "ds", max_lesions=3, p_no_lesion=0.25, **TINY_2D)


@pytest.fixture(scope="module")
def ds3d(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo3d") / "ds", max_lesions=3, p_no_lesion=0.2, **TINY_3D)


@pytest.mark.parametrize("fixture, dims", [("ds2d", 2), ("ds3d", 3)])
def test_datalist_layout(fixture, dims, request):
    path = request.getfixturevalue(fixture)
    root = path.parent
    assert path.name == "datalist.json"
    data = json.loads(path.read_text())
    for key in ("name", "description", "spatial_dims", "seed", "version", *SPLITS):
        assert key in data, key
    assert data["spatial_dims"] == dims and data["seed"] == 0 and data["version"] == demo.DEMO_VERSION
    n_items = 3 * 2 if dims == 2 else 3
    items = _items(path)
    assert len(items) == n_items
    for item in items:
        assert set(item) == {"image", "label", "tissue", "boxes", "box_labels", "class", "patient", "slice"}
        for key, sub in (("image", "images/"), ("label", "labels/"), ("tissue", "tissue/")):
            assert item[key].startswith(sub) and not os.path.isabs(item[key])
            assert (root / item[key]).is_file()
        assert item["slice"] == (-1 if dims == 3 else item["slice"]) and isinstance(item["slice"], int)
    if dims == 2:
        assert sorted((i["patient"], i["slice"]) for i in items) == [
            (f"P{p:03d}", s) for p in range(3) for s in range(2)
        ]
    assert sorted(p.name for p in root.iterdir()) == ["datalist.json", "images", "labels", "tissue"]


@pytest.mark.parametrize("fixture", ["ds2d", "ds3d"])
def test_patient_level_split(fixture, request):
    data = json.loads(request.getfixturevalue(fixture).read_text())
    patients = {split: {item["patient"] for item in data[split]} for split in SPLITS}
    # 3 patients: one per split; no patient in two splits
    assert all(len(p) == 1 for p in patients.values())
    assert not (patients["training"] & patients["validation"] or patients["training"] & patients["test"])
    assert not patients["validation"] & patients["test"]


def test_split_fractions():
    split = demo._split(np.random.default_rng(0), 40)
    assert [len(split[s]) for s in SPLITS] == [28, 4, 8]
    assert sorted(p for ps in split.values() for p in ps) == list(range(40))
    assert [len(demo._split(np.random.default_rng(0), n)["training"]) for n in (1, 2)] == [1, 1]


@pytest.mark.parametrize("fixture", ["ds2d", "ds3d"])
def test_boxes_match_mask_components(fixture, request):
    path = request.getfixturevalue(fixture)
    dims = json.loads(path.read_text())["spatial_dims"]
    n_boxes = 0
    for item in _items(path):
        label = _load(path.parent, item["label"])
        assert set(np.unique(label)) <= {0, 1}
        boxes = sorted(item["boxes"])
        assert all(len(b) == 2 * dims for b in boxes)
        assert boxes == _component_boxes(label)
        # lesions never touch each other, not even diagonally
        assert boxes == _component_boxes(label, ndi.generate_binary_structure(dims, dims))
        assert item["box_labels"] == [0] * len(boxes)
        assert item["class"] == int(len(boxes) > 0) == int(label.any())
        n_boxes += len(boxes)
    assert n_boxes > 0


@pytest.mark.parametrize("fixture", ["ds2d", "ds3d"])
def test_lesions_inside_brain_and_tissue_map(fixture, request):
    path = request.getfixturevalue(fixture)
    for item in _items(path):
        image, label, tissue = (_load(path.parent, item[k]) for k in ("image", "label", "tissue"))
        assert image.dtype == np.float32 and label.dtype == np.uint8 and tissue.dtype == np.uint8
        assert set(np.unique(tissue)) <= {0, 1, 2, 3, 4}
        assert {1, 2, 3} <= set(np.unique(tissue))
        np.testing.assert_array_equal(tissue == 4, label == 1)
        brain = tissue > 0
        # each lesion is surrounded by brain, the background is exactly 0 (skull-stripped), the brain is not
        assert not (ndi.binary_dilation(label > 0) & ~brain).any()
        assert (image[~brain] == 0).all() and (image[brain] > 0).mean() > 0.99
        # plausible MR range, not pre-scaled to [-1, 1]; lesions are hyperintense (enhancing)
        white = np.median(image[tissue == 3])
        assert 150 < white < 900 and image.max() < 3000
        comps, n = ndi.label(label)
        for k in range(1, n + 1):
            assert image[comps == k].max() > white


def test_voxel_spacing_in_affine(ds2d, ds3d):
    for path, dims in ((ds2d, 2), (ds3d, 3)):
        item = _items(path)[0]
        img = nib.load(str(path.parent / item["image"]))
        size = img.shape[0]
        spacing = np.diag(img.affine)[:dims]
        assert np.allclose(img.affine, np.diag([*spacing, *([1.0] * (4 - dims))]))
        # cropped brain, resized: the field of view is a brain's extent (mm)
        assert ((spacing * size > 100) & (spacing * size < 230)).all(), spacing * size


def test_load_with_monai(ds2d, ds3d):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    load = LoadImaged(keys=["image", "label", "tissue"], ensure_channel_first=True)
    for path, shape in ((ds2d, (1, 64, 64)), (ds3d, (1, 32, 32, 32))):
        items = load_decathlon_datalist(str(path), is_segmentation=True, data_list_key="training")
        out = load(items[0])
        for key in ("image", "label", "tissue"):
            assert tuple(out[key].shape) == shape, key
        for key in ("image", "label"):
            on_disk = _load(path.parent, os.path.relpath(items[0][key], path.parent))
            np.testing.assert_array_equal(np.asarray(out[key][0]), on_disk)


def test_deterministic_and_seed_dependent(ds2d, tmp_path):
    again = make_demo_dataset(tmp_path / "again", max_lesions=3, p_no_lesion=0.25, **TINY_2D)
    other = make_demo_dataset(tmp_path / "other", max_lesions=3, p_no_lesion=0.25, seed=1, **TINY_2D)
    a_items, b_items = _items(ds2d), _items(again)
    assert a_items == b_items
    for item in a_items:
        for key in ("image", "label", "tissue"):
            a, b = _load(ds2d.parent, item[key]), _load(again.parent, item[key])
            assert a.tobytes() == b.tobytes()
    diff = [not np.array_equal(_load(ds2d.parent, i["image"]), _load(other.parent, i["image"])) for i in _items(other)]
    assert all(diff)


def test_no_lesion_probability(tmp_path):
    none = make_demo_dataset(tmp_path / "none", p_no_lesion=1.0, **TINY_2D)
    assert all(i["class"] == 0 and i["boxes"] == [] for i in _items(none))
    assert all(not _load(none.parent, i["label"]).any() for i in _items(none))
    every = make_demo_dataset(tmp_path / "every", p_no_lesion=0.0, max_lesions=2, **TINY_2D)
    assert all(i["class"] == 1 and 1 <= len(i["boxes"]) <= 2 for i in _items(every))


def test_reuses_existing_dataset_and_replaces_other_params(ds2d, tmp_path, monkeypatch):
    root = tmp_path / "ds"
    path = make_demo_dataset(root, **TINY_2D)
    mtime = path.stat().st_mtime_ns

    def _fail(*args, **kwargs):
        raise AssertionError("rebuilt although a complete dataset with the same parameters exists")

    with monkeypatch.context() as m:
        m.setattr(demo, "_build", _fail)
        assert make_demo_dataset(root, **TINY_2D) == path
    assert path.stat().st_mtime_ns == mtime
    # same folder, other parameters: rebuilt in place
    make_demo_dataset(root, **{**TINY_2D, "n_patients": 2})
    assert json.loads(path.read_text())["params"]["n_patients"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary or old sibling left


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = demo._save_nifti

    def _save_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        real_save(*args, **kwargs)

    monkeypatch.setattr(demo, "_save_nifti", _save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / "ds", **TINY_2D)
    assert list(tmp_path.iterdir()) == []


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="non-empty folder"):
        make_demo_dataset(tmp_path / "mine", **TINY_2D)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # an empty existing folder is fine
    (tmp_path / "empty").mkdir()
    assert make_demo_dataset(tmp_path / "empty", **TINY_2D).is_file()


def test_get_demo_datalist_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(demo.CACHE_ENV, str(tmp_path / "env_cache"))
    tiny = {k: v for k, v in TINY_2D.items() if k != "spatial_dims"}
    with caplog.at_level(logging.INFO, logger=demo.__name__):
        first = get_demo_datalist(**tiny)
    assert first.parent.parent == tmp_path / "env_cache"
    assert f"v{demo.DEMO_VERSION}" in first.parent.name
    assert sum(str(first.parent) in r.getMessage() for r in caplog.records) == 1
    mtime = first.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=demo.__name__):
        assert get_demo_datalist(**tiny) == first
    assert first.stat().st_mtime_ns == mtime and not caplog.records
    other = get_demo_datalist(cache_dir=tmp_path / "explicit", seed=3, **tiny)
    assert other.parent.parent == tmp_path / "explicit"
    assert other.parent.name != first.parent.name
    assert json.loads(other.read_text())["seed"] == 3
    leftovers = [p.name for d in (tmp_path / "env_cache", tmp_path / "explicit") for p in d.iterdir()]
    assert not [n for n in leftovers if n.startswith(".")]


def test_default_params():
    assert demo_params(2)["image_size"] == 128 and demo_params(3)["image_size"] == 64
    assert demo_params(3, slices_per_patient=8)["slices_per_patient"] == 1
    assert demo_params(2)["version"] == demo.DEMO_VERSION
    # the default lesion level is not stored: every default dataset keeps the parameters (and cache folder) it had
    assert demo_params(2) == {"spatial_dims": 2, "n_patients": 40, "slices_per_patient": 8, "image_size": 128,
                              "max_lesions": 4, "p_no_lesion": 0.25, "seed": 0, "version": demo.DEMO_VERSION}
    assert demo_params(2, lesion_level=[1.3, 1.9]) == demo_params(2)
    assert demo_params(2, lesion_level=(1.1, 1.4))["lesion_level"] == [1.1, 1.4]


def test_lesion_level_changes_only_the_lesions(ds2d, tmp_path):
    """A lower enhancement range keeps patients, lesion masks and boxes, and darkens the lesions only."""
    hard = make_demo_dataset(tmp_path / "hard", max_lesions=3, p_no_lesion=0.25, lesion_level=(1.1, 1.2), **TINY_2D)
    assert json.loads(hard.read_text())["params"]["lesion_level"] == [1.1, 1.2]
    n_lesion_items = 0
    for a, b in zip(_items(ds2d), _items(hard)):
        assert a["boxes"] == b["boxes"] and a["patient"] == b["patient"]
        label = _load(hard.parent, b["label"]) > 0
        np.testing.assert_array_equal(_load(ds2d.parent, a["label"]) > 0, label)
        img_a, img_b = _load(ds2d.parent, a["image"]), _load(hard.parent, b["image"])
        near = ndi.binary_dilation(label, iterations=12)  # lesion, its partial-volume edge and oedema halo
        np.testing.assert_allclose(img_a[~near], img_b[~near], rtol=1e-5)
        if label.any():
            n_lesion_items += 1
            assert img_b[label].mean() < img_a[label].mean()
    assert n_lesion_items > 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"spatial_dims": 4}, ValueError, "spatial_dims"),
        ({"n_patients": 0}, ValueError, "n_patients"),
        ({"p_no_lesion": 1.5}, ValueError, "p_no_lesion"),
        ({"image_size": 8}, ValueError, "image_size"),
        ({"image_size": 64.0}, TypeError, "image_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"max_lesions": True}, TypeError, "max_lesions"),
        ({"lesion_level": (0.9, 1.2)}, ValueError, "lesion_level"),
        ({"lesion_level": (1.5, 1.2)}, ValueError, "lesion_level"),
        ({"lesion_level": 1.2}, TypeError, "lesion_level"),
        ({"lesion_level": ("a", "b")}, TypeError, "lesion_level"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_demo_dataset(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_get_demo_datalist_unknown_keyword(tmp_path):
    with pytest.raises(TypeError, match="n_patient"):
        get_demo_datalist(cache_dir=tmp_path, n_patient=3)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    path = main(["--out", str(out), "--spatial_dims", "3", "--n_patients", "2", "--image_size", "32", "--seed", "5"])
    assert path == out / "datalist.json" and capsys.readouterr().out.strip() == str(path)
    data = json.loads(path.read_text())
    assert data["spatial_dims"] == 3 and data["seed"] == 5
    assert all(len(b) == 6 for i in _items(path) for b in i["boxes"])


def test_command_line_lesion_level(tmp_path, capsys):
    out = tmp_path / "cli"
    path = main(["--out", str(out), "--n_patients", "2", "--slices_per_patient", "1", "--image_size", "32",
                 "--lesion_level", "1.1", "1.4"])
    assert json.loads(path.read_text())["params"]["lesion_level"] == [1.1, 1.4]
