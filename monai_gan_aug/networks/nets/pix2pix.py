# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix networks (Isola et al., "Image-to-image translation with conditional adversarial networks", CVPR 2017)
for 2D and 3D: the U-Net generator and the PatchGAN discriminator on (condition, image) pairs.

Generator, in the paper's notation (``Ck``: convolution-BatchNorm-ReLU with ``k`` filters, ``CDk``: the same with
dropout 0.5; kernel 4, stride 2; encoder ReLUs leaky with slope 0.2; no BatchNorm on the first encoder layer):

* encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` for 256 x 256, one layer per halving down to 1 x 1, so the
  depth follows the resolution (``num_downs = log2(image_size)``: 8 at 256, 7 at 128 as in the thesis, 4.4.3);
* decoder ``CD512-CD512-CD512-C512-C256-C128-C64`` with skip connections (layer ``i`` concatenated to layer
  ``n - i``), then a transposed convolution to the output channels and ``tanh``.

The innermost (1 x 1) encoder layer has no normalisation, as in the authors' code: a per-sample norm of a 1 x 1
map is undefined. The PatchGAN discriminator lives in :mod:`monai_gan_aug.networks.blocks.patchgan` (shared
with CycleGAN) and is re-exported here.
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import Conv
from torch import nn

from monai_gan_aug.networks.blocks.norm import dcgan_init_, make_norm
from monai_gan_aug.networks.blocks.patchgan import (
    PatchGANDiscriminator,
    patchgan_receptive_field,
)

__all__ = ["PatchGANDiscriminator", "Pix2PixGenerator", "patchgan_receptive_field", "unet_num_downs"]


def unet_num_downs(image_size: int) -> int:
    """``log2(image_size)``: the number of stride-2 encoder layers taking ``image_size`` down to 1."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4 or image_size & (image_size - 1):
        raise ValueError(f"Pix2PixGenerator: image_size must be a power of two >= 4, got {image_size!r}.")
    return int(math.log2(image_size))


class Pix2PixGenerator(nn.Module):
    """Pix2Pix U-Net generator (Isola et al. 2017), 2D or 3D.

    Args:
        spatial_dims: 2 or 3.
        in_channels: condition channels (e.g. 5 for a one-hot tissue map, 1 for a binary mask or an image).
        out_channels: image channels.
        image_size: input side; sets ``num_downs = log2(image_size)`` (the bottleneck is 1 pixel wide).
        num_downs: stride-2 encoder layers (overrides ``image_size``); inputs must be divisible by ``2**num_downs``.
        base_channels: filters of the first encoder layer (``ngf``, 64 in the paper), doubled per layer.
        max_channels: cap on the filter count (512 in the paper).
        norm: ``"batch"`` (paper), ``"instance"``, ``"layer"`` or ``None``.
        dropout: dropout probability of the ``CD`` decoder layers (0.5 in the paper).
        num_dropout: how many decoder layers, from the innermost, have dropout (3 in the paper).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        image_size: int | None = 256,
        num_downs: int | None = None,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
        dropout: float = 0.5,
        num_dropout: int = 3,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"Pix2PixGenerator: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_downs is None:
            if image_size is None:
                raise ValueError("Pix2PixGenerator: give image_size or num_downs.")
            num_downs = unet_num_downs(image_size)
        if num_downs < 2:
            raise ValueError(f"Pix2PixGenerator: num_downs must be >= 2, got {num_downs}.")
        if not 0.0 <= dropout < 1.0 or num_dropout < 0:
            raise ValueError(f"Pix2PixGenerator: need 0 <= dropout < 1 and num_dropout >= 0, got {dropout}, {num_dropout}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Pix2PixGenerator: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        self.spatial_dims, self.in_channels, self.out_channels = int(spatial_dims), int(in_channels), int(out_channels)
        self.num_downs = int(num_downs)
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        chans = [min(base_channels * 2**i, max_channels) for i in range(num_downs)]
        use_bias = norm in (None, "none")  # a (affine) norm right after a convolution makes its bias redundant

        downs: list[nn.Module] = []
        for i, c_out in enumerate(chans):
            c_in = in_channels if i == 0 else chans[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            inner = i == num_downs - 1
            layers.append(conv(c_in, c_out, 4, 2, 1, bias=use_bias or i == 0 or inner))
            if 0 < i < num_downs - 1:
                layers.append(make_norm(norm, spatial_dims, c_out))
            downs.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)

        ups: list[nn.Module] = []
        for j in range(num_downs - 1):  # decoder layer j mirrors encoder layer num_downs - 2 - j
            level = num_downs - 1 - j
            c_in = chans[level] if j == 0 else 2 * chans[level]
            c_out = chans[level - 1]
            layers = [nn.ReLU(inplace=False), conv_t(c_in, c_out, 4, 2, 1, bias=use_bias), make_norm(norm, spatial_dims, c_out)]
            if j < num_dropout and dropout > 0:
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList(ups)
        self.out = nn.Sequential(nn.ReLU(inplace=False), conv_t(2 * chans[0], out_channels, 4, 2, 1), nn.Tanh())
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        div = 2**self.num_downs
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or any(s % div for s in x.shape[2:]):
            raise ValueError(
                f"Pix2PixGenerator expects (N, {self.in_channels}, *{self.spatial_dims} spatial) inputs with sides "
                f"divisible by 2**num_downs = {div}, got {tuple(x.shape)}; check in_channels (condition channels) "
                "and image_size against the preprocessing."
            )
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.out(x)
