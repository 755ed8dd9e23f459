# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GAN metrics: reference formulas, known answers, bootstrap intervals, cumulative API."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.metrics import MultiScaleSSIMMetric
from monai.metrics.mmd import compute_mmd

from monai_gan_aug.metrics.frechet import frechet_distance
from monai_gan_aug.metrics.functional import (
    inception_score,
    knn_radii,
    mmd2_unbiased,
    mmd2_weighted,
    pairwise_sqdist,
    polynomial_kernel,
    precision_recall,
)
from monai_gan_aug.metrics.gan_metrics import (
    FIDMetric,
    InceptionScoreMetric,
    KIDMetric,
    MMDMetric,
    MSSSIMDiversityMetric,
    OneNNMetric,
    PerPixelAccuracyMetric,
    PrecisionRecallMetric,
    create_metric,
)
from monai_gan_aug.metrics.stats import FeatureStats


def _gauss(rng, n, d=8, shift=0.0):
    return torch.from_numpy(rng.normal(size=(n, d)) + shift)


def _run(metric, fake, real, batches=3):
    for f, r in zip(torch.tensor_split(fake, batches), torch.tensor_split(real, batches)):
        metric(y_pred=f, y=r)
    return metric.aggregate()


def test_kid_equals_unbiased_polynomial_formula(rng):
    x, y = rng.normal(size=(25, 6)), rng.normal(size=(25, 6)) + 0.4
    k = lambda a, b: (a @ b / 6 + 1) ** 3
    m = 25
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    ref = xx + yy - 2 * xy
    res = _run(KIDMetric(n_bootstrap=0), torch.from_numpy(y), torch.from_numpy(x))["kid"]
    assert res["value"] == pytest.approx(ref, rel=1e-10)
    assert res["subset_size"] == 25 and res["n_subsets"] == 1  # the subset size adapted to N < 1000


def test_kid_subsets_and_bootstrap_weights(rng):
    x, y = _gauss(rng, 40), _gauss(rng, 30, shift=0.5)
    res = _run(KIDMetric(subset_size=20, n_subsets=50, n_bootstrap=50), y, x)["kid"]
    assert res["subset_size"] == 20 and res["std"] > 0
    assert res["ci_low"] <= res["value"] <= res["ci_high"]
    # the weighted bootstrap equals the U-statistic of an explicit resample (copies never paired)
    kxx = polynomial_kernel(x, x)
    idx = torch.from_numpy(rng.integers(0, 40, 40))
    w = torch.bincount(idx, minlength=40).double()[:, None]
    y2 = _gauss(rng, 12, shift=0.5)
    kyy, kxy = polynomial_kernel(y2, y2), polynomial_kernel(x, y2)
    weighted = float(mmd2_weighted(kxx, kyy, kxy, w, torch.ones(12, 1, dtype=torch.float64))[0])
    kk = kxx[idx][:, idx]
    xx = float(kk[idx[:, None] != idx[None, :]].mean())  # pairs of positions holding different samples
    yy = float((kyy.sum() - kyy.diagonal().sum()) / (12 * 11))
    xy = float(kxy[idx].mean())
    assert weighted == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    assert mmd2_unbiased(kk, kyy, kxy[idx], ids_x=idx) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_fid_metric_streaming_and_cached_real_stats(rng):
    x, y = _gauss(rng, 120), _gauss(rng, 90, shift=0.7)
    ref = frechet_distance(x.mean(0), np.cov(x.numpy(), rowvar=False), y.mean(0), np.cov(y.numpy(), rowvar=False))
    m = FIDMetric(n_bootstrap=30)
    res = _run(m, y, x, batches=7)["fid"]
    assert res["value"] == pytest.approx(ref, rel=1e-9)
    assert res["n_real"] == 120 and res["n_fake"] == 90 and res["ci_low"] <= res["value"] <= res["ci_high"]
    m.reset_generated()
    m.set_real_statistics(FeatureStats().update(x))
    m(y_pred=y)
    assert m.aggregate()["fid"]["value"] == pytest.approx(ref, rel=1e-9)  # stats only: bootstrap over fakes
    fast = FIDMetric(n_bootstrap=0)
    fast(y_pred=y, y=x)
    out = fast.aggregate()["fid"]
    assert out["ci_low"] is None and out["n_bootstrap"] == 0 and len(fast._fake) == 0  # no sample buffers


def test_known_answers_identical_and_shifted_sets(rng):
    real = _gauss(rng, 200)
    same = _gauss(rng, 200)
    far = _gauss(rng, 200, shift=4.0)
    fid = lambda f: _run(FIDMetric(n_bootstrap=0), f, real)["fid"]["value"]
    assert fid(real.clone()) == pytest.approx(0.0, abs=1e-9)
    assert fid(far) > 50 * fid(same)
    nn = lambda f, **kw: _run(OneNNMetric(n_bootstrap=0, **kw), f, real)["1nn"]
    assert nn(same)["value"] == pytest.approx(0.5, abs=0.08)
    assert nn(same, subset_size=None)["value"] == pytest.approx(0.5, abs=0.06)
    assert nn(far)["value"] > 0.97
    exact = nn(real.clone(), subset_size=None)
    assert exact["value"] == 0.0 and exact["acc_real"] == 0.0  # copies are each other's nearest neighbour
    kid = lambda f: _run(KIDMetric(n_bootstrap=0), f, real)["kid"]["value"]
    assert abs(kid(same)) < 0.05 and kid(far) > 1.0
    mmd = lambda f: _run(MMDMetric(n_bootstrap=0), f, real)["mmd"]["value"]
    assert mmd(far) > 3 * mmd(same)
    pr_same = _run(PrecisionRecallMetric(n_bootstrap=0), same, real)
    pr_far = _run(PrecisionRecallMetric(n_bootstrap=0), far, real)
    assert pr_same["precision"]["value"] > 0.6 and pr_same["recall"]["value"] > 0.6
    assert pr_far["precision"]["value"] < 0.05 and pr_far["recall"]["value"] < 0.05
    pr_copy = _run(PrecisionRecallMetric(n_bootstrap=0), real.clone(), real)
    assert pr_copy["precision"]["value"] == 1.0 and pr_copy["recall"]["value"] == 1.0


def test_mmd_matches_thyroid_protocol_formula_and_monai_linear(rng):
    x, y = _gauss(rng, 30, d=5), _gauss(rng, 30, d=5, shift=0.5)
    res = _run(MMDMetric(subset_size=None, n_bootstrap=0), y, x)["mmd"]
    dxx, dyy, dxy = (pairwise_sqdist(a, b) for a, b in ((x, x), (y, y), (x, y)))
    s = float(dxx.mean())
    kern = lambda d: torch.exp(-d / (2 * s))
    ref = np.sqrt(float(kern(dxx).mean() + kern(dyy).mean() - 2 * kern(dxy).mean()))
    assert res["value"] == pytest.approx(ref, rel=1e-10) and res["n_tests"] == 1
    lin = _run(MMDMetric(kernel="linear", subset_size=None, n_bootstrap=0), y, x)["mmd"]
    assert lin["value"] == pytest.approx(float(compute_mmd(x, y, None)), rel=1e-10)
    proto = _run(MMDMetric(n_tests=10, subset_size=20, n_bootstrap=20), y, x)["mmd"]
    assert proto["subset_size"] == 20 and proto["n_tests"] == 10 and proto["ci_low"] <= proto["value"] <= proto["ci_high"]
    with pytest.raises(ValueError, match="kernel"):
        MMDMetric(kernel="rbf2")


def test_knn_radii_weights_equal_explicit_resample(rng):
    x = _gauss(rng, 15, d=3)
    d = pairwise_sqdist(x, x)
    idx = torch.from_numpy(rng.integers(0, 15, 15))
    w = torch.bincount(idx, minlength=15)
    radii_w = knn_radii(d, 2, w)
    # explicit: the resample's k-th neighbour, copies of the same sample excluded
    dd = d[idx][:, idx].clone()
    dd[idx[:, None] == idx[None, :]] = float("inf")
    explicit = dd.sort(dim=1).values[:, 1]
    assert torch.allclose(radii_w[idx], explicit)
    # precision / recall on a tiny hand-made 1-D example
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    d_rr, d_ff, d_rf = pairwise_sqdist(real, real), pairwise_sqdist(fake, fake), pairwise_sqdist(real, fake)
    p, r = precision_recall(d_rr, d_ff, d_rf, k=1)
    assert p == 0.5  # 0.5 lies in a real sphere (radius 1), 10 does not
    assert r == 1.0  # the fake sphere radius 9.5 (its only neighbour) covers every real sample


def test_inception_score_known_values():
    assert inception_score(torch.zeros(20, 5), n_splits=2)[0] == pytest.approx(1.0)
    confident = torch.eye(4).repeat(4, 1) * 50  # 16 confident predictions, balanced over 4 classes
    assert inception_score(confident, n_splits=1)[0] == pytest.approx(4.0, rel=1e-6)
    m = InceptionScoreMetric(n_splits=2, n_bootstrap=20)
    m(y_pred=confident)
    res = m.aggregate()["is"]
    assert res["value"] == pytest.approx(4.0, rel=1e-6) and res["n_real"] == 0 and res["ci_low"] >= 1.0
    with pytest.raises(ValueError, match="generated samples only"):
        m(y_pred=confident, y=confident)


def test_msssim_diversity_equals_monai_on_all_pairs():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(5, 1, 24, 24, generator=g) * 2 - 1
    m = MSSSIMDiversityMetric(n_tests=1, n_images=5, kernel_size=3, weights=(0.5, 0.5), n_bootstrap=0)
    m(y_pred=imgs)
    res = m.aggregate()["msssim"]
    monai = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=3, weights=(0.5, 0.5))
    pairs = list(itertools.combinations(range(5), 2))
    x = (imgs + 1) / 2
    for i, j in pairs:
        monai(x[i : i + 1], x[j : j + 1])
    assert res["value"] == pytest.approx(float(monai.aggregate()), rel=1e-5)
    same = MSSSIMDiversityMetric(n_tests=3, n_images=4, kernel_size=3, weights=(0.5, 0.5), n_bootstrap=10)
    same(y_pred=imgs[:1].repeat(6, 1, 1, 1), y=imgs)
    out = same.aggregate()["msssim"]
    assert out["value"] == pytest.approx(1.0, abs=1e-5)  # collapsed generator: identical samples
    assert out["real_value"] < out["value"] and out["n_tests"] == 3 and out["n_images"] == 4


def test_per_pixel_accuracy_modes():
    a = torch.linspace(-1, 1, 2 * 1 * 4 * 4).view(2, 1, 4, 4)
    m = PerPixelAccuracyMetric(tolerance=0.05, n_bootstrap=10)
    m(y_pred=a, y=a.clone())
    assert m.aggregate()["pa"]["value"] == 1.0
    m.reset()
    b = a.clone()
    b[0, 0, 0, :2] += 0.5  # 2 of 16 pixels wrong in the first pair
    m(y_pred=b, y=a)
    assert m.aggregate()["pa"]["value"] == pytest.approx((14 / 16 + 1) / 2)
    labels = torch.tensor([[[[0, 1], [2, 2]]]])
    pred = torch.tensor([[[[0, 1], [1, 2]]]])
    lm = PerPixelAccuracyMetric(ignore_index=2, n_bootstrap=0)
    lm(y_pred=pred, y=labels)
    assert lm.aggregate()["pa"]["value"] == 1.0  # the wrong pixel is ignored
    seg = PerPixelAccuracyMetric(segmenter=lambda x: torch.cat([-x, x], dim=1), n_bootstrap=0)
    img = torch.tensor([[[[-0.5, 0.5], [0.7, -0.2]]]])
    seg(y_pred=img, y=torch.tensor([[[[0, 1], [1, 1]]]]))
    assert seg.aggregate()["pa"]["value"] == 0.75  # FCN-score protocol: segment the output, compare labels
    with pytest.raises(TypeError, match="paired"):
        m(y_pred=a)


def test_intervals_determinism_and_api_errors(rng):
    x, y = _gauss(rng, 60), _gauss(rng, 60, shift=0.3)
    r1 = _run(create_metric("1nn", n_bootstrap=25, seed=7), y, x)
    r2 = _run(create_metric("one_nn", n_bootstrap=25, seed=7), y, x)
    assert r1 == r2
    assert r1["1nn"]["ci_low"] <= r1["1nn"]["value"] <= r1["1nn"]["ci_high"] <= 1.0
    with pytest.raises(ValueError, match="Unknown metric"):
        create_metric("fidd")
    with pytest.raises(TypeError):
        create_metric("kid", subsets=3)
    kid = KIDMetric()
    with pytest.raises(ValueError, match="y_pred"):
        kid()
    kid(y_pred=x)
    with pytest.raises(ValueError, match="feature dimension"):
        kid(y=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="at least 2"):
        kid.aggregate()
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kid(y=torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="n_bootstrap"):
        FIDMetric(n_bootstrap=-1)
