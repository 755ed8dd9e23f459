# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Declarative bundles (issue #16): no ``$`` expression in ``bundles/*/configs/*.json`` longer than
``MAX_EXPRESSION_LENGTH`` characters; such logic is a named function or handler of the package, called from the
config with a short expression or, better, a ``_target_`` component with named arguments (docs/conventions.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "bundles").glob("*/configs/*.json"))
MAX_EXPRESSION_LENGTH = 120


def expressions(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(config id, string)`` of ``value`` whose string starts with ``$``, ids joined with ``#``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from expressions(item, f"{path}#{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from expressions(item, f"{path}#{i}" if path else str(i))
    elif isinstance(value, str) and value.startswith("$"):
        yield path, value


def long_expressions(config: Any, limit: int = MAX_EXPRESSION_LENGTH) -> list[tuple[str, int]]:
    return [(path, len(expr)) for path, expr in expressions(config) if len(expr) > limit]


def test_the_walk_finds_nested_long_expressions():
    long = "$" + "x" * MAX_EXPRESSION_LENGTH
    config = {"a": "$1 + 1", "b": {"c": [long, "@a", {"d": long}]}, "e": long[:MAX_EXPRESSION_LENGTH]}
    assert long_expressions(config) == [("b#c#0", len(long)), ("b#c#2#d", len(long))]


def test_bundle_configs_exist():
    assert len(CONFIGS) >= 12 and len({p.parents[1].name for p in CONFIGS}) >= 12
    assert any(p.name == "common.json" for p in CONFIGS)  # the shared configs are checked too


# ---- composition (issue 16): configs/common.json holds what a bundle's configs share; the others are composed on it
BUNDLES = sorted(p.parent.name for p in (REPO / "bundles").glob("*/configs") if (p / "train.json").is_file())


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_def_lives_in_common_json(bundle):
    configs = REPO / "bundles" / bundle / "configs"
    common = json.loads((configs / "common.json").read_text())
    assert "network_def" in common, f"{bundle}: configs/common.json has no network_def"
    restating = [p.name for p in sorted(configs.glob("*.json"))
                 if p.name not in ("common.json", "metadata.json") and "network_def" in json.loads(p.read_text())]
    assert not restating, f"{bundle}: {restating} restate network_def; it is defined once, in configs/common.json"


def _write_bundle(root: Path, files: dict) -> Path:
    (root / "configs").mkdir(parents=True)
    for name, content in files.items():
        (root / "configs" / name).write_text(json.dumps(content))
    return root


def test_bundle_config_files_composes_common_json_first(tmp_path):
    from monai_gan_aug.engines.bundles import bundle_config_files

    root = _write_bundle(tmp_path / "b", {"common.json": {}, "train.json": {}, "overlay.json": {}})
    configs = root.resolve() / "configs"
    assert bundle_config_files(root, "train.json") == [configs / "common.json", configs / "train.json"]
    assert bundle_config_files(root, ["train.json", "overlay.json"]) == [
        configs / "common.json", configs / "train.json", configs / "overlay.json"]
    # listed already (anywhere): not added again
    assert bundle_config_files(root, ["train.json", "common.json"]) == [configs / "train.json", configs / "common.json"]
    assert bundle_config_files(root, "common.json") == [configs / "common.json"]
    # a bundle without common.json: the requested files only
    bare = _write_bundle(tmp_path / "bare", {"train.json": {}})
    assert bundle_config_files(bare, "train.json") == [bare.resolve() / "configs" / "train.json"]
    # a repository bundle by name
    assert [p.name for p in bundle_config_files("dcgan", "inference.json")] == ["common.json", "inference.json"]


def test_read_bundle_config_merges_as_monai_does(tmp_path):
    from monai.bundle import ConfigParser

    from monai_gan_aug.engines.bundles import bundle_config_files, read_bundle_config

    common = {"imports": ["$import os"], "size": 64, "net": {"_target_": "N", "size": "@size", "depth": 2},
              "keys": {"image": "image"}, "lst": [1, 2]}
    train = {"+imports": ["$import json"], "size": 32, "net#depth": 3, "+keys": {"label": "label"}, "lr": 0.1}
    overlay = {"imports": ["$import sys"], "lst#1": 5, "+lst": [9]}
    root = _write_bundle(tmp_path / "b", {"common.json": common, "train.json": train, "overlay.json": overlay})
    merged = read_bundle_config(root, "train.json")
    assert merged == {"imports": ["$import os", "$import json"], "size": 32,  # later ids replace earlier ones
                      "net": {"_target_": "N", "size": "@size", "depth": 3},  # 'a#b' replaces one nested item
                      "keys": {"image": "image", "label": "label"}, "lst": [1, 2], "lr": 0.1}  # '+id' merges
    assert read_bundle_config(root, "common.json") == common
    three = read_bundle_config(root, ["train.json", "overlay.json"])
    assert three["imports"] == ["$import sys"] and three["lst"] == [1, 5, 9]  # a plain id replaces a '+' merged one
    assert common["imports"] == ["$import os"]  # the files' contents are not changed
    for config in ("train.json", ["train.json", "overlay.json"]):  # the same as MONAI's own config list merge
        files = [str(p) for p in bundle_config_files(root, config)]
        assert read_bundle_config(root, config) == ConfigParser.load_config_files(files)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_read_bundle_config_matches_monai_on_every_bundle(bundle):
    from monai.bundle import ConfigParser

    from monai_gan_aug.engines.bundles import bundle_config_files, read_bundle_config

    configs = REPO / "bundles" / bundle / "configs"
    runs = [[p.name] for p in sorted(configs.glob("*.json"))
            if p.name not in ("metadata.json", "multi_gpu_train.json", "evaluate_two_stage.json")]
    runs += [["train.json", "multi_gpu_train.json"]] if (configs / "multi_gpu_train.json").is_file() else []
    runs += [["evaluate.json", "evaluate_two_stage.json"]] if (configs / "evaluate_two_stage.json").is_file() else []
    for config in runs:
        files = [str(p) for p in bundle_config_files(bundle, config)]
        assert read_bundle_config(bundle, config) == ConfigParser.load_config_files(files), (bundle, config)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_no_long_dollar_expressions(config: Path):
    found = long_expressions(json.loads(config.read_text()))
    assert not found, (
        f"{config.relative_to(REPO)}: $ expressions longer than {MAX_EXPRESSION_LENGTH} characters at "
        f"{', '.join(f'{p} ({n})' for p, n in found)}. Move the logic into a named, documented function or handler of "
        "monai_gan_aug (on the right floor, see tests/test_layering.py) and call it with a short expression or a "
        "_target_ component with named arguments (docs/conventions.md, 'Bundle configs')."
    )


# ---- the named functions that replaced long expressions: their behaviour and their errors
def test_drop_none_and_adam_optimizers():
    import torch

    from monai_gan_aug.engines.utils import adam_optimizers
    from monai_gan_aug.utils import drop_none

    nets = drop_none({"generator": torch.nn.Linear(2, 2), "code_discriminator": None, "encoder": torch.nn.Linear(2, 1)})
    assert list(nets) == ["generator", "encoder"]
    opts = adam_optimizers(nets, lr=1e-3, betas=[0.5, 0.9], fused="false")
    assert list(opts) == ["generator", "encoder"] and opts["generator"].defaults["betas"] == (0.5, 0.9)
    assert opts["encoder"].defaults["fused"] is False
    with pytest.raises(TypeError, match="mapping"):
        drop_none([1, None])
    with pytest.raises(ValueError, match="fused_optimizer"):
        adam_optimizers(nets, lr=1e-3, fused="maybe")
    with pytest.raises(TypeError, match="networks must map"):
        adam_optimizers([torch.nn.Linear(1, 1)], lr=1e-3)


def test_transform_or_identity():
    from monai.transforms import Identityd

    from monai_gan_aug.transforms.preprocessing import RandSliced, transform_or_identity

    assert isinstance(transform_or_identity(RandSliced, "image", True), RandSliced)
    assert isinstance(transform_or_identity(RandSliced, "image", False), Identityd)
    with pytest.raises(TypeError, match="dictionary transform class"):
        transform_or_identity("RandSliced", "image", True)


def test_small_config_helpers(tmp_path):
    from monai_gan_aug.data import image_paths, load_datalist
    from monai_gan_aug.evaluation.detection import yolo_detector
    from monai_gan_aug.handlers.writer import synthetic_outputs

    assert image_paths(None, split="test", spatial_dims=2) == [d["image"] for d in load_datalist(None, split="test")]
    assert yolo_detector(None) is None and yolo_detector("") is None
    with pytest.raises(FileNotFoundError):
        yolo_detector(str(tmp_path / "missing.pt"), device="cpu")
    assert synthetic_outputs("s", 2) == {"images": "s/images", "yolo_labels": "s/labels", "manifest": "s/manifest.json",
                                         "datalist": "s/datalist.json"}
    assert "masks" in synthetic_outputs("s", 3)
