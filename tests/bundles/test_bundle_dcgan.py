# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DCGAN and WGAN-GP bundles: one tiny iteration each, inference with manifest, no silent overwrite, DICOM input,
metadata schema, SIGKILL resume and torchrun (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, bundle_cli, chain_text, config_list, run_config, tiny_demo
from PIL import Image

TINY = {"image_size": 16, "base_channels": 4, "batch_size": 2, "latent_size": 8, "save_interval": 1, "sample_interval": 1}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.mark.parametrize("bundle", ["dcgan", "wgan_gp"])
def test_train_then_infer(bundle, demo_dir, tmp_path):
    out = tmp_path / "run"
    run_config(bundle, "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 2})
    ckpts = sorted(os.listdir(out / "checkpoints"))
    assert "checkpoint_2.pt" in ckpts
    assert sorted(os.listdir(out / "samples"))[-1] == "samples_0000002.png"
    assert any(f.startswith("events") for f in os.listdir(out / "tensorboard"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = set()
    for f in (out / "tensorboard").glob("events*"):
        acc = EventAccumulator(str(f), size_guidance={"images": 0})
        acc.Reload()
        images |= set(acc.Tags()["images"])
    assert "samples/grid" in images  # the sample grid next to the losses

    inf = {"dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 3, "batch_size": 2,
           **{k: TINY[k] for k in ("image_size", "base_channels", "latent_size")}}
    run_config(bundle, "inference.json", inf, workflow_type="infer")
    syn = out / "synthetic"
    manifest = json.loads((syn / "manifest.json").read_text())
    assert manifest["num_samples"] == 3 and manifest["checkpoint"].endswith("checkpoint_2.pt")
    assert len(manifest["checkpoint_sha256"]) == 64 and manifest["config_hash"]
    assert [f["seed"] for f in manifest["files"]] == [1000000, 1000001, 1000002]
    nii = nib.load(syn / manifest["files"][0]["image"])
    assert nii.shape == (16, 16) and b"SYNTHETIC" in nii.header["descrip"].tobytes()
    arr = np.asarray(nii.dataobj)
    assert arr.min() >= -1.0 and arr.max() <= 1.0 and arr.std() > 0
    png = Image.open(syn / manifest["files"][0]["png"])
    assert png.size == (16, 16) and png.text["synthetic"] == "true"
    datalist = json.loads((syn / "datalist.json").read_text())
    assert len(datalist["training"]) == 3 and all(d["synthetic"] for d in datalist["training"])

    # evaluate.json: GAN metrics of the synthetic set against the real training split (random extractor: offline)
    run_config(bundle, "evaluate.json", {"dataset_dir": demo_dir, "output_dir": str(out), "image_size": 16,
                                         "extractor": "random", "n_bootstrap": 5, "plot": None,
                                         "metrics": ["fid", "kid", "mmd", "1nn", "msssim"]}, workflow_type="infer")
    metrics = json.loads((out / "evaluation" / "gan_metrics.json").read_text())
    text = json.dumps(metrics)
    assert all(m in text for m in ("fid", "kid", "mmd", "1nn", "msssim"))
    assert (out / "evaluation" / "gan_metrics.md").is_file()

    # a second generation into the same folder is refused and leaves the first set intact
    before = sorted(os.listdir(syn / "images"))
    with pytest.raises(Exception) as err:
        run_config(bundle, "inference.json", inf, workflow_type="infer")
    assert "already holds files" in chain_text(err.value)
    assert sorted(os.listdir(syn / "images")) == before
    # the same seeds regenerate the same image
    run_config(bundle, "inference.json", {**inf, "synthetic_dir": str(out / "again")}, workflow_type="infer")
    np.testing.assert_allclose(np.asarray(nib.load(out / "again" / manifest["files"][0]["image"]).dataobj), arr, atol=1e-6)


def _dicom_folder(tmp: Path) -> Path:
    """Real DICOM files of mixed transfer syntaxes and modalities from pydicom's test data."""
    from pydicom.data import get_testdata_file

    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
             "JPEG2000.dcm", "SC_rgb_rle.dcm", "US1_J2KR.dcm", "emri_small.dcm", "RG1_J2KI.dcm"]
    folder = tmp / "dicoms"
    folder.mkdir()
    for n in names:
        src = get_testdata_file(n)
        if src is not None:
            shutil.copy(src, folder / n)
    assert len(os.listdir(folder)) >= 6
    return folder


def test_dcgan_on_real_dicom_folder(tmp_path):
    folder = _dicom_folder(tmp_path)
    out = tmp_path / "run"
    run_config("dcgan", "train.json", {**TINY, "dataset_dir": str(folder), "output_dir": str(out), "max_epochs": 1})
    assert any(f.startswith("checkpoint_") for f in os.listdir(out / "checkpoints"))
    run_config("dcgan", "inference.json", {"dataset_dir": str(folder), "output_dir": str(out), "num_samples": 2,
                                           **{k: TINY[k] for k in ("image_size", "base_channels", "latent_size")}},
               workflow_type="infer")
    assert json.loads((out / "synthetic" / "manifest.json").read_text())["num_samples"] == 2


def test_corrupt_file_named_in_error(tmp_path):
    folder = _dicom_folder(tmp_path)
    good = (folder / "CT_small.dcm").read_bytes()
    (folder / "broken.dcm").write_bytes(good[: len(good) // 3])
    with pytest.raises(Exception) as err:
        run_config("dcgan", "train.json", {**TINY, "dataset_dir": str(folder), "output_dir": str(tmp_path / "o"),
                                           "max_epochs": 1})
    assert "broken.dcm" in chain_text(err.value)


@pytest.mark.parametrize("bundle", ["dcgan", "wgan_gp"])
def test_metadata_verifies(bundle):
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", f"bundles/{bundle}/configs/metadata.json",
         "--filepath", "bundles/schemas/meta_schema_generator.json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert "metadata is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def _tb_steps(logdir: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for f in sorted(logdir.glob("events*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.endswith("g_loss"):
                steps += [e.step for e in acc.Scalars(tag)]
    return sorted(steps)


@pytest.mark.slow
def test_sigkill_then_resume(demo_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--dataset_dir", demo_dir, "--output_dir", str(out), "--max_epochs", "100000", "--max_iterations", "1000000", "--image_size", "16",
            "--base_channels", "4", "--latent_size", "8", "--batch_size", "2", "--save_interval", "5",
            "--train#handlers#5#iteration_log", "1"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_list("dcgan", "train.json"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckdir = out / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckdir.exists() and any(f.name.startswith("checkpoint_") for f in ckdir.iterdir())):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from monai_gan_aug.engines import find_latest_checkpoint
    from monai_gan_aug.engines.utils import checkpoint_iteration

    last = checkpoint_iteration(find_latest_checkpoint(ckdir))
    assert last is not None and 5 <= last < 1000000
    done = bundle_cli("dcgan", "train.json", *[a if a != "1000000" else str(last + 6) for a in args])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Resumed from {ckdir / f'checkpoint_{last}.pt'} at iteration {last}" in done.stdout + done.stderr
    assert checkpoint_iteration(find_latest_checkpoint(ckdir)) == last + 6
    steps = _tb_steps(out / "tensorboard")
    assert steps[-1] == last + 6 and set(range(last + 1, last + 7)) <= set(steps)  # the curve continues


@pytest.mark.slow
def test_torchrun_two_ranks_gloo(demo_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "monai.bundle", "run",
           "--config_file", config_list("dcgan", ["train.json", "multi_gpu_train.json"]),  # [common, train, multi_gpu]
           "--dataset_dir", demo_dir, "--output_dir", str(out), "--max_iterations", "2", "--image_size", "16",
           "--base_channels", "4", "--latent_size", "8", "--batch_size", "1", "--save_interval", "1", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "checkpoints" / "checkpoint_2.pt").is_file()


@pytest.mark.parametrize("bundle", ["dcgan", "wgan_gp"])
def test_3d_volumes(bundle, tmp_path_factory, tmp_path):
    demo3 = tiny_demo(str(tmp_path_factory.mktemp("demo3")), spatial_dims=3, image_size=16)
    tiny = {"image_size": 16, "base_channels": 4, "batch_size": 1, "latent_size": 8, "spatial_dims": 3}
    out = tmp_path / "run"
    run_config(bundle, "train.json", {**tiny, "dataset_dir": demo3, "output_dir": str(out), "max_iterations": 1})
    run_config(bundle, "inference.json", {**tiny, "dataset_dir": demo3, "output_dir": str(out), "num_samples": 2},
               workflow_type="infer")
    manifest = json.loads((out / "synthetic" / "manifest.json").read_text())
    vol = nib.load(out / "synthetic" / manifest["files"][0]["image"])
    assert vol.shape == (16, 16, 16)
    ref = nib.load(json.loads(Path(demo3).read_text())["training"][0]["image"].join([str(Path(demo3).parent) + "/", ""]))
    # spacing of the training volume, scaled by the size ratio
    assert np.allclose(np.abs(np.diag(vol.affine)[:3]), np.abs(np.diag(ref.affine)[:3]) * ref.shape[0] / 16, rtol=1e-3)


def test_command_line_false_strings_mean_false(demo_dir, tmp_path):
    """`python -m monai.bundle run ... --amp false` passes the string 'false' (truthy in Python): the flags must
    still read it as False, and `--overwrite false` must not overwrite a synthetic set."""
    out = tmp_path / "run"
    wf = run_config("dcgan", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "max_iterations": 1,
                                            "amp": "false", "fused_optimizer": "false", "resume": "true"})
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.amp is False
    assert all(o.defaults["fused"] is False for o in trainer.optimizers.values())
    inf = {"dataset_dir": demo_dir, "output_dir": str(out), "num_samples": 2, "batch_size": 2,
           **{k: TINY[k] for k in ("image_size", "base_channels", "latent_size")}}
    run_config("dcgan", "inference.json", inf, workflow_type="infer")
    syn = out / "synthetic"
    before = {p.name: p.stat().st_mtime_ns for p in syn.rglob("*") if p.is_file()}
    with pytest.raises(Exception) as err:
        run_config("dcgan", "inference.json", {**inf, "overwrite": "false"}, workflow_type="infer")
    assert "overwrite" in chain_text(err.value)
    assert before == {p.name: p.stat().st_mtime_ns for p in syn.rglob("*") if p.is_file()}
    with pytest.raises(Exception) as err:
        run_config("dcgan", "train.json", {**TINY, "dataset_dir": demo_dir, "output_dir": str(out), "amp": "maybe"})
    assert "amp must be true or false, got 'maybe'" in chain_text(err.value)
