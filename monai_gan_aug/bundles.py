# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Finding and running the project's MONAI bundles from Python: see :mod:`monai_gan_aug.engines.bundles`."""

from __future__ import annotations

from monai_gan_aug.engines.bundles import bundle_root, list_bundles, run_bundle

__all__ = ["bundle_root", "list_bundles", "run_bundle"]
