# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion-in-context networks (MCGAN: Han et al., "Synthesizing diverse lung nodules wherever massively: 3D
multi-conditional GAN-based CT image augmentation for object detection", 3DV 2019, arXiv 1906.04962), 2D or 3D.

MCGAN fills a box of a *real* image with a lesion: the generator sees a context patch whose box is replaced by
noise, and two critics judge the result, one on the box (the lesion) and one on the whole patch (lesion and
surroundings). The paper's 3D U-Net-like generator works on 64^3 patches with a noise-filled central 32^3 box;
here the box may sit anywhere in the patch (it is centred unless the patch meets the image border) and its size is
given by a mask channel.

* :class:`LesionInpaintGenerator`: a U-Net (MONAI ``UnetBasicBlock`` encoder, ``UnetUpBlock`` decoder with skip
  connections) on ``[noise-filled patch, box mask (-1/1), optional condition maps]``; its ``tanh`` output replaces
  the input only inside the box and a feathered ring around it (weight 1 in the box, a raised-cosine fall-off over
  ``feather`` voxels outside it, 0 beyond): everything further than ``feather`` voxels from the box is the input
  context, bit for bit, so the paste back into the real slice has no seam.
* :class:`LesionInpaintCritic`: a PatchGAN-style critic (stride-2 convolutions, LeakyReLU 0.2, a 1-channel logit
  map), used twice by :class:`~monai_gan_aug.losses.objectives.lesion_inpaint.LesionInpaintObjective`: on the box
  crop resized to a fixed size (the lesion critic) and on the whole patch with the mask channel (the context
  critic). Optional condition vectors (e.g. the lesion size) enter both networks as constant maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UnetBasicBlock, UnetUpBlock
from torch import nn

__all__ = ["LesionInpaintCritic", "LesionInpaintGenerator", "condition_maps", "feathered_weights"]

_ACT = ("leakyrelu", {"negative_slope": 0.2, "inplace": False})
_NORMS = {"instance": ("instance", {"affine": True}), "batch": "batch", "layer": ("group", {"num_groups": 1})}


def _norm(name: str | None, who: str, allow_none: bool) -> tuple | str | None:
    if name is None or name == "none":
        if allow_none:
            return None
        raise ValueError(f"{who}: norm must be one of {sorted(_NORMS)}, got {name!r}.")
    if name not in _NORMS:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{who}: norm must be one of {sorted(_NORMS)}{extra}, got {name!r}.")
    return _NORMS[name]


def _check_channels(who: str, channels: Sequence[int], min_levels: int) -> tuple[int, ...]:
    chans = tuple(int(c) for c in channels)
    if len(chans) < min_levels or min(chans) < 1:
        raise ValueError(f"{who}: channels must hold at least {min_levels} positive widths, got {list(channels)}.")
    return chans


def condition_maps(cond: torch.Tensor | None, like: torch.Tensor, channels: int, who: str) -> torch.Tensor | None:
    """A ``(N, channels)`` condition vector broadcast to ``(N, channels, *like.spatial)`` maps (None when unused)."""
    if channels == 0:
        if cond is not None:
            raise ValueError(f"{who} was built with cond_channels=0 but got a condition of shape {tuple(cond.shape)}.")
        return None
    if cond is None or cond.ndim != 2 or cond.shape != (like.shape[0], channels):
        got = None if cond is None else tuple(cond.shape)
        raise ValueError(
            f"{who} needs a ({like.shape[0]}, {channels}) condition vector (cond_channels={channels}), got {got}."
        )
    return cond.to(like.dtype).reshape(*cond.shape, *([1] * (like.ndim - 2))).expand(-1, -1, *like.shape[2:])


def feathered_weights(mask: torch.Tensor, feather: int) -> torch.Tensor:
    """Blend weights of a box mask: 1 on the mask, ``0.5 * (1 + cos(pi * k / (feather + 1)))`` at chessboard
    distance ``k <= feather`` outside it, 0 beyond. ``mask`` is ``(N, 1, *spatial)`` with values 0/1."""
    m = (mask > 0.5).float()
    if feather <= 0:
        return m
    pool = F.max_pool2d if m.ndim == 4 else F.max_pool3d
    alpha = m
    for k in range(1, feather + 1):
        ring = pool(m, kernel_size=2 * k + 1, stride=1, padding=k)
        alpha = torch.maximum(alpha, ring * (0.5 * (1.0 + math.cos(math.pi * k / (feather + 1)))))
    return alpha


class LesionInpaintGenerator(nn.Module):
    """MCGAN-style (Han et al. 2019) lesion-in-context U-Net generator, 2D or 3D.

    ``forward(x, mask, cond=None)``: ``x`` is the ``(N, in_channels, *P)`` context patch with the box filled with
    noise, ``mask`` the ``(N, 1, *P)`` box mask (1 in the box), ``cond`` an optional ``(N, cond_channels)`` vector
    (e.g. the box side over the patch side, per axis). Returns the patch: the generated lesion in the box, the
    input context outside it, blended over a ``feather``-voxel ring (:func:`feathered_weights`); float32.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: output channels (default ``in_channels``; must equal it, the output is blended with the input).
        cond_channels: length of the condition vector (0: none).
        channels: widths of the U-Net levels; each level after the first halves the size, so the patch side must be
            divisible by ``2 ** (len(channels) - 1)`` and leave a bottleneck of at least 2 voxels.
        norm: ``"instance"`` (affine), ``"batch"`` or ``"layer"``.
        dropout: dropout of the convolution blocks.
        feather: width in voxels of the blend ring outside the box (0: hard paste).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int | None = None,
        cond_channels: int = 0,
        channels: Sequence[int] = (32, 64, 128, 256),
        norm: str = "instance",
        dropout: float = 0.0,
        feather: int = 2,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if spatial_dims not in (2, 3):
            raise ValueError(f"{who}: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        out_channels = in_channels if out_channels is None else out_channels
        if in_channels < 1 or out_channels != in_channels or cond_channels < 0:
            raise ValueError(
                f"{who}: need in_channels >= 1, out_channels == in_channels (the output is blended with the input) "
                f"and cond_channels >= 0, got {in_channels}, {out_channels}, {cond_channels}."
            )
        if isinstance(feather, bool) or int(feather) != feather or feather < 0:
            raise ValueError(f"{who}: feather must be an int >= 0 (voxels), got {feather!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout}.")
        chans = _check_channels(who, channels, 2)
        norm_spec = _norm(norm, who, allow_none=False)
        self.spatial_dims, self.in_channels, self.cond_channels = spatial_dims, int(in_channels), int(cond_channels)
        self.feather, self.levels = int(feather), len(chans)
        drop = dropout or None
        first = UnetBasicBlock(spatial_dims, in_channels + 1 + cond_channels, chans[0], 3, 1, norm_spec, _ACT, drop)
        downs = [
            UnetBasicBlock(spatial_dims, chans[i - 1], chans[i], 3, 2, norm_spec, _ACT, drop) for i in range(1, len(chans))
        ]
        self.encoder = nn.ModuleList([first, *downs])  # level i > 0 halves the size
        ups = [  # transposed convolution x2, concatenation with the skip, two convolutions
            UnetUpBlock(spatial_dims, chans[i + 1], chans[i], 3, 1, 2, norm_spec, _ACT, drop)
            for i in reversed(range(len(chans) - 1))
        ]
        self.decoder = nn.ModuleList(ups)
        head = Convolution(spatial_dims, chans[0], out_channels, kernel_size=1, conv_only=True)
        self.head = nn.Sequential(head, nn.Tanh())

    def blend_weights(self, mask: torch.Tensor) -> torch.Tensor:
        """The weight of the generated image in the output (1 in the box, the feathered ring, 0 elsewhere)."""
        return feathered_weights(mask, self.feather)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        who, div = type(self).__name__, 2 ** (self.levels - 1)
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{who} expects x of shape (N, {self.in_channels}, *{self.spatial_dims} spatial), got {tuple(x.shape)}."
            )
        if mask.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"{who}: mask must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}.")
        if any(s % div or s // div < 2 for s in x.shape[2:]):
            raise ValueError(
                f"{who}: patch sides {tuple(x.shape[2:])} must be multiples of 2**(len(channels) - 1) = {div} with at "
                f"least 2 voxels left at the bottleneck; change patch_size or use fewer channel levels."
            )
        maps = condition_maps(cond, x, self.cond_channels, who)
        h = torch.cat([x, mask.to(x.dtype) * 2.0 - 1.0] + ([maps] if maps is not None else []), dim=1)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.decoder:
            h = block(h, skips.pop())
        generated = self.head(h).float()
        alpha = self.blend_weights(mask.float())
        context = x.float()
        return context + alpha * (generated - context)  # exactly the input where alpha == 0


class LesionInpaintCritic(nn.Module):
    """PatchGAN-style critic of MCGAN's two discriminators (Han et al. 2019), 2D or 3D.

    ``forward(x, cond=None)`` returns a ``(N, 1, *map)`` logit map (the losses average it). Each level is a
    kernel-4, stride-2 convolution with LeakyReLU 0.2 (normalised after the first level), then a kernel-3
    convolution to one channel: inputs must be at least ``2 ** len(channels)`` voxels per side.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (image channels, plus the mask channel for the context critic).
        cond_channels: length of the condition vector (0: none), broadcast to constant maps.
        channels: widths of the stride-2 levels.
        norm: ``None`` (the default; WGAN-GP penalises per-sample gradients, so no batch statistics),
            ``"instance"``, ``"layer"`` or ``"batch"``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        cond_channels: int = 0,
        channels: Sequence[int] = (32, 64, 128),
        norm: str | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if spatial_dims not in (2, 3):
            raise ValueError(f"{who}: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if in_channels < 1 or cond_channels < 0:
            raise ValueError(f"{who}: need in_channels >= 1 and cond_channels >= 0, got {in_channels}, {cond_channels}.")
        chans = _check_channels(who, channels, 1)
        norm_spec = _norm(norm, who, allow_none=True)
        self.spatial_dims, self.in_channels, self.cond_channels = spatial_dims, int(in_channels), int(cond_channels)
        self.min_size = 2 ** len(chans)
        layers, c_in = [], in_channels + cond_channels
        for i, c in enumerate(chans):
            layers.append(
                Convolution(spatial_dims, c_in, c, strides=2, kernel_size=4, padding=1, act=_ACT,
                            norm=norm_spec if i > 0 else None, adn_ordering="NDA")
            )
            c_in = c
        layers.append(Convolution(spatial_dims, c_in, 1, kernel_size=3, padding=1, conv_only=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        who = type(self).__name__
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{who} expects (N, {self.in_channels}, *{self.spatial_dims} spatial) inputs, got {tuple(x.shape)}."
            )
        if any(s < self.min_size for s in x.shape[2:]):
            raise ValueError(
                f"{who}: inputs must be at least {self.min_size} voxels per side (2 ** levels), got {tuple(x.shape[2:])}."
            )
        maps = condition_maps(cond, x, self.cond_channels, who)
        return self.net(x if maps is None else torch.cat([x, maps], dim=1))
