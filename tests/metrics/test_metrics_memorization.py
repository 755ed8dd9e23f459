# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Memorization check and embedding plots."""

from __future__ import annotations

import numpy as np
import pytest

from monai_gan_aug.metrics.memorization import memorization_check, nearest_neighbours
from monai_gan_aug.metrics.plots import embed_features, plot_feature_embedding


def test_nearest_neighbours_blockwise(rng):
    q, r = rng.normal(size=(37, 4)), rng.normal(size=(20, 4))
    d, i = nearest_neighbours(q, r, block=8)
    full = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-9)
    np.testing.assert_array_equal(i, full.argmin(1))
    d_self, i_self = nearest_neighbours(r, r, exclude_self=True, block=7)
    assert (i_self != np.arange(20)).all() and (d_self > 0).all()


def test_planted_copies_are_flagged_with_names(rng):
    train, test = rng.normal(size=(150, 6)), rng.normal(size=(80, 6))
    fake = rng.normal(size=(60, 6))
    planted = {3: 10, 17: 42, 55: 99}  # fake index -> copied training index
    for f, t in planted.items():
        fake[f] = train[t] + 1e-4 * rng.normal(size=6)
    train_names = [f"train/img{i:03d}.png" for i in range(150)]
    fake_names = [f"fake/gen{i:03d}.png" for i in range(60)]
    rep = memorization_check(train, fake, test, train_names, fake_names, quantile=0.01)
    found = {(c["fake"], c["train"]) for c in rep["near_copies"]}
    assert {(fake_names[f], train_names[t]) for f, t in planted.items()} <= found
    assert rep["reference"] == "test" and rep["n_flagged"] <= len(planted) + 2
    assert rep["near_copies"][0]["ratio"] < 0.01
    # a generator that only copies is detected by the rank test, a novel one is not
    copies = memorization_check(train, train[:60] + 1e-3, test)
    novel = memorization_check(train, rng.normal(size=(60, 6)), test)
    assert copies["fraction_flagged"] == 1.0 and copies["mannwhitney_p"] < 1e-6
    assert novel["fraction_flagged"] < 0.1 and novel["mannwhitney_p"] > 0.01


def test_leave_one_out_reference_and_errors(rng):
    train = rng.normal(size=(50, 3))
    fake = np.concatenate([train[:2], rng.normal(size=(10, 3))])
    rep = memorization_check(train, fake, quantile=0.05)
    assert rep["reference"] == "train_leave_one_out"
    assert {c["fake"] for c in rep["near_copies"]} >= {0, 1}
    with pytest.raises(ValueError, match="fake_names"):
        memorization_check(train, fake, fake_names=["a"])
    with pytest.raises(ValueError, match="quantile"):
        memorization_check(train, fake, quantile=1.5)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_plot_png(tmp_path, rng, method):
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 2
    path = plot_feature_embedding(real, fake, tmp_path / f"emb_{method}.png", method=method, max_points=25)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    emb = embed_features(np.concatenate([real, fake]), method="pca")
    assert emb.shape == (70, 2)
    assert abs(emb[:40, 0].mean() - emb[40:, 0].mean()) > 1.0  # the shifted set separates along PC 1
    with pytest.raises(ValueError, match="method"):
        embed_features(real, method="umap")
