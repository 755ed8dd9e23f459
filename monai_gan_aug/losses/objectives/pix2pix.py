# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Pix2Pix objective (Isola et al., "Image-to-image translation with conditional adversarial networks", CVPR 2017).

Loss (Isola et al. eq. 4; Sobolev, thesis eq. 2.4)::

    G* = arg min_G max_D  L_cGAN(G, D) + lambda * L_L1(G)

``D`` sees (condition, image) pairs concatenated on the channel axis and outputs a PatchGAN logit map. The
adversarial criterion is the cross-entropy (``"vanilla"``, the paper's) or least squares (``"lsgan"``); the
reconstruction term is L1 with ``lambda = 100`` and/or the thesis' perceptual loss
(:class:`~monai_gan_aug.losses.perceptual.PerceptualFeatureLoss`). As in the paper, the discriminator's
objective is halved. There is no noise input: like the authors we rely on dropout alone, so generation from a
condition is deterministic in eval mode (a written file is regenerated from its condition).

Conditions (``cond_mode``: ``"onehot"``, ``"scaled"`` or ``"image"``) are encoded on the data floor by
:class:`~monai_gan_aug.transforms.EncodeConditiond` at the end of the bundle's preprocessing: the encoded condition is
``batch["cond"]``, the raw map stays under ``cond_key`` so generation can hand it back as the sample's label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from monai_gan_aug.losses.adversarial import check_modes, d_adversarial_loss, g_adversarial_loss
from monai_gan_aug.losses.objectives.base import GanObjective, Phase, PhaseContext, label_from_batch
from monai_gan_aug.losses.perceptual import ReconstructionLoss
from monai_gan_aug.transforms.condition_encoding import (
    check_condition_mode,
    check_label_values,
    condition_outputs,
    encode_condition,
)
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["Pix2PixObjective"]


class Pix2PixObjective(GanObjective):
    """Isola et al. (2017) conditional GAN: ``G(cond) -> image``, ``D(cond, image) -> patch logits``.

    Networks: ``generator`` (e.g. :class:`~monai_gan_aug.networks.nets.pix2pix.Pix2PixGenerator`) and
    ``discriminator`` (:class:`~monai_gan_aug.networks.blocks.patchgan.PatchGANDiscriminator` with
    ``in_channels = condition channels + image channels``); optimizers of the same names.

    Phases: ``g`` then ``d``. The generator's forward pass of the ``g`` phase is reused (detached) by the ``d``
    phase, so each iteration runs G once; D is therefore trained on the fakes of G before its update of this
    iteration (Isola et al. alternate D then G steps on the same forward pass; the order only shifts the alternation
    by half a step and saves one generator forward).

    Args:
        cond_key: batch key of the condition (e.g. ``"label"``, ``"tissue"`` or another image's key).
        cond_mode: ``"onehot"``, ``"scaled"`` or ``"image"`` (see :func:`~monai_gan_aug.transforms.encode_condition`;
            the same as the preprocessing's :class:`~monai_gan_aug.transforms.EncodeConditiond`).
        num_classes: classes of a label condition, background included (5 for the demo ``tissue`` maps).
        mode: adversarial criterion, ``"vanilla"`` (paper), ``"lsgan"`` or ``"hinge"``.
        lambda_l1, perceptual, lambda_perceptual: the reconstruction term
            (:class:`~monai_gan_aug.losses.perceptual.ReconstructionLoss`: L1 weight 100 as in the paper, 0 to use only
            the thesis' perceptual loss; its layer weights already hold the thesis' 100/200/300).
        label_values: classes of the condition map that form the written ``label`` (e.g. ``[4]``: the lesion class
            of the demo ``tissue`` maps); ``None``: the condition map itself is the label.
        label_key: for ``cond_mode="image"``, a batch key whose map is handed back as the label (translation keeps the
            geometry, so a mask of the source stays valid).
        real_label: one-sided label smoothing target of D for real pairs (1.0: none).
        image_key: batch key of the target image.
        check_labels: verify the label values of conditions encoded here (raw maps; the preprocessing's
            ``EncodeConditiond`` has its own ``check``).
    """

    seeded = False  # generate: a deterministic function of the condition in eval mode

    def __init__(
        self, cond_key: str = "label", cond_mode: str = "onehot", num_classes: int = 2, mode: str = "vanilla",
        lambda_l1: float = 100.0, perceptual: torch.nn.Module | None = None, lambda_perceptual: float = 1.0,
        label_values: Sequence[int] | None = None, label_key: str | None = None, real_label: float = 1.0,
        image_key: str = GanKeys.IMAGE, check_labels: bool = True,
    ) -> None:
        check_condition_mode(cond_mode, num_classes)
        check_modes(type(self).__name__, ("vanilla", "lsgan", "hinge"), mode=mode)
        self.cond_key, self.cond_mode, self.num_classes, self.mode = str(cond_key), cond_mode, int(num_classes), mode
        self.reconstruction = ReconstructionLoss(lambda_l1, perceptual, lambda_perceptual)
        self.label_values = check_label_values(label_values, cond_mode, num_classes)
        self.label_key, self.image_key, self.check_labels, self.real_label = label_key, str(image_key), bool(check_labels), float(real_label)
        self._phases = [Phase("g", ["generator"], self.g_loss), Phase("d", ["discriminator"], self.d_loss)]

    def condition(self, batch: dict[str, Any]) -> torch.Tensor:
        """The encoded condition ``cond`` of a batch (built by the dataset's
        :class:`~monai_gan_aug.transforms.EncodeConditiond`); a batch holding only the raw map under ``cond_key``
        (a mask made at generation time by a network or an annotator) is encoded here with the same encoder."""
        if GanKeys.COND not in batch:  # encoded once per batch: the g and d phases share it
            (raw,) = self.require(batch, (self.cond_key,), "set cond_key to the key of the mask / image the generator "
                                  "is conditioned on and load it in the preprocessing (then EncodeConditiond).")
            batch[GanKeys.COND] = encode_condition(raw, self.cond_mode, self.num_classes, self.cond_key, self.check_labels)
        return batch[GanKeys.COND]

    def _pair(self, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if cond.shape[0] != image.shape[0] or cond.shape[2:] != image.shape[2:]:
            raise ValueError(
                f"{type(self).__name__}: condition {tuple(cond.shape)} and image {tuple(image.shape)} differ in batch or "
                "spatial size; resize both with the same transform (nearest for masks)."
            )
        return torch.cat([cond.to(image.dtype), image], dim=1)

    # ---------------------------------------------------------------------------------------------- losses
    def _generator_extra_loss(self, ctx: PhaseContext, fakes: torch.Tensor) -> tuple[torch.Tensor | None, dict]:
        """Hook for subclasses (DF-GAN): an extra generator term on this batch's fakes."""
        return None, {}

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cond, reals = self.condition(ctx.batch), ctx.batch[GanKeys.IMAGE]
        fakes = ctx.nets["generator"](cond)
        if fakes.shape != reals.shape:
            raise ValueError(
                f"{type(self).__name__}: the generator made {tuple(fakes.shape)} from the condition, the target images "
                f"are {tuple(reals.shape)}; check out_channels / image_size."
            )
        ctx.outputs[GanKeys.FAKES] = fakes.detach()
        adv = g_adversarial_loss(ctx.nets["discriminator"](self._pair(cond, fakes)), self.mode)
        rec, rec_terms = self.reconstruction(fakes, reals)
        loss, terms = adv + rec, {"adv": adv.detach(), **rec_terms}
        extra, extra_terms = self._generator_extra_loss(ctx, fakes)
        if extra is not None:
            loss = loss + extra
            terms.update(extra_terms)
        return loss, terms

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cond, reals = self.condition(ctx.batch), ctx.batch[GanKeys.IMAGE]
        fakes = ctx.outputs.get(GanKeys.FAKES)
        if fakes is None:  # no g phase ran this iteration
            with torch.no_grad():
                fakes = ctx.nets["generator"](cond)
        d = ctx.nets["discriminator"]
        real_logits, fake_logits = d(self._pair(cond, reals)), d(self._pair(cond, fakes.detach()))
        loss = d_adversarial_loss(real_logits, fake_logits, self.mode, self.real_label)
        if self.mode != "lsgan":  # lsgan's criterion is already the halved sum
            loss = 0.5 * loss
        return loss, {"real_logit": real_logits.detach().float().mean(), "fake_logit": fake_logits.detach().float().mean()}

    # ---------------------------------------------------------------------------------------------- sampling
    def generate(
        self, nets: Mapping[str, torch.nn.Module], num: int, batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Translate the first ``num`` conditions of ``batch``.

        Returns ``image``; for label conditions also ``cond`` (the int64 map), ``label`` (the map, or its
        ``label_values`` classes as a binary mask) and the map under ``cond_key``; for image conditions ``label``
        when ``label_key`` is in the batch. ``seeds`` are accepted for the generation workflow but unused: the output
        is a deterministic function of the condition in eval mode.
        """
        if batch is None:
            raise ValueError(f"{type(self).__name__} generates from conditions: pass a batch holding {self.cond_key!r} "
                             "(the inference config's condition dataset, or the two-stage pipeline's mask generator).")
        keys = (GanKeys.COND,) if GanKeys.COND in batch else (self.cond_key,)
        cond = self.condition({k: batch[k].to(device) for k in keys if isinstance(batch.get(k), torch.Tensor)})[:num]
        if cond.shape[0] < num:
            raise ValueError(f"{type(self).__name__}: asked for {num} samples, the batch holds {cond.shape[0]} conditions.")
        out: dict[str, torch.Tensor] = {GanKeys.IMAGE: nets[self.generator_name](cond)}
        if self.cond_mode != "image":
            (raw,) = self.require(batch, (self.cond_key,), "generation hands the raw map back as the label: keep it "
                                  "next to the encoded 'cond' (EncodeConditiond does).")
            return {**out, **condition_outputs(raw[:num].to(device), self.cond_key, self.label_values)}
        label = label_from_batch(batch, self.label_key, num, device)
        return out if label is None else {**out, GanKeys.LABEL: label}
