# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Fixtures of the metrics tests; makes the repository importable when the package is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
