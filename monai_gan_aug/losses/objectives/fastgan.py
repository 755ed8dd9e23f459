# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objective of FastGAN (Liu et al., ICLR 2021; Sobolev's thesis, eqs. 2.6-2.8): hinge loss, the discriminator's
self-supervised reconstruction of real images, and differentiable augmentation of everything D sees.

Discriminator step (eq. 2.7)::

    L_D = E[relu(1 - D(T(x)))] + E[relu(1 + D(T(G(z))))] + L_recons
    L_recons = d(dec_big(f_8), down(T(x))) + d(dec_small(f_8'), down(T(x)_small)) + d(dec_part(crop_p(f_16)), down(crop_p(T(x))))

Generator step (eq. 2.8): ``L_G = -E[D(T(G(z)))]``. ``T`` is DiffAugment (``policy``, FastGAN: ``"color,translation"``)
with fresh parameters per call: the same policy for reals and fakes, in both steps, and one shared draw for an image
and its low-resolution twin. The reconstruction loss ``d`` is L1 by default (the authors use LPIPS, which needs
downloaded weights: pass ``recon_loss=monai.losses.PerceptualLoss(...)`` or any ``(pred, target) -> scalar``
module to use it).

Image + mask generation (thesis 3.3/3.4, "image and segmentation mask channels together"): with
``mask_channels = K > 0`` each item's ``label`` is turned into K channels in [-1, 1] and concatenated to its image
in the dataset (:class:`~monai_gan_aug.transforms.AppendMaskChannelsd`), the networks see ``image_channels + K`` channels, and
:meth:`FastGANObjective.generate` splits the output back into ``image`` and a thresholded integer ``label`` map, which
:class:`~monai_gan_aug.handlers.SyntheticWriter` writes as the mask of each synthetic image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from monai_gan_aug.losses.adversarial import hinge_margin_loss
from monai_gan_aug.losses.objectives.base import (
    NoiseToImageObjective,
    Phase,
    PhaseContext,
)
from monai_gan_aug.networks.blocks.diffaugment import DiffAugment
from monai_gan_aug.networks.nets.fastgan import crop_quarter
from monai_gan_aug.transforms.mask_channels import channels_to_label
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["FastGANObjective"]


class FastGANObjective(NoiseToImageObjective):
    """FastGAN: ``d`` then ``g`` phase, hinge loss, reconstruction on reals, DiffAugment.

    Networks (and optimizers): ``generator`` (:class:`~monai_gan_aug.networks.nets.fastgan.FastGANGenerator`) and
    ``discriminator`` (:class:`~monai_gan_aug.networks.nets.fastgan.FastGANDiscriminator`) with
    ``image_channels + mask_channels`` channels.

    Args:
        latent_size: latent length (256).
        image_channels: channels of the image itself (1 for grey-scale).
        mask_channels: mask channels generated with the image (0: image only).
        policy: DiffAugment policy (``"color,translation"`` in FastGAN, ``"color,translation,cutout"`` in
            DiffAugment; ``""`` disables augmentation).
        recon_loss: ``"l1"``, ``"mse"`` or a callable ``(pred, target) -> scalar`` (e.g. an LPIPS module).
        recon_weight: weight of the reconstruction term.
        margin_jitter: the authors' code draws the hinge margin from U(1 - jitter, 1) per logit (0.2); 0 gives the
            paper's plain hinge (eq. 2.7).
        mask_threshold: threshold of generated mask channels (in [-1, 1]) when splitting them into a label map.
    """

    def __init__(
        self, latent_size: int = 256, image_channels: int = 1, mask_channels: int = 0,
        policy: str | Sequence[str] = "color, translation",
        recon_loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "l1", recon_weight: float = 1.0,
        margin_jitter: float = 0.0, mask_threshold: float = 0.0,
    ) -> None:
        super().__init__(latent_size, latent_spatial=0)
        if image_channels < 1 or mask_channels < 0:
            raise ValueError(f"FastGANObjective: image_channels must be >= 1 and mask_channels >= 0, got {image_channels}, {mask_channels}.")
        if recon_weight < 0 or not 0 <= margin_jitter < 1:
            raise ValueError(f"FastGANObjective: recon_weight must be >= 0 and margin_jitter in [0, 1), got {recon_weight}, {margin_jitter}.")
        if isinstance(recon_loss, str):
            if recon_loss not in ("l1", "mse"):
                raise ValueError(f"FastGANObjective: recon_loss must be 'l1', 'mse' or a callable, got {recon_loss!r}.")
            self.recon_fn: Callable = F.l1_loss if recon_loss == "l1" else F.mse_loss
        elif callable(recon_loss):
            self.recon_fn = recon_loss
        else:
            raise TypeError(f"FastGANObjective: recon_loss must be 'l1', 'mse' or a callable, got {type(recon_loss).__name__}.")
        self.image_channels, self.mask_channels = int(image_channels), int(mask_channels)
        self.channels = self.image_channels + self.mask_channels
        self.augment = DiffAugment(policy, color_channels=self.image_channels)
        self.recon_weight, self.margin_jitter, self.mask_threshold = float(recon_weight), float(margin_jitter), float(mask_threshold)
        self._phases = [Phase("d", ["discriminator"], self.d_loss), Phase("g", ["generator"], self.g_loss)]

    # ------------------------------------------------------------------ losses
    def _recon(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = F.interpolate(target.float(), size=pred.shape[2:], mode="area")
        return self.recon_fn(pred.float(), target)

    def _check_reals(self, reals: torch.Tensor) -> None:
        if reals.shape[1] != self.channels:
            raise ValueError(
                f"FastGANObjective expects {self.channels} channels ({self.image_channels} image + {self.mask_channels} "
                f"mask), got a batch of shape {tuple(reals.shape)}; check image_channels / mask_channels (the masks "
                "join the image in the dataset: monai_gan_aug.transforms.AppendMaskChannelsd)."
            )

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        reals = ctx.batch[GanKeys.IMAGE]
        self._check_reals(reals)
        g, d = ctx.nets["generator"], ctx.nets["discriminator"]
        with torch.no_grad():
            fake, fake_small = g(self.sample_latents(reals.shape[0], ctx.device), return_small=True)
        real_aug = self.augment(reals)
        real_small = F.interpolate(real_aug, size=fake_small.shape[2:], mode="area")
        fake_aug, fake_small_aug = self.augment(fake, fake_small)
        part = int(torch.randint(0, 4, ()).item())  # CPU generator: no device sync
        real_logits, (rec_big, rec_small, rec_part) = d(real_aug, real_small, part=part)
        fake_logits = d(fake_aug, fake_small_aug)
        hinge = hinge_margin_loss(real_logits, True, self.margin_jitter) + hinge_margin_loss(fake_logits, False, self.margin_jitter)
        recon = (
            self._recon(rec_big, real_aug) + self._recon(rec_small, real_small) + self._recon(rec_part, crop_quarter(real_aug, part))
        )
        loss = hinge + self.recon_weight * recon
        return loss, {
            "hinge": hinge.detach(),
            "recon": recon.detach(),
            "real_logit": real_logits.detach().float().mean(),
            "fake_logit": fake_logits.detach().float().mean(),
        }

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = ctx.batch[GanKeys.IMAGE].shape[0]
        fake, fake_small = ctx.nets["generator"](self.sample_latents(n, ctx.device), return_small=True)
        ctx.outputs[GanKeys.FAKES] = fake.detach()
        fake_aug, fake_small_aug = self.augment(fake, fake_small)
        return -ctx.nets["discriminator"](fake_aug, fake_small_aug).float().mean(), {}

    # ------------------------------------------------------------------ sampling
    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        """``{"image": (num, image_channels, S, S), "label": (num, 1, S, S) uint8 (with mask channels), "latents"}``."""
        g = nets[self.generator_name]
        if seeds is not None:
            z, noises = g.seeded_inputs(seeds, device)  # sample i depends on seeds[i] only
            out = g(z, noises=noises)
        else:
            z = self.sample_latents(num, device)
            out = g(z)
        result = {GanKeys.IMAGE: out[:, : self.image_channels], GanKeys.LATENTS: z}
        if self.mask_channels:
            result[GanKeys.LABEL] = channels_to_label(out[:, self.image_channels :].float(), self.mask_threshold)
        return result
