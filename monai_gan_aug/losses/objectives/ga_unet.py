# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objective of the generative adversarial U-Net (Chen et al., "Generative adversarial U-Net for domain-free
medical image augmentation", 2021).

The generator turns a real image ``x_j`` of class ``c`` and Gaussian noise into a new image ``x_g`` of that class;
the critic scores *pairs* of same-class images: ``(x_i, x_j)``, two real images, against ``(x_i, x_g)``. WGAN-GP
(eqs. 4-5, Algorithm 1)::

    L_D = E[D(x_i, G(x_j, c, z), c)] - E[D(x_i, x_j, c)] + lambda * E[(||grad D(p_hat)||_2 - 1)^2]
    L_G = -E[D(x_i, G(x_j, c, z), c)]

``p_hat`` interpolates the real and the fake pair (``x_i`` is common to both, so only the second image is actually
mixed, as in Algorithm 1's ``eps * x_i + (1 - eps) * x_g`` read on pairs); ``lambda = 10``, Adam(1e-4, 0, 0.9),
``n_critic`` critic steps per generator step.

The pairs come from the data floor: :class:`~monai_gan_aug.data.SameClassPairDataset` adds to each image ``x_i``
another image ``x_j`` of the same class under ``"reference"`` (training), and
:class:`~monai_gan_aug.data.ReferenceSeedDataset` yields reference images, classes and seeds (generation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from monai_gan_aug.data.same_class import REFERENCE_KEY
from monai_gan_aug.losses.adversarial import gradient_penalty
from monai_gan_aug.losses.objectives.base import (
    GanObjective,
    Phase,
    PhaseContext,
    _latents_from_seeds,
)
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["GAUNetObjective"]


class GAUNetObjective(GanObjective):
    """GA-UNet with WGAN-GP: ``d`` (``n_critic`` repeats, fresh noise each) then ``g``.

    Networks (and optimizers): ``generator``
    (:class:`~monai_gan_aug.networks.nets.ga_unet.GAUNetGenerator`) and ``discriminator``
    (:class:`~monai_gan_aug.networks.nets.ga_unet.GAUNetCritic`). Batches carry ``image`` (``x_i``),
    ``reference`` (``x_j``, same class) and ``class``.

    Args:
        noise_size: length of the Gaussian noise ``z`` (the generator's ``noise_size``).
        num_classes: number of classes.
        n_critic: critic steps per generator step (Algorithm 1, WGAN-GP's 5).
        lambda_gp: gradient-penalty weight (10).
        reference_key: batch key of ``x_j``.
        class_key: batch key of the class.
    """

    def __init__(
        self, noise_size: int = 100, num_classes: int = 2, n_critic: int = 5, lambda_gp: float = 10.0,
        reference_key: str = REFERENCE_KEY, class_key: str = GanKeys.CLASS,
    ) -> None:
        if noise_size < 1 or num_classes < 1 or n_critic < 1:
            raise ValueError(f"GAUNetObjective: noise_size, num_classes and n_critic must be >= 1, got {noise_size}, {num_classes}, {n_critic}.")
        if lambda_gp < 0:
            raise ValueError(f"GAUNetObjective: lambda_gp must be >= 0, got {lambda_gp}.")
        self.noise_size, self.num_classes = int(noise_size), int(num_classes)
        self.n_critic, self.lambda_gp = int(n_critic), float(lambda_gp)
        self.reference_key, self.class_key = reference_key, class_key
        self._phases = [Phase("d", ["discriminator"], self.d_loss, repeats=self.n_critic), Phase("g", ["generator"], self.g_loss)]

    def sample_noise(self, num: int, device: torch.device | str) -> torch.Tensor:
        return torch.randn((num, self.noise_size), device=device)

    def prepare_batch(self, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        """Move tensors; the class becomes an ``(N,)`` long tensor, range-checked on the host before the move."""
        if self.class_key in batch and batch[self.class_key] is not None:
            cls = torch.as_tensor(batch[self.class_key]).reshape(-1)
            if cls.is_floating_point() and not torch.equal(cls, cls.round()):
                raise ValueError(f"'{self.class_key}' must hold integer classes, got {cls.tolist()}.")
            cls = cls.long()
            if cls.device.type == "cpu" and bool(((cls < 0) | (cls >= self.num_classes)).any()):
                raise ValueError(
                    f"'{self.class_key}' values must be in 0..{self.num_classes - 1} (num_classes={self.num_classes}), "
                    f"got {sorted(set(cls.tolist()))}."
                )
            batch = {**batch, self.class_key: cls}
        out = super().prepare_batch(batch, device)
        if isinstance(out.get(self.reference_key), torch.Tensor):
            out[self.reference_key] = out[self.reference_key].float()
        return out

    def _inputs(self, ctx: PhaseContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = ctx.batch
        missing = [k for k in (GanKeys.IMAGE, self.reference_key, self.class_key) if not isinstance(b.get(k), torch.Tensor)]
        if missing:
            raise ValueError(
                f"GAUNetObjective: training batches need {missing}; build the dataset with SameClassPairDataset "
                "(it adds the same-class 'reference' image) from a datalist with a 'class' per image."
            )
        x_i, x_j = b[GanKeys.IMAGE], b[self.reference_key]
        if x_i.shape != x_j.shape:
            raise ValueError(f"GAUNetObjective: image {tuple(x_i.shape)} and reference {tuple(x_j.shape)} differ in shape.")
        return x_i, x_j, b[self.class_key]

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x_i, x_j, c = self._inputs(ctx)
        with torch.no_grad():
            x_g = ctx.nets["generator"](x_j, c, self.sample_noise(x_i.shape[0], ctx.device))
        d = ctx.nets["discriminator"]
        s_real, s_fake = d(x_i, x_j, c).float().mean(), d(x_i, x_g, c).float().mean()
        n_ch = x_i.shape[1]
        gp = gradient_penalty(
            lambda pair: d(pair[:, :n_ch], pair[:, n_ch:], c), torch.cat([x_i, x_j], 1), torch.cat([x_i, x_g], 1)
        )
        loss = s_fake - s_real + self.lambda_gp * gp
        return loss, {"wasserstein": (s_real - s_fake).detach(), "gp": gp.detach()}

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x_i, x_j, c = self._inputs(ctx)
        x_g = ctx.nets["generator"](x_j, c, self.sample_noise(x_i.shape[0], ctx.device))
        ctx.outputs[GanKeys.FAKES] = x_g.detach()
        return -ctx.nets["discriminator"](x_i, x_g, c).float().mean(), {}

    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        """New images of the batch's classes from its reference images.

        ``batch`` must hold ``reference`` (or ``image``) ``(num, C, *spatial)`` and ``class`` ``(num,)``; sample i
        depends only on its reference, class and ``seeds[i]`` (noise ``N(0, I)`` from that seed).

        Returns:
            ``{"image": x_g, "class": (num,), "latents": z}``.
        """
        if batch is None:
            raise ValueError(
                "GA-UNet generates from reference images: pass a batch with 'reference' images and their 'class' "
                "(e.g. from ReferenceSeedDataset)."
            )
        ref = batch.get(self.reference_key, batch.get(GanKeys.IMAGE))
        cls = batch.get(self.class_key)
        if not isinstance(ref, torch.Tensor) or cls is None:
            raise ValueError(f"GAUNetObjective.generate needs '{self.reference_key}' (or 'image') and '{self.class_key}' in the batch.")
        cls = torch.as_tensor(cls, device=ref.device).reshape(-1).long()
        if ref.shape[0] < num or cls.shape[0] < num:
            raise ValueError(f"GAUNetObjective.generate: asked for {num} samples but the batch has {ref.shape[0]} references.")
        ref, cls = ref[:num].to(device).float(), cls[:num].to(device)
        z = _latents_from_seeds(seeds, (self.noise_size,), device) if seeds is not None else self.sample_noise(num, device)
        x_g = nets[self.generator_name](ref, cls, z)
        return {GanKeys.IMAGE: x_g, GanKeys.CLASS: cls, GanKeys.LATENTS: z}
