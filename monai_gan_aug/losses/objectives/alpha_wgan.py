# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objective of alpha-WGAN-GP (Kwon et al., MICCAI 2019) and of its improved 2D version (Liang & Chen, thyroid
ultrasound), with plain WGAN-GP as their baseline.

Liang & Chen, eq. 3 (``x_g = G(z_g)``, ``z_g ~ N(0, I)``, ``z_r = E(x_r)``, ``x_rec = G(z_r)``)::

    L_CD = -E[CD(z_g)] + E[CD(z_r)] + lambda1 * GP(CD; z_g, z_r)
    L_E  = -E[CD(z_r)]
    L_D  = -2 E[D(x_r)] + E[D(x_g)] + E[D(x_rec)] + lambda1 * GP(D; x_r, x_g)
    L_G  = -E[D(x_g)] - E[D(x_rec)] + lambda2 * ||x_r - x_rec||_1

with ``lambda1 = lambda2 = 10``, "the parameters of CD, E, D and G are updated in order in a training iteration".
(The paper prints ``||x_r - x_g||_1`` in ``L_G`` but defines ``lambda2`` as the weight of the L1 loss "between real
images x_r and their reconstructed images x_rec"; a generated image has no real partner, so ``x_rec`` it is.)

Here that is four engine phases, ``cd``, ``e``, ``d``, ``g``, each stepping only its own network and optimizer:

* each network is stepped once per iteration (Kwon et al.'s reference notebook steps the generator's optimizer
  twice per iteration and trains E and G with one joint loss);
* no phase back-propagates into a network it does not update: ``z_r`` is computed without a graph in the
  ``cd``, ``d`` and ``g`` phases (the encoder only receives gradients in its own phase), and the codes of the
  post-update encoder are computed once, in the ``d`` phase, and reused by ``g`` (E does not change in between).

Variants:

* ``"improved"``: eq. 3 literally: E learns only from the code discriminator.
* ``"original"`` (Kwon et al.): the encoder's loss is their joint E/G loss seen from E,
  ``L_E = -E[CD(z_r)] - E[D(x_rec)] + lambda2 * ||x_r - x_rec||_1``, so E is also trained to reconstruct
  (``encoder_reconstruction`` selects this for any variant).
* ``"wgan_gp"``: Gulrajani et al.: only ``d`` (``n_critic`` repeats) and ``g`` with eq. 2, the phases of
  :class:`~monai_gan_aug.losses.objectives.noise.WGANGPObjective` (flat latents, no drift term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai_gan_aug.losses.adversarial import gradient_penalty
from monai_gan_aug.losses.objectives.base import NoiseToImageObjective, Phase, PhaseContext
from monai_gan_aug.losses.objectives.noise import WGANGPObjective
from monai_gan_aug.networks.blocks.norm import frozen_running_stats
from monai_gan_aug.networks.nets.alpha_wgan import ALPHA_WGAN_VARIANTS
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["AlphaWGANObjective"]

_Z_REC = "_alpha_wgan_z_rec"  # outputs key: codes of the updated encoder, shared by the d and g phases


class AlphaWGANObjective(NoiseToImageObjective):
    """alpha-WGAN-GP (improved / original) and WGAN-GP.

    Networks (and optimizers of the same names): ``generator``, ``discriminator``, and for the alpha variants
    ``encoder`` and ``code_discriminator`` (see :func:`monai_gan_aug.networks.nets.alpha_wgan.alpha_wgan_networks`).
    Latents are flat ``(N, latent_size)`` vectors, ``z ~ N(0, I)``.

    Args:
        variant: ``"improved"`` (Liang & Chen), ``"original"`` (Kwon et al.) or ``"wgan_gp"``.
        latent_size: latent length (256 in Liang & Chen).
        lambda_gp: gradient-penalty weight of D and CD (``lambda1 = 10``).
        lambda_rec: weight of the L1 reconstruction (``lambda2 = 10``).
        n_critic: critic steps per iteration; None: 1 for the alpha variants (one update of each network per
            iteration, as both papers), 5 for ``"wgan_gp"`` (Gulrajani et al.).
        encoder_reconstruction: add ``lambda_rec * L1 - E[D(x_rec)]`` to the encoder's loss; None: the variant's
            choice (False for ``"improved"``, True for ``"original"``).
    """

    def __init__(
        self, variant: str = "improved", latent_size: int = 256, lambda_gp: float = 10.0, lambda_rec: float = 10.0,
        n_critic: int | None = None, encoder_reconstruction: bool | None = None,
    ) -> None:
        super().__init__(latent_size, latent_spatial=0)
        if variant not in ALPHA_WGAN_VARIANTS:
            raise ValueError(f"AlphaWGANObjective: variant must be one of {ALPHA_WGAN_VARIANTS}, got {variant!r}.")
        if lambda_gp < 0 or lambda_rec < 0:
            raise ValueError(f"AlphaWGANObjective: lambda_gp and lambda_rec must be >= 0, got {lambda_gp}, {lambda_rec}.")
        if n_critic is None:
            n_critic = 5 if variant == "wgan_gp" else 1
        if int(n_critic) < 1:
            raise ValueError(f"AlphaWGANObjective: n_critic must be >= 1, got {n_critic}.")
        self.variant = variant
        self.lambda_gp, self.lambda_rec, self.n_critic = float(lambda_gp), float(lambda_rec), int(n_critic)
        self.encoder_reconstruction = (variant == "original") if encoder_reconstruction is None else bool(encoder_reconstruction)
        if variant == "wgan_gp":  # Gulrajani et al.'s losses, as the plain WGAN-GP family has them
            self._phases = WGANGPObjective(self.latent_size, 0, self.n_critic, self.lambda_gp).phases()
        else:
            self._phases = [
                Phase("cd", ["code_discriminator"], self.cd_loss),
                Phase("e", ["encoder"], self.e_loss),
                Phase("d", ["discriminator"], self.d_loss, repeats=self.n_critic),
                Phase("g", ["generator"], self.g_loss),
            ]

    # ------------------------------------------------------------------ alpha-WGAN-GP phases
    @staticmethod
    def _mean(t: torch.Tensor) -> torch.Tensor:
        return t.float().mean()

    def cd_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_CD``: the code critic separates prior samples (real) from encoded images (fake)."""
        reals = ctx.batch[GanKeys.IMAGE]
        with torch.no_grad():
            z_r = ctx.nets["encoder"](reals).float()
        z_g = self.sample_latents(reals.shape[0], ctx.device)
        cd = ctx.nets["code_discriminator"]
        s_g, s_r = self._mean(cd(z_g)), self._mean(cd(z_r))
        gp = gradient_penalty(cd, z_g, z_r)
        loss = -s_g + s_r + self.lambda_gp * gp
        return loss, {"wasserstein": (s_g - s_r).detach(), "gp": gp.detach()}

    def e_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_E = -E[CD(E(x_r))]`` (+ reconstruction terms with ``encoder_reconstruction``)."""
        reals = ctx.batch[GanKeys.IMAGE]
        z_r = ctx.nets["encoder"](reals)
        adv = -self._mean(ctx.nets["code_discriminator"](z_r))
        terms = {"code_adv": adv.detach()}
        loss = adv
        if self.encoder_reconstruction:
            with frozen_running_stats(ctx.nets["generator"]):
                x_rec = ctx.nets["generator"](z_r)
            l1 = F.l1_loss(x_rec.float(), reals.float())
            d_rec = self._mean(ctx.nets["discriminator"](x_rec))
            loss = loss - d_rec + self.lambda_rec * l1
            terms["l1"] = l1.detach()
        return loss, terms

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_D = -2 E[D(x_r)] + E[D(x_g)] + E[D(x_rec)] + lambda1 GP(D; x_r, x_g)``."""
        reals = ctx.batch[GanKeys.IMAGE]
        g = ctx.nets["generator"]
        with torch.no_grad():
            z_rec = ctx.nets["encoder"](reals)
            with frozen_running_stats(g):  # G's running statistics follow the prior path only (what eval() sees)
                x_rec = g(z_rec)
            x_g = g(self.sample_latents(reals.shape[0], ctx.device))
        ctx.outputs[_Z_REC] = z_rec
        d = ctx.nets["discriminator"]
        s_r, s_g, s_rec = self._mean(d(reals)), self._mean(d(x_g)), self._mean(d(x_rec))
        gp = gradient_penalty(d, reals, x_g)
        loss = -2.0 * s_r + s_g + s_rec + self.lambda_gp * gp
        return loss, {"wasserstein": (s_r - s_g).detach(), "rec_gap": (s_r - s_rec).detach(), "gp": gp.detach()}

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_G = -E[D(x_g)] - E[D(x_rec)] + lambda2 ||x_r - x_rec||_1`` (codes from the updated, frozen E)."""
        reals = ctx.batch[GanKeys.IMAGE]
        z_rec = ctx.outputs.get(_Z_REC)
        if z_rec is None:  # g without a preceding d phase in this iteration
            with torch.no_grad():
                z_rec = ctx.nets["encoder"](reals)
        g, d = ctx.nets["generator"], ctx.nets["discriminator"]
        x_g = g(self.sample_latents(reals.shape[0], ctx.device))
        with frozen_running_stats(g):
            x_rec = g(z_rec.detach())
        l1 = F.l1_loss(x_rec.float(), reals.float())
        loss = -self._mean(d(x_g)) - self._mean(d(x_rec)) + self.lambda_rec * l1
        ctx.outputs[GanKeys.FAKES] = x_g.detach()
        return loss, {"l1": l1.detach()}
