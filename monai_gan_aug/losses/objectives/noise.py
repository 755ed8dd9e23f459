# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objectives of the unconditional noise -> image families: DCGAN and WGAN-GP."""

from __future__ import annotations

import torch

from monai_gan_aug.losses.adversarial import d_adversarial_loss, g_adversarial_loss, gradient_penalty
from monai_gan_aug.losses.objectives.base import NoiseToImageObjective, Phase, PhaseContext
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["DCGANObjective", "WGANGPObjective"]


class _AdversarialPairObjective(NoiseToImageObjective):
    """A generator and a discriminator (critic) on one adversarial criterion ``mode``: a ``"d"`` phase (``d_repeats``
    times per iteration, see :meth:`_set_phases`) on fakes of the frozen generator, then a ``"g"`` phase."""

    mode = "vanilla"

    def _set_phases(self, d_repeats: int = 1) -> None:
        self._phases = [Phase("d", ["discriminator"], self.d_loss, repeats=d_repeats), Phase("g", ["generator"], self.g_loss)]

    def d_loss(self, ctx: PhaseContext):
        raise NotImplementedError

    def _d_logits(self, ctx: PhaseContext) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module, torch.Tensor, torch.Tensor]:
        """``(reals, fakes, discriminator, real logits, fake logits)`` of the batch and as many fresh fakes."""
        reals = ctx.batch[GanKeys.IMAGE]
        with torch.no_grad():  # G is frozen here; no graph (and the fast no-grad conv kernels)
            fakes = ctx.nets["generator"](self.sample_latents(reals.shape[0], ctx.device))
        d = ctx.nets["discriminator"]
        return reals, fakes, d, d(reals), d(fakes)

    def g_loss(self, ctx: PhaseContext):
        n = ctx.batch[GanKeys.IMAGE].shape[0]
        fakes = ctx.nets["generator"](self.sample_latents(n, ctx.device))
        ctx.outputs[GanKeys.FAKES] = fakes.detach()
        return g_adversarial_loss(ctx.nets["discriminator"](fakes), self.mode), {}


class DCGANObjective(_AdversarialPairObjective):
    """Radford et al. 2016: cross-entropy discriminator, non-saturating generator loss.

    Networks: ``generator``, ``discriminator``; optimizers of the same names.

    Args:
        latent_size: latent length.
        latent_spatial: trailing singleton dims of the latent (= spatial_dims for DCGANGenerator).
        mode: adversarial criterion (``"vanilla"`` is DCGAN's; ``"lsgan"``/``"hinge"`` are accepted).
        real_label: one-sided label smoothing target for reals (1.0 = none).
    """

    def __init__(self, latent_size: int = 100, latent_spatial: int = 2, mode: str = "vanilla", real_label: float = 1.0):
        super().__init__(latent_size, latent_spatial)
        if mode == "wgan":
            raise ValueError("DCGANObjective: use WGANGPObjective for the Wasserstein loss.")
        self.mode, self.real_label = mode, float(real_label)
        self._set_phases()

    def d_loss(self, ctx: PhaseContext):
        _, _, _, real_logits, fake_logits = self._d_logits(ctx)
        loss = d_adversarial_loss(real_logits, fake_logits, self.mode, self.real_label)
        return loss, {"real_logit": real_logits.detach().mean(), "fake_logit": fake_logits.detach().mean()}


class WGANGPObjective(_AdversarialPairObjective):
    """Gulrajani et al. 2017: Wasserstein critic with gradient penalty, ``n_critic`` critic steps per generator
    step, each on freshly generated fakes. ``drift`` adds Karras et al.'s ``eps * E[D(x)^2]`` term.

    Networks: ``generator``, ``discriminator`` (the critic: no batch norm).

    Args:
        latent_size: latent length.
        latent_spatial: trailing singleton dims of the latent.
        n_critic: critic steps per generator step (5 in the paper).
        lambda_gp: gradient-penalty weight (10 in the paper).
        drift: weight of the drift term (0.001 in PGGAN, 0 in WGAN-GP).
    """

    mode = "wgan"

    def __init__(
        self, latent_size: int = 128, latent_spatial: int = 2, n_critic: int = 5, lambda_gp: float = 10.0, drift: float = 0.0
    ):
        super().__init__(latent_size, latent_spatial)
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}.")
        if lambda_gp < 0 or drift < 0:
            raise ValueError(f"lambda_gp and drift must be >= 0, got {lambda_gp}, {drift}.")
        self.n_critic, self.lambda_gp, self.drift = int(n_critic), float(lambda_gp), float(drift)
        self._set_phases(self.n_critic)

    def d_loss(self, ctx: PhaseContext):
        reals, fakes, d, real_logits, fake_logits = self._d_logits(ctx)
        w = d_adversarial_loss(real_logits, fake_logits, self.mode)
        gp = gradient_penalty(d, reals, fakes)
        loss = w + self.lambda_gp * gp
        if self.drift:
            loss = loss + self.drift * real_logits.float().pow(2).mean()
        return loss, {"wasserstein": -w.detach(), "gp": gp.detach()}
