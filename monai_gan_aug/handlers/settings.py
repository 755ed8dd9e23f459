# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Writes the settings that shape a generator beside its checkpoints, so inference and evaluation read them
instead of asking the user to repeat them (:mod:`monai_gan_aug.utils.settings`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import dist_info, find_latest_checkpoint
from monai_gan_aug.utils.settings import read_settings, settings_differences, settings_path, write_settings

__all__ = ["TrainingSettingsSaver"]

logger = logging.getLogger(__name__)


class TrainingSettingsSaver:
    """At the start of training, writes ``settings`` (e.g. ``{"image_size": 64, "latent_size": 100}``) to
    ``save_dir/settings.json``.

    When ``save_dir`` already holds checkpoints (a resumed run), the file is never overwritten: settings that
    differ from the ones the checkpoints were trained with stop the run with an error naming each of them, before
    any checkpoint is loaded. Attach it before the checkpoint handler (first in the bundle's handler list).
    """

    def __init__(self, save_dir: str | Path, settings: Mapping[str, Any]) -> None:
        if not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a mapping of setting -> value, got {type(settings).__name__}.")
        self.save_dir = Path(save_dir)
        self.settings = dict(settings)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        if find_latest_checkpoint(self.save_dir) is not None and settings_path(self.save_dir).is_file():
            diff = settings_differences(self.settings, read_settings(self.save_dir))
            if diff:
                listed = ", ".join(f"{k}={now!r} (trained with {then!r})" for k, (now, then) in diff.items())
                raise ValueError(
                    f"{self.save_dir} holds checkpoints of a run trained with other settings: {listed}. Resume with "
                    f"the settings in {settings_path(self.save_dir)}, or pass a new --output_dir; nothing was "
                    "overwritten."
                )
            return
        if dist_info()[0] == 0:
            write_settings(self.save_dir, self.settings)
