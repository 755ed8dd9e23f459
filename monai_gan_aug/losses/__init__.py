# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Adversarial criteria, penalties, reconstruction losses and the per-family objectives."""

from __future__ import annotations

from .adversarial import ADVERSARIAL_MODES, d_adversarial_loss, g_adversarial_loss, gradient_penalty, r1_penalty

__all__ = ["ADVERSARIAL_MODES", "d_adversarial_loss", "g_adversarial_loss", "gradient_penalty", "r1_penalty"]
