# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Model-zoo checks of every bundle (issue 17): the folder layout, the metadata against the offline schema, the
network's inputs and outputs against the metadata's ``network_data_format``, a ``torch.export`` of the network with
inputs of those shapes, and the inference workflow's MONAI properties without any trained run.

The bundles are discovered: every folder of ``bundles/`` with ``configs/metadata.json``.
"""

from __future__ import annotations

import inspect
import json
import shutil
import socket

import pytest
import torch
from bundle_utils import REPO, chain_text, tiny_demo

BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
SCHEMA = REPO / "bundles" / "schemas" / "meta_schema_generator.json"


def _files(bundle: str):
    root = REPO / "bundles" / bundle
    return root, root / "configs" / "inference.json", root / "configs" / "metadata.json"


def _composed(root) -> list[str]:
    """inference.json of the bundle folder ``root`` composed with its common.json, as MONAI runs a config list."""
    from monai_gan_aug.engines.bundles import bundle_config_files

    return [str(p) for p in bundle_config_files(root, "inference.json")]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("zoo_demo")))


def test_bundles_are_discovered():
    assert {"dcgan", "pggan_bbox", "seg_unet_mix"} <= set(BUNDLES)
    assert "schemas" not in BUNDLES  # no metadata.json: not a bundle


@pytest.mark.parametrize("bundle", BUNDLES)
def test_layout(bundle):
    root, _, _ = _files(bundle)
    for rel in ("configs/metadata.json", "configs/inference.json", "docs/README.md", "LICENSE"):
        path = root / rel
        assert path.is_file() and path.stat().st_size > 0, f"{bundle}: {rel} missing or empty"
    for cfg in (root / "configs").glob("*.json"):
        json.loads(cfg.read_text())  # every config is valid JSON


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_schema_offline(bundle, no_network):
    from monai.bundle import verify_metadata

    _, _, meta_file = _files(bundle)
    verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA))  # the schema file exists: no download


def test_metadata_schema_rejects_a_missing_field(tmp_path, no_network):
    from monai.bundle import verify_metadata

    meta = json.loads(_files("dcgan")[2].read_text())
    del meta["optional_packages_version"]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="optional_packages_version"):
        verify_metadata(meta_file=str(bad), filepath=str(SCHEMA))


#: Small networks for the export round trip, applied to the ids a bundle's inference.json has.
TINY = {"image_size": 32, "patch_size": 16, "base_channels": 4, "latent_size": 8, "noise_size": 8, "fmap_base": 32,
        "fmap_max": 8, "max_channels": 16, "n_blocks": 1, "channels": [4, 8]}


def _parser(bundle: str, tiny: bool = False):
    """inference.json (with common.json) with no checkpoint (nothing trained is read), at its defaults or with
    :data:`TINY`."""
    from monai.bundle import ConfigParser

    root, _, _ = _files(bundle)
    parser = ConfigParser()
    parser.read_config(_composed(root))
    parser["checkpoint"] = None
    if tiny:
        for key, value in TINY.items():
            if key in parser and not (key == "channels" and bundle == "pggan_bbox"):
                parser[key] = value
    return parser


def _network(bundle: str, tiny: bool = False):
    """``network_def`` of inference.json (see :func:`_parser`), in eval mode."""
    return _parser(bundle, tiny).get_parsed_content("network_def", lazy=False).eval()


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_in_out_and_export(bundle, tmp_path):
    from monai.bundle import verify_net_in_out

    from monai_gan_aug.engines import check_network_data_format, metadata_inputs
    from monai_gan_aug.engines.export import _trained_data_format

    root, _, meta_file = _files(bundle)
    meta = json.loads(meta_file.read_text())
    inputs_meta = meta["network_data_format"]["inputs"]
    net = _network(bundle)
    # the metadata lists the forward's inputs, in order, and every one it needs
    params = [p for p in inspect.signature(net.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    assert len(inputs_meta) >= len(required) and len(inputs_meta) <= len(params), (bundle, list(inputs_meta), required)

    if list(inputs_meta) == ["image"]:  # what MONAI's verify_net_in_out can express: one 'image' input
        verify_net_in_out(net_id="network_def", meta_file=str(meta_file), config_file=_composed(root), device="cpu",
                          checkpoint=None)
        with torch.no_grad():
            out = net(*metadata_inputs(meta).values())
    else:  # latent, condition maps, class: the same check against every input of network_data_format
        out = check_network_data_format(net, meta)
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert out.shape[1] == pred["num_channels"] and list(out.shape[2:]) == pred["spatial_shape"]

    # torch.export with metadata-shaped inputs (MONAI's ckpt_export writes TorchScript, deprecated in torch 2.15), on
    # a small network: the metadata's shapes follow the tiny settings as they follow trained ones in an export
    parser = _parser(bundle, tiny=True)
    net = parser.get_parsed_content("network_def", lazy=False).eval()
    tiny_meta = {"network_data_format": _trained_data_format(meta["network_data_format"], parser)}
    example = tuple(metadata_inputs(tiny_meta, seed=1).values())
    program = torch.export.export(net, example)
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    torch.manual_seed(0)
    with torch.no_grad():
        expected = net(*example)
    torch.manual_seed(0)
    with torch.no_grad():
        got = loaded(*example)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_network_check_catches_a_wrong_metadata():
    from monai_gan_aug.engines import check_network_data_format
    from monai_gan_aug.engines.export import ExportError

    meta = json.loads(_files("dcgan")[2].read_text())
    net = _network("dcgan")
    meta["network_data_format"]["outputs"]["pred"]["spatial_shape"] = [32, 32]
    with pytest.raises(ExportError, match="spatial shape"):
        check_network_data_format(net, meta)
    meta["network_data_format"]["inputs"]["latent"]["num_channels"] = 7
    with pytest.raises(ExportError, match="does not run on the inputs"):
        check_network_data_format(net, meta)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_properties_without_a_trained_run(bundle, demo_dir, tmp_path):
    """The inference workflow initialises and has MONAI's inference properties with no trained run; running it
    then stops with a message saying what to do, and writes no synthetic file."""
    from monai.bundle import ConfigWorkflow

    root, _, meta_file = _files(bundle)
    if (root / "models").exists():  # a bundle that trains into its own folder (seg_unet_mix): use a copy without it
        copy = tmp_path / bundle
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("models"))
        root, meta_file = copy, copy / "configs" / "metadata.json"
    out = tmp_path / "run"
    wf = ConfigWorkflow(config_file=_composed(root), meta_file=str(meta_file), logging_file=False,
                        workflow_type="infer", output_dir=str(out), dataset_dir=demo_dir)
    wf.initialize()
    assert wf.check_properties() == []
    assert wf.bundle_root == str(root.resolve())  # found from the config file, not from the working directory
    from monai_gan_aug.engines.bundles import read_bundle_config

    if "objective" not in read_bundle_config(root, "inference.json"):  # seg_unet_mix: MONAI's CheckpointLoader loads at run time too
        return
    with pytest.raises(Exception) as err:
        wf.run()
    text = chain_text(err.value).lower()
    assert "train" in text and "--checkpoint" in text, text[-1500:]
    assert not list(out.rglob("*.nii.gz")) and not list(out.rglob("*.png"))
