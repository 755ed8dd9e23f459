# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Progressively grown generator and critic with a condition map at every resolution: the bounding-box-conditioned
PGGAN ("CPGGAN") of Han et al., "Learning more with less: conditional PGGAN-based data augmentation for brain
metastases detection using highly-rough annotation on MR images" (CIKM 2019, arXiv:1902.09856), built on Karras et
al., "Progressive growing of GANs for improved quality, stability, and variation" (ICLR 2018).

Architecture (Karras et al., Table 2, with a configurable channel count per resolution):

* generator: the pixel-normalised latent goes through a dense layer to ``C(4)`` maps of 4 x 4 (x 4), then one 3x3
  convolution; every further resolution doubles the size (nearest neighbour) and applies two 3x3 convolutions.
  LeakyReLU(0.2) and pixel norm follow every convolution. Each resolution has a 1x1 ``toRGB``.
* critic: a 1x1 ``fromRGB`` per resolution, then per resolution two 3x3 convolutions and a 2x average pool; at
  4 x 4 the minibatch standard deviation channel, a 3x3 and a 4x4 ("valid") convolution and a dense layer to one
  score. No normalisation (WGAN-GP critic).
* every layer uses the equalised learning rate.
* growing: ``stage`` selects the output / input resolution ``4 * 2 ** stage``; while ``alpha < 1`` the newest
  block is faded in: the generator's image is ``(1 - alpha) * up(toRGB_{s-1}(h_{s-1})) + alpha * toRGB_s(h_s)``,
  the critic's features ``(1 - alpha) * fromRGB_{s-1}(down(x)) + alpha * block_s(fromRGB_s(x))``.
* growth state: each network holds its ``stage`` and ``alpha`` as buffers, saved in its state dict, so a network
  loaded from a checkpoint runs at the stage it was trained at with no other state (see :class:`ProgressiveNetwork`).
  During training :class:`~monai_gan_aug.handlers.ProgressiveGrowingHandler` sets them every iteration from the
  schedule (:class:`~monai_gan_aug.networks.growth.ProgressiveSchedule`).

Conditioning (Han et al.): the boxes of an image are rasterised into a map that is 1 inside any box (see
:func:`monai_gan_aug.transforms.boxes.boxes_to_condition_map`). That map, area-pooled to each resolution, is
concatenated to the generator's features at the input of *every* resolution block and to the critic's input
(before ``fromRGB``) and to its features at every resolution block, so both networks see where lesions must be
(and, by the zeros, where they must not be) at every scale. ``cond_channels=0`` gives Karras' unconditional PGGAN.

Following this project's conventions the generator ends in ``tanh`` (images in ``[-1, 1]``); Karras used a linear
output (``final_activation=None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from monai_gan_aug.networks.blocks.progressive import (
    ConditionPyramid,
    EqualizedConv,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    area_downsample,
    channels_per_resolution,
    nearest_upsample,
)
from monai_gan_aug.networks.growth import pggan_resolutions

__all__ = ["PGGANDiscriminator", "PGGANGenerator", "ProgressiveNetwork", "pggan_resolutions"]


class ProgressiveNetwork(nn.Module):
    """Shared parts of the two networks: argument checks and the growth state.

    The growth state is two buffers, ``stage`` (int64) and ``alpha`` (float32), saved in the state dict: loading a
    network's state dict is enough to run it at the stage and fade-in it was saved at. A new network is fully grown
    (last stage, ``alpha`` 1). ``forward`` reads a Python copy of the buffers (no device sync, and ``torch.export``
    sees constants), so change the state with :meth:`set_growth`, not by writing the buffers. A state dict written
    before these buffers existed loads too (the network keeps its current state, fully grown when new).
    """

    spatial_dims: int
    cond_channels: int
    resolutions: list[int]
    stage: torch.Tensor
    alpha: torch.Tensor

    def _init_common(self, spatial_dims: int, cond_channels: int, max_resolution: int) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0, got {cond_channels}.")
        self.spatial_dims, self.cond_channels = int(spatial_dims), int(cond_channels)
        self.resolutions = pggan_resolutions(int(max_resolution))
        self.max_resolution = self.resolutions[-1]
        self.register_buffer("stage", torch.tensor(self.num_stages - 1, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(1.0, dtype=torch.float32))
        self._growth = (self.num_stages - 1, 1.0)

    @property
    def num_stages(self) -> int:
        return len(self.resolutions)

    @property
    def growth(self) -> tuple[int, float]:
        """``(stage, alpha)`` the network runs at when ``forward`` is not given them."""
        return self._growth

    @property
    def resolution(self) -> int:
        """Side of the images at the current stage, ``4 * 2 ** stage``."""
        return self.resolutions[self._growth[0]]

    def set_growth(self, stage: int, alpha: float = 1.0) -> ProgressiveNetwork:
        """Set the growth stage and the fade-in weight of its newest block (buffers and their Python copy)."""
        stage, alpha = self._stage(stage), float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{type(self).__name__}: alpha must be in [0, 1], got {alpha}.")
        if (stage, alpha) != self._growth:
            with torch.no_grad():
                self.stage.fill_(stage)
                self.alpha.fill_(alpha)
            self._growth = (stage, alpha)
        return self

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any, strict: bool, missing_keys: list[str],
        unexpected_keys: list[str], error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        for name in ("stage", "alpha"):  # a state dict written before the growth state was stored
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)
        stage = int(self.stage)
        if not 0 <= stage < self.num_stages:
            error_msgs.append(f"{type(self).__name__}: stage {stage} in the state dict does not exist for resolutions "
                              f"{self.resolutions}; build the network with the max_resolution of training.")
            return
        self._growth = (stage, float(self.alpha))

    def _stage(self, stage: int) -> int:
        if not 0 <= int(stage) < self.num_stages:
            raise ValueError(
                f"{type(self).__name__}: stage must be in 0..{self.num_stages - 1} (resolutions {self.resolutions}), "
                f"got {stage}."
            )
        return int(stage)

    def _resolve(self, stage: int | None, alpha: float | None) -> tuple[int, float]:
        """``forward``'s stage and alpha: the given ones, else the network's state (an explicit stage alone keeps
        its old default, alpha 1)."""
        if stage is None:
            stage, default = self._growth
        else:
            default = 1.0
        return self._stage(stage), float(default if alpha is None else alpha)

    def _pyramid(self, cond: torch.Tensor | None, n: int, resolution: int, ref: torch.Tensor) -> ConditionPyramid | None:
        if self.cond_channels == 0:
            if cond is not None and cond.shape[1] != 0:
                raise ValueError(f"{type(self).__name__} was built with cond_channels=0 but got a condition map.")
            return None
        if cond is None:  # no boxes: an all-zero map
            cond = ref.new_zeros((n, self.cond_channels) + (resolution,) * self.spatial_dims)
        if cond.ndim != self.spatial_dims + 2 or cond.shape[0] != n or cond.shape[1] != self.cond_channels:
            raise ValueError(
                f"{type(self).__name__}: condition map must have shape (N={n}, {self.cond_channels}, "
                f"*{self.spatial_dims} spatial), got {tuple(cond.shape)}."
            )
        pyramid = ConditionPyramid(cond.to(ref.dtype), min_resolution=4)
        if pyramid.resolution < resolution:
            raise ValueError(
                f"{type(self).__name__}: condition map of side {pyramid.resolution} is smaller than the current "
                f"resolution {resolution}; build it at the image size."
            )
        return pyramid


class _GeneratorBlock(nn.Module):
    def __init__(self, spatial_dims: int, in_channels: int, cond_channels: int, out_channels: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv1 = EqualizedConv(spatial_dims, in_channels + cond_channels, out_channels, 3)
        self.conv2 = None if first else EqualizedConv(spatial_dims, out_channels, out_channels, 3)
        self.act = nn.LeakyReLU(0.2)
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if not self.first:
            x = nearest_upsample(x, 2)
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        x = self.norm(self.act(self.conv1(x)))
        if self.conv2 is not None:
            x = self.norm(self.act(self.conv2(x)))
        return x


class PGGANGenerator(ProgressiveNetwork):
    """Progressively grown, box-conditioned generator (Karras et al. 2018; Han et al. 2019).

    Args:
        spatial_dims: 2 or 3.
        latent_size: length of the latent; inputs ``(N, latent_size)`` or ``(N, latent_size, 1, ...)``.
        out_channels: image channels.
        cond_channels: channels of the condition map (1: the box map; 0: unconditional).
        max_resolution: final side, a power of two >= 4 (256 in Han et al.).
        channels: feature channels per resolution, e.g. ``{4: 128, 8: 128, 16: 64}`` (keys may be strings);
            when None, ``min(2 * fmap_base / res, fmap_max)``.
        fmap_base: see ``channels`` (8192 in Karras et al.).
        fmap_max: see ``channels`` (512 in Karras et al.).
        final_activation: ``"tanh"`` (images in [-1, 1]) or None (Karras' linear output).
        normalize_latent: pixel-normalise the latent first (Karras).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        latent_size: int = 512,
        out_channels: int = 1,
        cond_channels: int = 1,
        max_resolution: int = 256,
        channels: Mapping | None = None,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        final_activation: str | None = "tanh",
        normalize_latent: bool = True,
    ) -> None:
        super().__init__()
        self._init_common(spatial_dims, cond_channels, max_resolution)
        if latent_size < 1 or out_channels < 1:
            raise ValueError(f"latent_size and out_channels must be >= 1, got {latent_size}, {out_channels}.")
        if final_activation not in (None, "tanh", "none"):
            raise ValueError(f"final_activation must be 'tanh' or None, got {final_activation!r}.")
        self.latent_size, self.out_channels = int(latent_size), int(out_channels)
        self.channels = channels_per_resolution(self.resolutions, channels, fmap_base, fmap_max)
        c0 = self.channels[4]
        self.latent_norm = PixelNorm() if normalize_latent else nn.Identity()
        # Karras' first layer: a dense "4x4 convolution" of the latent, gain sqrt(2) / 4 as in the reference code
        self.dense = EqualizedLinear(self.latent_size, c0 * 4**self.spatial_dims, gain=math.sqrt(2.0) / 4)
        self.dense_act = nn.Sequential(nn.LeakyReLU(0.2), PixelNorm())
        blocks, to_rgb = [], []
        prev = c0
        for i, r in enumerate(self.resolutions):
            blocks.append(_GeneratorBlock(self.spatial_dims, prev, self.cond_channels, self.channels[r], first=i == 0))
            to_rgb.append(EqualizedConv(self.spatial_dims, self.channels[r], self.out_channels, 1, gain=1.0))
            prev = self.channels[r]
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(to_rgb)
        self.final_activation = nn.Tanh() if final_activation == "tanh" else nn.Identity()

    def forward(
        self, z: torch.Tensor, cond: torch.Tensor | None = None, stage: int | None = None, alpha: float | None = None
    ) -> torch.Tensor:
        """Generate images of side ``4 * 2 ** stage``.

        Args:
            z: latents ``(N, latent_size)`` (trailing singleton dims allowed).
            cond: condition map ``(N, cond_channels, *spatial)`` at the current resolution or any larger power of two
                (area-pooled to each block's size); None means no boxes (all zeros).
            stage: growth stage (0: 4 px; default: the network's, see :meth:`set_growth`).
            alpha: fade-in weight of the newest block in ``[0, 1]`` (1: fully grown; default: the network's when
                ``stage`` is not given either, else 1).
        """
        stage, a = self._resolve(stage, alpha)
        if z.ndim > 2:
            z = z.reshape(z.shape[0], -1)
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"PGGANGenerator expects latents (N, {self.latent_size}), got shape {tuple(z.shape)}.")
        n = z.shape[0]
        res = self.resolutions[stage]
        pyramid = self._pyramid(cond, n, res, z)
        x = self.dense(self.latent_norm(z)).reshape((n, self.channels[4]) + (4,) * self.spatial_dims)
        x = self.dense_act(x)
        prev = x
        for s in range(stage + 1):
            prev = x
            x = self.blocks[s](x, pyramid[self.resolutions[s]] if pyramid is not None else None)
        img = self.to_rgb[stage](x)
        if stage > 0 and a < 1.0:
            low = nearest_upsample(self.to_rgb[stage - 1](prev), 2)
            img = torch.lerp(low, img, a)
        return self.final_activation(img)


class _DiscriminatorBlock(nn.Module):
    def __init__(self, spatial_dims: int, in_channels: int, cond_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualizedConv(spatial_dims, in_channels + cond_channels, in_channels, 3)
        self.conv2 = EqualizedConv(spatial_dims, in_channels, out_channels, 3)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        x = self.act(self.conv2(self.act(self.conv1(x))))
        return area_downsample(x, 2)


class _DiscriminatorHead(nn.Module):
    def __init__(self, spatial_dims: int, channels: int, cond_channels: int, group_size: int, num_features: int) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(group_size, num_features)
        self.conv = EqualizedConv(spatial_dims, channels + num_features + cond_channels, channels, 3)
        self.conv4 = EqualizedConv(spatial_dims, channels, channels, 4, padding=0)
        self.act = nn.LeakyReLU(0.2)
        self.fc = EqualizedLinear(channels, 1, gain=1.0)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = self.mbstd(x)
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        x = self.act(self.conv4(self.act(self.conv(x))))
        return self.fc(x.reshape(x.shape[0], -1))


class PGGANDiscriminator(ProgressiveNetwork):
    """Progressively grown, box-conditioned WGAN-GP critic (Karras et al. 2018; Han et al. 2019), returning one
    score per sample, shape ``(N, 1)``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        cond_channels: channels of the condition map (0: unconditional).
        max_resolution: final side, a power of two >= 4.
        channels: feature channels per resolution (see :class:`PGGANGenerator`).
        fmap_base: see ``channels``.
        fmap_max: see ``channels``.
        mbstd_group_size: group size of the minibatch standard deviation (4 in Karras et al.).
        mbstd_features: statistics channels (1 in Karras et al.).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        cond_channels: int = 1,
        max_resolution: int = 256,
        channels: Mapping | None = None,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_features: int = 1,
    ) -> None:
        super().__init__()
        self._init_common(spatial_dims, cond_channels, max_resolution)
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}.")
        self.in_channels = int(in_channels)
        self.channels = channels_per_resolution(self.resolutions, channels, fmap_base, fmap_max)
        d = self.spatial_dims
        self.from_rgb = nn.ModuleList(
            [
                nn.Sequential(EqualizedConv(d, self.in_channels + self.cond_channels, self.channels[r], 1), nn.LeakyReLU(0.2))
                for r in self.resolutions
            ]
        )
        blocks: list[nn.Module] = [nn.Identity()]  # resolution 4 is handled by the head
        for lo, hi in zip(self.resolutions[:-1], self.resolutions[1:]):
            blocks.append(_DiscriminatorBlock(d, self.channels[hi], self.cond_channels, self.channels[lo]))
        self.blocks = nn.ModuleList(blocks)
        self.head = _DiscriminatorHead(d, self.channels[4], self.cond_channels, mbstd_group_size, mbstd_features)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, stage: int | None = None, alpha: float | None = None
    ) -> torch.Tensor:
        """Score images of side ``4 * 2 ** stage``.

        Args:
            x: images ``(N, in_channels, *spatial)`` at the current resolution.
            cond: condition map ``(N, cond_channels, *spatial)`` at the current resolution or any larger power of two;
                None means no boxes.
            stage: growth stage (default: the network's, see :meth:`set_growth`).
            alpha: fade-in weight of the newest block in ``[0, 1]`` (default: as :meth:`PGGANGenerator.forward`).
        """
        stage, a = self._resolve(stage, alpha)
        res = self.resolutions[stage]
        want = (self.in_channels,) + (res,) * self.spatial_dims
        if x.ndim != self.spatial_dims + 2 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"PGGANDiscriminator at stage {stage} expects (N, {', '.join(map(str, want))}) inputs, got "
                f"{tuple(x.shape)}; downsample the images to the current resolution."
            )
        pyramid = self._pyramid(cond, x.shape[0], res, x)

        def cat(img: torch.Tensor, r: int) -> torch.Tensor:
            return torch.cat([img, pyramid[r]], dim=1) if pyramid is not None else img

        def c(r: int) -> torch.Tensor | None:
            return pyramid[r] if pyramid is not None else None

        h = self.from_rgb[stage](cat(x, res))
        if stage > 0:
            h = self.blocks[stage](h, c(res))
            if a < 1.0:
                low_res = self.resolutions[stage - 1]
                h_low = self.from_rgb[stage - 1](cat(area_downsample(x, 2), low_res))
                h = torch.lerp(h_low, h, a)
            for s in range(stage - 1, 0, -1):
                h = self.blocks[s](h, c(self.resolutions[s]))
        return self.head(h, c(4))
