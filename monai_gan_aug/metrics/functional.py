# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Formulas of the GAN metrics on fixed feature matrices (float64 torch), used by the metric classes.

References:
    * KID: Binkowski et al., "Demystifying MMD GANs", ICLR 2018 (unbiased MMD^2, cubic polynomial kernel
      ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets).
    * MMD and 1-NN as in the thyroid paper (Liang & Chen) / alpha-WGAN-GP (Kwon et al. 2019), which follow
      Xu et al., "An empirical study on evaluation metrics of generative adversarial networks", 2018: Gaussian
      kernel ``exp(-|x - y|^2 / (2 sigma^2 s))`` with ``s`` the mean squared distance within the real sample,
      ``sigma = 1``, reported as ``sqrt(mean Kxx + mean Kyy - 2 mean Kxy)``; leave-one-out 1-nearest-neighbour
      two-sample accuracy (0.5 is ideal, 0 signals copies, 1 a separable generator) (Lopez-Paz & Oquab, 2017).
    * Improved precision and recall: Kynkaanniemi et al., NeurIPS 2019 (k-NN hyperspheres, k = 3).
    * Inception Score: Salimans et al., 2016 (``exp(E_x KL(p(y|x) || p(y)))`` over splits).

Bootstrap support: every sample carries an id; pairs (or neighbours) of two copies of the same id are excluded,
so resampling with replacement does not make a sample its own neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_features",
    "gaussian_mmd",
    "inception_score",
    "kernel_inception_distance",
    "knn_radii",
    "mmd2_unbiased",
    "mmd2_weighted",
    "one_nn_accuracy",
    "pairwise_sqdist",
    "percentile_interval",
    "polynomial_kernel",
    "precision_recall",
    "sorted_neighbours",
]


def as_features(x: Any, name: str = "features") -> torch.Tensor:
    """``(N, D)`` float64 CPU tensor from a tensor/array, with shape and finiteness checks."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.to(device="cpu", dtype=torch.float64)
    if t.ndim != 2:
        raise ValueError(f"`{name}` must be a (N, D) matrix of feature vectors, got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return t


def pairwise_sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(Na, Nb)`` (float64, clipped at 0)."""
    a2 = (a * a).sum(1, keepdim=True)
    b2 = (b * b).sum(1, keepdim=True)
    return (a2 + b2.T - 2.0 * (a @ b.T)).clamp_min_(0.0)


def polynomial_kernel(
    a: torch.Tensor, b: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> torch.Tensor:
    """``(gamma * a.b + coef0) ** degree``; ``gamma`` defaults to ``1 / D`` (the KID kernel)."""
    g = 1.0 / a.shape[1] if gamma is None else gamma
    return (g * (a @ b.T) + coef0) ** degree


def mmd2_unbiased(
    kxx: torch.Tensor,
    kyy: torch.Tensor,
    kxy: torch.Tensor,
    ids_x: torch.Tensor | None = None,
    ids_y: torch.Tensor | None = None,
) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) from kernel matrices.

    ``sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 sum_{i,j} k(x_i, y_j) / (mn)``.
    With ``ids_x``/``ids_y``, within-set pairs of equal ids are excluded (bootstrap resamples).
    """
    def within(k: torch.Tensor, ids: torch.Tensor | None) -> float:
        m = k.shape[0]
        if ids is None:
            pairs = m * (m - 1)
            return float((k.sum() - k.diagonal().sum()) / pairs) if pairs else float("nan")
        mask = ids[:, None] != ids[None, :]
        pairs = int(mask.sum())
        return float(k[mask].sum() / pairs) if pairs else float("nan")

    return within(kxx, ids_x) + within(kyy, ids_y) - 2.0 * float(kxy.mean())


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subset_size: int = 1000,
    n_subsets: int = 100,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float, int]:
    """KID: unbiased polynomial-kernel MMD^2 averaged over random subsets.

    The subset size adapts to small sets: ``m = min(subset_size, n_real, n_fake)`` (at least 2). When ``m`` covers
    both sets entirely a single subset is used (all subsets would be identical).

    Returns:
        ``(mean, std over subsets, m)``.
    """
    x, y = as_features(real, "real"), as_features(fake, "fake")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 real and 2 fake samples, got {x.shape[0]} and {y.shape[0]}.")
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    return _kid_subsets(kxx, kyy, kxy, m, n_subsets, np.random.default_rng(seed))


def mmd2_weighted(
    kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor
) -> torch.Tensor:
    """Unbiased MMD^2 of many weighted samples at once (one column of ``wx``/``wy`` per sample).

    A column holds multiplicities: 0/1 indicators select a subset (KID subsets), bootstrap counts a resample.
    Within-set sums run over pairs of positions with different ids (``w^T K w - sum_i w_i^2 K_ii`` over
    ``(sum w)^2 - sum w^2`` pairs), the cross term over all pairs; all columns cost one matrix product per kernel.

    Returns:
        ``(R,)`` MMD^2 values.
    """

    def within(k: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        total = (w * (k @ w)).sum(0) - (w * w * k.diagonal()[:, None]).sum(0)
        return total / (w.sum(0) ** 2 - (w * w).sum(0))

    cross = (wx * (kxy @ wy)).sum(0) / (wx.sum(0) * wy.sum(0))
    return within(kxx, wx) + within(kyy, wy) - 2.0 * cross


def _kid_subsets(
    kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor, m: int, n_subsets: int, rng: np.random.Generator
) -> tuple[float, float, int]:
    nx, ny = kxx.shape[0], kyy.shape[0]
    if m == nx == ny:
        n_subsets = 1
    n_subsets = max(1, int(n_subsets))
    wx = torch.zeros(nx, n_subsets, dtype=torch.float64)
    wy = torch.zeros(ny, n_subsets, dtype=torch.float64)
    for s in range(n_subsets):
        wx[torch.from_numpy(rng.choice(nx, m, replace=False)), s] = 1.0
        wy[torch.from_numpy(rng.choice(ny, m, replace=False)), s] = 1.0
    v = mmd2_weighted(kxx, kyy, kxy, wx, wy).numpy()
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, m


def gaussian_mmd(dxx: torch.Tensor, dyy: torch.Tensor, dxy: torch.Tensor, sigma: float = 1.0) -> float:
    """MMD with the Gaussian kernel of Xu et al. 2018 from squared-distance matrices.

    Bandwidth ``2 sigma^2 s`` with ``s = mean(dxx)`` (mean squared distance within the real sample, diagonal
    included); biased (V-statistic) estimate, square root of the clipped MMD^2.
    """
    scale = float(dxx.mean())
    if scale <= 0:
        scale = 1.0  # all real samples identical: any bandwidth gives the same ordering
    denom = 2.0 * sigma * sigma * scale
    mmd2 = float(torch.exp(-dxx / denom).mean() + torch.exp(-dyy / denom).mean() - 2 * torch.exp(-dxy / denom).mean())
    return float(np.sqrt(max(mmd2, 0.0)))


def one_nn_accuracy(
    dist: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
) -> tuple[float, float, float]:
    """Leave-one-out 1-NN two-sample accuracy on a union of real (label 1) and fake (label 0) samples.

    Args:
        dist: ``(M, M)`` distances (squared is fine) over the union.
        labels: ``(M,)`` 1 for real, 0 for fake.
        ids: sample ids; a sample's neighbours with the same id (itself, bootstrap copies) are excluded.

    Returns:
        ``(accuracy, accuracy on real, accuracy on fake)``; ties go to the first neighbour.
    """
    d = dist.clone()
    if ids is None:
        d.fill_diagonal_(float("inf"))
    else:
        d[ids[:, None] == ids[None, :]] = float("inf")
    nn_idx = d.argmin(dim=1)
    pred = labels[nn_idx]
    correct = (pred == labels).double()
    real = labels == 1
    return float(correct.mean()), float(correct[real].mean()), float(correct[~real].mean())


def sorted_neighbours(dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbours of each sample in its own set by increasing distance, itself excluded (placed last, ``inf``).

    Returns:
        ``(sorted distances, order)``, both ``(N, N)``; computed once and reused by every bootstrap replicate.
    """
    d = dist.clone()
    d.fill_diagonal_(float("inf"))
    sorted_d, order = d.sort(dim=1)
    return sorted_d, order


def knn_radii(
    dist: torch.Tensor | tuple[torch.Tensor, torch.Tensor], k: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Distance of each sample to its k-th nearest neighbour in its own set, ``(N,)``.

    Args:
        dist: ``(N, N)`` distances within the set (diagonal ignored), or the output of :func:`sorted_neighbours`.
        k: neighbour rank.
        weights: multiplicities of the samples (bootstrap counts): a neighbour present ``w`` times counts ``w``
            times, absent samples (``w = 0``) not at all, and a sample's own copies are never its neighbours.
            Radii are ``inf`` when fewer than ``k`` neighbours exist.
    """
    sorted_d, order = sorted_neighbours(dist) if isinstance(dist, torch.Tensor) else dist
    n = sorted_d.shape[0]
    w = torch.ones(n, dtype=torch.float64) if weights is None else weights.to(torch.float64)
    counts = torch.where(torch.isfinite(sorted_d), w[order], torch.zeros((), dtype=torch.float64))
    reached = counts.cumsum(dim=1) >= k
    pos = reached.to(torch.int8).argmax(dim=1)
    radii = sorted_d.gather(1, pos[:, None]).squeeze(1)
    return torch.where(reached.any(dim=1), radii, torch.full_like(radii, float("inf")))


def precision_recall(
    d_rr: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    d_ff: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    d_rf: torch.Tensor,
    k: int = 3,
    w_real: torch.Tensor | None = None,
    w_fake: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) from distance matrices.

    Precision: fraction of fake samples inside at least one real k-NN hypersphere; recall: fraction of real samples
    inside at least one fake k-NN hypersphere. ``d_rr``/``d_ff`` may be :func:`sorted_neighbours` outputs;
    ``w_real``/``w_fake`` are bootstrap multiplicities.
    """
    nr, nf = d_rf.shape
    wr = torch.ones(nr, dtype=torch.float64) if w_real is None else w_real.to(torch.float64)
    wf = torch.ones(nf, dtype=torch.float64) if w_fake is None else w_fake.to(torch.float64)
    r_real = knn_radii(d_rr, k, wr)
    r_fake = knn_radii(d_ff, k, wf)
    inside_real = (d_rf <= r_real[:, None]) & (wr > 0)[:, None]  # (nr, nf): fake j inside sphere of real i
    precision = float((inside_real.any(dim=0).double() * wf).sum() / wf.sum())
    inside_fake = (d_rf <= r_fake[None, :]) & (wf > 0)[None, :]
    recall = float((inside_fake.any(dim=1).double() * wr).sum() / wr.sum())
    return precision, recall


def inception_score(logits: Any, n_splits: int = 10, from_logits: bool = True) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))``, mean and std over ``n_splits`` consecutive splits.

    ``n_splits`` adapts to small sets (at most ``N // 2`` splits, at least 1).
    """
    t = as_features(logits, "logits")
    p = torch.softmax(t, dim=1) if from_logits else t / t.sum(1, keepdim=True)
    n = p.shape[0]
    if n < 2:
        raise ValueError(f"The Inception Score needs at least 2 samples, got {n}.")
    splits = max(1, min(int(n_splits), n // 2))
    scores = []
    for chunk in torch.tensor_split(p, splits):
        py = chunk.mean(0, keepdim=True)
        kl = (chunk * (torch.log(chunk.clamp_min(1e-30)) - torch.log(py.clamp_min(1e-30)))).sum(1)
        scores.append(float(torch.exp(kl.mean())))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std()) if len(s) > 1 else 0.0


def percentile_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval (Efron) of replicate values; NaN replicates are ignored."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
