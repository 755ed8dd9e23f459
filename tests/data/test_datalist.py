# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Datalists: folder scan, CSV, JSON, splits and checks, on tiny files written to a temp folder."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from monai_gan_aug.data.datalist import (
    build_datalist_from_csv,
    build_datalist_from_folder,
    check_datalist,
    load_datalist,
    read_spatial_shape,
    split_datalist,
)
from monai_gan_aug.data.errors import DatalistError, InvalidBoxesError


def _png(path: Path, width: int = 12, height: int = 8, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), value, dtype=np.uint8)).save(path)
    return path


def _nifti(path: Path, shape=(6, 5, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.float32), np.eye(4)), str(path))
    return path


def _ct(path: Path, z: float = 0.0, uid: str = "1.2.826.0.1.3680043.1", patient: str = "P1") -> Path:
    src = get_testdata_file("CT_small.dcm")
    if src is None:
        pytest.skip("pydicom test data missing")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(src)
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.SeriesInstanceUID = uid
    ds.PatientID = patient
    ds.save_as(path)
    return path


def test_folder_scan_pairs_labels_by_folder_and_suffix(tmp_path):
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "images" / "b.png")
    _png(tmp_path / "labels" / "a.png", value=1)
    _nifti(tmp_path / "vols" / "case1.nii.gz")
    _nifti(tmp_path / "vols" / "case1_seg.nii.gz")
    _ct(tmp_path / "dicom" / "IM0001")  # no suffix: found by the DICM magic
    (tmp_path / "notes.txt").write_text("not an image")
    items = build_datalist_from_folder(tmp_path)
    by_name = {Path(it["image"]).name: it for it in items}
    assert set(by_name) == {"a.png", "b.png", "case1.nii.gz", "IM0001"}
    assert by_name["a.png"]["label"] == str(tmp_path / "labels" / "a.png")
    assert "label" not in by_name["b.png"]
    assert by_name["case1.nii.gz"]["label"] == str(tmp_path / "vols" / "case1_seg.nii.gz")
    assert by_name["IM0001"]["patient"] == "P1"
    assert all(Path(it["image"]).is_absolute() for it in items)
    # a glob restricts the images, masks are still paired
    only_png = build_datalist_from_folder(tmp_path, image_pattern="*.png")
    assert [Path(it["image"]).name for it in only_png] == ["a.png", "b.png"]


def test_folder_scan_explicit_label_folder(tmp_path):
    _png(tmp_path / "data" / "x" / "c1.png")
    _png(tmp_path / "masks_elsewhere" / "x" / "c1_mask.png")
    items = build_datalist_from_folder(tmp_path / "data", label_folder=tmp_path / "masks_elsewhere")
    assert items == [
        {
            "image": str(tmp_path / "data" / "x" / "c1.png"),
            "label": str(tmp_path / "masks_elsewhere" / "x" / "c1_mask.png"),
        }
    ]


def test_folder_scan_errors(tmp_path):
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "labels" / "zzz.png")
    with pytest.raises(DatalistError, match="zzz.png") as err:
        build_datalist_from_folder(tmp_path)
    assert "matches no image" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(DatalistError) as err:
        build_datalist_from_folder(empty)
    msg = str(err.value)
    assert str(empty) in msg and ".txt" in msg and "broken.png" in msg
    with pytest.raises(DatalistError, match="not a folder"):
        build_datalist_from_folder(tmp_path / "missing")


def test_folder_scan_3d_groups_dicom_series(tmp_path):
    for i in range(3):
        _ct(tmp_path / "s1" / f"{i}.dcm", z=i * 5.0, uid="1.2.3.1", patient="A")
    for i in range(2):
        _ct(tmp_path / "mixed" / f"a{i}.dcm", z=i, uid="1.2.3.2", patient="B")
        _ct(tmp_path / "mixed" / f"b{i}.dcm", z=i, uid="1.2.3.3", patient="B")
    _png(tmp_path / "flat.png")
    _nifti(tmp_path / "vol.nii.gz", shape=(4, 4, 3))
    _nifti(tmp_path / "labels" / "s1.nii.gz", shape=(128, 128, 3))
    items = build_datalist_from_folder(tmp_path, spatial_dims=3)
    images = [it["image"] for it in items]
    assert str(tmp_path / "s1") in images  # the whole folder is the series
    lists = [im for im in images if isinstance(im, list)]
    assert len(lists) == 2 and all(len(v) == 2 for v in lists)  # two series in one folder -> file lists
    assert str(tmp_path / "vol.nii.gz") in images and str(tmp_path / "flat.png") not in images
    s1 = next(it for it in items if it["image"] == str(tmp_path / "s1"))
    assert s1["patient"] == "A" and s1["label"] == str(tmp_path / "labels" / "s1.nii.gz")
    assert read_spatial_shape(tmp_path / "s1") == (128, 128, 3)


def test_csv_datalist(tmp_path):
    _png(tmp_path / "img" / "a.png", width=20, height=10)
    _png(tmp_path / "img" / "b.png", width=20, height=10)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(
        "image,label,boxes,box_labels,class,patient,site\n"
        "img/a.png,,1 2 5 6;7 1 9 3,,1,p1,x\n"
        f'{tmp_path / "img" / "b.png"},,"[[0, 0, 4, 4]]",[2],0,p2,\n'
    )
    items = build_datalist_from_csv(csv_path)
    assert items[0] == {
        "image": str(tmp_path / "img" / "a.png"),
        "boxes": [[1.0, 2.0, 5.0, 6.0], [7.0, 1.0, 9.0, 3.0]],
        "box_labels": [0, 0],
        "class": 1,
        "patient": "p1",
        "site": "x",
    }
    assert items[1]["boxes"] == [[0.0, 0.0, 4.0, 4.0]] and items[1]["box_labels"] == [2]
    check_datalist(items)
    bad = tmp_path / "bad.csv"
    bad.write_text("image,class\nimg/a.png,notanint\n")
    with pytest.raises(DatalistError, match="line 2, column 'class'"):
        build_datalist_from_csv(bad)
    no_image = tmp_path / "noimage.csv"
    no_image.write_text("path,label\na.png,\n")
    with pytest.raises(DatalistError, match="'image' column"):
        build_datalist_from_csv(no_image)


def _decathlon(tmp_path: Path, lists: dict) -> Path:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"name": "t", "spatial_dims": 2, **lists}))
    return path


def test_load_json_keeps_extra_keys_and_resolves_paths(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    _png(tmp_path / "m.png")
    _png(tmp_path / "t.png")
    path = _decathlon(
        tmp_path,
        {
            "training": [
                {"image": "a.png", "label": "m.png", "tissue": "t.png", "boxes": [[1, 1, 3, 3]], "box_labels": [0]}
            ],
            "validation": [{"image": "b.png", "class": 2, "synthetic": False}],
        },
    )
    train = load_datalist(path, split="training")
    assert train == [
        {
            "image": str(tmp_path / "a.png"),
            "label": str(tmp_path / "m.png"),
            "tissue": str(tmp_path / "t.png"),
            "boxes": [[1, 1, 3, 3]],
            "box_labels": [0],
        }
    ]
    assert load_datalist(tmp_path, split="validation") == [
        {"image": str(tmp_path / "b.png"), "class": 2, "synthetic": False}
    ]
    assert len(load_datalist(path, split="all")) == 2
    with pytest.raises(DatalistError, match="no 'test' list"):
        load_datalist(path, split="test")
    with pytest.raises(DatalistError, match="split must be"):
        load_datalist(path, split="train")


def test_single_list_patient_level_split(tmp_path):
    items = []
    for i in range(20):
        _png(tmp_path / f"{i}.png")
        items.append({"image": f"{i}.png", "patient": f"p{i // 2}"})  # 10 patients, 2 images each
    path = _decathlon(tmp_path, {"training": items})
    parts = {
        s: load_datalist(path, split=s, val_fraction=0.2, test_fraction=0.1) for s in ("training", "validation", "test")
    }
    images = [it["image"] for s in parts for it in parts[s]]
    assert sorted(images) == sorted(str(tmp_path / f"{i}.png") for i in range(20))  # disjoint and complete
    patients = {s: {it["patient"] for it in parts[s]} for s in parts}
    assert not (patients["training"] & patients["validation"]) and not (patients["training"] & patients["test"])
    assert (len(patients["training"]), len(patients["validation"]), len(patients["test"])) == (7, 2, 1)
    again = load_datalist(path, split="validation", val_fraction=0.2, test_fraction=0.1)
    assert again == parts["validation"]  # deterministic
    other_seed = load_datalist(path, split="validation", val_fraction=0.2, test_fraction=0.1, seed=3)
    assert len(other_seed) == 4
    assert len(load_datalist(path, split="all")) == 20


def test_split_datalist_groups_and_small_sets():
    items = [{"image": str(i), "patient": "same" if i < 3 else None} for i in range(6)]
    parts = split_datalist(items, fractions=(0.5, 0.25, 0.25), seed=0)
    assert sum(len(p) for p in parts) == 6
    holding = [i for i, p in enumerate(parts) if any(it["patient"] == "same" for it in p)]
    assert len(holding) == 1 and len(parts[holding[0]]) >= 3  # the patient is never split
    assert all(len(p) > 0 for p in parts)  # 4 groups, 3 positive fractions: none left empty
    assert split_datalist(items, seed=5) == split_datalist(items, seed=5)
    with pytest.raises(DatalistError, match="sum to 1"):
        split_datalist(items, fractions=(0.5, 0.2))


def test_load_csv_folder_and_demo(tmp_path, monkeypatch):
    for i in range(5):
        _png(tmp_path / "ds" / f"{i}.png")
    (tmp_path / "ds.csv").write_text("image\n" + "\n".join(f"ds/{i}.png" for i in range(5)) + "\n")
    assert len(load_datalist(tmp_path / "ds.csv", split="all")) == 5
    folder_all = load_datalist(tmp_path / "ds", split="all")
    assert [Path(it["image"]).name for it in folder_all] == [f"{i}.png" for i in range(5)]
    train = load_datalist(tmp_path / "ds", split="training", val_fraction=0.2, test_fraction=0.2)
    assert len(train) == 3
    # None -> the demo dataset of the requested spatial dims
    demo_json = _decathlon(tmp_path / "ds", {"training": [{"image": "0.png"}], "validation": [{"image": "1.png"}]})
    calls = []

    def fake_get_demo_datalist(spatial_dims=2):
        calls.append(spatial_dims)
        return str(demo_json)

    monkeypatch.setitem(
        sys.modules, "monai_gan_aug.data.demo", types.SimpleNamespace(get_demo_datalist=fake_get_demo_datalist)
    )
    demo = load_datalist(None, split="validation", spatial_dims=3)
    assert calls == [3] and demo == [{"image": str(tmp_path / "ds" / "1.png")}]
    with pytest.raises(DatalistError, match="no such file"):
        load_datalist(tmp_path / "nothing_here")


def test_check_datalist_files(tmp_path):
    ok = _png(tmp_path / "ok.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DatalistError) as err:
        check_datalist(
            [
                {"image": str(ok)},
                {"image": str(tmp_path / "missing.png")},
                {"image": str(empty)},
                {"label": str(ok)},
            ]
        )
    msg = str(err.value)
    assert "missing.png does not exist" in msg and "empty.png is an empty file" in msg
    assert "item 3 has ['label'] but no 'image'" in msg
    assert check_datalist([{"image": str(ok)}]) == [{"image": str(ok)}]


def test_check_datalist_boxes(tmp_path):
    png = _png(tmp_path / "wide.png", width=30, height=20)  # MONAI axes: (30, 20)
    dcm = _ct(tmp_path / "ct.dcm")
    vol = _nifti(tmp_path / "vol.nii.gz", shape=(10, 12, 8))
    check_datalist([{"image": str(png), "boxes": [[0, 0, 29.5, 19.5]], "box_labels": [0]}])
    check_datalist([{"image": str(dcm), "boxes": [[100, 0, 128, 128]]}])
    check_datalist([{"image": str(vol), "boxes": [[0, 0, 0, 10, 12, 8]]}], spatial_dims=2)  # 3D boxes of a volume
    cases = [
        ({"image": str(png), "boxes": [[0, 0, 25, 25]]}, "outside the image of size (30, 20)"),
        ({"image": str(png), "boxes": [[5, 5, 5, 9]]}, "empty or inverted"),
        ({"image": str(png), "boxes": [[1, 2, 3]]}, "shape (N, 4 (2D) or 6 (3D))"),
        ({"image": str(png), "boxes": [[1, 1, 3, 3]], "box_labels": [0, 1]}, "one label per box"),
        ({"image": str(dcm), "boxes": [[0, 0, 129, 10]]}, "(128, 128)"),
        ({"image": str(vol), "boxes": [[0, 0, 0, 10, 12, 9]]}, "(10, 12, 8)"),
    ]
    for item, expected in cases:
        with pytest.raises(InvalidBoxesError) as err:
            check_datalist([item])
        assert expected in str(err.value), str(err.value)
        assert item["image"] in str(err.value)
    with pytest.raises(InvalidBoxesError, match="outside"):
        path = _decathlon(tmp_path, {"training": [{"image": "wide.png", "boxes": [[0, 0, 31, 5]]}], "test": []})
        load_datalist(path)
    assert load_datalist(path, check=False)[0]["boxes"] == [[0, 0, 31, 5]]


def test_read_spatial_shape(tmp_path):
    assert read_spatial_shape(_png(tmp_path / "a.png", width=7, height=3)) == (7, 3)
    assert read_spatial_shape(_nifti(tmp_path / "v.nii", shape=(4, 5, 6))) == (4, 5, 6)
    src = get_testdata_file("emri_small.dcm")
    if src is not None:
        shutil.copy(src, tmp_path / "mf.dcm")
        assert read_spatial_shape(tmp_path / "mf.dcm") == (64, 64, 10)
    (tmp_path / "x.txt").write_text("x")
    assert read_spatial_shape(tmp_path / "x.txt") is None
