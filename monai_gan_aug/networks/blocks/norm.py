# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Normalisation factory and DCGAN-style initialisation shared by every family's networks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from monai.networks.layers import Norm
from torch import nn

__all__ = ["make_norm", "dcgan_init_", "frozen_running_stats"]


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[nn.Module]:
    """Batch-norm layers of ``module`` keep normalising with batch statistics (in training mode) but do not update
    their running statistics inside the block.

    For passes whose inputs are not what the network sees at inference: e.g. an alpha-GAN generator decoding the
    encoder's codes, which early in training are far from the prior (std ~5 vs 1), would otherwise pull the running
    variance used by ``eval()`` generation off the prior's and saturate every generated image.
    """
    saved: list[tuple[nn.modules.batchnorm._BatchNorm, float | None, torch.Tensor | None]] = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            tracked = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
            saved.append((m, m.momentum, tracked))
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield module
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def make_norm(norm: str | None, spatial_dims: int, channels: int) -> nn.Module:
    """``"batch"``, ``"instance"`` (affine), ``"layer"`` (one group GroupNorm: layer norm over C and space) or None."""
    if norm is None or norm == "none":
        return nn.Identity()
    if norm == "batch":
        return Norm[Norm.BATCH, spatial_dims](channels)
    if norm == "instance":
        return Norm[Norm.INSTANCE, spatial_dims](channels, affine=True)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be 'batch', 'instance', 'layer' or None, got {norm!r}.")


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
