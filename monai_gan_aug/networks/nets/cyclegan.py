# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN networks (Zhu et al., "Unpaired image-to-image translation using cycle-consistent adversarial
networks", ICCV 2017) for 2D and 3D.

Generator (Johnson et al.'s residual network as used by Zhu et al., appendix 7.2), in their notation:
``c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3``, where ``c7s1-k`` is a 7 x 7 convolution-InstanceNorm-ReLU
with stride 1 and reflection padding, ``dk`` a 3 x 3 stride-2 convolution-InstanceNorm-ReLU, ``Rk`` a residual
block of two 3 x 3 convolutions (reflection padding, InstanceNorm, ReLU between), ``uk`` a 3 x 3 stride-1/2
(transposed) convolution-InstanceNorm-ReLU; the last ``c7s1`` layer has no norm and ends in ``tanh``. ``n = 6``
blocks for 128 x 128 inputs and 9 for 256 x 256 and above.

The discriminator is the 70 x 70 PatchGAN with instance norm:
``PatchGANDiscriminator(receptive_field=70, norm="instance")`` (re-exported here).
"""

from __future__ import annotations

import torch
from monai.networks.layers import Conv
from torch import nn

from monai_gan_aug.networks.blocks.norm import dcgan_init_, make_norm
from monai_gan_aug.networks.blocks.patchgan import (
    PatchGANDiscriminator,
    patchgan_receptive_field,
)

__all__ = ["PatchGANDiscriminator", "ResNetGenerator", "ResidualBlock", "patchgan_receptive_field"]


class ResidualBlock(nn.Module):
    """``Rk``: ``x + norm(conv3(relu(norm(conv3(x)))))`` with reflection padding, optional dropout in between.

    Args:
        spatial_dims: 2 or 3.
        channels: ``k``.
        norm: ``"instance"`` (paper), ``"batch"``, ``"layer"`` or ``None``.
        dropout: dropout probability between the two convolutions (0 in the paper).
    """

    def __init__(self, spatial_dims: int, channels: int, norm: str | None = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        bias = norm in (None, "none")
        layers: list[nn.Module] = [
            conv(channels, channels, 3, 1, 1, bias=bias, padding_mode="reflect"),
            make_norm(norm, spatial_dims, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [conv(channels, channels, 3, 1, 1, bias=bias, padding_mode="reflect"), make_norm(norm, spatial_dims, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """CycleGAN ResNet generator (Zhu et al. 2017), 2D or 3D.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input image channels.
        out_channels: output image channels.
        base_channels: filters of the first layer (64 in the paper); doubled at each down-sampling.
        n_blocks: residual blocks (6 for 128 x 128, 9 for 256 x 256 in the paper).
        n_downsampling: stride-2 layers (2 in the paper); inputs must be divisible by ``2**n_downsampling``.
        norm: ``"instance"`` (paper), ``"batch"``, ``"layer"`` or ``None``.
        dropout: dropout inside the residual blocks (0 in the paper).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm: str | None = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"ResNetGenerator: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if n_blocks < 0 or n_downsampling < 0 or base_channels < 1:
            raise ValueError(
                f"ResNetGenerator: need n_blocks >= 0, n_downsampling >= 0 and base_channels >= 1, got {n_blocks}, "
                f"{n_downsampling}, {base_channels}."
            )
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"ResNetGenerator: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        self.spatial_dims, self.in_channels, self.out_channels = int(spatial_dims), int(in_channels), int(out_channels)
        self.n_downsampling = int(n_downsampling)
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        bias = norm in (None, "none")
        layers: list[nn.Module] = [  # c7s1-64
            conv(in_channels, base_channels, 7, 1, 3, bias=bias, padding_mode="reflect"),
            make_norm(norm, spatial_dims, base_channels),
            nn.ReLU(inplace=True),
        ]
        c = base_channels
        for _ in range(n_downsampling):  # d128, d256
            layers += [conv(c, 2 * c, 3, 2, 1, bias=bias), make_norm(norm, spatial_dims, 2 * c), nn.ReLU(inplace=True)]
            c *= 2
        layers += [ResidualBlock(spatial_dims, c, norm, dropout) for _ in range(n_blocks)]  # R256 x n
        for _ in range(n_downsampling):  # u128, u64
            layers += [
                conv_t(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                make_norm(norm, spatial_dims, c // 2),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers += [conv(c, out_channels, 7, 1, 3, padding_mode="reflect"), nn.Tanh()]  # c7s1-3
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        div = 2**self.n_downsampling
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or any(s % div for s in x.shape[2:]):
            raise ValueError(
                f"ResNetGenerator expects (N, {self.in_channels}, *{self.spatial_dims} spatial) inputs with sides "
                f"divisible by {div}, got {tuple(x.shape)}."
            )
        return self.net(x)
