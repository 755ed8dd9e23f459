# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Adversarial criteria shared by every family, the gradient penalties and the small terms several families use
(hinge with a jittered margin, the matching-aware hinge, a masked mean for box-restricted L1 terms).

Modes (as in junyanz's ``GANLoss``, plus hinge):

* ``"vanilla"``: Goodfellow et al.'s cross-entropy; the generator uses the non-saturating form ``-log D(G(z))``.
* ``"lsgan"``: Mao et al.'s least squares (CycleGAN's choice): D -> 1 on reals, 0 on fakes.
* ``"hinge"``: ``relu(1 - D(x)) + relu(1 + D(G(z)))`` for D, ``-D(G(z))`` for G (FastGAN).
* ``"wgan"``: the critic's Wasserstein estimate ``D(G(z)) - D(x)``; pair it with :func:`gradient_penalty`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["ADVERSARIAL_MODES", "check_modes", "check_weights", "d_adversarial_loss", "g_adversarial_loss", "gradient_penalty", "hinge_margin_loss", "masked_mean", "mismatch_hinge", "r1_penalty"]

ADVERSARIAL_MODES = ("vanilla", "lsgan", "hinge", "wgan")


def _check(mode: str) -> None:
    if mode not in ADVERSARIAL_MODES:
        raise ValueError(f"adversarial mode must be one of {ADVERSARIAL_MODES}, got {mode!r}.")


def check_modes(owner: str, allowed: Sequence[str] = ADVERSARIAL_MODES, **modes: str) -> None:
    """Raise a ``ValueError`` naming ``owner`` and each of ``modes`` (argument name -> value) not in ``allowed``."""
    bad = {name: mode for name, mode in modes.items() if mode not in allowed}
    if bad:
        raise ValueError(f"{owner}: {' and '.join(bad)} must be one of {tuple(allowed)}, got {bad}.")


def check_weights(owner: str, **weights: float) -> None:
    """Raise a ``ValueError`` naming ``owner`` and each loss weight (argument name -> value) that is negative."""
    bad = {name: w for name, w in weights.items() if w < 0}
    if bad:
        raise ValueError(f"{owner}: {' and '.join(bad)} must be >= 0, got {bad}.")


def d_adversarial_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str = "vanilla", real_label: float = 1.0
) -> torch.Tensor:
    """Discriminator / critic loss. ``real_label`` < 1 gives one-sided label smoothing (vanilla, lsgan)."""
    _check(mode)
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.full_like(real_logits, real_label)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if mode == "lsgan":
        return 0.5 * (((real_logits - real_label) ** 2).mean() + (fake_logits**2).mean())
    if mode == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()


def g_adversarial_loss(fake_logits: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """Generator loss on the discriminator's logits of generated samples."""
    _check(mode)
    fake_logits = fake_logits.float()
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if mode == "lsgan":
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()
    return -fake_logits.mean()


def hinge_margin_loss(logits: torch.Tensor, real: bool, margin_jitter: float = 0.0) -> torch.Tensor:
    """One side of the hinge loss, ``mean(relu(m - D(x)))`` for reals and ``mean(relu(m + D(G(z))))`` for fakes, with
    the margin ``m`` drawn from ``U(1 - margin_jitter, 1)`` per logit as in FastGAN's code (0: the plain hinge)."""
    logits = logits.float()
    margin = 1.0 - margin_jitter * torch.rand_like(logits) if margin_jitter else 1.0
    return F.relu(margin - logits).mean() if real else F.relu(margin + logits).mean()


def mismatch_hinge(real_scores: torch.Tensor, wrong_scores: torch.Tensor, cond: torch.Tensor, wrong: torch.Tensor,
                   margin: float = 1.0) -> torch.Tensor:
    """Matching-aware critic term (after Reed et al., ICML 2016): ``mean(relu(margin - D(x, c) + D(x, c')))`` over the
    images whose wrong condition ``c'`` differs from their own ``c`` (pairs with equal maps do not count)."""
    differs = (wrong != cond).flatten(1).any(dim=1).float()
    hinge = torch.relu(margin - real_scores.float() + wrong_scores.float()).reshape(-1) * differs
    return hinge.sum() / differs.sum().clamp(min=1.0)


def masked_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(N, C, *spatial)`` over the voxels weighted by ``weight`` ``(N, 1, *spatial)`` (e.g. a box
    mask: an L1 term inside the box only); 0 when the weights sum to 0."""
    return (x * weight).sum() / (weight.sum() * x.shape[1]).clamp_min(1.0)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    reals: torch.Tensor,
    fakes: torch.Tensor,
    center: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP penalty of Gulrajani et al. 2017: ``E[(||grad_x D(x_hat)||_2 - center)^2]`` on random
    interpolates ``x_hat`` between reals and fakes (one mixing weight per sample). ``critic`` may close over a
    condition (e.g. a box map) that is not interpolated. Computed once per critic step, with ``create_graph``
    so the penalty itself is differentiated."""
    if reals.shape != fakes.shape:
        raise ValueError(f"gradient_penalty: reals {tuple(reals.shape)} and fakes {tuple(fakes.shape)} differ in shape.")
    alpha = torch.rand((reals.shape[0],) + (1,) * (reals.ndim - 1), device=reals.device, dtype=reals.dtype)
    x_hat = (alpha * reals.detach() + (1.0 - alpha) * fakes.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    norms = grad.float().reshape(grad.shape[0], -1).norm(2, dim=1)
    return ((norms - center) ** 2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], reals: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): ``E[||grad_x D(x)||^2]`` on reals."""
    x = reals.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad.float().reshape(grad.shape[0], -1).pow(2).sum(1).mean()
