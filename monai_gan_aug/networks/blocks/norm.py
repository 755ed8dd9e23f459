# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Normalisation factory and DCGAN-style initialisation shared by every family's networks."""

from __future__ import annotations

from monai.networks.layers import Norm
from torch import nn

__all__ = ["make_norm", "dcgan_init_"]


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
