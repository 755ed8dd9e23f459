# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""What the critic of a progressively grown, map-conditioned GAN sees (PGGAN: Karras et al., ICLR 2018; with box maps:
Han et al. 2019).

* :func:`real_at_resolution`: real images area-downsampled to the stage's resolution and, during a fade-in, blended
  between their 2x coarser (nearest-upsampled) version and themselves (Karras et al.).
* :func:`diff_augment_with_maps`: DiffAugment (Zhao et al. 2020) of images together with their condition maps, one
  draw for all: the maps are area-pooled to the images' resolution and moved / cut with them, colour changes touch
  the image channels only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from monai_gan_aug.networks.blocks.diffaugment import diff_augment
from monai_gan_aug.networks.blocks.progressive import area_downsample, nearest_upsample

__all__ = ["diff_augment_with_maps", "real_at_resolution"]


def real_at_resolution(image: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Reals area-downsampled to ``resolution``; in a fade-in (``alpha < 1``; 1 in stable phases) blended with
    their 2x coarser version."""
    x = area_downsample(image, image.shape[-1] // resolution)
    return torch.lerp(nearest_upsample(area_downsample(x, 2), 2), x, alpha) if alpha < 1.0 else x


def diff_augment_with_maps(
    images: Sequence[torch.Tensor], *maps: torch.Tensor, policy: tuple[str, ...]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``images`` (each ``(N, C, *[r])``) and condition maps (``(N, K, *spatial)``, ``spatial`` a power-of-two
    multiple of ``r``) with ONE DiffAugment draw: the maps are area-pooled to ``r`` and concatenated behind the
    image channels (translation / cut-out move / cut both, colour changes the ``C`` image channels only).
    Unchanged with an empty ``policy`` (a parsed policy, see
    :func:`~monai_gan_aug.networks.blocks.diffaugment.parse_policy`). Returns ``(augmented images, augmented maps at
    resolution r)``."""
    images = list(images)
    if not policy:
        return images, list(maps)
    ref = images[0]
    c = ref.shape[1]
    pooled_maps = []
    for m in maps:
        factor = m.shape[-1] // ref.shape[-1]
        pooled = area_downsample(m, factor).to(ref.dtype) if factor >= 1 else m
        if tuple(pooled.shape[2:]) != tuple(ref.shape[2:]) or m.shape[0] != ref.shape[0]:
            raise ValueError(f"diff_augment_with_maps: condition map {tuple(m.shape)} does not pool to the images' {tuple(ref.shape)}.")
        pooled_maps.append(pooled)
    out = diff_augment(*[torch.cat([x, *pooled_maps], dim=1) for x in images], policy=policy, color_channels=c)
    aug_maps = list(torch.split(out[0], [c] + [m.shape[1] for m in pooled_maps], dim=1)[1:])
    return [t[:, :c] for t in out], aug_maps
