# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Masks as extra image channels (FastGAN image + mask generation): label maps <-> channels in [-1, 1], appended to
the image."""

from __future__ import annotations

import pytest
import torch

from monai_gan_aug.transforms.mask_channels import append_mask_channels, channels_to_label, masks_to_channels


def test_mask_channel_conversions():
    label = torch.tensor([[[0, 1], [2, 3]]]).reshape(1, 1, 2, 2).float()
    ch = masks_to_channels(label, 3)
    assert ch.shape == (1, 3, 2, 2)
    torch.testing.assert_close(channels_to_label(ch), label.to(torch.uint8))
    assert channels_to_label(torch.tensor([[[[-0.5, 0.2]]]])).tolist() == [[[[0, 1]]]]
    with pytest.raises(ValueError, match="channels"):
        masks_to_channels(torch.zeros(1, 2, 2, 2), 3)


def test_append_mask_channels():
    image = torch.zeros(2, 1, 4, 4)
    label = torch.tensor([0.0, 1.0]).repeat(16).reshape(2, 1, 4, 4)
    out = append_mask_channels(image, label, 1)
    assert out.shape == (2, 2, 4, 4) and torch.equal(out[:, :1], image)
    torch.testing.assert_close(out[:, 1:], label * 2 - 1)
    assert append_mask_channels(image, label, 2).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="'mask' of shape"):
        append_mask_channels(image, label[:1], 1, "mask")
