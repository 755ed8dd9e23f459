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
