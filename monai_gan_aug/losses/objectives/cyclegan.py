# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""CycleGAN objective (Zhu et al., "Unpaired image-to-image translation using cycle-consistent adversarial
networks", ICCV 2017): two generators ``G: A -> B`` and ``F: B -> A`` and two discriminators, trained on unpaired
images of two domains (e.g. two MR contrasts).

Full objective (Zhu et al. eq. 3, plus the identity term of section 5.2)::

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda * (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
        + lambda_id * lambda * (|G(b) - b|_1 + |F(a) - a|_1)

with the least-squares adversarial criterion (section 4: "we replace the negative log likelihood objective by a
least-squares loss"), ``lambda = 10`` and ``lambda_id = 0.5``. The discriminators are updated on a history of 50
generated images (:class:`~monai_gan_aug.utils.image_pool.ImagePool`) and their objective is halved. Phases: ``g``
(both generators, one step) then ``d`` (both discriminators, on the pooled fakes of this iteration's ``g`` pass). The unpaired training items (one image
of each domain) come from the data floor: :func:`monai_gan_aug.data.unpaired_items`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from monai_gan_aug.losses.adversarial import check_modes, check_weights, d_adversarial_loss, g_adversarial_loss
from monai_gan_aug.losses.objectives.base import GanObjective, Phase, PhaseContext, label_from_batch
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.image_pool import ImagePool

__all__ = ["CYCLEGAN_NETWORKS", "CycleGANObjective"]

#: Network (and optimizer) names: ``generator_ab`` = G (A -> B), ``generator_ba`` = F (B -> A), ``discriminator_a``
#: judges domain A (real ``a`` vs ``F(b)``), ``discriminator_b`` judges domain B (real ``b`` vs ``G(a)``).
CYCLEGAN_NETWORKS = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")


class CycleGANObjective(GanObjective):
    """Zhu et al. (2017) CycleGAN.

    Networks (and optimizers): see :data:`CYCLEGAN_NETWORKS`. Batches hold unpaired images under ``key_a`` and
    ``key_b``. The ``g`` phase logs ``adv_ab``, ``adv_ba``, ``cycle_a``, ``cycle_b`` (and ``idt_a``, ``idt_b``);
    the ``d`` phase ``a``, ``b`` (logged ``d_a``, ``d_b``).

    Args:
        key_a: batch key of domain A images.
        key_b: batch key of domain B images.
        mode: adversarial criterion (``"lsgan"`` in the paper; ``"vanilla"``/``"hinge"`` accepted).
        lambda_cycle: ``lambda`` of the cycle terms (10).
        lambda_identity: identity weight relative to ``lambda`` (0.5; 0 disables it; needs equal channel counts).
        pool_size: image history per domain (50; 0: no history).
        seed: seed of the pools' random streams.
        direction: what :meth:`generate` translates, ``"ab"`` (A -> B with ``generator_ab``) or ``"ba"``.
        label_key: batch key of a mask of the source image handed back as the translated image's ``label`` (the
            translation keeps the geometry); absent keys are skipped.
    """

    seeded = False  # generate: a deterministic translation of the source image in eval mode

    def __init__(
        self, key_a: str = "image_a", key_b: str = "image_b", mode: str = "lsgan", lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5, pool_size: int = 50, seed: int = 0, direction: str = "ab",
        label_key: str | None = GanKeys.LABEL,
    ) -> None:
        check_modes("CycleGANObjective", ("lsgan", "vanilla", "hinge"), mode=mode)
        check_weights("CycleGANObjective", lambda_cycle=lambda_cycle, lambda_identity=lambda_identity)
        if direction not in ("ab", "ba"):
            raise ValueError(f"CycleGANObjective: direction must be 'ab' or 'ba', got {direction!r}.")
        if key_a == key_b:
            raise ValueError(f"CycleGANObjective: key_a and key_b must differ, got {key_a!r} twice.")
        self.key_a, self.key_b = str(key_a), str(key_b)
        self.image_key, self.float_keys = self.key_b, (self.key_a,)  # the engine's reals: the logged fakes' domain
        self.mode = mode
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.pool_a, self.pool_b = ImagePool(pool_size, seed), ImagePool(pool_size, seed + 1)
        self.direction = direction
        self.generator_name = "generator_ab" if direction == "ab" else "generator_ba"
        self.label_key = label_key
        self._phases = [
            Phase("g", ["generator_ab", "generator_ba"], self.g_loss),
            Phase("d", ["discriminator_a", "discriminator_b"], self.d_loss),
        ]

    def _domains(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.require(batch, (self.key_a, self.key_b), f"each item needs one image of domain A under "
                            f"{self.key_a!r} and one of domain B under {self.key_b!r} (data.unpaired_items).")
        return a, b

    # ---------------------------------------------------------------------------------------------- losses
    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real_a, real_b = self._domains(ctx.batch)
        if self.lambda_identity and real_a.shape[1] != real_b.shape[1]:
            raise ValueError(
                f"CycleGANObjective: the identity loss needs domains with equal channel counts, got "
                f"{real_a.shape[1]} and {real_b.shape[1]}; set lambda_identity to 0."
            )
        g_ab, g_ba = ctx.nets["generator_ab"], ctx.nets["generator_ba"]
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        ctx.outputs["fake_a"], ctx.outputs["fake_b"] = fake_a.detach(), fake_b.detach()
        ctx.outputs[GanKeys.FAKES] = ctx.outputs["fake_b"]
        adv_ab = g_adversarial_loss(ctx.nets["discriminator_b"](fake_b), self.mode)
        adv_ba = g_adversarial_loss(ctx.nets["discriminator_a"](fake_a), self.mode)
        cycle_a = F.l1_loss(rec_a.float(), real_a.float())
        cycle_b = F.l1_loss(rec_b.float(), real_b.float())
        loss = adv_ab + adv_ba + self.lambda_cycle * (cycle_a + cycle_b)
        terms = {"adv_ab": adv_ab.detach(), "adv_ba": adv_ba.detach(), "cycle_a": cycle_a.detach(), "cycle_b": cycle_b.detach()}
        if self.lambda_identity:
            idt_a = F.l1_loss(g_ab(real_b).float(), real_b.float())  # G should leave B images unchanged
            idt_b = F.l1_loss(g_ba(real_a).float(), real_a.float())
            loss = loss + self.lambda_identity * self.lambda_cycle * (idt_a + idt_b)
            terms.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
        return loss, terms

    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real_a, real_b = self._domains(ctx.batch)
        fake_a, fake_b = ctx.outputs.get("fake_a"), ctx.outputs.get("fake_b")
        if fake_a is None or fake_b is None:  # no g phase ran this iteration
            with torch.no_grad():
                fake_b, fake_a = ctx.nets["generator_ab"](real_a), ctx.nets["generator_ba"](real_b)
        fake_a, fake_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        d_a, d_b = ctx.nets["discriminator_a"], ctx.nets["discriminator_b"]
        scale = 1.0 if self.mode == "lsgan" else 0.5  # lsgan's criterion is already the halved sum
        loss_a = scale * d_adversarial_loss(d_a(real_a), d_a(fake_a), self.mode)
        loss_b = scale * d_adversarial_loss(d_b(real_b), d_b(fake_b), self.mode)
        return loss_a + loss_b, {"a": loss_a.detach(), "b": loss_b.detach()}

    # ---------------------------------------------------------------------------------------------- sampling
    def generate(
        self, nets: Mapping[str, torch.nn.Module], num: int, batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Translate the first ``num`` source images of ``batch`` (``key_a`` for ``"ab"``, ``key_b`` for ``"ba"``;
        ``image`` when the source key is absent). Deterministic in eval mode; ``seeds`` are unused."""
        source = self.key_a if self.direction == "ab" else self.key_b
        if batch is None:
            raise ValueError(f"CycleGANObjective translates images: pass a batch holding {source!r}.")
        if source not in batch and GanKeys.IMAGE not in batch:
            raise ValueError(f"CycleGANObjective: the batch holds neither {source!r} nor 'image' (keys: {sorted(map(str, batch))}).")
        src = batch[source] if source in batch else batch[GanKeys.IMAGE]
        src = torch.as_tensor(src).to(device).float()[:num]
        if src.shape[0] < num:
            raise ValueError(f"CycleGANObjective: asked for {num} samples, the batch holds {src.shape[0]} images.")
        out: dict[str, torch.Tensor] = {GanKeys.IMAGE: nets[self.generator_name](src)}
        label = label_from_batch(batch, self.label_key, num, device)
        return out if label is None else {**out, GanKeys.LABEL: label}

    # ---------------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """Both image pools (images and random streams), so a resumed run queries them as the uninterrupted one."""
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        if "pool_a" not in state or "pool_b" not in state:
            raise KeyError(f"CycleGANObjective state lacks the image pools; it holds {sorted(state)}.")
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])
