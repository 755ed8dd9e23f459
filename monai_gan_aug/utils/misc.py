# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Small helpers shared by configs and engines."""

from __future__ import annotations

from typing import Any

__all__ = ["as_bool"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "none", ""}


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
