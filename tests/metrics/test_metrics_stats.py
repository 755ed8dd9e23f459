# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Streaming statistics, reservoirs and the real-set statistics cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from monai_gan_aug.metrics.stats import (
    FeatureStats,
    Reservoir,
    StatsCache,
    dataset_identity,
)


def test_streaming_stats_equal_numpy(rng):
    x = rng.normal(size=(1000, 7)) * 100 + 1e4  # large offset: the shifted algorithm avoids cancellation
    stats = FeatureStats()
    for i, chunk in enumerate(np.array_split(x, 13)):
        stats.update(torch.from_numpy(chunk) if i % 2 else chunk)  # torch and numpy batches
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9)
    assert stats.n == 1000 and stats.dim == 7
    # memory independent of N: the state is (D,) and (D, D) arrays only
    assert stats._s2.shape == (7, 7)


def test_merge_and_moments_round_trip(rng):
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(30, 4)) + 3
    merged = FeatureStats().update(a).merge(FeatureStats().update(b))
    whole = np.concatenate([a, b])
    np.testing.assert_allclose(merged.mean, whole.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.cov, np.cov(whole, rowvar=False), rtol=1e-10)
    again = FeatureStats.from_moments(merged.mean, merged.cov, merged.n)
    np.testing.assert_allclose(again.cov, merged.cov, rtol=1e-12)
    again.update(b)  # moments-only statistics can keep accumulating
    np.testing.assert_allclose(again.mean, np.concatenate([whole, b]).mean(0), rtol=1e-12)
    np.testing.assert_allclose(again.cov, np.cov(np.concatenate([whole, b]), rowvar=False), rtol=1e-10)


def test_stats_errors():
    s = FeatureStats()
    with pytest.raises(ValueError, match="at least 1"):
        _ = s.mean
    s.update(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        _ = s.cov
    with pytest.raises(ValueError, match="dimension changed"):
        s.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        s.update(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        s.update(np.full((2, 3), np.nan))


def test_reservoir_bounded_uniform_and_deterministic():
    stream = torch.arange(1000).float().view(-1, 1)
    r1, r2 = Reservoir(50, seed=3), Reservoir(50, seed=3)
    for chunk in stream.split(37):
        r1.add(chunk)
        r2.add(chunk)
    assert len(r1) == 50 and r1.seen == 1000
    assert torch.equal(r1.data, r2.data)
    np.testing.assert_array_equal(r1.indices, r1.data.view(-1).long().numpy())
    assert r1.data.view(-1).float().mean() == pytest.approx(500, abs=120)  # uniform over the stream
    small = Reservoir(None)
    small.add(stream[:5])
    assert torch.equal(small.data, stream[:5])
    with pytest.raises(ValueError, match="empty"):
        _ = Reservoir(3).data


def test_cache_round_trip_and_invalidation(tmp_path, rng):
    files = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(b"x" * (i + 1))
        files.append(str(p))
    ident = dataset_identity(files, extra="intensity=auto")
    assert ident == dataset_identity(list(reversed(files)), extra="intensity=auto")  # order independent
    feats = rng.normal(size=(20, 5))
    stats = FeatureStats().update(feats)
    cache = StatsCache(tmp_path / "cache")
    assert cache.load(ident, "net_a") is None
    path = cache.save(ident, "net_a", stats, feats)
    assert path.suffix == ".npz" and path.exists()
    hit = cache.load(ident, "net_a")
    np.testing.assert_allclose(hit.stats.mean, stats.mean)
    np.testing.assert_allclose(hit.stats.cov, stats.cov)
    np.testing.assert_allclose(hit.features, feats.astype(np.float32))
    assert hit.meta["extractor"] == "net_a"
    assert cache.load(ident, "net_b") is None  # keyed by extractor name
    # touching a file changes the identity, so the cache misses
    later = time.time() + 10
    os.utime(files[0], (later, later))
    assert dataset_identity(files, extra="intensity=auto") != ident
    assert dataset_identity(key="thyroid_v1") == "key:thyroid_v1|"
    with pytest.raises(ValueError, match="files` or `key"):
        dataset_identity()
