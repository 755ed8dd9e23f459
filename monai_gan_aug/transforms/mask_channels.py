# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Masks generated as extra image channels (Sobolev's thesis 3.3/3.4, "image and segmentation mask channels
together"; FastGAN with ``mask_channels > 0``).

For training, a batch's label maps become ``K`` binary channels in ``[-1, 1]`` appended to the image
(:func:`masks_to_channels`, :func:`append_mask_channels`); a generated sample's mask channels are split back into an
integer label map (:func:`channels_to_label`).
"""

from __future__ import annotations

import torch

__all__ = ["append_mask_channels", "channels_to_label", "masks_to_channels"]


def masks_to_channels(label: torch.Tensor, mask_channels: int) -> torch.Tensor:
    """Label maps -> ``mask_channels`` binary channels in {-1, 1}.

    ``label`` is ``(N, 1, *spatial)`` (one channel: ``mask_channels == 1`` takes ``label > 0.5``, more channels take
    a one-hot of the values ``1..mask_channels``) or already ``(N, mask_channels, *spatial)`` (thresholded at 0.5).
    """
    if label.ndim < 3:
        raise ValueError(f"label must be (N, C, *spatial), got shape {tuple(label.shape)}.")
    label = label.float()
    if label.shape[1] == mask_channels:
        masks = label > 0.5
    elif label.shape[1] == 1:
        if mask_channels == 1:
            masks = label > 0.5
        else:
            values = torch.arange(1, mask_channels + 1, device=label.device, dtype=label.dtype)
            masks = torch.round(label) == values.reshape((1, -1) + (1,) * (label.ndim - 2))
    else:
        raise ValueError(
            f"label has {label.shape[1]} channels; with mask_channels={mask_channels} give one integer label map or "
            f"{mask_channels} binary channels."
        )
    return masks.float() * 2.0 - 1.0


def append_mask_channels(image: torch.Tensor, label: torch.Tensor, mask_channels: int, label_key: str = "label") -> torch.Tensor:
    """``image`` ``(N, C, *spatial)`` with the ``mask_channels`` channels of its ``label`` maps
    (:func:`masks_to_channels`, on the image's device) appended: ``(N, C + mask_channels, *spatial)``. ``label_key``
    names the maps in the error raised when their batch or spatial size differs from the image's."""
    if label.shape[0] != image.shape[0] or label.shape[2:] != image.shape[2:]:
        raise ValueError(
            f"'{label_key}' of shape {tuple(label.shape)} does not match the image {tuple(image.shape)}; "
            "resize masks with the image (nearest interpolation)."
        )
    return torch.cat([image, masks_to_channels(label.to(image.device), mask_channels)], dim=1)


def channels_to_label(masks: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Generated mask channels ``(N, K, *spatial)`` in [-1, 1] -> ``(N, 1, *spatial)`` uint8 label map: 1 where the
    channel exceeds ``threshold`` for ``K == 1``; for ``K > 1`` the index (1..K) of the largest channel where it
    exceeds ``threshold``, else 0."""
    if masks.shape[1] == 1:
        return (masks > threshold).to(torch.uint8)
    best, idx = masks.max(dim=1, keepdim=True)
    return torch.where(best > threshold, idx + 1, torch.zeros_like(idx)).to(torch.uint8)
