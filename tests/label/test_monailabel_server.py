# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label integration, end to end: a real ``monailabel start_server`` with the project's app on loopback.

Tiny pix2pix (label -> image) and box-conditioned PGGAN checkpoints are trained here (main environment, a few
iterations at 32 / 16 px on a tiny demo dataset), a synthetic set is written for the SyntheticMix segmentation
bundle, and the server (``.venv-label``, MONAI Label 0.8.5) is started on 127.0.0.1 with the demo images as its
datastore. The tests call ``/info/``, the generation ``/infer/`` endpoints and ``/train/`` like a MONAI Label client.
Every wait is bounded; the server is stopped at the end. Without ``.venv-label`` (``make label-env``) the server
tests are skipped; the wire-format tests at the top run in any environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_gan_aug.label.codec import (
    LABEL_ENCODING,
    SYNTHETIC_DESCRIP,
    decode_label,
    encode_label,
    parse_box_labels,
    parse_boxes,
    read_nifti_bytes,
    split_multipart,
)

ROOT = Path(__file__).resolve().parents[2]
LABEL_PY = ROOT / ".venv-label" / "bin" / "python"
SERVER_START_TIMEOUT = 240  # s: importing torch + MONAI Label on a busy 2-core machine
REQUEST_TIMEOUT = 180  # s per HTTP request
TRAIN_TIMEOUT = 420  # s for a MONAI Label training task
STEP_TIMEOUT = 420  # s for each bundle subprocess

P2P = {
    "image_size": 32,
    "base_channels": 8,
    "max_channels": 16,
    "cond_key": "label",
    "num_classes": 2,
    "label_values": [1],
}
PGG = {"image_size": 16, "fmap_base": 32, "fmap_max": 16, "latent_size": 16}


# ---------------------------------------------------------------------------------------------- wire format (any env)
def test_label_roundtrip_keeps_values_and_affine():
    lab = np.zeros((1, 6, 5), dtype=np.uint8)
    lab[0, 1:3, 2:4] = 1
    lab[0, 4, 0] = 3
    aff = np.diag([2.0, 3.0, 1.0, 1.0])
    entry = encode_label(lab, aff)
    assert entry["encoding"] == LABEL_ENCODING and entry["shape"] == [6, 5] and entry["values"] == [0, 1, 3]
    arr, aff2 = decode_label(json.loads(json.dumps(entry)))
    np.testing.assert_array_equal(arr, lab[0])
    np.testing.assert_allclose(aff2, aff)
    with pytest.raises(ValueError, match="encoding"):
        decode_label({"data": entry["data"]})
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        encode_label(np.full((1, 2, 2), 300))


def test_parse_boxes_checks_shape_order_and_labels():
    np.testing.assert_array_equal(parse_boxes("[[1, 2, 5, 6]]", 2), [[1, 2, 5, 6]])
    np.testing.assert_array_equal(parse_boxes([1, 2, 5, 6], 2), [[1, 2, 5, 6]])
    assert parse_boxes([], 2).shape == (0, 4)
    assert parse_boxes([], 3).shape == (0, 6)
    with pytest.raises(ValueError, match="missing"):
        parse_boxes(None, 2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        parse_boxes([[1, 2, 3]], 2)
    with pytest.raises(ValueError, match="x1 <= x0"):
        parse_boxes([[5, 2, 1, 6]], 2)
    with pytest.raises(ValueError, match="non-finite"):
        parse_boxes([[0, 0, float("nan"), 3]], 2)
    np.testing.assert_array_equal(parse_box_labels(None, 2), [0, 0])
    np.testing.assert_array_equal(parse_box_labels([1, 0], 2), [1, 0])
    with pytest.raises(ValueError, match="one per box"):
        parse_box_labels([1], 2)
    with pytest.raises(ValueError, match="one per box"):
        parse_box_labels([-1, 0], 2)


def test_split_multipart_reads_fields():
    body, ctype = _multipart({"params": '{"a": 1}'}, {"image": ("x.nii.gz", b"\x00\x01binary\r\n--not-a-boundary")})
    parts = split_multipart(body, ctype)
    assert json.loads(parts["params"]) == {"a": 1}
    assert parts["image"] == b"\x00\x01binary\r\n--not-a-boundary"
    with pytest.raises(ValueError, match="multipart"):
        split_multipart(b"{}", "application/json")


def _tiny_demo() -> Path:
    from monai_gan_aug.data.demo import get_demo_datalist

    return Path(get_demo_datalist(spatial_dims=2, n_patients=3, slices_per_patient=2, image_size=32, p_no_lesion=0.0))


def _fake_synthetic_set(folder: Path, datalist: Path) -> Path:
    """A synthetic set as SyntheticWriter lays it out (datalist.json with synthetic items), from demo files."""
    items = json.loads(datalist.read_text())["training"][:2]
    out = []
    for k, it in enumerate(items):
        for key in ("image", "label"):
            (folder / f"{key}s").mkdir(parents=True, exist_ok=True)
            shutil.copy(datalist.parent / it[key], folder / f"{key}s" / f"syn_{k}.nii.gz")
        out.append({"image": f"images/syn_{k}.nii.gz", "label": f"labels/syn_{k}.nii.gz", "synthetic": True, "seed": k})
    (folder / "datalist.json").write_text(json.dumps({"name": "synthetic", "synthetic": True, "training": out}))
    return folder


@pytest.mark.slow
def test_seg_unet_mix_bundle_mixes_synthetic_pairs_and_trains(tmp_path):
    """The segmentation bundle on its own (core environment): SyntheticMixd replaces samples by synthetic
    image/mask pairs (all of them at mix_prob 1, none at 0), one epoch trains and writes models/model.pt, and
    inference.json writes masks on the inputs' grids."""
    from monai.bundle import ConfigWorkflow

    datalist = _tiny_demo()
    syn = _fake_synthetic_set(tmp_path / "synthetic", datalist)
    cfg = ROOT / "bundles" / "seg_unet_mix" / "configs"
    common = {
        "bundle_root": str(tmp_path / "bundle"),
        "dataset_dir": str(datalist),
        "image_size": 16,
        "channels": [4, 8],
        "strides": [2],
        "num_res_units": 1,
        "batch_size": 2,
        "max_epochs": 1,
        "output_dir": str(tmp_path / "runs"),
        "synthetic_dir": str(syn),
        "device": "cpu",
    }
    flags = {}
    for prob in (1.0, 0.0):
        wf = ConfigWorkflow(
            config_file=str(cfg / "train.json"),
            meta_file=str(cfg / "metadata.json"),
            workflow_type="train",
            **common,
            mix_prob=prob,
        )
        wf.initialize()
        ds = wf.parser.get_parsed_content("train#dataset")
        flags[prob] = [bool(ds[i].get("synthetic", False)) for i in range(len(ds))]
        assert ds[0]["image"].shape == (1, 16, 16) and set(np.unique(ds[0]["label"]).tolist()) <= {0.0, 1.0}
        if prob == 1.0:
            wf.run()
        wf.finalize()
    assert all(flags[1.0]) and not any(flags[0.0])
    model = tmp_path / "bundle" / "models" / "model.pt"
    assert model.is_file()

    wf = ConfigWorkflow(
        config_file=str(cfg / "inference.json"),
        meta_file=str(cfg / "metadata.json"),
        workflow_type="infer",
        bundle_root=str(tmp_path / "bundle"),
        dataset_dir=str(datalist),
        image_size=16,
        channels=[4, 8],
        strides=[2],
        num_res_units=1,
        device="cpu",
        output_dir=str(tmp_path / "pred"),
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    test_items = json.loads(datalist.read_text())["test"]
    written = sorted((tmp_path / "pred").glob("*_seg.nii.gz"))
    assert len(written) == len(test_items)
    ref = nib.load(datalist.parent / test_items[0]["image"])
    seg = nib.load(tmp_path / "pred" / (Path(test_items[0]["image"]).name.replace(".nii.gz", "") + "_seg.nii.gz"))
    assert seg.shape == ref.shape and set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}

    with pytest.raises(Exception, match="FolderSource|does not exist"):
        wf = ConfigWorkflow(
            config_file=str(cfg / "train.json"),
            workflow_type="train",
            **{**common, "synthetic_dir": str(tmp_path / "missing")},
            mix_prob=0.5,
        )
        wf.initialize()
        wf.parser.get_parsed_content("train#dataset")


# ---------------------------------------------------------------------------------------------- helpers
def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for name, (filename, data) in files.items():
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _request(method: str, url: str, body: bytes | None = None, ctype: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def _infer(base: str, model: str, params: dict, image_id: str | None = None, files: dict | None = None):
    url = f"{base}/infer/{model}" + (f"?image={image_id}" if image_id else "")
    body, ctype = _multipart({"params": json.dumps(params)}, files or {})
    status, rtype, data = _request("POST", url, body, ctype)
    if status != 200:
        return status, json.loads(data or b"{}") if rtype.startswith("application/json") else data, None
    parts = split_multipart(data, rtype)
    return status, json.loads(parts["params"]), parts.get("image")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait(procs: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    for name, (proc, log) in procs.items():
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"{name} did not finish in {STEP_TIMEOUT} s; log tail:\n{log.read_text()[-3000:]}")
        if rc != 0:
            pytest.fail(f"{name} failed (exit {rc}); log tail:\n{log.read_text()[-3000:]}")


def _bundle_cmd(config: str, **overrides) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(ROOT / "bundles" / config)]
    for key, value in overrides.items():
        cmd += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return cmd


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not LABEL_PY.exists():
        pytest.skip(f"no MONAI Label environment at {LABEL_PY.parent.parent}: create it with `make label-env`.")
    work = tmp_path_factory.mktemp("monailabel")
    datalist = _tiny_demo()
    items = json.loads(Path(datalist).read_text())
    items = [it for split in ("training", "validation", "test") for it in items[split]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    # tiny generator checkpoints (main environment) and a synthetic set for the SyntheticMix bundle
    p2p, pgg = work / "runs_pix2pix", work / "runs_pggan"
    common = {"dataset_dir": str(datalist)}
    _wait(
        {
            "pix2pix train": (
                _run(
                    _bundle_cmd(
                        "pix2pix/configs/train.json",
                        **P2P,
                        **common,
                        output_dir=str(p2p),
                        d_base_channels=8,
                        max_iterations=2,
                        batch_size=2,
                        save_interval=1,
                        sample_interval=1000,
                    ),
                    work / "p2p_train.log",
                    env,
                ),
                work / "p2p_train.log",
            ),
            "pggan_bbox train": (
                _run(
                    _bundle_cmd(
                        "pggan_bbox/configs/train.json",
                        **PGG,
                        **common,
                        output_dir=str(pgg),
                        batch_size=2,
                        images_per_phase=2,
                        max_iterations=3,
                        save_interval=1,
                        sample_interval=1000,
                        fidelity_interval=1000,
                    ),
                    work / "pgg_train.log",
                    env,
                ),
                work / "pgg_train.log",
            ),
        }
    )
    _wait(
        {
            "pix2pix inference": (
                _run(
                    _bundle_cmd(
                        "pix2pix/configs/inference.json", **P2P, **common, output_dir=str(p2p), formats=["nifti"]
                    ),
                    work / "p2p_infer.log",
                    env,
                ),
                work / "p2p_infer.log",
            )
        }
    )
    assert (p2p / "synthetic" / "datalist.json").is_file()

    # datastore: the demo images with their lesion masks as final labels; bundles and app copied so that MONAI
    # Label's folders and the trained segmentation weights stay out of the repository
    studies = work / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    root = Path(datalist).parent
    for it in items:
        name = Path(it["image"]).name
        shutil.copy(root / it["image"], studies / name)
        shutil.copy(root / it["label"], studies / "labels" / "final" / name)
    bundles = work / "bundles"
    for name in ("pix2pix", "pggan_bbox", "seg_unet_mix"):
        shutil.copytree(ROOT / "bundles" / name, bundles / name, ignore=shutil.ignore_patterns("models", "*.pt"))
    app = work / "app"
    app.mkdir()
    shutil.copy(ROOT / "monai_gan_aug" / "label" / "app" / "main.py", app / "main.py")

    port = _free_port()
    conf = {
        "bundles": "pix2pix,pggan_bbox,seg_unet_mix",
        "bundles_dir": str(bundles),
        "pix2pix_overrides": json.dumps({**P2P, "output_dir": str(p2p)}),
        "pggan_bbox_overrides": json.dumps({**PGG, "output_dir": str(pgg)}),
        "seg_unet_mix_overrides": json.dumps(
            {
                "image_size": 32,
                "channels": [8, 16],
                "strides": [2],
                "num_res_units": 1,
                "batch_size": 2,
                "mix_prob": 1.0,
                "output_dir": str(work / "seg_runs"),
                "synthetic_dir": str(p2p / "synthetic"),
            }
        ),
    }
    cmd = [
        str(LABEL_PY),
        "-m",
        "monailabel.main",
        "start_server",
        "--app",
        str(app),
        "--studies",
        str(studies),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    for key, value in conf.items():
        cmd += ["--conf", key, value]
    server_env = {
        **env,
        "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false",
        "MONAI_LABEL_SESSION_PATH": str(work / "sessions"),
    }
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, env=server_env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        info = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"MONAI Label server exited with {proc.returncode}; log tail:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base}/info/", timeout=5) as resp:
                    info = json.loads(resp.read())
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(1.0)
        if info is None:
            pytest.fail(
                f"MONAI Label server not up after {SERVER_START_TIMEOUT} s; log tail:\n{log.read_text()[-4000:]}"
            )
        yield {
            "base": base,
            "info": info,
            "studies": studies,
            "items": items,
            "bundles": bundles,
            "work": work,
            "p2p": p2p,
            "pgg": pgg,
            "log": log,
        }
    finally:
        _stop(proc)


def _demo_item(server, with_boxes: bool = False) -> dict:
    for it in server["items"]:
        if not with_boxes or len(it["boxes"]) > 0:
            return it
    pytest.fail("the demo dataset has no item with boxes")


def _check_synthetic_image(nii: bytes, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    arr, aff, descrip = read_nifti_bytes(nii)
    assert arr.shape == shape
    assert arr.dtype == np.float32 and np.isfinite(arr).all()
    assert arr.min() >= -1.0 and arr.max() <= 1.0 and arr.std() > 0
    np.testing.assert_allclose(aff, affine, atol=1e-5)
    assert descrip == SYNTHETIC_DESCRIP
    return arr


@pytest.mark.slow
def test_info_lists_the_bundles_tasks(server):
    info = server["info"]
    models = info["models"]
    assert models["pix2pix"]["task"] == "mask_to_image" and models["pix2pix"]["dimension"] == 2
    assert models["pggan_bbox"]["task"] == "boxes_to_image"
    assert models["pix2pix"]["checkpoint"] == str(server["p2p"] / "checkpoints" / "checkpoint_2.pt")
    assert models["pggan_bbox"]["checkpoint"] == str(server["pgg"] / "checkpoints" / "checkpoint_3.pt")
    assert "seg_unet_mix" not in models  # no weights yet: listed once training wrote models/model.pt
    assert "seg_unet_mix" in info["trainers"]
    assert info["datastore"]["total"] == len(server["items"]) == info["datastore"]["label_tags"]["final"]


@pytest.mark.slow
def test_label_to_image_from_datastore_and_upload(server):
    it = _demo_item(server)
    image_id = Path(it["image"]).name.replace(".nii.gz", "")
    ref = nib.load(server["studies"] / "labels" / "final" / Path(it["image"]).name)
    mask = np.asarray(ref.dataobj)

    # 1) a datastore image: its saved (final) label is the condition
    status, params, image = _infer(server["base"], "pix2pix", {}, image_id=image_id)
    assert status == 200, params
    assert params["synthetic"] is True and params["task"] == "mask_to_image"
    assert params["checkpoint"].endswith("checkpoint_2.pt") and len(params["checkpoint_sha256"]) == 64
    img = _check_synthetic_image(image, mask.shape, ref.affine)
    label, laff = decode_label(params["label"])
    np.testing.assert_array_equal(label, mask)
    np.testing.assert_allclose(laff, ref.affine, atol=1e-5)

    # 2) an uploaded label map (the label of another slice) as the multipart field "label"
    other = server["items"][-1]
    other_ref = nib.load(server["studies"] / "labels" / "final" / Path(other["image"]).name)
    other_mask = np.asarray(other_ref.dataobj)
    files = {
        "file": ("image.nii.gz", (server["studies"] / Path(it["image"]).name).read_bytes()),
        "label": ("label.nii.gz", (server["studies"] / "labels" / "final" / Path(other["image"]).name).read_bytes()),
    }
    status, params, image2 = _infer(server["base"], "pix2pix", {}, files=files)
    assert status == 200, params
    np.testing.assert_array_equal(decode_label(params["label"])[0], other_mask)
    img2 = _check_synthetic_image(image2, other_mask.shape, other_ref.affine)  # the grid of the label map
    if not np.array_equal(mask, other_mask):  # pix2pix is deterministic: another map, another image
        assert not np.allclose(img, img2)

    # 3) the label map itself uploaded as the image; same map -> same image
    files = {"file": ("label.nii.gz", (server["studies"] / "labels" / "final" / Path(it["image"]).name).read_bytes())}
    status, params, image3 = _infer(server["base"], "pix2pix", {"image_is_label": True}, files=files)
    assert status == 200, params
    np.testing.assert_allclose(read_nifti_bytes(image3)[0], img, atol=1e-5)

    # 4) a 3D label volume for the 2D bundle: translated slice by slice along its last axis
    volume = np.stack([mask, other_mask], axis=-1).astype(np.uint8)
    vol_file = server["work"] / "volume_label.nii.gz"
    nib.save(nib.Nifti1Image(volume, ref.affine), str(vol_file))
    files = {"file": ("volume.nii.gz", vol_file.read_bytes())}
    status, params, image4 = _infer(server["base"], "pix2pix", {"image_is_label": True}, files=files)
    assert status == 200, params
    vol_img = _check_synthetic_image(image4, volume.shape, ref.affine)
    np.testing.assert_array_equal(decode_label(params["label"])[0], volume)
    np.testing.assert_allclose(vol_img[..., 0], img, atol=1e-4)  # slice 0 is the first map: the same image
    np.testing.assert_allclose(vol_img[..., 1], img2, atol=1e-4)


@pytest.mark.slow
def test_label_to_image_rejects_bad_input(server):
    it = _demo_item(server)
    mr = (server["studies"] / Path(it["image"]).name).read_bytes()
    status, body, _ = _infer(server["base"], "pix2pix", {}, files={"file": ("image.nii.gz", mr)})
    assert status == 422 and "no label map" in body["detail"]
    status, body, _ = _infer(server["base"], "pix2pix", {"image_is_label": True}, files={"file": ("image.nii.gz", mr)})
    assert status == 422 and "integer classes 0..1" in body["detail"]


@pytest.mark.slow
def test_boxes_to_image(server):
    it = _demo_item(server, with_boxes=True)
    ref = nib.load(server["studies"] / Path(it["image"]).name)
    mr = (server["studies"] / Path(it["image"]).name).read_bytes()
    boxes = it["boxes"]
    files = {"file": ("image.nii.gz", mr)}
    status, params, image = _infer(server["base"], "pggan_bbox", {"boxes": boxes, "seed": 11}, files=files)
    assert status == 200, params
    assert params["synthetic"] is True and params["task"] == "boxes_to_image" and params["seed"] == 11
    assert params["boxes"] == [[float(v) for v in b] for b in boxes] and params["box_labels"] == [0] * len(boxes)
    img = _check_synthetic_image(image, ref.shape, ref.affine)
    label, _ = decode_label(params["label"])
    expected = np.zeros(ref.shape, dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        expected[int(np.floor(x0)) : int(np.ceil(x1)), int(np.floor(y0)) : int(np.ceil(y1))] = 1
    np.testing.assert_array_equal(label, expected)

    # the seed makes the image reproducible; another seed gives another image for the same boxes
    _, _, again = _infer(server["base"], "pggan_bbox", {"boxes": boxes, "seed": 11}, files=files)
    np.testing.assert_allclose(read_nifti_bytes(again)[0], img, atol=1e-6)
    _, params2, other = _infer(server["base"], "pggan_bbox", {"boxes": boxes, "seed": 12}, files=files)
    assert params2["seed"] == 12 and not np.allclose(read_nifti_bytes(other)[0], img)

    # an image without lesions: no boxes, an empty label
    status, params, _ = _infer(server["base"], "pggan_bbox", {"boxes": []}, files=files)
    assert status == 200 and decode_label(params["label"])[0].max() == 0 and isinstance(params["seed"], int)

    size = list(ref.shape)
    status, body, _ = _infer(server["base"], "pggan_bbox", {"boxes": [[0, 0, size[0] + 5, 4]]}, files=files)
    assert status == 422 and "outside the image" in body["detail"]
    status, body, _ = _infer(server["base"], "pggan_bbox", {}, files=files)
    assert status == 422 and "boxes missing" in body["detail"]


def _train(server, params: dict) -> dict:
    body = json.dumps(params).encode()
    status, _, data = _request("POST", f"{server['base']}/train/seg_unet_mix", body, "application/json")
    assert status == 200, data[-2000:]
    deadline = time.monotonic() + TRAIN_TIMEOUT
    while time.monotonic() < deadline:
        status, _, data = _request("GET", f"{server['base']}/train/")
        task = json.loads(data)
        if task.get("status") in ("DONE", "ERROR"):
            return task
        time.sleep(2.0)
    _request("DELETE", f"{server['base']}/train/")
    pytest.fail(f"training did not finish in {TRAIN_TIMEOUT} s; server log tail:\n{server['log'].read_text()[-4000:]}")


@pytest.mark.slow
def test_train_segmentation_with_synthetic_mix_then_infer(server):
    model = server["bundles"] / "seg_unet_mix" / "models" / "model.pt"
    # the bundle really draws from the synthetic set: a missing one fails the training task
    missing = json.dumps({"synthetic_dir": str(server["work"] / "none")})
    task = _train(server, {"max_epochs": 1, "val_split": 0.34, "overrides": missing})
    assert task["status"] == "ERROR" and not model.exists()
    assert "FolderSource" in "\n".join(task.get("details", []))  # failed building the synthetic source

    task = _train(server, {"max_epochs": 1, "val_split": 0.34})
    assert task["status"] == "DONE", "\n".join(task.get("details", []))
    assert model.is_file()

    status, _, data = _request("GET", f"{server['base']}/info/")
    info = json.loads(data)
    assert "seg_unet_mix" in info["models"] and info["models"]["seg_unet_mix"]["labels"] == {"lesion": 1}

    it = _demo_item(server)
    ref = nib.load(server["studies"] / Path(it["image"]).name)
    image_id = Path(it["image"]).name.replace(".nii.gz", "")
    status, params, pred = _infer(server["base"], "seg_unet_mix", {}, image_id=image_id)
    assert status == 200, params
    arr, aff, _ = read_nifti_bytes(pred)
    assert arr.shape == ref.shape and set(np.unique(arr).tolist()) <= {0, 1}
    np.testing.assert_allclose(aff, ref.affine, atol=1e-5)
