# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Small helpers shared by configs and engines."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["as_bool", "drop_none", "json_safe"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "none", ""}


def drop_none(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``mapping`` without the entries whose value is ``None``, in the same order.

    A config lists optional components (e.g. a network ``_disabled_`` for one variant, which resolves to ``None``)
    in one mapping and keeps the present ones: ``"networks": "$monai_gan_aug.utils.drop_none(@network_defs)"``.

    Raises:
        TypeError: ``mapping`` is not a mapping.
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"drop_none: expected a mapping (e.g. a dict of components), got {type(mapping).__name__}.")
    return {k: v for k, v in mapping.items() if v is not None}


def as_bool(value: Any, name: str = "value") -> bool:
    """``value`` as a bool, accepting the strings a command line produces.

    ``python -m monai.bundle run ... --amp false`` hands the config the *string* ``'false'``, which Python treats
    as true; every flag of this package goes through this function, so ``false``/``False``/``0``/``no`` mean False and
    ``true``/``True``/``1``/``yes`` mean True. Anything else raises a ``ValueError`` naming the setting.
    """
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return as_bool(value.item(), name)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars / arrays, tuples, paths and non-finite floats made JSON-friendly (``nan`` and
    ``inf`` become ``None``; unknown objects their ``str``), so that ``json.dumps`` writes strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors
        try:
            return json_safe(value.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)
