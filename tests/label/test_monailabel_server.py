# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label integration, end to end: a real ``monailabel start_server`` with the project's app on loopback.

Tiny pix2pix (label -> image), box-conditioned PGGAN and lesion-inpainting checkpoints are trained here (main
environment, a few iterations at 32 / 16 / 32 px on a tiny demo dataset), a synthetic set is written for the
SyntheticMix segmentation bundle, and the server (``.venv-label``, MONAI Label 0.8.5) is started on 127.0.0.1 with
the demo images as its datastore. The tests call ``/info/``, the generation ``/infer/`` endpoints and ``/train/`` over
HTTP, and once more through MONAI Label's own client (``monailabel.client.MONAILabelClient``, run in ``.venv-label``
by ``monailabel_client_session.py``). Every wait is bounded; the server is stopped at the end. Without
``.venv-label`` (``make label-env``) the server tests are skipped; the wire-format tests at the top run in any
environment.
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
# lesion inpainting: served with NO setting overrides (the app reads them from checkpoints/settings.json)
LI = {"image_size": 32, "patch_size": 16, "channels": [4, 8], "critic_channels": [4, 8], "box_crop_size": 8}
CLIENT_SCRIPT = Path(__file__).resolve().parent / "monailabel_client_session.py"


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

    from monai_gan_aug.engines.bundles import bundle_config_files

    datalist = _tiny_demo()
    syn = _fake_synthetic_set(tmp_path / "synthetic", datalist)
    cfg = ROOT / "bundles" / "seg_unet_mix" / "configs"

    def composed(name: str) -> list[str]:  # the config with the bundle's common.json
        return [str(f) for f in bundle_config_files(cfg.parent, name)]

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
            config_file=composed("train.json"),
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
        config_file=composed("inference.json"),
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
            config_file=composed("train.json"),
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
    """``python -m monai.bundle run`` of ``<bundle>/configs/<name>`` composed with the bundle's common.json."""
    from monai_gan_aug.engines.bundles import bundle_config_files

    path = ROOT / "bundles" / config
    files = [str(f) for f in bundle_config_files(path.parents[1], path.name)]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files) if len(files) > 1 else files[0]]
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
    p2p, pgg, li = work / "runs_pix2pix", work / "runs_pggan", work / "runs_lesion_inpaint"
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
            ),
            "lesion_inpaint train": (
                _run(
                    _bundle_cmd(
                        "lesion_inpaint/configs/train.json",
                        **LI,
                        **common,
                        output_dir=str(li),
                        batch_size=2,
                        max_iterations=2,
                        save_interval=1,
                        sample_interval=1000,
                    ),
                    work / "li_train.log",
                    env,
                ),
                work / "li_train.log",
            ),
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
    for name in ("pix2pix", "pggan_bbox", "lesion_inpaint", "seg_unet_mix"):
        shutil.copytree(ROOT / "bundles" / name, bundles / name, ignore=shutil.ignore_patterns("models", "*.pt"))
    # the trained generators also as exported bundle folders (models/model.pt + settings), served without overrides
    from monai_gan_aug.engines.export import export_bundle

    export_bundle("lesion_inpaint", bundles / "lesion_inpaint_exported", run_dir=li, program=False)
    export_bundle("pggan_bbox", bundles / "pggan_bbox_exported", run_dir=pgg, program=False)
    app = work / "app"
    app.mkdir()
    shutil.copy(ROOT / "monai_gan_aug" / "label" / "app" / "main.py", app / "main.py")

    port = _free_port()
    conf = {
        "bundles": "pix2pix,pggan_bbox,lesion_inpaint,seg_unet_mix,lesion_inpaint_exported,pggan_bbox_exported",
        "bundles_dir": str(bundles),
        "pix2pix_overrides": json.dumps({**P2P, "output_dir": str(p2p)}),
        "pggan_bbox_overrides": json.dumps({**PGG, "output_dir": str(pgg)}),
        "lesion_inpaint_overrides": json.dumps({"output_dir": str(li)}),
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
            "li": li,
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
    lesion = models["lesion_inpaint"]
    assert lesion["task"] == "boxes_to_lesions" and lesion["dimension"] == 2
    assert lesion["checkpoint"] == str(server["li"] / "checkpoints" / "checkpoint_2.pt")
    assert lesion["image_size"] == LI["image_size"] and lesion["patch_size"] == LI["patch_size"]  # settings.json
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


def _foreground(image: np.ndarray) -> np.ndarray:
    """The app's foreground rule (monai_gan_aug.label.inpaint): intensity scaled to [-1, 1] between the 0.5 / 99.5
    percentiles above -0.95."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / (hi - lo) * 2 - 1, -1, 1) > -0.95


def _free_box(image: np.ndarray, mask: np.ndarray, side: int = 3) -> list[float]:
    """A ``side`` px box in the foreground, at least 2 voxels from every lesion of ``mask`` (the app's gap is 1)."""
    fg, lesion = _foreground(image), mask > 0
    for x in range(2, image.shape[0] - side - 2):
        for y in range(2, image.shape[1] - side - 2):
            if fg[x : x + side, y : y + side].all() and not lesion[x - 2 : x + side + 2, y - 2 : y + side + 2].any():
                return [float(x), float(y), float(x + side), float(y + side)]
    pytest.fail("no free foreground box in the demo slice")


def _grown(shape, box, by: int) -> np.ndarray:
    """Voxels of a 2D box grown by ``by`` voxels (chessboard), the reach of the inpainting's blend ring."""
    out = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    out[max(x0 - by, 0) : x1 + by, max(y0 - by, 0) : y1 + by] = True
    return out


def _lesion_case(server) -> dict:
    it = _demo_item(server, with_boxes=True)
    name = Path(it["image"]).name
    ref = nib.load(server["studies"] / name)
    image = np.asarray(ref.dataobj).astype(np.float32)
    mask = np.asarray(nib.load(server["studies"] / "labels" / "final" / name).dataobj)
    return {
        "item": it,
        "image_id": name.replace(".nii.gz", ""),
        "path": server["studies"] / name,
        "ref": ref,
        "image": image,
        "mask": mask,
        "box": _free_box(image, mask),
    }


def _check_inpainted(nii: bytes, params: dict, case: dict, box: list[float]) -> np.ndarray:
    """The answer is the input image with a lesion in ``box``: equal beyond the box's feather ring, different in the
    box, same grid / affine / dtype, marked synthetic."""
    arr, aff, descrip = read_nifti_bytes(nii)
    image = case["image"]
    assert arr.shape == image.shape and arr.dtype == np.float32 and descrip == SYNTHETIC_DESCRIP
    np.testing.assert_allclose(aff, case["ref"].affine, atol=1e-5)
    ring = _grown(image.shape, box, params["feather"])
    np.testing.assert_array_equal(arr[~ring], image[~ring])  # bit for bit outside the box and its blend ring
    inside = _grown(image.shape, box, 0)
    assert not np.allclose(arr[inside], image[inside])  # a lesion was generated in the box
    assert 0 < params["changed_voxels"] <= ring.sum()
    return arr


@pytest.mark.slow
def test_boxes_to_lesions(server):
    case = _lesion_case(server)
    box, mask = case["box"], case["mask"]
    inside = _grown(mask.shape, box, 0)

    # a datastore image: its saved label is the existing lesions, returned together with the new one
    status, params, nii = _infer(
        server["base"], "lesion_inpaint", {"boxes": [box], "seed": 7}, image_id=case["image_id"]
    )
    assert status == 200, params
    assert params["synthetic"] is True and params["task"] == "boxes_to_lesions" and params["seed"] == 7
    assert params["boxes"] == [box] and params["box_labels"] == [0] and params["existing_label"] is True
    assert params["checkpoint"].endswith("checkpoint_2.pt") and params["resized"] is False
    first = _check_inpainted(nii, params, case, box)
    label, laff = decode_label(params["label"])
    np.testing.assert_array_equal(label, np.where(inside, 1, (mask > 0).astype(np.uint8)))
    np.testing.assert_allclose(laff, case["ref"].affine, atol=1e-5)

    # the same slice uploaded (no saved label: only the new lesion is labelled); the seed fixes the lesion
    files = {"file": ("slice.nii.gz", case["path"].read_bytes())}
    status, params, nii = _infer(server["base"], "lesion_inpaint", {"boxes": [box], "seed": 7}, files=files)
    assert status == 200, params
    np.testing.assert_array_equal(_check_inpainted(nii, params, case, box), first)
    np.testing.assert_array_equal(decode_label(params["label"])[0], inside.astype(np.uint8))
    status, params, nii = _infer(server["base"], "lesion_inpaint", {"boxes": [box], "seed": 8}, files=files)
    assert status == 200 and not np.array_equal(_check_inpainted(nii, params, case, box), first)

    # bad requests: 422 naming the problem
    size = list(mask.shape)
    lesion_box = case["item"]["boxes"][0]
    background = [0.0, 0.0, 2.0, 2.0]
    assert not _foreground(case["image"])[0:2, 0:2].all()
    for params, message in [
        ({"boxes": [[0, 0, size[0] + 3, 4]]}, "lies outside the image"),
        ({"boxes": [background]}, "foreground"),
        ({"boxes": [[1, 2, 3]]}, "(N, 4)"),
        ({}, "boxes missing"),
    ]:
        status, body, _ = _infer(server["base"], "lesion_inpaint", params, files=files)
        assert status == 422 and message in body["detail"], (params, body)
    status, body, _ = _infer(server["base"], "lesion_inpaint", {"boxes": [lesion_box]}, image_id=case["image_id"])
    assert status == 422 and "existing lesion" in body["detail"], body

    # an image of another size than the generator's: refused with resizing off, resized with it on
    padded = np.pad(case["image"], ((0, 8), (0, 8)))
    big = server["work"] / "padded.nii.gz"
    nib.save(nib.Nifti1Image(padded, case["ref"].affine), str(big))
    files = {"file": ("padded.nii.gz", big.read_bytes())}
    status, body, _ = _infer(server["base"], "lesion_inpaint", {"boxes": [box], "resize": False}, files=files)
    assert status == 422 and "resizing is off" in body["detail"] and "(32, 32)" in body["detail"], body
    status, params, nii = _infer(server["base"], "lesion_inpaint", {"boxes": [box], "seed": 7}, files=files)
    assert status == 200 and params["resized"] is True, params
    arr = read_nifti_bytes(nii)[0]
    near = _grown(padded.shape, box, params["feather"] + 4)  # the edit made on the 32 px grid, mapped back
    assert arr.shape == padded.shape and np.array_equal(arr[~near], padded[~near])
    assert not np.allclose(arr[_grown(padded.shape, box, 0)], padded[_grown(padded.shape, box, 0)])


@pytest.mark.slow
def test_exported_bundles_are_served_without_overrides(server):
    """Bundle folders written by export_bundle (models/model.pt + models/settings.json, no runs/ folder) are served
    with no --conf overrides and answer exactly as the training runs they were exported from."""
    models = server["info"]["models"]
    for name, task, size in (
        ("lesion_inpaint_exported", "boxes_to_lesions", 32),
        ("pggan_bbox_exported", "boxes_to_image", 16),
    ):
        assert models[name]["task"] == task and models[name]["image_size"] == size
        assert models[name]["checkpoint"] == str(server["bundles"] / name / "models" / "model.pt")

    case = _lesion_case(server)
    files = {"file": ("slice.nii.gz", case["path"].read_bytes())}
    for exported, run, params in (
        ("lesion_inpaint_exported", "lesion_inpaint", {"boxes": [case["box"]], "seed": 4}),
        ("pggan_bbox_exported", "pggan_bbox", {"boxes": case["item"]["boxes"], "seed": 4}),
    ):
        status, p_exp, nii_exp = _infer(server["base"], exported, params, files=files)
        assert status == 200, p_exp
        status, p_run, nii_run = _infer(server["base"], run, params, files=files)
        assert status == 200, p_run
        assert p_exp["checkpoint"].endswith("models/model.pt") and p_exp["task"] == p_run["task"]
        np.testing.assert_array_equal(read_nifti_bytes(nii_exp)[0], read_nifti_bytes(nii_run)[0])
        np.testing.assert_array_equal(decode_label(p_exp["label"])[0], decode_label(p_run["label"])[0])


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

    # MONAI Label's own client: train_start, then train_status until the task is done
    train = _client_session(
        server, "train", train={"model": "seg_unet_mix", "params": {"max_epochs": 1, "val_split": 0.34}}
    )
    train = train["train"]
    assert train["started"] is not None and train["status"]["status"] == "DONE", train
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


def _client_session(server, name: str, infer: dict | None = None, train: dict | None = None) -> dict:
    """Run ``monailabel_client_session.py`` (MONAI Label's own client) in ``.venv-label`` against the server; its
    answers as a dict (``info``, ``infer`` by request name, ``train``)."""
    out = server["work"] / f"client_{name}"
    out.mkdir()
    spec = {
        "base": server["base"],
        "tmpdir": str(out),
        "result": str(out / "result.json"),
        "train_timeout": TRAIN_TIMEOUT,
        "infer": infer or {},
        "train": train,
    }
    (out / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(
            [str(LABEL_PY), str(CLIENT_SCRIPT), str(out / "spec.json")],
            env=env,
            capture_output=True,
            text=True,
            timeout=len(spec["infer"]) * REQUEST_TIMEOUT + (TRAIN_TIMEOUT if train else 0) + 60,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the MONAI Label client session did not finish: {err}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.slow
def test_monailabel_client_session(server):
    """MONAI Label's own client (``monailabel.client.MONAILabelClient``, in ``.venv-label``) against the server:
    ``info()`` lists the tasks, boxes -> image (pggan_bbox) and boxes -> lesions (lesion_inpaint) answer images, and a
    bad box is a client error naming the problem. (Its ``train_start`` / ``train_status`` run in
    test_train_segmentation_with_synthetic_mix_then_infer.)"""
    case = _lesion_case(server)
    box = case["box"]
    infer = {
        "boxes_to_image": {
            "model": "pggan_bbox",
            "file": str(case["path"]),
            "params": {"boxes": case["item"]["boxes"], "seed": 3},
        },
        "boxes_to_lesions": {
            "model": "lesion_inpaint",
            "file": str(case["path"]),
            "params": {"boxes": [box], "seed": 5},
        },
        "lesion_outside": {"model": "lesion_inpaint", "file": str(case["path"]), "params": {"boxes": [[0, 0, 99, 4]]}},
    }
    result = _client_session(server, "infer", infer=infer)

    info = result["info"]
    tasks = {name: m.get("task") for name, m in info["models"].items()}
    assert tasks["pix2pix"] == "mask_to_image" and tasks["pggan_bbox"] == "boxes_to_image"
    assert tasks["lesion_inpaint"] == "boxes_to_lesions" and "seg_unet_mix" in info["trainers"]

    gen = result["infer"]["boxes_to_image"]
    assert gen["error"] is None and gen["params"]["task"] == "boxes_to_image" and gen["params"]["seed"] == 3
    _check_synthetic_image(Path(gen["file"]).read_bytes(), case["image"].shape, case["ref"].affine)

    les = result["infer"]["boxes_to_lesions"]
    assert les["error"] is None and les["params"]["task"] == "boxes_to_lesions"
    _check_inpainted(Path(les["file"]).read_bytes(), les["params"], case, box)
    np.testing.assert_array_equal(decode_label(les["params"]["label"])[0], _grown(case["mask"].shape, box, 0))

    bad = result["infer"]["lesion_outside"]
    assert bad["file"] is None and "422" in bad["error"] and "lies outside the image" in bad["error"]
