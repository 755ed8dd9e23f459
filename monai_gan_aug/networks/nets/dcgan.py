# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DCGAN networks (Radford et al., "Unsupervised representation learning with deep convolutional generative
adversarial networks", ICLR 2016) for 2D and 3D.

Generator: the latent (``(N, z, 1, ...)``) goes through a 4-wide transposed convolution, then stride-2 transposed
convolutions (kernel 4) that double the size and halve the channels until ``image_size``, batch norm and ReLU in
between, ``tanh`` at the end. Discriminator: stride-2 convolutions (kernel 4) with LeakyReLU(0.2), batch norm on
all but the first layer, down to 4, then a 4-wide convolution to one logit. The thesis (Sobolev, 4.4.2) uses this
pair to generate segmentation masks. For WGAN-GP (Gulrajani et al. 2017) the critic must not use batch norm:
pass ``norm=None`` or ``"layer"``.
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import Conv
from torch import nn

from monai_gan_aug.networks.blocks.norm import dcgan_init_, make_norm

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "make_norm", "dcgan_init_"]


def _n_stages(spatial_dims: int, image_size: int) -> int:
    """The stride-2 stages between 4 and ``image_size`` (a power of two >= 8) of a 2D or 3D network."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}.")
    return int(math.log2(image_size)) - 2


class DCGANGenerator(nn.Module):
    """DCGAN generator.

    Args:
        spatial_dims: 2 or 3.
        latent_size: length of the latent vector; input shape ``(N, latent_size)`` or ``(N, latent_size, 1, ...)``.
        out_channels: image channels (e.g. 1 for MR, 2 for image + mask).
        image_size: output size, a power of two >= 8.
        base_channels: channels of the last hidden layer (``ngf``); each earlier layer doubles them.
        max_channels: cap on the channel count.
        norm: normalisation between layers.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        latent_size: int = 100,
        out_channels: int = 1,
        image_size: int = 64,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
    ) -> None:
        super().__init__()
        n_up = _n_stages(spatial_dims, image_size)  # 4 -> image_size
        self.spatial_dims, self.latent_size, self.image_size = spatial_dims, latent_size, image_size
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        chans = [min(base_channels * 2 ** (n_up - 1 - i), max_channels) for i in range(n_up)]
        layers: list[nn.Module] = [
            conv_t(latent_size, chans[0], 4, 1, 0, bias=norm is None),
            make_norm(norm, spatial_dims, chans[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [conv_t(c_in, c_out, 4, 2, 1, bias=norm is None), make_norm(norm, spatial_dims, c_out), nn.ReLU(True)]
        layers += [conv_t(chans[-1], out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2:
            z = z.reshape(z.shape + (1,) * self.spatial_dims)
        if z.shape[1] != self.latent_size:
            raise ValueError(f"DCGANGenerator expects latents with {self.latent_size} channels, got shape {tuple(z.shape)}.")
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator / WGAN critic returning one logit per sample, shape ``(N, 1)``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (plus any condition channels concatenated by the objective).
        image_size: input size, a power of two >= 8.
        base_channels: channels of the first layer (``ndf``), doubled at each stride-2 layer.
        max_channels: cap on the channel count.
        norm: normalisation on all but the first layer (``None``/``"layer"`` for WGAN-GP critics).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        image_size: int = 64,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
    ) -> None:
        super().__init__()
        n_down = _n_stages(spatial_dims, image_size)
        self.in_channels, self.image_size, self.spatial_dims = in_channels, image_size, spatial_dims
        conv = Conv[Conv.CONV, spatial_dims]
        chans = [min(base_channels * 2**i, max_channels) for i in range(n_down)]
        layers: list[nn.Module] = [conv(in_channels, chans[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [conv(c_in, c_out, 4, 2, 1, bias=norm is None), make_norm(norm, spatial_dims, c_out), nn.LeakyReLU(0.2, True)]
        layers += [conv(chans[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels or any(s != self.image_size for s in x.shape[2:]):
            raise ValueError(
                f"DCGANDiscriminator expects (N, {self.in_channels}, {', '.join([str(self.image_size)] * self.spatial_dims)})"
                f" inputs, got {tuple(x.shape)}; check in_channels / image_size against the preprocessing."
            )
        return self.net(x).reshape(x.shape[0], 1)
