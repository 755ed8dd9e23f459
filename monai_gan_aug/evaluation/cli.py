# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Argument parsers shared by the evaluation command lines.

``python -m monai_gan_aug.evaluation.segmentation``, ``... .classification`` and ``... .detection`` take the same
kinds of values: comma-separated lists (``--seeds 0,1,2``, ``--ratios 0,1``, ``--classic_aug 0,1``), JSON objects
(``--network_kwargs '{"channels": [8, 16]}'``) and synthetic sets (``--synthetic DIR ...`` or ``NAME=DIR ...``).
The ``argparse`` types below parse them and raise :class:`argparse.ArgumentTypeError` (argparse turns it into a usage
error naming the option) for malformed values.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["bool_list", "float_list", "int_list", "json_dict", "parse_synthetic_args"]

_BOOLS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (empty entries skipped)."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def float_list(text: str) -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]`` (empty entries skipped)."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def bool_list(text: str) -> list[bool]:
    """``"0,1"`` (or ``false,true`` / ``no,yes``, any case) -> ``[False, True]``."""
    try:
        return [_BOOLS[v.strip().lower()] for v in text.split(",") if v.strip()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected comma-separated 0/1 (or false/true), got {text!r}") from None


def json_dict(text: str) -> dict:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({err}); expected a JSON object like '{{\"epochs\": 40}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"epochs\": 40}}', got {text!r}")
    return value


def parse_synthetic_args(values: Sequence[str]) -> Any:
    """``--synthetic`` values: ``DIR`` (pooled into one set) or ``NAME=DIR`` (named, separate sets).

    Returns:
        ``None`` (no value), one path, a list of paths (pooled) or a dict ``name -> path``.

    Raises:
        argparse.ArgumentTypeError: ``DIR`` and ``NAME=DIR`` values mixed.
    """
    if not values:
        return None
    if all("=" in v for v in values):
        return {v.split("=", 1)[0]: v.split("=", 1)[1] for v in values}
    if any("=" in v for v in values):
        raise argparse.ArgumentTypeError("--synthetic: use either DIR ... or NAME=DIR ..., not both.")
    return list(values) if len(values) > 1 else values[0]
