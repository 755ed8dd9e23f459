# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Entry point MONAI Label loads from ``--app monai_gan_aug/label/app``: it looks for a ``MONAILabelApp`` subclass in
this file. The app itself lives in :mod:`monai_gan_aug.label.server` (importable and testable like the rest of the
package); MONAI Label creates empty ``logs/``, ``model/``, ``lib/`` and ``bin/`` folders next to this file."""

from __future__ import annotations

from monai_gan_aug.label.server import GanAugApp

__all__ = ["GanAugApp"]
