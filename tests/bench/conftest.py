# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The benchmark tests import the repository's ``bench`` package, which is not installed: put the root on the path."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
