# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Export of a trained generator as a self-contained MONAI bundle (issue 17): train dcgan and pggan_bbox for two
tiny iterations, export, copy the folder elsewhere and generate from the copy with no ``runs/`` folder reachable
(``python -m monai.bundle run``, ``monai_gan_aug.generate``, ``python -m monai_gan_aug.generate``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from bundle_utils import REPO, chain_text, run_config, tiny_demo

DCGAN = {"image_size": 16, "base_channels": 4, "latent_size": 8}
PGGAN = {"image_size": 16, "fmap_base": 32, "fmap_max": 8, "latent_size": 8}
TRAIN = {"batch_size": 2, "save_interval": 1, "sample_interval": 1000, "max_iterations": 2}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("export_demo")))


@pytest.fixture(scope="module")
def exported(demo_dir, tmp_path_factory):
    """{bundle: (run folder, fresh copy of the exported bundle)}."""
    from monai_gan_aug.engines import export_bundle

    out = {}
    for bundle, net, extra in (("dcgan", DCGAN, {}), ("pggan_bbox", PGGAN, {"images_per_phase": 4, "fidelity_interval": 1000})):
        run = tmp_path_factory.mktemp(f"run_{bundle}")
        run_config(bundle, "train.json", {**net, **TRAIN, **extra, "dataset_dir": demo_dir, "output_dir": str(run)})
        dest = export_bundle(bundle, tmp_path_factory.mktemp("export") / bundle, run_dir=run)
        copy = tmp_path_factory.mktemp("copy") / f"my_{bundle}"
        shutil.copytree(dest, copy)
        shutil.rmtree(dest)  # nothing of the export location or the run is needed any more
        out[bundle] = (run, copy)
    return out


@pytest.mark.parametrize("bundle", ["dcgan", "pggan_bbox"])
def test_exported_folder(bundle, exported):
    from monai.bundle import verify_metadata

    from monai_gan_aug.engines import check_network_data_format, metadata_inputs
    from monai_gan_aug.engines.export import generator_forward_kwargs
    from monai_gan_aug.utils import load_checkpoint

    run, copy = exported[bundle]
    for rel in ("configs/inference.json", "configs/metadata.json", "configs/train.json", "docs/README.md", "LICENSE",
                "models/model.pt", "models/model.pt2", "models/settings.json"):
        assert (copy / rel).is_file(), rel
    # the configs every other config is composed with come along
    assert (copy / "configs" / "common.json").is_file() == (REPO / "bundles" / bundle / "configs" / "common.json").is_file()
    state = load_checkpoint(copy / "models" / "model.pt")  # weights_only=True
    ckpt = load_checkpoint(run / "checkpoints" / "checkpoint_2.pt")
    ema = {k[len("generator."):]: v for k, v in ckpt["ema"].items() if k.startswith("generator.")}
    assert ema and set(state["generator"]) == set(ema)
    assert all(torch.equal(state["generator"][k], ema[k]) for k in ema)  # the EMA weights
    settings = json.loads((copy / "models" / "settings.json").read_text())
    assert settings["settings"]["image_size"] == 16 and settings["exported_from"]["iteration"] == 2
    assert len(settings["exported_from"]["checkpoint_sha256"]) == 64
    text = (copy / "configs" / "inference.json").read_text()
    assert "trained_setting(@checkpoint, 'image_size', 16)" in text and "'latent_size', 8)" in text
    meta = json.loads((copy / "configs" / "metadata.json").read_text())
    verify_metadata(meta_file=str(copy / "configs" / "metadata.json"),
                    filepath=str(REPO / "bundles" / "schemas" / "meta_schema_generator.json"))
    # the network's output at the exported stage (a PGGAN that has not grown yet draws 4 * 2**stage px; generation
    # upsamples to image_size)
    side = 4 * 2 ** int(state["generator"]["stage"]) if bundle == "pggan_bbox" else 16
    assert meta["network_data_format"]["outputs"]["pred"]["spatial_shape"] == [side, side]
    assert meta["network_data_format"]["inputs"]["latent"]["num_channels"] == 8
    if bundle == "pggan_bbox":
        assert {"stage", "alpha"} <= set(state["generator"])  # the growth stage lives in the generator's weights
        assert (copy / "models" / "box_sampler.json").is_file()
    # the exported program runs on metadata-shaped inputs like the generator with the exported weights
    program = torch.export.load(str(copy / "models" / "model.pt2")).module()
    from monai.bundle import ConfigParser

    from monai_gan_aug.engines.bundles import bundle_config_files

    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files(copy, "inference.json")])  # with common.json
    parser["bundle_root"] = str(copy)
    net = parser.get_parsed_content("network_def", lazy=False)
    net.load_state_dict(state["generator"])
    kwargs = generator_forward_kwargs(net, state.get("objective"))
    expected = check_network_data_format(net, meta, kwargs)
    with torch.no_grad():
        got = program(*metadata_inputs(meta).values())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # MONAI's own loader reads the weights from the local folder (torch.load(weights_only=True), no download)
    from monai.bundle import load

    fresh = parser.get_parsed_content("network_def", lazy=False)
    load(copy.name, model=fresh, bundle_dir=str(copy.parent), key_in_ckpt="generator", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values()))


def _synthetic_set(folder, n):
    manifest = json.loads((folder / "manifest.json").read_text())
    datalist = json.loads((folder / "datalist.json").read_text())
    assert manifest["num_samples"] == n and manifest["complete"]
    assert len(datalist["training"]) == n and all(d["synthetic"] for d in datalist["training"])
    return manifest, datalist


def test_bundle_run_from_a_copy_without_runs(exported, demo_dir, tmp_path):
    """``python -m monai.bundle run`` on the copied folder, from a working directory with no runs/ folder."""
    _, copy = exported["pggan_bbox"]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    from monai_gan_aug.engines.bundles import bundle_config_files

    files = [str(f) for f in bundle_config_files(copy, "inference.json")]  # "['<copy>/configs/common.json',...]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files) if len(files) > 1 else files[0],
           "--num_samples", "3", "--batch_size", "2", "--dataset_dir", demo_dir]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    syn = cwd / "runs" / "pggan_bbox" / "synthetic"  # the config's default output_dir, relative to the cwd
    manifest, datalist = _synthetic_set(syn, 3)
    assert manifest["checkpoint"] == str(copy / "models" / "model.pt")
    assert all("boxes" in d for d in datalist["training"])
    assert len(list((syn / "labels").glob("*.txt"))) == 3  # YOLO labels
    assert not (cwd / "runs" / "pggan_bbox" / "checkpoints").exists()


def test_generate_function_and_command(exported, demo_dir, tmp_path, monkeypatch):
    import monai_gan_aug

    _, copy = exported["dcgan"]
    monkeypatch.chdir(tmp_path)  # no runs/ folder here
    out = monai_gan_aug.generate(copy, 4, tmp_path / "syn", seed=7, batch_size=2, dataset_dir=demo_dir)
    manifest, _ = _synthetic_set(out, 4)
    assert [f["seed"] for f in manifest["files"]] == [7, 8, 9, 10]
    assert manifest["checkpoint"] == str(copy / "models" / "model.pt")

    # the command: the same seeds give the same images
    cmd = [sys.executable, "-m", "monai_gan_aug.generate", "--bundle_dir", str(copy), "--num_samples", "2",
           "--output_dir", str(tmp_path / "cli"), "--seed", "7", "--batch_size", "2", "--dataset_dir", demo_dir,
           "--formats", '["nifti"]']
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli, _ = _synthetic_set(tmp_path / "cli", 2)
    import nibabel as nib
    import numpy as np

    a = np.asarray(nib.load(tmp_path / "syn" / manifest["files"][0]["image"]).dataobj)
    b = np.asarray(nib.load(tmp_path / "cli" / cli["files"][0]["image"]).dataobj)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_generate_with_boxes(exported, demo_dir, tmp_path):
    from monai_gan_aug import generate

    _, copy = exported["pggan_bbox"]
    sets = [{"boxes": [[2, 3, 8, 9]], "box_labels": [0]}, {"boxes": [], "box_labels": []}]
    out = generate(copy, 2, tmp_path / "syn", boxes=sets, batch_size=2, dataset_dir=demo_dir, formats=["png"])
    _, datalist = _synthetic_set(out, 2)
    assert [d["boxes"] for d in datalist["training"]] == [[[2.0, 3.0, 8.0, 9.0]], []]
    with pytest.raises(ValueError, match="takes no boxes"):
        generate(exported["dcgan"][1], 1, tmp_path / "x", boxes=sets)


def test_export_errors(exported, demo_dir, tmp_path):
    from monai_gan_aug.engines import export_bundle

    run, copy = exported["dcgan"]
    with pytest.raises(FileNotFoundError, match="no checkpoint_<iteration>.pt"):
        export_bundle("dcgan", tmp_path / "a", run_dir=tmp_path / "empty_run")
    with pytest.raises(ValueError, match="not a generator bundle"):
        export_bundle("seg_unet_mix", tmp_path / "b", checkpoint=run / "checkpoints" / "checkpoint_2.pt")
    with pytest.raises(ValueError, match="not empty"):
        export_bundle("dcgan", copy, run_dir=run)
    # the exported bundle without its weights: inference stops at run time with a message saying what to do
    bare = tmp_path / "bare"
    shutil.copytree(copy, bare)
    (bare / "models" / "model.pt").unlink()
    with pytest.raises(Exception) as err:
        run_config(str(bare), "inference.json", {"output_dir": str(tmp_path / "r"), "num_samples": 1, "dataset_dir": demo_dir},
                   workflow_type="infer")
    assert "python -m monai_gan_aug.export" in chain_text(err.value)



def test_generate_with_masks(demo_dir, tmp_path):
    """A mask-conditioned bundle (pix2pix) exported and asked for images of given masks: one labelled image per mask,
    in order (item i's label comes from mask i), and a bundle without a condition key refuses masks."""
    import nibabel as nib
    import numpy as np

    from monai_gan_aug import generate
    from monai_gan_aug.data import load_datalist
    from monai_gan_aug.engines import export_bundle

    run = tmp_path / "run_pix2pix"
    tiny = {"image_size": 16, "base_channels": 4, "max_channels": 16}
    run_config("pix2pix", "train.json", {**tiny, "d_base_channels": 4, "receptive_field": 22, **TRAIN,
                                         "dataset_dir": demo_dir, "output_dir": str(run)})
    copy = export_bundle("pix2pix", tmp_path / "export" / "pix2pix", run_dir=run)
    items = load_datalist(demo_dir, split="training", spatial_dims=2)
    lesioned = [i["tissue"] for i in items if len(i.get("boxes") or [])]
    plain = [i["tissue"] for i in items if not len(i.get("boxes") or [])]
    assert lesioned and plain
    masks = [plain[0], plain[-1], lesioned[0]]  # two without a lesion, then one with

    def labels(folder, n):
        _, datalist = _synthetic_set(folder, n)
        for d in datalist["training"]:
            img = np.asarray(nib.load(str(folder / d["image"])).dataobj)
            assert img.shape[:2] == (16, 16) and np.isfinite(img).all()
        return [np.asarray(nib.load(str(folder / d["label"])).dataobj) for d in datalist["training"]]

    three = labels(generate(copy, 3, tmp_path / "syn", masks=masks, batch_size=2, deform_prob=0.0), 3)
    last = labels(generate(copy, 1, tmp_path / "one", masks=masks[2:], seed=2, deform_prob=0.0), 1)
    assert last[0].any() and not three[0].any() and not three[1].any()  # each label follows its own mask
    np.testing.assert_array_equal(three[2], last[0])  # the condition of item 2 is mask 2, whatever else is asked
    dcgan_run = tmp_path / "run_dcgan"
    run_config("dcgan", "train.json", {**DCGAN, **TRAIN, "dataset_dir": demo_dir, "output_dir": str(dcgan_run)})
    dcgan = export_bundle("dcgan", tmp_path / "export" / "dcgan", run_dir=dcgan_run)
    with pytest.raises(ValueError, match="takes no masks"):
        generate(dcgan, 1, tmp_path / "x", masks=masks)
