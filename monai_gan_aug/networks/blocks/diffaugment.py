# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Differentiable augmentation (DiffAugment; Zhao et al., "Differentiable augmentation for data-efficient GAN
training", NeurIPS 2020), as FastGAN (Liu et al. 2021) uses it with the policy ``"color,translation"``.

The discriminator only ever sees augmented images, real and generated alike, and the generator's loss goes through
the same (differentiable) augmentation, so the augmentation does not leak into the generated distribution. The
operations are DiffAugment's:

* ``color``: ``brightness`` (add U(-0.5, 0.5)), ``saturation`` (scale the deviation from the channel mean by
  U(0, 2)) and ``contrast`` (scale the deviation from the image mean by U(0.5, 1.5)), per sample;
* ``translation``: shift by up to ``translation_ratio`` (1/8) of the size per axis, integer pixels, zero fill;
* ``cutout``: zero a box of ``cutout_ratio`` (1/2) of the size per axis at a random centre.

Unlike the reference code, one call augments several tensors with the *same* random parameters (e.g. FastGAN's
full-size image and its low-resolution twin, or an image whose extra channels are masks): translations and cutouts
are drawn as fractions of the size and scaled to each tensor's resolution, and colour changes can be limited to the
leading (image) channels so mask channels keep their values. Any number of spatial dims works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DIFFAUGMENT_OPS", "DiffAugment", "diff_augment", "parse_policy"]

DIFFAUGMENT_OPS = ("brightness", "saturation", "contrast", "translation", "cutout")
_GROUPS = {"color": ("brightness", "saturation", "contrast")}


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color,translation"`` / ``["color", "cutout"]`` -> ordered tuple of operations; ``""``/None -> ``()``."""
    if policy is None:
        return ()
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    out: list[str] = []
    for raw in names:
        name = str(raw).strip().lower()
        if not name:
            continue
        ops = _GROUPS.get(name, (name,))
        for op in ops:
            if op not in DIFFAUGMENT_OPS:
                raise ValueError(
                    f"DiffAugment policy: unknown operation {raw!r}; use a comma-separated subset of "
                    f"{('color',) + DIFFAUGMENT_OPS}."
                )
            if op not in out:
                out.append(op)
    return tuple(out)


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.reshape((-1,) + (1,) * (ndim - 1))


def _translate(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``out[b, :, i, j, ...] = x[b, :, i + s0, j + s1, ...]`` (zero outside), ``shifts``: (B, spatial_dims) long."""
    n, dims = x.shape[0], x.ndim - 2
    sizes = x.shape[2:]
    xl = x.movedim(1, -1)  # (B, *spatial, C): advanced indexing over batch and spatial axes
    index: list[torch.Tensor] = [torch.arange(n, device=x.device).reshape((n,) + (1,) * dims)]
    valid = torch.ones((n,) + tuple(sizes), dtype=torch.bool, device=x.device)
    for d, size in enumerate(sizes):
        shape = [n] + [1] * dims
        shape[d + 1] = size
        pos = torch.arange(size, device=x.device).reshape([1] * (d + 1) + [size] + [1] * (dims - d - 1))
        src = pos + shifts[:, d].reshape((n,) + (1,) * dims)
        valid = valid & (src >= 0) & (src < size)
        index.append(src.clamp(0, size - 1))
    out = xl[tuple(index)] * valid.unsqueeze(-1).to(x.dtype)
    return out.movedim(-1, 1)


def _cutout_mask(shape: Sequence[int], centre: torch.Tensor, ratio: float, device: torch.device, dtype) -> torch.Tensor:
    """(B, 1, *spatial) mask, 0 inside the box of side ``ratio * size`` centred at ``centre`` (fractions)."""
    n, dims = int(shape[0]), len(shape) - 2
    inside = torch.ones((n,) + tuple(int(s) for s in shape[2:]), dtype=torch.bool, device=device)
    for d, size in enumerate(shape[2:]):
        size = int(size)
        side = max(int(size * ratio + 0.5), 1)
        lo = torch.round(centre[:, d] * size - side / 2.0)
        hi = lo + side
        pos = torch.arange(size, device=device, dtype=centre.dtype).reshape([1] * (d + 1) + [size] + [1] * (dims - d - 1))
        lo = lo.reshape((n,) + (1,) * dims)
        hi = hi.reshape((n,) + (1,) * dims)
        inside = inside & (pos >= lo) & (pos < hi)
    return (~inside).unsqueeze(1).to(dtype)


def diff_augment(
    *tensors: torch.Tensor,
    policy: str | Sequence[str] = "color,translation,cutout",
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
    color_channels: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Apply one random DiffAugment draw, shared by all ``tensors`` (same batch size, any resolutions).

    Args:
        tensors: ``(B, C, *spatial)`` tensors; the first one's size sets the integer translation, which is scaled
            to the others' sizes.
        policy: operations, see :func:`parse_policy`.
        translation_ratio: largest shift as a fraction of the size (DiffAugment: 1/8).
        cutout_ratio: side of the cut-out box as a fraction of the size (DiffAugment: 1/2).
        color_channels: colour operations touch only the first ``color_channels`` channels (None: all), e.g. 1 for
            an image whose further channels are masks.

    Returns:
        The augmented tensors, in order (a tuple, also for one tensor).
    """
    if not tensors:
        raise ValueError("diff_augment needs at least one tensor.")
    ref = tensors[0]
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.ndim < 3:
            raise TypeError(f"diff_augment expects (B, C, *spatial) tensors, got {type(t).__name__} {getattr(t, 'shape', '')}.")
        if t.shape[0] != ref.shape[0] or t.ndim != ref.ndim:
            raise ValueError(
                f"diff_augment: all tensors need the batch size and rank of the first {tuple(ref.shape)}, got {tuple(t.shape)}."
            )
    if not 0 <= translation_ratio < 1 or not 0 <= cutout_ratio <= 1:
        raise ValueError(f"translation_ratio must be in [0, 1) and cutout_ratio in [0, 1], got {translation_ratio}, {cutout_ratio}.")
    ops = parse_policy(policy)
    n, dims, device = ref.shape[0], ref.ndim - 2, ref.device
    out = list(tensors)
    if not ops:
        return tuple(out)

    def colour(fn) -> None:
        for i, t in enumerate(out):
            c = t.shape[1] if color_channels is None else min(int(color_channels), t.shape[1])
            if c <= 0:
                continue
            head = fn(t[:, :c])
            out[i] = head if c == t.shape[1] else torch.cat([head, t[:, c:]], dim=1)

    for op in ops:
        if op == "brightness":
            shift = torch.rand(n, device=device, dtype=ref.dtype) - 0.5
            colour(lambda x, s=shift: x + _per_sample(s, x.ndim))
        elif op == "saturation":
            factor = torch.rand(n, device=device, dtype=ref.dtype) * 2.0
            colour(lambda x, f=factor: (x - x.mean(dim=1, keepdim=True)) * _per_sample(f, x.ndim) + x.mean(dim=1, keepdim=True))
        elif op == "contrast":
            factor = torch.rand(n, device=device, dtype=ref.dtype) + 0.5

            def _contrast(x: torch.Tensor, f: torch.Tensor = factor) -> torch.Tensor:
                mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
                return (x - mean) * _per_sample(f, x.ndim) + mean

            colour(_contrast)
        elif op == "translation":
            ref_sizes = ref.shape[2:]
            limits = torch.tensor([int(s * translation_ratio + 0.5) for s in ref_sizes], device=device)
            # integer shifts in [-limit, limit] at the first tensor's resolution, as fractions of its size
            frac = (torch.floor(torch.rand(n, dims, device=device) * (2 * limits + 1)) - limits) / torch.tensor(
                list(ref_sizes), device=device, dtype=torch.float32
            )
            for i, t in enumerate(out):
                sizes = torch.tensor(list(t.shape[2:]), device=device, dtype=torch.float32)
                out[i] = _translate(t, torch.round(frac * sizes).long())
        elif op == "cutout":
            centre = torch.rand(n, dims, device=device)
            for i, t in enumerate(out):
                out[i] = t * _cutout_mask(t.shape, centre, cutout_ratio, device, t.dtype)
    return tuple(out)


class DiffAugment(nn.Module):
    """Module form of :func:`diff_augment` (no parameters): ``aug(x)`` returns a tensor, ``aug(x, y)`` a tuple
    augmented with one shared random draw.

    Args:
        policy: operations, e.g. ``"color,translation"`` (FastGAN) or ``"color,translation,cutout"`` (DiffAugment).
        translation_ratio: largest shift as a fraction of the size.
        cutout_ratio: cut-out side as a fraction of the size.
        color_channels: colour operations touch only the first ``color_channels`` channels (None: all).
    """

    def __init__(
        self,
        policy: str | Sequence[str] = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        color_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.ops = parse_policy(policy)
        if not 0 <= translation_ratio < 1 or not 0 <= cutout_ratio <= 1:
            raise ValueError(f"translation_ratio must be in [0, 1) and cutout_ratio in [0, 1], got {translation_ratio}, {cutout_ratio}.")
        self.translation_ratio, self.cutout_ratio = float(translation_ratio), float(cutout_ratio)
        self.color_channels = color_channels

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = diff_augment(
            *tensors,
            policy=self.ops,
            translation_ratio=self.translation_ratio,
            cutout_ratio=self.cutout_ratio,
            color_channels=self.color_channels,
        )
        return out[0] if len(out) == 1 else out

    def extra_repr(self) -> str:
        return f"policy={','.join(self.ops)!r}, translation_ratio={self.translation_ratio}, cutout_ratio={self.cutout_ratio}"
