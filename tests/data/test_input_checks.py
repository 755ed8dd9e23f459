# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Input checks found by using the product as a new user (issue #13 points 2, 3 and 8): a dataset smaller than
one batch, a run that trains nothing, NaN / constant / degenerate images, a DICOM series of mixed orientations,
and boxes outside their image in the validation and test lists."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import DataLoader, Dataset
from pydicom.data import get_testdata_file

from monai_gan_aug.data import BadImageError, LoadMedicalImage, fit_batch_size, gan_collate
from monai_gan_aug.data.datalist import build_datalist_from_folder, load_datalist, screen_images
from monai_gan_aug.data.errors import ImageReadError, InvalidBoxesError
from monai_gan_aug.engines import AdversarialTrainer
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANDiscriminator, DCGANGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))
from bundle_utils import chain_text, run_config  # noqa: E402

TINY = {"image_size": 16, "base_channels": 8, "latent_size": 8, "max_iterations": 2, "save_interval": 1,
        "sample_interval": 1, "amp": False}


def _nifti(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.float32), np.eye(4)), str(path))
    return str(path)


def _random(seed: int, shape=(20, 20)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _tiny_trainer(loader, **kw) -> AdversarialTrainer:
    torch.manual_seed(0)
    g = DCGANGenerator(2, 8, 1, 16, 8)
    d = DCGANDiscriminator(2, 1, 16, 8, norm=None)
    return AdversarialTrainer(
        "cpu", kw.pop("max_epochs", 2), loader, {"generator": g, "discriminator": d},
        {"generator": torch.optim.Adam(g.parameters(), 1e-3), "discriminator": torch.optim.Adam(d.parameters(), 1e-3)},
        DCGANObjective(8, 2), **kw,
    )


def _images(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(1, 16, 16, generator=g) * 2 - 1} for _ in range(n)]


# ---------------------------------------------------------------------------------------------- 2: small datasets
def test_fit_batch_size_rebuilds_a_loader_that_would_yield_nothing():
    loader = DataLoader(Dataset(_images(3)), batch_size=4, shuffle=True, drop_last=True, collate_fn=gan_collate)
    assert len(loader) == 0
    with pytest.warns(UserWarning, match=r"3 samples, fewer than batch_size=4: training with batches of 3"):
        fitted = fit_batch_size(loader)
    assert type(fitted) is DataLoader and fitted.batch_size == 3 and fitted.drop_last and len(fitted) == 1
    assert fitted.sampler is loader.sampler and fitted.collate_fn is gan_collate and fitted.dataset is loader.dataset
    assert next(iter(fitted))["image"].shape == (3, 1, 16, 16)
    # a plain torch loader is rebuilt as one too
    plain = torch.utils.data.DataLoader(Dataset(_images(2)), batch_size=5, drop_last=True)
    with pytest.warns(UserWarning, match="batch_size=5"):
        assert type(fit_batch_size(plain)) is torch.utils.data.DataLoader and len(fit_batch_size(plain)) == 1
    # drop_last=False already yields one smaller batch: same loader, still a warning
    keep = DataLoader(Dataset(_images(3)), batch_size=4, drop_last=False)
    with pytest.warns(UserWarning, match="every epoch is one batch of 3"):
        assert fit_batch_size(keep) is keep
    # big enough: untouched, silent
    big = DataLoader(Dataset(_images(8)), batch_size=4, drop_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_batch_size(big) is big


def test_trainer_trains_a_dataset_smaller_than_the_batch():
    loader = DataLoader(Dataset(_images(3)), batch_size=16, shuffle=True, drop_last=True, collate_fn=gan_collate)
    with pytest.warns(UserWarning, match=r"3 samples, fewer than batch_size=16"):
        trainer = _tiny_trainer(loader, max_epochs=2)
    trainer.run()
    assert trainer.state.iteration == 2 and trainer.state.epoch == 2
    assert trainer.state.output["reals"].shape[0] == 3


def test_a_run_without_iterations_raises_but_a_finished_one_does_not():
    empty = DataLoader(Dataset([]), batch_size=4, drop_last=True)
    trainer = _tiny_trainer(empty)
    with pytest.raises(RuntimeError, match=r"training did no iteration.*dataset of 0 item\(s\), batch_size=4"):
        trainer.run()
    done = _tiny_trainer(DataLoader(Dataset(_images(4)), batch_size=2, drop_last=True), max_iterations=2)
    done.run()
    assert done.state.iteration == 2
    done.run()  # already at max_iterations: nothing to do, and no error
    assert done.state.iteration == 2


def test_dcgan_bundle_on_a_folder_smaller_than_one_batch(tmp_path):
    data = tmp_path / "data"
    for i in range(8):
        _nifti(data / f"case{i}.nii.gz", _random(i))
    out = tmp_path / "run"
    # 8 files -> 6 training items, batch_size 16 with drop_last (train.json): trains in batches of 6
    with pytest.warns(UserWarning, match=r"6 samples, fewer than batch_size=16"):
        run_config("dcgan", "train.json", {**TINY, "batch_size": 16, "dataset_dir": str(data), "output_dir": str(out)})
    assert "checkpoint_2.pt" in os.listdir(out / "checkpoints")


# ---------------------------------------------------------------------------------------------- 3: bad images
def test_loader_refuses_nan_and_degenerate_images_naming_the_file(tmp_path):
    nan = _random(0)
    nan[3, 4] = np.nan
    nan_file = _nifti(tmp_path / "nan.nii.gz", nan)
    with pytest.raises(BadImageError) as err:
        LoadMedicalImage()(nan_file)
    msg = str(err.value)
    assert nan_file in msg and "1 of 400 values are not finite (1 NaN, 0 infinite)" in msg and "bad_images" in msg
    dot = _nifti(tmp_path / "dot.nii.gz", np.ones((1, 1, 1)))
    with pytest.raises(BadImageError, match=r"dot\.nii\.gz: spatial shape \(1, 1, 1\) has 0 axis/axes longer than 1"):
        LoadMedicalImage()(dot)
    # a constant image is a valid (empty) mask for the loader, refused when asked
    flat = _nifti(tmp_path / "flat.nii.gz", np.full((8, 8), 3.0))
    assert LoadMedicalImage()(flat).shape == (8, 8)
    with pytest.raises(BadImageError, match=r"flat\.nii\.gz: every value is 3"):
        LoadMedicalImage(allow_constant=False)(flat)
    # a 2D slice is fine in 2D and degenerate in 3D
    thin = _nifti(tmp_path / "thin.nii.gz", _random(1, (8, 8, 1)))
    assert LoadMedicalImage(spatial_dims=2)(thin).shape == (8, 8, 1)
    with pytest.raises(BadImageError, match="a 3D image needs 3: it is a 2D image"):
        LoadMedicalImage(spatial_dims=3)(thin)
    assert LoadMedicalImage(check_image=False)(nan_file).shape == (20, 20)


def _bad_folder(root: Path) -> dict[str, str]:
    files = {f"good{i}": _nifti(root / f"good{i}.nii.gz", _random(i)) for i in range(3)}
    nan = _random(5)
    nan[0, 0] = np.nan
    files["nan"] = _nifti(root / "nan.nii.gz", nan)
    files["flat"] = _nifti(root / "flat.nii.gz", np.zeros((20, 20)))
    files["dot"] = _nifti(root / "dot.nii.gz", np.ones((1, 1, 1)))
    return files


def test_load_datalist_bad_images_raise_and_skip(tmp_path):
    files = _bad_folder(tmp_path / "data")
    with pytest.raises(BadImageError) as err:
        load_datalist(tmp_path / "data", split="all", bad_images="raise")
    msg = str(err.value)
    assert msg.startswith("3 of 6 images cannot be trained on")
    assert f"{files['nan']}: 1 of 400 values are not finite" in msg
    assert f"{files['flat']}: every value is 0" in msg
    assert f"{files['dot']}: spatial shape (1, 1, 1)" in msg
    assert "good" not in msg and "bad_images='skip'" in msg
    with pytest.warns(UserWarning, match=r"bad_images='skip': left out 3 of 6 images") as rec:
        kept = load_datalist(tmp_path / "data", split="all", bad_images="skip")
    assert sorted(Path(it["image"]).name for it in kept) == ["good0.nii.gz", "good1.nii.gz", "good2.nii.gz"]
    assert any(files["nan"] in str(w.message) and files["dot"] in str(w.message) for w in rec)
    # default: no pixel read here (the loader's own check still stops NaN and degenerate files)
    assert len(load_datalist(tmp_path / "data", split="all")) == 6
    with pytest.raises(ValueError, match="bad_images must be one of"):
        load_datalist(tmp_path / "data", split="all", bad_images="ignore")
    # nothing left to train on
    with pytest.raises(BadImageError, match="all 1 images are bad"):
        screen_images([{"image": files["nan"]}], bad_images="skip")
    # a 2D image in a 3D datalist
    lst = tmp_path / "d3.json"
    lst.write_text(json.dumps({"training": [{"image": files["good0"]}]}))
    with pytest.raises(BadImageError, match="pipeline trains 3D volumes"):
        load_datalist(lst, split="all", spatial_dims=3, bad_images="raise")


def test_dcgan_bundle_refuses_a_nan_image_before_training_and_skips_it_when_told(tmp_path):
    data = tmp_path / "data"
    for i in range(5):
        _nifti(data / f"case{i}.nii.gz", _random(i))
    nan = _random(9)
    nan[:, 0] = np.nan
    bad = _nifti(data / "case2_nan.nii.gz", nan)
    out = tmp_path / "run"
    overrides = {**TINY, "batch_size": 2, "dataset_dir": str(data), "output_dir": str(out)}
    with pytest.raises(Exception) as err:
        run_config("dcgan", "train.json", overrides)
    text = chain_text(err.value)
    assert bad in text and "values are not finite" in text and "NonFiniteLoss" not in text
    assert not (out / "checkpoints").exists() or not os.listdir(out / "checkpoints")
    with pytest.warns(UserWarning, match=r"left out 1 of"):
        run_config("dcgan", "train.json", {**overrides, "bad_images": "skip"})
    assert "checkpoint_2.pt" in os.listdir(out / "checkpoints")


# ---------------------------------------------------------------------------------------------- 8: geometry
def test_dicom_series_of_mixed_orientations_is_refused(tmp_path):
    root = get_testdata_file("dicomdirtests", download=False)
    if root is None or not (Path(root) / "98892003" / "MR700").is_dir():
        pytest.skip("pydicom's dicomdirtests data is missing")
    series = tmp_path / "MR700"
    shutil.copytree(Path(root) / "98892003" / "MR700", series)
    with pytest.raises(ImageReadError) as err:
        LoadMedicalImage()(str(series))
    msg = str(err.value)
    assert msg.startswith(f"{series}: the 7 slices of this DICOM series have 7 different orientations")
    assert "[0.654, 0.7565, 0.003771, -0.001339, 0.006142, -1]: 1 file(s) ['4467']" in msg
    assert "spatial_dims=2" in msg
    # the same files are fine one by one (2D), and the 2D folder scan lists them so
    items = build_datalist_from_folder(series, spatial_dims=2)
    assert len(items) == 7 and LoadMedicalImage()(items[0]["image"]).shape == (16, 16)


def _ct_slice(path: Path, z: float, iop) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)


def test_3d_folder_scan_splits_a_series_by_orientation(tmp_path):
    axial, coronal = (1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1)
    for i in range(3):
        _ct_slice(tmp_path / "s" / f"ax{i}.dcm", i, axial)
    _ct_slice(tmp_path / "s" / "ax_noise.dcm", 3, (1, 0, 0, 0, 1, 2e-4))  # rounding noise: same orientation
    for i in range(2):
        _ct_slice(tmp_path / "s" / f"co{i}.dcm", i, coronal)
    _ct_slice(tmp_path / "s" / "sag.dcm", 0, (0, 1, 0, 0, 0, -1))
    with pytest.raises(ImageReadError, match=r"7 slices of this DICOM series have 3 different orientations"):
        LoadMedicalImage()(str(tmp_path / "s"))
    with pytest.warns(UserWarning, match=r"3 different orientations.*2 with two or more slices kept"):
        items = build_datalist_from_folder(tmp_path, spatial_dims=3)
    names = sorted(sorted(Path(f).name for f in it["image"]) for it in items)
    assert names == [["ax0.dcm", "ax1.dcm", "ax2.dcm", "ax_noise.dcm"], ["co0.dcm", "co1.dcm"]]
    shapes = sorted(tuple(LoadMedicalImage()(it["image"]).shape) for it in items)
    assert shapes == [(128, 128, 2), (128, 128, 4)]


def _png(path: Path, width: int = 30, height: int = 20) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(0).random((height, width)) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_box_outside_the_image_in_any_split_stops_loading(tmp_path, split):
    good, wide = _png(tmp_path / "a.png"), _png(tmp_path / "b.png")
    lists = {"training": [{"image": good, "boxes": [[1, 1, 5, 5]]}], "validation": [], "test": []}
    lists[split] = [{"image": wide, "boxes": [[0, 0, 31, 5]], "box_labels": [0]}]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(lists))
    with pytest.raises(InvalidBoxesError) as err:
        load_datalist(path, split="training")
    msg = str(err.value)
    assert f"'{split}' list" in msg and wide in msg and "outside the image of size (30, 20)" in msg
    assert load_datalist(path, split="training", check=False)[0]["image"] == good


def test_box_outside_the_image_in_the_held_out_part_of_a_single_list(tmp_path):
    images = [_png(tmp_path / f"{i}.png") for i in range(10)]

    def write(boxes):
        rows = ["image,boxes,patient"] + [f"{im},{b},p{i}" for i, (im, b) in enumerate(zip(images, boxes))]
        (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")

    write(["1 1 5 5"] * 10)
    held_out = load_datalist(tmp_path / "list.csv", split="validation")[0]["image"]
    boxes = ["0 0 40 5" if im == held_out else "1 1 5 5" for im in images]
    write(boxes)
    # the training part itself is fine, the validation part of the same list is not: loading training says so
    assert held_out not in [it["image"] for it in load_datalist(tmp_path / "list.csv", split="training", check=False)]
    with pytest.raises(InvalidBoxesError) as err:
        load_datalist(tmp_path / "list.csv", split="training")
    assert held_out in str(err.value) and "outside the image of size (30, 20)" in str(err.value)


def test_items_with_and_without_patient_collate(tmp_path):
    from PIL import Image

    _ct_slice(tmp_path / "a_ct.dcm", 0, (1, 0, 0, 0, 1, 0))  # PatientID from the file
    no_id = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    del no_id.PatientID
    no_id.save_as(tmp_path / "b_mr.dcm")
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / "c.png")
    items = load_datalist(tmp_path, split="all")
    patients = [pydicom.dcmread(tmp_path / "a_ct.dcm").PatientID, str(tmp_path / "b_mr.dcm"), str(tmp_path / "c.png")]
    assert [it["patient"] for it in items] == patients  # without one, an item is its own patient
    batch = gan_collate([{**it, "image": torch.zeros(1, 4, 4)} for it in items])
    assert batch["image"].shape == (3, 1, 4, 4) and len(batch["patient"]) == 3
