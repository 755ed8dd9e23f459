# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Frechet distance: agreement with scipy's sqrtm formula, N < D, known answers, differentiability."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from monai_gan_aug.metrics.frechet import (
    FrechetDistanceLoss,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_torch,
    sqrtm_psd,
    sqrtm_psd_torch,
    trace_sqrtm_product,
)


def _scipy_fid(x1: np.ndarray, x2: np.ndarray) -> float:
    """Reference: the classic formula with scipy.linalg.sqrtm of the (non-symmetric) product."""
    mu1, mu2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _correlated(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """Samples of one fixed correlated Gaussian per dimension ``d`` (mixing matrix from a fixed seed)."""
    a = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ a + shift


@pytest.mark.parametrize("d", [4, 16, 32])
def test_matches_scipy_sqrtm_on_well_conditioned_cases(rng, d):
    x1 = _correlated(rng, 600, d)
    x2 = _correlated(rng, 500, d, shift=0.3)
    ref = _scipy_fid(x1, x2)
    mine = frechet_distance(x1.mean(0), np.cov(x1, rowvar=False), x2.mean(0), np.cov(x2, rowvar=False))
    assert mine == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_features(x1, x2) == pytest.approx(ref, rel=1e-6)


def test_fewer_samples_than_dimensions_is_real_and_consistent(rng):
    d = 64
    x1, x2 = _correlated(rng, 12, d), _correlated(rng, 10, d, shift=0.5)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    stats_route = frechet_distance(x1.mean(0), s1, x2.mean(0), s2)
    gram_route = frechet_distance_from_features(x1, x2)  # nuclear norm of the 12 x 10 cross product
    assert isinstance(stats_route, float) and isinstance(gram_route, float)
    assert np.isfinite(stats_route) and stats_route > 0
    assert gram_route == pytest.approx(stats_route, rel=1e-8)
    # scipy's sqrtm of the rank-deficient product is complex / inaccurate; ours stays real
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    assert np.iscomplexobj(covmean) or not np.allclose(covmean @ covmean, s1 @ s2, atol=1e-8)


def test_known_answers(rng):
    x = _correlated(rng, 200, 8)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = rng.normal(size=8)
    # same covariance, means differ by `shift`: FID = |shift|^2 exactly
    assert frechet_distance_from_features(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    # disjoint, shifted sets give a larger value than two samples of one distribution
    same = frechet_distance_from_features(x, _correlated(rng, 200, 8))
    far = frechet_distance_from_features(x, _correlated(rng, 200, 8, shift=3.0))
    assert far > 10 * same


def test_sqrtm_and_trace_helpers(rng):
    a = rng.normal(size=(6, 6))
    s = a @ a.T
    r = sqrtm_psd(s)
    np.testing.assert_allclose(r @ r, s, atol=1e-10)
    np.testing.assert_allclose(r, r.T)
    # rank-deficient input: still real, negative rounding eigenvalues clipped
    low = a[:, :2] @ a[:, :2].T
    assert np.isrealobj(sqrtm_psd(low))
    b = rng.normal(size=(6, 6))
    s2 = b @ b.T
    ref = np.trace(np.real(scipy.linalg.sqrtm(s @ s2)))
    assert trace_sqrtm_product(s, s2) == pytest.approx(ref, rel=1e-8)


def test_input_validation():
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariance"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="At least 2"):
        frechet_distance_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_torch_version_matches_and_gradients_flow(rng):
    x1, x2 = _correlated(rng, 300, 6), _correlated(rng, 200, 6, shift=0.2)
    mu1, s1 = torch.tensor(x1.mean(0)), torch.tensor(np.cov(x1, rowvar=False))
    mu2 = torch.tensor(x2.mean(0), requires_grad=True)
    s2 = torch.tensor(np.cov(x2, rowvar=False), requires_grad=True)
    value = frechet_distance_torch(mu1, s1, mu2, s2)
    assert value.item() == pytest.approx(frechet_distance(mu1, s1, mu2.detach(), s2.detach()), rel=1e-10)
    value.backward()
    assert torch.isfinite(mu2.grad).all() and mu2.grad.abs().sum() > 0
    assert torch.isfinite(s2.grad).all() and s2.grad.abs().sum() > 0
    np.testing.assert_allclose(mu2.grad.numpy(), 2 * (x2.mean(0) - x1.mean(0)), rtol=1e-8)


def test_gradcheck_of_frechet_and_sqrtm():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    mu1 = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    mu2 = torch.zeros(4, dtype=torch.float64, requires_grad=True)

    def f(a, b, mu1, mu2):
        return frechet_distance_torch(mu1, a @ a.T + torch.eye(4, dtype=a.dtype), mu2, b @ b.T + 0.5 * torch.eye(4, dtype=a.dtype))

    assert torch.autograd.gradcheck(f, (a, b, mu1, mu2))
    # degenerate spectrum (repeated eigenvalues): the custom backward stays exact
    assert torch.autograd.gradcheck(lambda a: sqrtm_psd_torch(a @ a.T + 2 * torch.eye(4, dtype=a.dtype)), (a,))
    eye = torch.eye(3, dtype=torch.float64, requires_grad=True)
    sqrtm_psd_torch(eye).sum().backward()
    assert torch.isfinite(eye.grad).all()


def test_frechet_loss_batch_smaller_than_dimension(rng):
    d = 32
    real = _correlated(rng, 400, d)
    loss_fn = FrechetDistanceLoss(real.mean(0), np.cov(real, rowvar=False))
    batch = torch.tensor(_correlated(rng, 8, d, shift=1.0), dtype=torch.float32, requires_grad=True)
    loss = loss_fn(batch)
    assert loss.dtype == torch.float32
    ref = frechet_distance(real.mean(0), np.cov(real, rowvar=False), batch.detach().double().mean(0),
                           np.cov(batch.detach().double().numpy(), rowvar=False))
    assert loss.item() == pytest.approx(ref, rel=1e-4)
    loss.backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0
    # one gradient step lowers the loss: usable as a DF-GAN style training loss
    with torch.no_grad():
        stepped = batch - 0.05 * batch.grad
    assert loss_fn(stepped).item() < loss.item()
    with pytest.raises(ValueError, match="shape"):
        loss_fn(torch.zeros(4, d + 1))
    with pytest.raises(ValueError, match="2 samples"):
        loss_fn(torch.zeros(1, d))
