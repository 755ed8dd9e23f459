# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Skip-layer excitation (SLE), the channel gating block of FastGAN (Liu et al., "Towards faster and stabilized
GAN training for high-fidelity few-shot image synthesis", ICLR 2021; Sobolev's thesis, section 2.5, eq. 2.5).

A skip connection that links feature maps of *different* resolutions: the low-resolution map is pooled to 4 x 4,
turned into one gate per channel of the high-resolution map, and multiplies it, ``y = F(x_low) * x_high``.
"""

from __future__ import annotations

import torch
from monai.networks.layers import Conv, Pool
from torch import nn

__all__ = ["SkipLayerExcitation", "spectral_norm_if"]


def spectral_norm_if(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module``'s weight in spectral normalisation (Miyato et al. 2018) when ``enabled``; FastGAN normalises
    every convolution of both networks this way."""
    if not enabled:
        return module
    return nn.utils.parametrizations.spectral_norm(module)


class SkipLayerExcitation(nn.Module):
    """Skip-layer excitation block of FastGAN (Liu et al. 2021, fig. 3).

    ``F(x_low)``: adaptive average pooling to ``pool_size`` per axis, a convolution with kernel ``pool_size`` (no
    padding, so the map becomes 1 x 1), LeakyReLU(0.1) (the paper's figure and the thesis; the authors' code uses
    Swish: ``activation="swish"``), a 1 x 1 convolution to the channels of ``x_high`` and a sigmoid. The output is
    ``x_high * F(x_low)``, broadcast over the spatial axes, so ``x_high`` keeps its shape and any resolution pair
    works.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the low-resolution input ``x_low``.
        out_channels: channels of the high-resolution input ``x_high``.
        pool_size: side of the pooled map (4 in the paper).
        activation: ``"leakyrelu"`` (slope 0.1) or ``"swish"``.
        spectral_norm: spectral-normalise both convolutions (as FastGAN does everywhere).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        pool_size: int = 4,
        activation: str = "leakyrelu",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"SkipLayerExcitation: spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or out_channels < 1 or pool_size < 1:
            raise ValueError(
                f"SkipLayerExcitation: in_channels, out_channels and pool_size must be >= 1, got {in_channels}, "
                f"{out_channels}, {pool_size}."
            )
        if activation == "leakyrelu":
            act: nn.Module = nn.LeakyReLU(0.1)
        elif activation == "swish":
            act = nn.SiLU()
        else:
            raise ValueError(f"SkipLayerExcitation: activation must be 'leakyrelu' or 'swish', got {activation!r}.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.gate = nn.Sequential(
            Pool[Pool.ADAPTIVEAVG, spatial_dims](pool_size),
            spectral_norm_if(conv(in_channels, out_channels, pool_size, 1, 0, bias=False), spectral_norm),
            act,
            spectral_norm_if(conv(out_channels, out_channels, 1, 1, 0, bias=False), spectral_norm),
            nn.Sigmoid(),
        )

    def forward(self, x_low: torch.Tensor, x_high: torch.Tensor) -> torch.Tensor:
        """Gate ``x_high`` (``(N, out_channels, *spatial_high)``) by ``x_low`` (``(N, in_channels, *spatial_low)``)."""
        if x_low.ndim != self.spatial_dims + 2 or x_high.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"SkipLayerExcitation expects {self.spatial_dims}D feature maps (N, C, *spatial), got "
                f"{tuple(x_low.shape)} and {tuple(x_high.shape)}."
            )
        if x_low.shape[1] != self.in_channels or x_high.shape[1] != self.out_channels:
            raise ValueError(
                f"SkipLayerExcitation({self.in_channels} -> {self.out_channels}) got x_low with {x_low.shape[1]} and "
                f"x_high with {x_high.shape[1]} channels."
            )
        if x_low.shape[0] != x_high.shape[0]:
            raise ValueError(f"SkipLayerExcitation: batch sizes differ ({x_low.shape[0]} vs {x_high.shape[0]}).")
        return x_high * self.gate(x_low)
