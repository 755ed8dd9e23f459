# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Building blocks of progressively grown GANs (Karras et al., "Progressive growing of GANs for improved quality,
stability, and variation", ICLR 2018), for any number of spatial dimensions.

* :class:`EqualizedConv` / :class:`EqualizedLinear`: weights drawn from N(0, 1) and scaled at run time by He's
  constant ``gain / sqrt(fan_in)`` ("equalised learning rate", Karras 4.1), so Adam's per-parameter step acts
  alike on every layer.
* :class:`PixelNorm`: each feature vector divided by its root mean square over channels (Karras 4.2), used in
  the generator after every convolution instead of batch norm.
* :class:`MinibatchStdDev`: the discriminator's minibatch standard deviation feature map (Karras 3).
* :class:`ConditionPyramid`: a condition map (e.g. rasterised bounding boxes, Han et al. 2019) area-pooled to
  every resolution a network needs, so it can be concatenated to the features of each block.

Convolutions, pooling and interpolation go through MONAI's ``Conv`` / ``Pool`` factories and
``torch.nn.functional.interpolate`` by ``spatial_dims``: nothing here assumes 2D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from monai.networks.layers import Conv, Pool
from torch import nn

__all__ = [
    "ConditionPyramid",
    "EqualizedConv",
    "EqualizedLinear",
    "MinibatchStdDev",
    "PixelNorm",
    "area_downsample",
    "channels_per_resolution",
    "nearest_upsample",
]


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}.")
    return int(spatial_dims)


class EqualizedConv(nn.Module):
    """Convolution with Karras et al.'s equalised learning rate.

    The weight is initialised from N(0, 1) and multiplied by ``gain / sqrt(in_channels * kernel_size ** dims)`` at
    every forward pass; the bias starts at zero.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: cubic kernel side.
        padding: zero padding (default ``kernel_size // 2``: "same" output size for odd kernels).
        gain: He gain, ``sqrt(2)`` before a (leaky) ReLU, 1 for a linear output layer.
        bias: add a learnt bias.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int | None = None,
        gain: float = math.sqrt(2.0),
        bias: bool = True,
    ) -> None:
        super().__init__()
        dims = _check_dims(spatial_dims)
        if in_channels < 1 or out_channels < 1 or kernel_size < 1:
            raise ValueError(
                f"EqualizedConv: channels and kernel_size must be >= 1, got {in_channels}, {out_channels}, {kernel_size}."
            )
        pad = kernel_size // 2 if padding is None else int(padding)
        self.conv = Conv[Conv.CONV, dims](in_channels, out_channels, kernel_size, padding=pad, bias=bias)
        nn.init.normal_(self.conv.weight, 0.0, 1.0)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        self.scale = float(gain) / math.sqrt(in_channels * kernel_size**dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, self.conv.weight * self.scale, self.conv.bias)


class EqualizedLinear(nn.Module):
    """Fully connected layer with the equalised learning rate (see :class:`EqualizedConv`).

    Args:
        in_features: input features.
        out_features: output features.
        gain: He gain.
        bias: add a learnt bias.
    """

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2.0), bias: bool = True) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"EqualizedLinear: features must be >= 1, got {in_features}, {out_features}.")
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = float(gain) / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation ``x / sqrt(mean_c(x^2) + eps)`` over the channel axis (Karras 4.2).

    Args:
        eps: numerical floor.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation layer (Karras 3): appends ``num_features`` channels holding the standard
    deviation of the features over groups of ``group_size`` samples, averaged over channels and space.

    The group is the largest size ``<= group_size`` that divides the batch, so any batch size works; a batch of one
    gets a zero feature.

    Args:
        group_size: samples per group (4 in the paper).
        num_features: statistics channels appended (1 in the paper).
    """

    def __init__(self, group_size: int = 4, num_features: int = 1) -> None:
        super().__init__()
        if group_size < 1 or num_features < 1:
            raise ValueError(f"MinibatchStdDev: group_size and num_features must be >= 1, got {group_size}, {num_features}.")
        self.group_size, self.num_features = int(group_size), int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        f = self.num_features
        if c % f:
            raise ValueError(f"MinibatchStdDev: {c} channels are not divisible by num_features={f}.")
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.float().reshape(g, n // g, f, c // f, *spatial)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=tuple(range(2, y.ndim)))  # (n // g, f)
        y = y.reshape(n // g, f, *([1] * len(spatial))).repeat(g, 1, *spatial).to(x.dtype)
        return torch.cat([x, y], dim=1)


def area_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool ``x`` (N, C, *spatial) by an integer ``factor`` on every spatial axis (area resampling)."""
    if factor == 1:
        return x
    return Pool[Pool.AVG, x.ndim - 2](kernel_size=factor, stride=factor)(x)


def nearest_upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling of ``x`` (N, C, *spatial) by an integer ``factor`` (Karras' "upscale2d")."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="nearest")


class ConditionPyramid:
    """A condition map area-pooled to every power-of-two resolution from its own size down to ``min_resolution``.

    Pooling by 2 repeatedly is exact area resampling for power-of-two sizes, so the map at resolution ``r`` holds the
    fraction of each coarse voxel that lies inside a box, whatever size the map was built at.

    Args:
        cond: ``(N, C, *spatial)`` condition map with equal power-of-two sides.
        min_resolution: the coarsest level kept.
    """

    def __init__(self, cond: torch.Tensor, min_resolution: int = 4) -> None:
        sizes = set(cond.shape[2:])
        if len(sizes) != 1:
            raise ValueError(f"condition maps must have equal spatial sides, got shape {tuple(cond.shape)}.")
        size = sizes.pop()
        if size < min_resolution or size & (size - 1):
            raise ValueError(
                f"condition map side {size} must be a power of two >= {min_resolution}; build the map at the image size."
            )
        self.levels: dict[int, torch.Tensor] = {size: cond}
        while size > min_resolution:
            cond = area_downsample(cond, 2)
            size //= 2
            self.levels[size] = cond

    def __getitem__(self, resolution: int) -> torch.Tensor:
        if resolution not in self.levels:
            raise ValueError(
                f"no condition map at resolution {resolution} (have {sorted(self.levels)}); give a condition map at "
                "least as large as the network's current resolution."
            )
        return self.levels[resolution]

    @property
    def resolution(self) -> int:
        return max(self.levels)


def channels_per_resolution(
    resolutions: list[int], channels: Mapping | None = None, fmap_base: int = 8192, fmap_max: int = 512
) -> dict[int, int]:
    """Feature channels of each resolution: ``channels[res]`` when given (keys may be strings, as in JSON), else
    Karras' rule ``min(2 * fmap_base / res, fmap_max)`` (512 up to 32 px, 256 at 64, 128 at 128, 64 at 256 with the
    paper's ``fmap_base=8192``)."""
    out: dict[int, int] = {}
    given = {int(k): int(v) for k, v in dict(channels or {}).items()}
    for r in resolutions:
        if r in given:
            out[r] = given[r]
        elif channels:
            raise ValueError(f"channels gives {sorted(given)} but not resolution {r}; give every resolution {resolutions}.")
        else:
            out[r] = max(1, min(int(2 * fmap_base // r), int(fmap_max)))
        if out[r] < 1:
            raise ValueError(f"channels at resolution {r} must be >= 1, got {out[r]}.")
    return out
