# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Frechet distance between Gaussians fitted to feature vectors (FID), always real-valued.

The Frechet (Wasserstein-2) distance between ``N(mu1, S1)`` and ``N(mu2, S2)`` (Dowson & Landau, 1982) is::

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

FID (Heusel et al., 2017) evaluates it on Inception pool features; DF-GAN (eq. 3) uses it as a training loss.
``S1 S2`` is not symmetric, and the usual ``scipy.linalg.sqrtm(S1 @ S2)`` returns complex numbers (or garbage)
when the product is singular, which is always the case when there are fewer samples than feature dimensions.
Here the trace term never needs that square root:

* ``S1 S2`` is similar to the symmetric positive semi-definite ``M = S1^(1/2) S2 S1^(1/2)``, so
  ``Tr((S1 S2)^(1/2)) = sum(sqrt(eig(M)))`` with ``eigh`` (real eigenvalues, negatives from rounding clipped);
* from features ``S1 = A^T A`` and ``S2 = B^T B`` (``A``, ``B`` centred samples scaled by ``1/sqrt(n-1)``), the
  same trace is the nuclear norm of ``A B^T`` (sum of singular values), an ``n1 x n2`` problem that is cheaper
  and exact when ``n < D``.

All statistics are float64. The torch functions are differentiable (a DF-GAN style loss); their gradients stay
finite for rank-deficient covariances (batch smaller than the feature dimension).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "FrechetDistanceLoss",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_torch",
    "sqrtm_psd",
    "sqrtm_psd_torch",
    "trace_sqrtm_product",
]


def _to_f64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values; check the features it was computed from.")
    return arr


def _check_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> None:
    """Check shapes of numpy arrays or tensors: means ``(D,)``, covariances ``(D, D)``."""
    if len(mu1.shape) != 1 or len(mu2.shape) != 1 or tuple(mu1.shape) != tuple(mu2.shape):
        raise ValueError(
            f"`mu1` and `mu2` must be vectors of the same length, got {tuple(mu1.shape)} and {tuple(mu2.shape)}."
        )
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if tuple(s.shape) != (d, d):
            raise ValueError(f"`{name}` must be a ({d}, {d}) covariance matrix matching the means, got {tuple(s.shape)}.")


def sqrtm_psd(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    """Principal square root of a symmetric positive semi-definite matrix, in float64.

    The matrix is symmetrised, eigen-decomposed with ``eigh`` and eigenvalues at rounding level (including the
    negative ones) are set to 0, so the result is always real and symmetric.

    Args:
        matrix: ``(D, D)`` symmetric PSD matrix (numpy or torch).

    Returns:
        ``(D, D)`` float64 numpy array ``R`` with ``R @ R ~= matrix``.
    """
    m = _to_f64(matrix, "matrix")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"`matrix` must be square, got shape {m.shape}.")
    w, v = np.linalg.eigh(0.5 * (m + m.T))
    return (v * np.sqrt(_clip_eigenvalues(w))) @ v.T


def _clip_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues below the rank tolerance ``max|w| * D * eps`` (rounding noise of a PSD matrix) become 0.

    Without this, noise eigenvalues ~1e-16 would contribute their square roots (~1e-8) per dimension.
    """
    tol = np.abs(w).max(initial=0.0) * w.shape[0] * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def trace_sqrtm_product(sigma1: np.ndarray | torch.Tensor, sigma2: np.ndarray | torch.Tensor) -> float:
    """``Tr((sigma1 @ sigma2)^(1/2))`` for PSD covariances, always a real number.

    Uses ``eig(sigma1^(1/2) sigma2 sigma1^(1/2))`` (a symmetric PSD matrix similar to ``sigma1 @ sigma2``).

    Args:
        sigma1: ``(D, D)`` covariance.
        sigma2: ``(D, D)`` covariance.
    """
    s1 = _to_f64(sigma1, "sigma1")
    s2 = _to_f64(sigma2, "sigma2")
    r = sqrtm_psd(s1)
    m = r @ s2 @ r
    w = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(_clip_eigenvalues(w)).sum())


def frechet_distance(
    mu1: np.ndarray | torch.Tensor,
    sigma1: np.ndarray | torch.Tensor,
    mu2: np.ndarray | torch.Tensor,
    sigma2: np.ndarray | torch.Tensor,
) -> float:
    """Squared Frechet distance between two Gaussians (the FID formula), float64, clipped at 0.

    Args:
        mu1: ``(D,)`` mean of the first set.
        sigma1: ``(D, D)`` covariance of the first set.
        mu2: ``(D,)`` mean of the second set.
        sigma2: ``(D, D)`` covariance of the second set.

    Returns:
        ``|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))`` as a Python float.
    """
    m1, s1, m2, s2 = (_to_f64(a, n) for a, n in ((mu1, "mu1"), (sigma1, "sigma1"), (mu2, "mu2"), (sigma2, "sigma2")))
    _check_stats(m1, s1, m2, s2)
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrtm_product(s1, s2))
    return max(value, 0.0)


def frechet_distance_from_features(x1: np.ndarray | torch.Tensor, x2: np.ndarray | torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted (unbiased covariance) to two feature sets.

    Picks the cheaper exact route: covariance eigen-decomposition when ``D <= max(n1, n2)``, otherwise the
    nuclear norm of the ``n1 x n2`` centred cross product (exact for any ``n < D``).

    Args:
        x1: ``(n1, D)`` features, ``n1 >= 2``.
        x2: ``(n2, D)`` features, ``n2 >= 2``.
    """
    a = _to_f64(x1, "x1")
    b = _to_f64(x2, "x2")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"`x1` and `x2` must be (N, D) feature matrices with the same D, got {a.shape} and {b.shape}.")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"At least 2 samples per set are needed for a covariance, got {a.shape[0]} and {b.shape[0]}.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    a = (a - mu_a) / math.sqrt(a.shape[0] - 1)
    b = (b - mu_b) / math.sqrt(b.shape[0] - 1)
    diff = mu_a - mu_b
    if a.shape[1] <= max(a.shape[0], b.shape[0]):
        tr_sqrt = trace_sqrtm_product(a.T @ a, b.T @ b)
    else:
        tr_sqrt = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    value = float(diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * tr_sqrt)
    return max(value, 0.0)


class _SqrtmPSD(torch.autograd.Function):
    """Square root of a symmetric PSD matrix with a backward pass that is finite for repeated/zero eigenvalues.

    With ``Y = V diag(s) V^T`` the differential solves ``Y dY + dY Y = dA``; in the eigenbasis
    ``dY'_ij = dA'_ij / (s_i + s_j)``. Only sums of eigenvalue roots appear (no eigen-gaps), so degenerate spectra
    are fine; entries with ``s_i + s_j = 0`` (both zero) get a zero sub-gradient.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        w, v = torch.linalg.eigh(0.5 * (a + a.mT))
        s = w.clamp_min(0).sqrt()
        ctx.save_for_backward(s, v)
        return (v * s.unsqueeze(-2)) @ v.mT

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s, v = ctx.saved_tensors
        g = v.mT @ (0.5 * (grad + grad.mT)) @ v
        denom = s.unsqueeze(-1) + s.unsqueeze(-2)
        positive = denom > 0
        x = torch.where(positive, g / torch.where(positive, denom, torch.ones_like(denom)), torch.zeros_like(g))
        return v @ x @ v.mT


def sqrtm_psd_torch(matrix: torch.Tensor) -> torch.Tensor:
    """Differentiable square root of a symmetric PSD matrix (see :func:`sqrtm_psd`), same dtype as the input."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"`matrix` must be square, got shape {tuple(matrix.shape)}.")
    return _SqrtmPSD.apply(matrix)


def _safe_sqrt_sum(eigenvalues: torch.Tensor) -> torch.Tensor:
    """Sum of square roots of eigenvalues; values below a rank tolerance count as 0 and receive no gradient."""
    scale = eigenvalues.detach().abs().max()
    tol = scale * eigenvalues.shape[-1] * torch.finfo(eigenvalues.dtype).eps
    keep = eigenvalues > tol
    safe = torch.where(keep, eigenvalues, torch.ones_like(eigenvalues))
    return torch.where(keep, safe.sqrt(), torch.zeros_like(eigenvalues)).sum()


def frechet_distance_torch(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> torch.Tensor:
    """Differentiable Frechet distance between two Gaussians (float64 internally).

    Gradients flow to all four inputs. They are finite when ``sigma2`` is rank deficient (e.g. a covariance of a
    small batch); ``sigma1`` goes through :func:`sqrtm_psd_torch`, whose backward pass is also finite for
    degenerate spectra. Use the real-data statistics as ``(mu1, sigma1)`` and the batch statistics as
    ``(mu2, sigma2)`` for a DF-GAN style FID loss.

    Args:
        mu1: ``(D,)`` mean.
        sigma1: ``(D, D)`` covariance.
        mu2: ``(D,)`` mean.
        sigma2: ``(D, D)`` covariance.

    Returns:
        0-d tensor (float64) with the squared Frechet distance (not clipped, to keep gradients exact).
    """
    tensors = [torch.as_tensor(t) for t in (mu1, sigma1, mu2, sigma2)]
    device = next((t.device for t in tensors if t.requires_grad), tensors[0].device)
    m1, s1, m2, s2 = (t.to(device=device, dtype=torch.float64) for t in tensors)
    _check_stats(m1, s1, m2, s2)
    r = sqrtm_psd_torch(s1)
    m = r @ s2 @ r
    tr_sqrt = _safe_sqrt_sum(torch.linalg.eigvalsh(0.5 * (m + m.mT)))
    diff = m1 - m2
    return diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2.0 * tr_sqrt


class FrechetDistanceLoss(nn.Module):
    """Batch-versus-real-statistics Frechet distance, a differentiable FID loss (DF-GAN, eq. 3 / Algorithm 1).

    DF-GAN (Pix2Pix + FID loss) computes the Frechet distance between the features of the current batch of
    generated images and the real training set once per batch. The real statistics are fixed, so their square
    root is computed once here (float64 buffers); each call then costs an ``n x n`` (or ``D x D``) symmetric
    eigenvalue problem: with ``B`` the centred batch features scaled by ``1/sqrt(n-1)`` and ``R = S_real^(1/2)``,
    ``Tr((S_real S_batch)^(1/2)) = sum(sqrt(eig((B R)(B R)^T)))``.

    Args:
        real_mu: ``(D,)`` mean of the real features.
        real_sigma: ``(D, D)`` covariance of the real features.

    Example::

        stats = FeatureStats(); stats.update(real_features)
        loss_fn = FrechetDistanceLoss(stats.mean, stats.cov)
        loss = loss_fn(extractor(fake_images))  # differentiable w.r.t. fake_images
    """

    def __init__(self, real_mu: np.ndarray | torch.Tensor, real_sigma: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        mu = _to_f64(real_mu, "real_mu")
        sigma = _to_f64(real_sigma, "real_sigma")
        _check_stats(mu, sigma, mu, sigma)
        self.register_buffer("real_mu", torch.from_numpy(mu))
        self.register_buffer("real_sigma_sqrt", torch.from_numpy(sqrtm_psd(sigma)))
        self.register_buffer("real_trace", torch.tensor(float(np.trace(sigma)), dtype=torch.float64))

    @classmethod
    def from_stats(cls, stats: Any) -> FrechetDistanceLoss:
        """Build from a :class:`monai_gan_aug.metrics.stats.FeatureStats` (or anything with ``mean``/``cov``)."""
        return cls(stats.mean, stats.cov)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Frechet distance between the batch ``features`` ``(N, D)`` (``N >= 2``) and the real statistics.

        Returns:
            0-d tensor in the dtype of ``features``, differentiable w.r.t. ``features``.
        """
        if features.ndim != 2 or features.shape[1] != self.real_mu.shape[0]:
            raise ValueError(
                f"`features` must have shape (N, {self.real_mu.shape[0]}), got {tuple(features.shape)}; "
                "use the same extractor as for the real statistics."
            )
        n = features.shape[0]
        if n < 2:
            raise ValueError(f"A batch covariance needs at least 2 samples, got {n}.")
        x = features.to(torch.float64)
        mu = x.mean(0)
        b = (x - mu) / math.sqrt(n - 1)
        c = b @ self.real_sigma_sqrt
        small = c @ c.mT if n <= c.shape[1] else c.mT @ c
        tr_sqrt = _safe_sqrt_sum(torch.linalg.eigvalsh(0.5 * (small + small.mT)))
        diff = mu - self.real_mu
        value = diff.dot(diff) + self.real_trace + (b * b).sum() - 2.0 * tr_sqrt
        return value.to(features.dtype)
