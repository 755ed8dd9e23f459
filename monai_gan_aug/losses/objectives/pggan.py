# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objective of the bounding-box-conditioned progressive GAN (CPGGAN) of Han et al., "Learning more with less"
(2019, arXiv:1902.09856): Karras et al.'s progressive growing (ICLR 2018) with the WGAN-GP loss of Gulrajani et al.
(2017) plus Karras' drift term, both networks conditioned on a rasterised box map.

The objective holds no state: the stage and fade-in ``alpha`` live in the networks (buffers of
:class:`~monai_gan_aug.networks.nets.pggan.ProgressiveNetwork`), set every iteration from :attr:`schedule` by
:class:`~monai_gan_aug.handlers.ProgressiveGrowingHandler`; the box maps are built in the dataset
(:class:`~monai_gan_aug.transforms.BoxesToConditionMapd`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from monai_gan_aug.losses.adversarial import check_weights, gradient_penalty, mismatch_hinge
from monai_gan_aug.losses.objectives.base import GanObjective, Phase, PhaseContext, _latents_from_seeds, seeds_for
from monai_gan_aug.networks.blocks.diffaugment import parse_policy
from monai_gan_aug.networks.blocks.progressive import nearest_upsample
from monai_gan_aug.networks.blocks.progressive_inputs import diff_augment_with_maps, real_at_resolution
from monai_gan_aug.networks.growth import ProgressiveSchedule, legacy_growth
from monai_gan_aug.transforms.boxes.batch import box_conditions
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["PGGANBoxObjective"]


class PGGANBoxObjective(GanObjective):
    """Bounding-box-conditioned PGGAN (Han et al. 2019) with WGAN-GP + drift (Karras et al. 2018).

    Networks and optimizers ``generator`` / ``discriminator`` (:mod:`monai_gan_aug.networks.nets.pggan`; Karras: Adam,
    lr 1e-3, betas (0, 0.99)). Phases: ``d`` (``n_critic`` times, fresh fakes each time), then ``g``. Critic loss
    ``E[D(G(z, c), c)] - E[D(x, c)] + lambda * GP + drift * E[D(x, c)^2]``, generator loss ``-E[D(G(z, c), c)]``, ``c``
    the real batch's box map. Reals are area-downsampled to the generator's resolution and, during a fade-in, blended
    between their 2x coarser (nearest-upsampled) version and themselves with its ``alpha`` (Karras et al.). Batches:
    ``image`` (N, C, *[max_resolution]) in [-1, 1] and its map ``cond`` (N, 1, same size); an iteration uses the first
    ``schedule.batch_sizes[resolution]`` images.

    Args:
        latent_size, max_resolution, spatial_dims: generator latent length, final image side, 2 or 3.
        images_per_phase, batch_size, batch_sizes, start_resolution, fade_images: the growth schedule (see
            :class:`~monai_gan_aug.networks.growth.ProgressiveSchedule`), kept as :attr:`schedule`.
        n_critic, lambda_gp, drift: critic steps per generator step (1), gradient-penalty (10) and drift weights (0.001).
        mismatch_weight, mismatch_margin: an optional matching-aware term for the critic (not in Han et al.; after Reed
            et al., ICML 2016), ``mean(relu(margin - D(x, c) + D(x, c')))`` with ``c'`` another image's map (pairs
            with equal maps do not count); weight 0 (default) is the paper's loss.
        diffaugment: DiffAugment policy of everything the critic sees (Zhao et al. 2020), e.g.
            ``"color,translation,cutout"``; ``""`` / None (default) is the paper's training. See :meth:`critic_inputs`:
            reals and fakes get independent draws (torch's global generator), the gradient penalty is taken at the
            critic's augmented input; the generator's condition input is never augmented.
    """

    def __init__(
        self, latent_size: int = 512, max_resolution: int = 256, spatial_dims: int = 2,
        images_per_phase: int | Mapping = 600_000, batch_size: int = 16, batch_sizes: Mapping | None = None,
        start_resolution: int = 4, fade_images: int | Mapping | None = None, n_critic: int = 1, lambda_gp: float = 10.0,
        drift: float = 0.001, mismatch_weight: float = 0.0, mismatch_margin: float = 1.0,
        diffaugment: str | Sequence[str] | None = "",
    ) -> None:
        if latent_size < 1 or n_critic < 1:
            raise ValueError(f"latent_size and n_critic must be >= 1, got {latent_size}, {n_critic}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        check_weights("PGGANBoxObjective", lambda_gp=lambda_gp, drift=drift, mismatch_weight=mismatch_weight,
                      mismatch_margin=mismatch_margin)
        self.latent_size, self.spatial_dims = int(latent_size), int(spatial_dims)
        self.schedule = ProgressiveSchedule(max_resolution, images_per_phase, batch_sizes, batch_size, start_resolution,
                                            fade_images)
        self.max_resolution = self.schedule.all_resolutions[-1]
        self.n_critic, self.lambda_gp, self.drift = int(n_critic), float(lambda_gp), float(drift)
        self.mismatch_weight, self.mismatch_margin = float(mismatch_weight), float(mismatch_margin)
        self.diffaugment = parse_policy(diffaugment)
        self._legacy_growth: tuple[int, float] | None = None
        self._phases = [Phase("d", ["discriminator"], self.d_loss, repeats=self.n_critic),
                        Phase("g", ["generator"], self.g_loss)]

    def load_checkpoint_state(self, checkpoint: str | None) -> PGGANBoxObjective:
        """Deprecated (the networks' state dict holds the stage), for the ``inference.json`` of bundles exported
        before: :meth:`generate` uses the stage / alpha of an older checkpoint's ``objective`` entry. Returns self."""
        warnings.warn("PGGANBoxObjective.load_checkpoint_state is deprecated: the PGGAN networks' state dict holds "
                      "the growth stage.", FutureWarning, stacklevel=2)
        self._legacy_growth = legacy_growth(checkpoint)
        return self

    # ------------------------------------------------------------------ losses
    def _current(self, ctx: PhaseContext) -> tuple[int, float, torch.Tensor, torch.Tensor]:
        """``(stage, alpha)`` of the generator, and the images and box maps of this iteration (the first
        ``schedule.batch_sizes[resolution]`` of the batch)."""
        stage, alpha = ctx.nets["generator"].growth
        image, cond = self.require(ctx.batch, (GanKeys.IMAGE, GanKeys.COND), "the box map 'cond' comes from "
                                   "monai_gan_aug.transforms.BoxesToConditionMapd(keys='boxes') in the dataset's transforms.")
        full = (self.max_resolution,) * self.spatial_dims
        if tuple(image.shape[2:]) != full:
            raise ValueError(f"PGGANBoxObjective: training images must be {full} (max_resolution), got "
                             f"{tuple(image.shape[2:])}; set the preprocessing's size and max_resolution alike.")
        n = min(self.schedule.batch_sizes[self.schedule.all_resolutions[stage]], image.shape[0])
        return stage, alpha, image[:n], cond[:n]

    def sample_latents(self, num: int, device: torch.device | str) -> torch.Tensor:
        return torch.randn((num, self.latent_size), device=device)

    def critic_inputs(self, images: Sequence[torch.Tensor], *conds: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``images`` and their condition maps as the critic sees them: one draw of the ``diffaugment`` policy for all
        (:func:`~monai_gan_aug.networks.blocks.progressive_inputs.diff_augment_with_maps`), unchanged without it."""
        return diff_augment_with_maps(images, *conds, policy=self.diffaugment)

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        stage, alpha, images, cond = self._current(ctx)
        n = images.shape[0]
        reals = real_at_resolution(images, 4 * 2**stage, alpha)
        g, d = ctx.nets["generator"], ctx.nets["discriminator"]
        with torch.no_grad():
            fakes = g(self.sample_latents(n, ctx.device), cond, stage, alpha)
        mismatch_on = self.mismatch_weight > 0 and n > 1
        wrong = cond.roll(1, dims=0) if mismatch_on else None
        # one draw for the reals with their own and the rolled maps, an independent one for the fakes
        (real_in,), (real_cond, *wrong_cond) = self.critic_inputs([reals], cond, *([wrong] if mismatch_on else []))
        (fake_in,), (fake_cond,) = self.critic_inputs([fakes], cond)
        real_scores = d(real_in, real_cond, stage, alpha).float()
        fake_scores = d(fake_in, fake_cond, stage, alpha).float()
        wasserstein = real_scores.mean() - fake_scores.mean()
        (gp_real, gp_fake), (gp_cond,) = self.critic_inputs([reals, fakes], cond)  # a shared draw per pair
        gp = gradient_penalty(lambda x: d(x, gp_cond, stage, alpha), gp_real, gp_fake)
        drift = real_scores.pow(2).mean()
        loss = -wasserstein + self.lambda_gp * gp + self.drift * drift
        terms = {"wasserstein": wasserstein.detach(), "gp": gp.detach(), "drift": drift.detach()}
        if mismatch_on:
            wrong_scores = d(real_in, wrong_cond[0], stage, alpha).float()
            mismatch = mismatch_hinge(real_scores, wrong_scores, cond, wrong, self.mismatch_margin)
            loss = loss + self.mismatch_weight * mismatch
            terms["mismatch"] = mismatch.detach()
        return loss, terms

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        stage, alpha, images, cond = self._current(ctx)
        fakes = ctx.nets["generator"](self.sample_latents(images.shape[0], ctx.device), cond, stage, alpha)
        ctx.outputs[GanKeys.FAKES] = fakes.detach()
        (fake_in,), (fake_cond,) = self.critic_inputs([fakes], cond)  # differentiable: G's gradient flows through
        loss = -ctx.nets["discriminator"](fake_in, fake_cond, stage, alpha).float().mean()
        return loss, {"resolution": torch.tensor(float(4 * 2**stage)), "alpha": torch.tensor(alpha)}

    # ------------------------------------------------------------------ generation
    def generate(
        self, nets: Mapping[str, torch.nn.Module], num: int, batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        """``num`` images at full resolution (nearest-upsampled while the generator has not grown to it) at the
        generator's own stage, for the box sets of ``batch["boxes"]`` (first ``num``; e.g. a ``BoxConditionDataset``
        batch): image ``i`` depends on ``seeds[i]`` and its boxes only. Returns ``image`` (num, C, *spatial),
        ``boxes``, ``box_labels``, ``cond`` (num, 1, *spatial), ``latents`` and ``class`` (1 for images with a box:
        the demo datalist's image-level label)."""
        seeds = seeds_for(num, seeds)
        boxes, labels, cond = box_conditions(batch or {}, num, (self.max_resolution,) * self.spatial_dims,
                                             "PGGANBoxObjective.generate")
        cond = cond.to(device)
        z = _latents_from_seeds(seeds, (self.latent_size,), device)
        g = nets[self.generator_name]
        img = g(z, cond, *self._legacy_growth) if self._legacy_growth is not None else g(z, cond)
        img = nearest_upsample(img, self.max_resolution // img.shape[-1])
        return {
            GanKeys.IMAGE: img, GanKeys.BOXES: boxes, GanKeys.BOX_LABELS: labels, GanKeys.COND: cond, GanKeys.LATENTS: z,
            GanKeys.CLASS: torch.as_tensor([int(len(b) > 0) for b in boxes], dtype=torch.int64, device=img.device),
        }
