# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Training writes the settings that shape its generator (image size, channels, latent size...) as
``settings.json`` beside its checkpoints; inference and evaluation read them from there, so none has to be
repeated on their command lines. Command-line overrides still win: they replace the config entry that reads the
file.

In a bundle config::

    "image_size": "$monai_gan_aug.utils.trained_setting(@checkpoint, 'image_size', 64)"

reads ``image_size`` from the ``settings.json`` beside ``@checkpoint`` (a checkpoint file or its folder), or 64
when there is none (no training yet, or a plain weights file).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS_FILE", "settings_path", "read_settings", "trained_setting", "settings_differences",
           "write_settings"]

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


def settings_path(anchor: str | os.PathLike) -> Path:
    """``settings.json`` in ``anchor`` (a folder) or beside it (a checkpoint file)."""
    p = Path(anchor)
    return (p if p.is_dir() else p.parent) / SETTINGS_FILE


def read_settings(anchor: str | os.PathLike | None) -> dict[str, Any]:
    """The settings written by training beside ``anchor``; ``{}`` when ``anchor`` is None or there are none.
    A file that is not a JSON object raises a ``ValueError`` naming it."""
    if not anchor:
        return {}
    path = settings_path(anchor)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path}: cannot read the training settings ({err}). Restore the file, or delete it and pass every "
            "setting that shapes the generator (image_size, channels, latent_size...) on the command line."
        ) from err
    if not isinstance(data, Mapping) or not isinstance(data.get("settings", data), Mapping):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(data).__name__}.")
    return dict(data.get("settings", data))


def trained_setting(anchor: str | os.PathLike | None, key: str, default: Any = None) -> Any:
    """Setting ``key`` as training wrote it beside ``anchor``, else ``default``."""
    return read_settings(anchor).get(key, default)


def _normalise(value: Any) -> Any:
    # JSON has no tuples: compare (1, 2) and [1, 2] as equal
    return json.loads(json.dumps(value, default=str))


def settings_differences(current: Mapping[str, Any], trained: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (current value, trained value)}`` for every key in both whose values differ."""
    return {
        k: (current[k], trained[k]) for k in current if k in trained and _normalise(current[k]) != _normalise(trained[k])
    }


def write_settings(folder: str | os.PathLike, settings: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``settings`` to ``folder/settings.json`` atomically (temporary file, then rename)."""
    path = Path(folder) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"settings": _normalise(dict(settings)), **dict(extra or {})}, indent=2) + "\n")
    tmp.replace(path)
    return path
