# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Masks generated as extra image channels (Sobolev's thesis 3.3/3.4, "image and segmentation mask channels
together"; FastGAN with ``mask_channels > 0``).

For training, an item's label map becomes ``K`` binary channels in ``[-1, 1]`` appended to its image, in the
dataset (:class:`AppendMaskChannelsd`; batch functions :func:`masks_to_channels`, :func:`append_mask_channels`); a
generated sample's mask channels are split back into an integer label map (:func:`channels_to_label`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils.type_conversion import convert_to_dst_type

__all__ = ["AppendMaskChannelsd", "append_mask_channels", "channels_to_label", "masks_to_channels"]


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


class AppendMaskChannelsd(MapTransform):
    """Dictionary transform: append the ``mask_channels`` binary channels (in ``[-1, 1]``) of the item's
    ``label_key`` map to each image of ``keys`` (channel-first ``(C, *spatial)``), so a FastGAN learns image and mask
    together (Sobolev's thesis 3.3/3.4). ``mask_channels = 0`` leaves the item unchanged. Put it at the end of the
    preprocessing, after the image and its mask have been cropped and resized together.

    Raises:
        ValueError: the item has no ``label_key`` map, or its spatial size differs from the image's.
    """

    def __init__(self, keys: KeysCollection = "image", label_key: str = "label", mask_channels: int = 1,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if int(mask_channels) < 0:
            raise ValueError(f"AppendMaskChannelsd: mask_channels must be >= 0, got {mask_channels}.")
        self.label_key, self.mask_channels = str(label_key), int(mask_channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.mask_channels:
            return d
        if self.label_key not in d:
            raise ValueError(f"AppendMaskChannelsd(mask_channels={self.mask_channels}) needs the '{self.label_key}' "
                             "mask of every item (load it with the image), or set mask_channels to 0 for images only.")
        label = torch.as_tensor(d[self.label_key])
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).float()
            joined = append_mask_channels(image[None], label[None], self.mask_channels, self.label_key)[0]
            d[key] = convert_to_dst_type(joined, d[key], dtype=torch.float32)[0]
        return d
