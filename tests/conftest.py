# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MONAI_GAN_AUG_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "test_cache"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer end-to-end tests (bundle runs, torchrun, YOLO)")


@pytest.fixture
def tiny_image_loader():
    """A loader of 8 tiny constant-ish 16x16 images in [-1, 1]."""
    from monai.data import DataLoader, Dataset

    g = torch.Generator().manual_seed(0)
    data = [{"image": (0.5 + 0.05 * torch.randn(1, 16, 16, generator=g)).clamp(-1, 1)} for _ in range(8)]
    return DataLoader(Dataset(data), batch_size=4, shuffle=False)
