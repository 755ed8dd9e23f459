# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Command line ``python -m monai_gan_aug.metrics`` and ``evaluate_sets``: folders, datalists, 3D, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_gan_aug.metrics.__main__ import main
from monai_gan_aug.metrics.evaluate import evaluate_sets
from monai_gan_aug.metrics.extractors import INCEPTION_ENV_VAR, RandomConvFeatures

ROOT = Path(__file__).resolve().parents[2]


def _png_folder(path: Path, n: int, rng: np.random.Generator, scale: float = 255.0, prefix: str = "img") -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        f = path / f"{prefix}{i:03d}.png"
        Image.fromarray((rng.random((32, 32)) * scale).astype(np.uint8)).save(f)
        files.append(str(f))
    return files


@pytest.fixture
def sets(tmp_path, rng):
    real = _png_folder(tmp_path / "real", 16, rng)
    _png_folder(tmp_path / "fake", 14, rng, scale=120.0)
    _png_folder(tmp_path / "test", 10, rng)
    Image.open(real[4]).save(tmp_path / "fake" / "planted_copy.png")
    return tmp_path


def test_cli_folders_json_markdown_memorization_and_cache(sets, capsys):
    out = sets / "out" / "result.json"
    argv = [
        "--real", str(sets / "real"), "--fake", str(sets / "fake"), "--test", str(sets / "test"),
        "--metrics", "fid,kid,mmd,1nn,prd,memorization", "--extractor", "random:16", "--out", str(out),
        "--n-bootstrap", "10", "--cache-dir", str(sets / "cache"), "--set", "mmd.subset_size=10",
        "--set", "kid.subset_size=8", "--plot", "pca",
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert set(m) == {"fid", "kid", "mmd", "1nn", "precision", "recall"}
    for r in m.values():
        assert r["n_real"] == 16 and r["n_fake"] == 15 and r["ci_low"] <= r["value"] <= r["ci_high"]
    assert m["kid"]["subset_size"] == 8 and m["mmd"]["subset_size"] == 10
    memo = report["memorization"]
    assert memo["near_copies"][0]["fake"].endswith("planted_copy.png")
    assert memo["near_copies"][0]["train"].endswith("img004.png")
    md = out.with_suffix(".md").read_text()
    assert "| fid |" in md and "planted_copy.png" in md and "| fid |" in capsys.readouterr().out
    assert Path(report["plot"]).is_file()
    assert report["settings"]["real_stats_cached"] is False
    assert main(argv) == 0  # second run reads the real statistics from the cache
    assert json.loads(out.read_text())["settings"]["real_stats_cached"] is True


def test_datalist_pa_msssim_and_is(sets):
    datalist = sets / "datalist.json"
    real_files = sorted(os.listdir(sets / "real"))
    datalist.write_text(json.dumps({"training": [{"image": f"real/{f}"} for f in real_files]}))
    paired = sets / "paired"
    paired.mkdir()
    for f in real_files[:5]:
        (paired / f).write_bytes((sets / "real" / f).read_bytes())  # same names: paired outputs
    rep = evaluate_sets(
        datalist, paired, metrics="pa,msssim", extractor="random", n_bootstrap=0,
        metric_kwargs={"msssim": {"kernel_size": 3, "weights": [0.5, 0.5], "n_images": 4, "n_tests": 2}},
    )
    assert rep["metrics"]["pa"]["value"] == 1.0 and rep["metrics"]["pa"]["n_real"] == 5
    assert 0 < rep["metrics"]["msssim"]["value"] <= 1
    with pytest.raises(ValueError, match="logits"):
        evaluate_sets(datalist, paired, metrics="is", extractor="random")
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate_sets(datalist, paired, metrics="fid,foo", extractor="random")


def test_volumes_use_per_plane_features(tmp_path, rng):
    for name, shift in (("real", 0.0), ("fake", 0.5)):
        (tmp_path / name).mkdir()
        for i in range(6):
            vol = rng.normal(size=(12, 12, 10)).astype(np.float32) + shift
            nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / name / f"v{i}.nii.gz")
    # a 2D network is applied per plane
    rep = evaluate_sets(tmp_path / "real", tmp_path / "fake", metrics="fid,kid", extractor=RandomConvFeatures(dim=8), n_bootstrap=0)
    assert rep["extractor"].startswith("perplane") and rep["feature_dim"] == 24
    assert np.isfinite(rep["metrics"]["fid"]["value"]) and rep["settings"]["spatial_size"] == [12, 12, 10]
    # "random" builds a 3D network for volumes
    rep3d = evaluate_sets(tmp_path / "real", tmp_path / "fake", metrics="fid", extractor="random:8", n_bootstrap=0)
    assert rep3d["extractor"].startswith("random_conv3d") and rep3d["feature_dim"] == 8


def test_bad_inputs(tmp_path, capsys):
    assert main(["--real", str(tmp_path / "missing"), "--fake", str(tmp_path), "--out", str(tmp_path / "r.json"),
                 "--extractor", "random"]) == 2
    assert "neither a folder" in capsys.readouterr().err
    assert main(["--real", "a", "--fake", "b", "--out", "c", "--set", "oops"]) == 2
    assert "METRIC.PARAM=VALUE" in capsys.readouterr().err


def test_inception_without_weights_fails_clearly(sets, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    monkeypatch.setattr("torch.hub._hub_dir", None)
    monkeypatch.delenv(INCEPTION_ENV_VAR, raising=False)
    out = tmp_path / "r.json"
    assert main(["--real", str(sets / "real"), "--fake", str(sets / "fake"), "--out", str(out)]) == 2  # default: inception
    err = capsys.readouterr().err
    assert "never downloaded" in err and str(tmp_path / "no_torch_home") in err and "--inception-weights" in err
    assert not out.exists()


@pytest.mark.slow
def test_module_entry_point_without_inception_weights(sets, tmp_path):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "no_torch_home"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop(INCEPTION_ENV_VAR, None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai_gan_aug.metrics", "--real", str(sets / "real"), "--fake", str(sets / "fake"),
         "--metrics", "fid", "--extractor", "inception", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300, check=False,
    )
    assert proc.returncode == 2
    assert "never downloaded" in proc.stderr and str(tmp_path / "no_torch_home") in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_bundle_config_expression(sets):
    """The evaluate.json snippet of docs/metrics.md runs through MONAI's ConfigParser."""
    from monai.bundle import ConfigParser

    config = {
        "imports": ["$from monai_gan_aug.metrics import evaluate_sets"],
        "output_dir": str(sets / "bundle_out"),
        "real_dir": str(sets / "real"),
        "fake_dir": str(sets / "fake"),
        "evaluate": "$evaluate_sets(@real_dir, @fake_dir, metrics=['fid', 'kid'], "
        "extractor='random', n_bootstrap=0, out=@output_dir + '/gan_metrics.json')",
    }
    parser = ConfigParser(config)
    report = parser.get_parsed_content("evaluate")
    assert set(report["metrics"]) == {"fid", "kid"}
    assert (sets / "bundle_out" / "gan_metrics.json").is_file() and (sets / "bundle_out" / "gan_metrics.md").is_file()
