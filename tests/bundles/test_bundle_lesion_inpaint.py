# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""lesion_inpaint bundle: one training iteration, inference that adds lesions to real slices (old + new boxes, every
new box inside the image and the brain, away from the existing lesions; only the new boxes change), requested boxes
from a box file, and bad input refused before anything is written; the same in 3D (32^3 demo volumes, 3D boxes)."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import REPO, chain_text, run_config, tiny_demo

from monai_gan_aug.data import load_datalist
from monai_gan_aug.utils.settings import read_settings

NET = {"image_size": 32, "patch_size": 16, "box_crop_size": 8, "channels": [4, 8, 8], "critic_channels": [4, 8]}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    wf = run_config("lesion_inpaint", "train.json", {**NET, "dataset_dir": demo_dir, "output_dir": str(out), "batch_size": 1,
                                                     "max_iterations": 1, "save_interval": 1, "sample_interval": 1})
    return out, wf


def _slices(demo_dir):
    """Training slices as the inference sees them (32 px demo: the resize is the identity)."""
    out = []
    for item in load_datalist(demo_dir, split="training", spatial_dims=2):
        out.append({"image": np.asarray(nib.load(item["image"]).dataobj, dtype=np.float32),
                    "tissue": np.asarray(nib.load(item["tissue"]).dataobj), "boxes": item["boxes"]})
    return out


def _infer(out, demo_dir, syn, **kw):
    return run_config("lesion_inpaint", "inference.json", {"dataset_dir": demo_dir, "output_dir": str(out),
                                                           "synthetic_dir": str(syn), **kw}, workflow_type="infer")


def test_train_writes_checkpoint_settings_and_samples(trained):
    out, wf = trained
    assert wf.parser.get_parsed_content("train#trainer").state.iteration == 1
    assert (out / "checkpoints" / "checkpoint_1.pt").is_file()
    settings = read_settings(out / "checkpoints")
    assert settings["patch_size"] == 16 and settings["image_size"] == 32 and settings["size_condition"] is True
    assert (out / "samples" / "samples_0000001.png").is_file()
    state = torch.load(out / "checkpoints" / "checkpoint_1.pt", weights_only=True)
    assert {k.split(".")[0] for k in state["networks"]} == {"generator", "context_critic", "box_critic"}


def test_inference_adds_lesions_inside_the_brain(trained, demo_dir, tmp_path):
    out, _ = trained
    syn = tmp_path / "syn"
    wf = _infer(out, demo_dir, syn, num_samples=4, batch_size=3, num_lesions=2)
    dataset = wf.parser.get_parsed_content("dataset")
    plan = dataset.plan
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 4 and manifest["complete"]
    assert [f["seed"] for f in manifest["files"]] == [1000000, 1000001, 1000002, 1000003]
    slices = _slices(demo_dir)
    for rec, (source, new, _) in zip(manifest["files"], plan):
        real = slices[source]
        old = np.asarray(real["boxes"], dtype=np.float64).reshape(-1, 4)
        boxes = np.asarray(rec["boxes"]).reshape(-1, 4)
        assert len(new) == 2 and len(boxes) == len(old) + 2
        np.testing.assert_allclose(boxes[: len(old)], old)  # the slice's own boxes first ...
        np.testing.assert_allclose(boxes[len(old):], new)  # ... then the new ones
        np.testing.assert_allclose(rec["new_boxes"], new)  # the added lesions are listed apart (realism scores them)
        assert len(rec["new_box_labels"]) == 2 and rec["source_image"] == dataset.slices[source].name
        region = np.zeros((32, 32), dtype=bool)
        for b in new:
            x0, y0, x1, y1 = (int(v) for v in b)
            assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32  # inside the image
            assert (real["tissue"][x0:x1, y0:y1] > 0).all()  # inside the brain
            for o in old:  # away from the existing lesions
                assert not (min(x1, o[2]) > max(x0, o[0]) and min(y1, o[3]) > max(y0, o[1]))
            region[max(x0 - 2, 0) : x1 + 2, max(y0 - 2, 0) : y1 + 2] = True  # box + feathered ring
        assert len((syn / rec["yolo"]).read_text().splitlines()) == len(boxes)
        label = np.asarray(nib.load(syn / rec["label"]).dataobj)
        for b in new:
            assert label[int(b[0]) : int(b[2]), int(b[1]) : int(b[3])].all()  # the label of a new lesion is its box
        image = np.asarray(nib.load(syn / rec["image"]).dataobj)
        scaled = dataset.slices[source].image[0].numpy()  # the real slice scaled to [-1, 1]
        np.testing.assert_allclose(image[~region], scaled[~region], atol=1e-5)  # only the new boxes change
        assert not np.allclose(image[region], scaled[region])
        assert rec["class"] == 1
    datalist = json.loads((syn / "datalist.json").read_text())["training"]
    assert len(datalist) == 4 and all(d["synthetic"] for d in datalist)
    assert [d["new_boxes"] for d in datalist] == [r["new_boxes"] for r in manifest["files"]]
    _infer(out, demo_dir, tmp_path / "again", num_samples=4, batch_size=1, num_lesions=2)  # other batching, same files
    for rec in manifest["files"]:
        a = np.asarray(nib.load(syn / rec["image"]).dataobj)
        np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "again" / rec["image"]).dataobj), a, atol=1e-6)


def test_requested_boxes_from_a_box_file(trained, demo_dir, tmp_path):
    out, _ = trained
    slices = _slices(demo_dir)
    fg = [(s["tissue"] > 0) for s in slices]
    box = next([x, y, x + 4, y + 4] for x in range(2, 26) for y in range(2, 26)
               if all(f[x - 1 : x + 5, y - 1 : y + 5].all() for f in fg)
               and all(not (min(x + 5, o[2]) > max(x - 1, o[0]) and min(y + 5, o[3]) > max(y - 1, o[1]))
                       for s in slices for o in s["boxes"]))
    box_file = tmp_path / "boxes.json"
    box_file.write_text(json.dumps({"image_size": [32, 32], "box_sets": [{"boxes": [box], "box_labels": [0]}]}))
    syn = tmp_path / "syn"
    _infer(out, demo_dir, syn, box_file=str(box_file), num_samples=2)
    files = json.loads((syn / "manifest.json").read_text())["files"]
    assert [f["boxes"][-1] for f in files] == [box, box]


def _refused(out, demo_dir, syn, match, **kw):
    with pytest.raises(Exception) as err:
        _infer(out, demo_dir, syn, **{"num_samples": 2, **kw})
    assert match in chain_text(err.value), chain_text(err.value)[-2000:]
    assert not syn.exists()  # nothing written


def test_bad_requests_are_refused_before_anything_is_written(trained, demo_dir, tmp_path):
    out, _ = trained
    slices = _slices(demo_dir)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"image_size": [32, 32], "box_sets": [{"boxes": [[28, 28, 36, 33]]}]}))
    _refused(out, demo_dir, tmp_path / "s1", "outside the image", box_file=str(outside))
    corner = tmp_path / "corner.json"  # the slice corners are background (skull-stripped)
    assert not any((s["tissue"][:3, :3] > 0).any() for s in slices)
    corner.write_text(json.dumps({"image_size": [32, 32], "box_sets": [{"boxes": [[0, 0, 3, 3]]}]}))
    _refused(out, demo_dir, tmp_path / "s2", "in the foreground", box_file=str(corner))
    on_lesion = tmp_path / "on_lesion.json"
    on_lesion.write_text(json.dumps({"image_size": [32, 32], "box_sets": [{"boxes": [slices[0]["boxes"][0]]}]}))
    _refused(out, demo_dir, tmp_path / "s3", "existing lesion", box_file=str(on_lesion))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{'boxes': [[1, 2, 3")
    _refused(out, demo_dir, tmp_path / "s4", f"box file {bad_json} is not valid JSON", box_file=str(bad_json))
    three = tmp_path / "three.json"
    three.write_text(json.dumps({"image_size": [32, 32], "box_sets": [{"boxes": [[1, 2, 3]]}]}))
    _refused(out, demo_dir, tmp_path / "s5", f"box file {three}: boxes must have shape (N, 4)", box_file=str(three))


def test_slice_of_another_size_is_refused(trained, tmp_path):
    out, _ = trained
    other = tiny_demo(str(tmp_path / "demo48"), 2, 48)
    _refused(out, other, tmp_path / "s", "is (48, 48) after preprocessing, the generator was trained on (32, 32)",
             resize_slices="false")
    wf = _infer(out, other, tmp_path / "resized", num_samples=1)  # resized like the training slices: accepted
    assert wf.parser.get_parsed_content("dataset").spatial_size == (32, 32)


def test_metadata_verifies():
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
         "bundles/lesion_inpaint/configs/metadata.json", "--filepath", "bundles/schemas/meta_schema_generator.json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert "metadata is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------- 3D
NET3D = {**NET, "spatial_dims": 3}  # 32^3 volumes, 16^3 patches, 8^3 lesion crops


@pytest.fixture(scope="module")
def demo3d(tmp_path_factory):
    """3D demo volumes (32^3) with 3D boxes [x0, y0, z0, x1, y1, z1]: 8 patients give 5 training volumes, 2 with
    lesions (the lesion_items the training crops around)."""
    from monai_gan_aug.data.demo import make_demo_dataset

    return str(make_demo_dataset(tmp_path_factory.mktemp("demo3d"), spatial_dims=3, seed=0, n_patients=8, image_size=32))


@pytest.fixture(scope="module")
def trained3d(demo3d, tmp_path_factory):
    out = tmp_path_factory.mktemp("run3d")
    wf = run_config("lesion_inpaint", "train.json", {**NET3D, "dataset_dir": demo3d, "output_dir": str(out),
                                                     "batch_size": 1, "max_iterations": 2, "save_interval": 1,
                                                     "sample_interval": 1})
    return out, wf


def _volumes(demo_dir):
    """Training volumes as the 3D inference sees them (32^3 demo: the resize is the identity)."""
    out = []
    for item in load_datalist(demo_dir, split="training", spatial_dims=3):
        out.append({"tissue": np.asarray(nib.load(item["tissue"]).dataobj),
                    "boxes": np.asarray(item["boxes"], dtype=np.float64).reshape(-1, 6)})
    return out


def _box3d(b, grow=0):
    """The whole-voxel region of a 3D box, grown by ``grow`` voxels (clipped at 0)."""
    return tuple(slice(max(int(b[a]) - grow, 0), int(b[a + 3]) + grow) for a in range(3))


def _overlap3d(a, b):
    return all(min(a[k + 3], b[k + 3]) > max(a[k], b[k]) for k in range(3))


def test_3d_train_writes_checkpoint_and_3d_settings(trained3d, demo3d):
    out, wf = trained3d
    assert wf.parser.get_parsed_content("train#trainer").state.iteration == 2
    assert (out / "checkpoints" / "checkpoint_2.pt").is_file() and (out / "samples" / "samples_0000002.png").is_file()
    settings = read_settings(out / "checkpoints")
    assert settings["spatial_dims"] == 3 and settings["patch_size"] == 16 and settings["image_size"] == 32
    state = torch.load(out / "checkpoints" / "checkpoint_2.pt", weights_only=True)
    first = state["networks"]["generator.encoder.0.conv1.conv.weight"]
    assert first.ndim == 5 and first.shape[1] == 1 + 1 + 3  # 3D kernels on [patch, mask, 3 lesion-size maps]
    assert all(len(b) == 6 for it in load_datalist(demo3d, split="training", spatial_dims=3) for b in it["boxes"])


def test_3d_inference_adds_lesions_to_real_volumes(trained3d, demo3d, tmp_path):
    out, _ = trained3d
    syn = tmp_path / "syn"
    wf = _infer(out, demo3d, syn, num_samples=3, batch_size=2, num_lesions=2)
    dataset = wf.parser.get_parsed_content("dataset")
    assert dataset.spatial_size == (32, 32, 32)
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and manifest["complete"]
    vols = _volumes(demo3d)
    for rec, (source, new, _) in zip(manifest["files"], dataset.plan):
        real, old = vols[source], vols[source]["boxes"]
        boxes = np.asarray(rec["boxes"]).reshape(-1, 6)
        assert len(new) == 2 and new.shape == (2, 6) and len(boxes) == len(old) + 2
        np.testing.assert_allclose(boxes[: len(old)], old)  # the volume's own boxes first, then the new ones
        np.testing.assert_allclose(boxes[len(old):], new)
        np.testing.assert_allclose(rec["new_boxes"], new)
        assert len(rec["new_box_labels"]) == 2 and rec["source_image"] == dataset.slices[source].name
        assert "yolo" not in rec and not list((syn / "labels").glob("*.txt"))  # no 2D YOLO files for volumes
        image = np.asarray(nib.load(syn / rec["image"]).dataobj)
        label = np.asarray(nib.load(syn / rec["label"]).dataobj)
        scaled = dataset.slices[source].image[0].numpy()  # the real volume scaled to [-1, 1]
        assert image.shape == label.shape == scaled.shape == (32, 32, 32)
        region = np.zeros((32, 32, 32), dtype=bool)
        for b in new:
            assert all(0 <= b[a] < b[a + 3] <= 32 for a in range(3))  # inside the volume
            assert (real["tissue"][_box3d(b)] > 0).all()  # inside the brain
            assert not any(_overlap3d(b, o) for o in old)  # away from the existing lesions
            assert label[_box3d(b)].all()  # the label of a new lesion is its box
            assert not np.allclose(image[_box3d(b)], scaled[_box3d(b)])  # the box is generated
            region[_box3d(b, grow=2)] = True  # box + feathered ring (feather 2, chessboard distance)
        np.testing.assert_allclose(image[~region], scaled[~region], atol=1e-5)  # real voxels everywhere else
        assert rec["class"] == 1
    datalist = json.loads((syn / "datalist.json").read_text())["training"]
    assert [d["new_boxes"] for d in datalist] == [r["new_boxes"] for r in manifest["files"]]
    _infer(out, demo3d, tmp_path / "again", num_samples=3, batch_size=1, num_lesions=2)  # other batching, same files
    for rec in manifest["files"]:  # up to float rounding (batched 3D convolutions sum in another order: ~2e-6 seen)
        a = np.asarray(nib.load(syn / rec["image"]).dataobj)
        np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "again" / rec["image"]).dataobj), a, atol=1e-4)


def test_3d_requested_boxes_from_a_box_file(trained3d, demo3d, tmp_path):
    out, _ = trained3d
    vols = _volumes(demo3d)
    fg = [v["tissue"] > 0 for v in vols]
    box = next([x, y, z, x + 4, y + 4, z + 4] for x in range(2, 26) for y in range(2, 26) for z in range(2, 26)
               if all(f[x - 1 : x + 5, y - 1 : y + 5, z - 1 : z + 5].all() for f in fg)
               and not any(_overlap3d([x - 1, y - 1, z - 1, x + 5, y + 5, z + 5], o) for v in vols for o in v["boxes"]))
    box_file = tmp_path / "boxes.json"
    box_file.write_text(json.dumps({"image_size": [32, 32, 32], "box_sets": [{"boxes": [box], "box_labels": [0]}]}))
    syn = tmp_path / "syn"
    wf = _infer(out, demo3d, syn, box_file=str(box_file), num_samples=2)
    dataset = wf.parser.get_parsed_content("dataset")
    files = json.loads((syn / "manifest.json").read_text())["files"]
    assert [f["boxes"][-1] for f in files] == [box, box] and [f["new_boxes"] for f in files] == [[box], [box]]
    for rec, (source, _, _) in zip(files, dataset.plan):
        image = np.asarray(nib.load(syn / rec["image"]).dataobj)
        scaled = dataset.slices[source].image[0].numpy()
        assert np.asarray(nib.load(syn / rec["label"]).dataobj)[_box3d(box)].all()
        assert not np.allclose(image[_box3d(box)], scaled[_box3d(box)])
        outside = np.ones(image.shape, dtype=bool)
        outside[_box3d(box, grow=2)] = False
        np.testing.assert_allclose(image[outside], scaled[outside], atol=1e-5)


def test_3d_bad_box_files_are_refused_before_anything_is_written(trained3d, demo3d, tmp_path):
    out, _ = trained3d
    vols = _volumes(demo3d)

    def write(name, content):
        path = tmp_path / name
        path.write_text(json.dumps(content))
        return str(path)

    outside = write("outside.json", {"image_size": [32, 32, 32], "box_sets": [{"boxes": [[20, 20, 28, 26, 26, 36]]}]})
    _refused(out, demo3d, tmp_path / "s1", "outside the image", box_file=outside)
    assert not any((v["tissue"][:3, :3, :3] > 0).any() for v in vols)  # the volume corners are background
    corner = write("corner.json", {"image_size": [32, 32, 32], "box_sets": [{"boxes": [[0, 0, 0, 3, 3, 3]]}]})
    _refused(out, demo3d, tmp_path / "s2", "requested box [0.0, 0.0, 0.0, 3.0, 3.0, 3.0] (box set 0) on volume",
             box_file=corner)
    _refused(out, demo3d, tmp_path / "s3", "of it lies in the foreground (tissue)", box_file=corner)
    k = next(i for i, v in enumerate(vols) if len(v["boxes"]))  # item k: box set k on volume k, which has a lesion
    sets = [{"boxes": []}] * k + [{"boxes": [vols[k]["boxes"][0].tolist()]}]
    on_lesion = write("on_lesion.json", {"image_size": [32, 32, 32], "box_sets": sets})
    _refused(out, demo3d, tmp_path / "s4", f"(box set {k}) on volume", box_file=on_lesion, num_samples=k + 1)
    _refused(out, demo3d, tmp_path / "s4", "existing lesion", box_file=on_lesion, num_samples=k + 1)
    flat = write("flat.json", {"image_size": [32, 32, 32], "box_sets": [{"boxes": [[10, 10, 14, 14]]}]})
    _refused(out, demo3d, tmp_path / "s5", f"box file {flat}: boxes must have shape (N, 6)", box_file=flat)
    two_d = write("two_d.json", {"image_size": [32, 32], "box_sets": [{"boxes": [[10, 10, 14, 14]]}]})
    _refused(out, demo3d, tmp_path / "s6", f"box file {two_d}: its boxes refer to images of size [32, 32], the "
             "generator makes 3D images of size [32, 32, 32]", box_file=two_d)
