# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Lesion-in-context inpainting objective (MCGAN: Han et al., 3DV 2019, arXiv 1906.04962).

The generator fills the noise box of a real context patch; two critics judge the result: the *context* critic on
the whole patch with its box mask (lesion and surroundings, least squares GAN by default) and the *lesion* critic
on the box crop resized to ``box_crop_size`` (WGAN-GP by default, with PGGAN's small drift term), both optionally
conditioned on the lesion size (box sides over patch sides). The generator also minimises an L1 term to the real
lesion inside the box (``lambda_l1_box``) and one outside it (``lambda_l1_context``). The paper's split of LSGAN
(context) and WGAN-GP (lesion) and its L1 outside the box are reported, not verified; the weights here are
untuned defaults. Because the generator pastes its output only into the box and a ``feather``-voxel ring, the outside
L1 acts on that ring (it is 0 with ``feather=0``), normalised by the ring's voxels.

Batches come from :class:`~monai_gan_aug.transforms.inpaint.LesionContextCropd` (patches) or, for inference, from
:class:`~monai_gan_aug.transforms.inpaint.LesionInpaintDataset` (whole real slices with ``new_boxes``, filled by
:func:`~monai_gan_aug.transforms.inpaint_batch.inpaint_slices`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from monai_gan_aug.losses.adversarial import (
    check_modes,
    check_weights,
    d_adversarial_loss,
    g_adversarial_loss,
    gradient_penalty,
    masked_mean,
)
from monai_gan_aug.losses.objectives.base import GanObjective, Phase, PhaseContext, _latents_from_seeds
from monai_gan_aug.transforms.inpaint import INPAINT_BOX, INPAINT_INPUT, INPAINT_MASK, LESION_SIZE, NEW_BOXES
from monai_gan_aug.transforms.inpaint_batch import box_crop_resize, inpaint_slices
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["LesionInpaintObjective"]


class LesionInpaintObjective(GanObjective):
    """MCGAN-style lesion inpainting (Han et al. 2019): phases ``g``, ``d_context``, ``d_box`` (x ``n_critic``).

    Networks: ``generator`` (:class:`~monai_gan_aug.networks.nets.lesion_inpaint.LesionInpaintGenerator`),
    ``context_critic`` (``in_channels = image channels + 1``) and ``box_critic`` (``in_channels`` = image channels),
    both :class:`~monai_gan_aug.networks.nets.lesion_inpaint.LesionInpaintCritic` with ``cond_channels =
    spatial_dims`` when ``size_condition``. The critics reuse the ``g`` phase's (detached) fakes, as Pix2Pix does.

    Args:
        patch_size: the patch side the generator works on (generation crops this around each new box).
        box_crop_size: side the lesion critic sees the box at (default ``patch_size // 2``, MCGAN's 32 of 64).
        context_mode, box_mode: adversarial criteria (``"lsgan"`` and ``"wgan"`` as in MCGAN; any of
            ``vanilla/lsgan/hinge/wgan``); a ``"wgan"`` box critic gets the gradient penalty and drift term.
        lambda_gp, drift: WGAN-GP weight (10) and drift weight (0.001) of the box critic.
        n_critic: box critic steps per iteration.
        lambda_adv_context, lambda_adv_box, lambda_l1_box, lambda_l1_context: generator loss weights.
        size_condition: condition all three networks on the box size.
        label_mode: mask written for an added lesion at generation: ``"box"`` (the whole box) or ``"difference"``
            (box voxels whose channel-mean change exceeds ``diff_threshold``, in [-1, 1] units).
        diff_threshold: see ``label_mode``.
    """

    def __init__(
        self, patch_size: int, box_crop_size: int | None = None, context_mode: str = "lsgan", box_mode: str = "wgan",
        lambda_gp: float = 10.0, drift: float = 0.001, n_critic: int = 1, lambda_adv_context: float = 1.0,
        lambda_adv_box: float = 1.0, lambda_l1_box: float = 10.0, lambda_l1_context: float = 10.0,
        size_condition: bool = True, label_mode: str = "box", diff_threshold: float = 0.25, image_key: str = GanKeys.IMAGE,
    ) -> None:
        name = type(self).__name__
        check_modes(name, context_mode=context_mode, box_mode=box_mode)
        check_weights(name, lambda_gp=lambda_gp, drift=drift, lambda_adv_context=lambda_adv_context,
                      lambda_adv_box=lambda_adv_box, lambda_l1_box=lambda_l1_box, lambda_l1_context=lambda_l1_context)
        if n_critic < 1:
            raise ValueError(f"{name}: n_critic must be >= 1, got {n_critic}.")
        if label_mode not in ("box", "difference"):
            raise ValueError(f"{name}: label_mode must be 'box' or 'difference', got {label_mode!r}.")
        self.patch_size, self.box_crop_size = int(patch_size), int(box_crop_size or max(int(patch_size) // 2, 1))
        self.context_mode, self.box_mode = context_mode, box_mode
        self.lambda_gp, self.drift = float(lambda_gp), float(drift)
        self.w_adv_ctx, self.w_adv_box = float(lambda_adv_context), float(lambda_adv_box)
        self.w_l1_box, self.w_l1_ctx = float(lambda_l1_box), float(lambda_l1_context)
        self.size_condition, self.label_mode, self.diff_threshold = bool(size_condition), label_mode, float(diff_threshold)
        self.image_key = str(image_key)
        self._phases = [Phase("g", ["generator"], self.g_loss), Phase("d_context", ["context_critic"], self.context_loss),
                        Phase("d_box", ["box_critic"], self.box_loss, repeats=int(n_critic))]

    def _parts(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        keys = (self.image_key, INPAINT_INPUT, INPAINT_MASK, INPAINT_BOX) + ((LESION_SIZE,) if self.size_condition else ())
        image, x, mask, box, *size = self.require(batch, keys, "build it with LesionContextCropd.")
        return image.float(), x.float(), mask.float(), box, size[0].float() if size else None

    def _fakes(self, ctx: PhaseContext) -> torch.Tensor:
        fakes = ctx.outputs.get(GanKeys.FAKES)
        if fakes is None:  # no g phase ran this iteration
            _, x, mask, _, cond = self._parts(ctx.batch)
            with torch.no_grad():
                fakes = ctx.nets["generator"](x, mask, cond)
        return fakes.detach()

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, x, mask, box, cond = self._parts(ctx.batch)
        gen = ctx.nets["generator"]
        fake = gen(x, mask, cond)
        ctx.outputs[GanKeys.FAKES] = fake.detach()
        ctx_logits = ctx.nets["context_critic"](torch.cat([fake, mask * 2 - 1], 1), cond)
        adv_ctx = g_adversarial_loss(ctx_logits, self.context_mode)
        adv_box = g_adversarial_loss(ctx.nets["box_critic"](box_crop_resize(fake, box, self.box_crop_size), cond), self.box_mode)
        diff = (fake - real).abs()
        l1_box = masked_mean(diff, mask)
        l1_ctx = masked_mean(diff, (gen.blend_weights(mask) > 0).float() * (1 - mask))
        loss = self.w_adv_ctx * adv_ctx + self.w_adv_box * adv_box + self.w_l1_box * l1_box + self.w_l1_ctx * l1_ctx
        terms = {"adv_context": adv_ctx, "adv_box": adv_box, "l1_box": l1_box, "l1_context": l1_ctx}
        return loss, {k: v.detach() for k, v in terms.items()}

    def context_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, _, mask, _, cond = self._parts(ctx.batch)
        critic, m = ctx.nets["context_critic"], mask * 2 - 1
        real_out, fake_out = critic(torch.cat([real, m], 1), cond), critic(torch.cat([self._fakes(ctx), m], 1), cond)
        loss = d_adversarial_loss(real_out, fake_out, self.context_mode)
        return loss, {"real": real_out.detach().float().mean(), "fake": fake_out.detach().float().mean()}

    def box_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, _, _, box, cond = self._parts(ctx.batch)
        critic = ctx.nets["box_critic"]
        real_crop = box_crop_resize(real, box, self.box_crop_size)
        fake_crop = box_crop_resize(self._fakes(ctx), box, self.box_crop_size)
        real_out, fake_out = critic(real_crop, cond), critic(fake_crop, cond)
        loss = d_adversarial_loss(real_out, fake_out, self.box_mode)
        terms = {"real": real_out.detach().float().mean(), "fake": fake_out.detach().float().mean()}
        if self.box_mode == "wgan":
            gp = gradient_penalty(lambda z: critic(z, cond), real_crop, fake_crop)
            loss = loss + self.lambda_gp * gp + self.drift * real_out.float().pow(2).mean()
            terms["gp"] = gp.detach()
        return loss, terms

    # ---------------------------------------------------------------------------------------------- sampling
    def generate(
        self, nets: Mapping[str, torch.nn.Module], num: int, batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        """Fill boxes with lesions.

        A batch of patches (training) gives ``image`` (the patches) and ``boxes`` (each patch's box, ``(1, 2 * D)``).
        A batch of real slices with ``new_boxes`` (inference) gives the slices with every new box filled in turn (each
        patch cropped from the slice as already edited, pasted back whole: only the box and its blend ring change),
        ``label`` (the slice's mask plus the new lesions, see ``label_mode``), ``boxes`` / ``box_labels`` (existing
        then new), ``new_boxes`` / ``new_box_labels`` (the new ones alone), ``source_image`` (when the batch names
        the slices) and ``class`` 1. With ``seeds`` the noise of sample ``i`` comes from a generator seeded with
        ``seeds[i]``, so a sample depends on its seed and conditions only; without, the batch's own noise (patches)
        or the global random stream (slices).
        """
        if batch is None:
            raise ValueError(
                f"{type(self).__name__} fills boxes of real images: pass a batch of patches (LesionContextCropd) or of "
                f"slices with {NEW_BOXES!r} (LesionInpaintDataset)."
            )
        gen = nets[self.generator_name]
        if NEW_BOXES in batch:  # whole slices: the generator (with its size condition) fills each new box's patch
            def fill(x: torch.Tensor, mask: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
                return gen(x, mask, size if self.size_condition else None).float()

            return inpaint_slices(batch, fill, num, self.patch_size, seeds, torch.device(device), self.image_key,
                                  self.label_mode, self.diff_threshold)
        _, x, mask, box, cond = (t[:num] if t is not None else None for t in self._parts(batch))
        if seeds is not None:
            x = x * (1 - mask) + _latents_from_seeds(seeds, x.shape[1:], x.device) * mask
        boxes = [b.reshape(1, -1) for b in box.float().cpu()]
        return {GanKeys.IMAGE: gen(x, mask, cond), GanKeys.BOXES: boxes, INPAINT_INPUT: x}
