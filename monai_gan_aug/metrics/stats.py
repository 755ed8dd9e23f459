# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Streaming feature statistics, bounded feature reservoirs and the real-set statistics cache.

* :class:`FeatureStats` accumulates the mean and covariance of feature vectors batch by batch in float64 with the
  shifted-data algorithm: memory is ``O(D^2)`` whatever the number of samples, and the result equals
  ``numpy.cov`` of all samples up to rounding.
* :class:`Reservoir` keeps a uniform random subset of at most ``capacity`` rows (Vitter's algorithm R, seeded),
  so metrics that need the samples themselves (KID, MMD, 1-NN, precision/recall, bootstrap intervals) also run
  in bounded memory.
* :class:`StatsCache` stores real-set statistics (and optionally features) as ``.npz`` files keyed by a hash of
  the dataset identity (file list with modification times and sizes, or a user key) and the extractor name, so
  the real set is embedded once per extractor.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CachedFeatures", "FeatureStats", "Reservoir", "StatsCache", "dataset_identity"]


def _features_f64(features: Any, name: str = "features") -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be a (N, D) matrix of feature vectors, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values; check the extractor input range.")
    return x


class FeatureStats:
    """Streaming float64 mean and (unbiased) covariance of feature vectors.

    Keeps a shift (the first batch mean), the sum of shifted features and the sum of their outer products, which
    avoids the cancellation of the naive ``E[xx^T] - mu mu^T`` formula.

    Example::

        stats = FeatureStats()
        for batch in loader:
            stats.update(extractor(batch))
        mu, sigma = stats.mean, stats.cov
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: np.ndarray | None = None
        self._s1: np.ndarray | None = None
        self._s2: np.ndarray | None = None

    @property
    def dim(self) -> int | None:
        """Feature dimension, ``None`` before the first update."""
        return None if self._shift is None else int(self._shift.shape[0])

    def update(self, features: Any) -> FeatureStats:
        """Add a batch of features ``(N, D)`` (numpy or torch); returns ``self``."""
        x = _features_f64(features)
        if x.shape[0] == 0:
            return self
        if self._shift is None:
            self._shift = x.mean(0)
            self._s1 = np.zeros_like(self._shift)
            self._s2 = np.zeros((x.shape[1], x.shape[1]), dtype=np.float64)
        elif x.shape[1] != self._shift.shape[0]:
            raise ValueError(f"Feature dimension changed from {self._shift.shape[0]} to {x.shape[1]}.")
        xc = x - self._shift
        self._s1 += xc.sum(0)
        self._s2 += xc.T @ xc
        self.n += x.shape[0]
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add the samples summarised by ``other`` (e.g. from another worker); returns ``self``."""
        if other.n == 0:
            return self
        if self._shift is None:
            self._shift, self._s1, self._s2 = other._shift.copy(), other._s1.copy(), other._s2.copy()  # type: ignore
            self.n = other.n
            return self
        if other.dim != self.dim:
            raise ValueError(f"Cannot merge statistics of dimension {other.dim} into dimension {self.dim}.")
        d = other._shift - self._shift  # type: ignore[operator]
        s1o = other._s1
        self._s2 += other._s2 + np.outer(d, s1o) + np.outer(s1o, d) + other.n * np.outer(d, d)  # type: ignore
        self._s1 += s1o + other.n * d  # type: ignore[operator]
        self.n += other.n
        return self

    def _require(self, n_min: int) -> None:
        if self.n < n_min:
            raise ValueError(f"FeatureStats holds {self.n} samples, at least {n_min} are needed.")

    @property
    def mean(self) -> np.ndarray:
        """``(D,)`` float64 mean."""
        self._require(1)
        return self._shift + self._s1 / self.n  # type: ignore[operator]

    @property
    def cov(self) -> np.ndarray:
        """``(D, D)`` float64 unbiased covariance (``ddof=1``), exactly symmetric."""
        self._require(2)
        c = (self._s2 - np.outer(self._s1, self._s1) / self.n) / (self.n - 1)  # type: ignore[operator]
        return 0.5 * (c + c.T)

    @classmethod
    def from_moments(cls, mean: Any, cov: Any, n: int) -> FeatureStats:
        """Rebuild statistics from a mean, a covariance and the sample count (e.g. published reference stats)."""
        mu = np.asarray(mean, dtype=np.float64).reshape(-1)
        sigma = np.asarray(cov, dtype=np.float64)
        if sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"`cov` must have shape {(mu.shape[0], mu.shape[0])}, got {sigma.shape}.")
        if int(n) < 2:
            raise ValueError(f"`n` must be >= 2, got {n}.")
        stats = cls()
        stats.n = int(n)
        stats._shift = mu.copy()
        stats._s1 = np.zeros_like(mu)
        stats._s2 = sigma * (stats.n - 1)
        return stats

    def to_dict(self) -> dict[str, np.ndarray]:
        """Arrays ``mu``, ``sigma`` and ``n`` (the layout of the ``.npz`` cache files)."""
        return {"mu": self.mean, "sigma": self.cov, "n": np.asarray(self.n)}


class Reservoir:
    """Uniform random subset of at most ``capacity`` rows of a stream (algorithm R), deterministic from ``seed``.

    Args:
        capacity: maximal number of rows kept (``None``: keep everything).
        seed: seed of the replacement decisions.
    """

    def __init__(self, capacity: int | None = None, seed: int = 0) -> None:
        if capacity is not None and int(capacity) < 1:
            raise ValueError(f"`capacity` must be >= 1 or None, got {capacity}.")
        self.capacity = None if capacity is None else int(capacity)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget all rows."""
        self._rng = np.random.default_rng(self.seed)
        self._rows: list[torch.Tensor] = []
        self._ids: list[int] = []
        self.seen = 0

    def add(self, batch: torch.Tensor) -> None:
        """Offer the rows of ``batch`` (first dimension = samples); rows are stored detached on the CPU."""
        batch = batch.detach().cpu()
        for row in batch:
            t = self.seen
            self.seen += 1
            if self.capacity is None or len(self._rows) < self.capacity:
                self._rows.append(row.clone())
                self._ids.append(t)
                continue
            j = int(self._rng.integers(0, t + 1))
            if j < self.capacity:
                self._rows[j] = row.clone()
                self._ids[j] = t

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def data(self) -> torch.Tensor:
        """Stacked kept rows ``(k, ...)`` in stream order."""
        if not self._rows:
            raise ValueError("The reservoir is empty; feed samples before aggregating.")
        order = np.argsort(self._ids, kind="stable")
        return torch.stack([self._rows[i] for i in order])

    @property
    def indices(self) -> np.ndarray:
        """Stream positions of the kept rows, in the order of :attr:`data`."""
        return np.sort(np.asarray(self._ids, dtype=np.int64))


def dataset_identity(
    files: Iterable[str | os.PathLike] | None = None, key: str | None = None, extra: str | Sequence[str] = ""
) -> str:
    """A string identifying a dataset for the statistics cache.

    Args:
        files: image files; their absolute paths, modification times (ns) and sizes are hashed, so a changed or
            replaced file invalidates the cache.
        key: a user key used instead of ``files`` (e.g. a dataset name and version).
        extra: preprocessing settings that change the features (intensity mapping, spatial size, ...).

    Returns:
        ``"key:<key>|<extra>"`` or ``"files:<sha256>|<extra>"``.
    """
    extra_s = extra if isinstance(extra, str) else ",".join(map(str, extra))
    if key is not None:
        return f"key:{key}|{extra_s}"
    if files is None:
        raise ValueError("dataset_identity needs `files` or `key`; pass a user key for in-memory datasets.")
    h = hashlib.sha256()
    n = 0
    for f in sorted(os.path.abspath(os.fspath(p)) for p in files):
        st = os.stat(f)
        h.update(f"{f}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
        n += 1
    if n == 0:
        raise ValueError("dataset_identity got an empty file list.")
    return f"files:{h.hexdigest()}|{extra_s}"


@dataclass
class CachedFeatures:
    """Real-set statistics loaded from the cache, with the features when they were stored."""

    stats: FeatureStats
    features: np.ndarray | None
    meta: dict[str, Any]


class StatsCache:
    """Directory of ``.npz`` files with real-set feature statistics keyed by dataset identity and extractor name.

    Args:
        cache_dir: directory (created on first save).

    Each file holds ``mu``, ``sigma``, ``n``, optionally ``features`` (float32) and a JSON ``meta`` string with the
    dataset identity, the extractor name and the creation time. The file name is the first 32 hex digits of
    ``sha256(dataset_id + "\\0" + extractor_name)``.
    """

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)

    def path(self, dataset_id: str, extractor_name: str) -> Path:
        """Cache file of a dataset / extractor pair."""
        digest = hashlib.sha256(f"{dataset_id}\0{extractor_name}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{digest}.npz"

    def load(self, dataset_id: str, extractor_name: str) -> CachedFeatures | None:
        """The cached entry, or ``None`` when absent (or written for another identity)."""
        p = self.path(dataset_id, extractor_name)
        if not p.is_file():
            return None
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("dataset_id") != dataset_id or meta.get("extractor") != extractor_name:
                return None
            stats = FeatureStats.from_moments(z["mu"], z["sigma"], int(z["n"]))
            features = np.array(z["features"]) if "features" in z.files else None
        return CachedFeatures(stats=stats, features=features, meta=meta)

    def save(
        self, dataset_id: str, extractor_name: str, stats: FeatureStats, features: Any | None = None
    ) -> Path:
        """Write an entry (atomically: temporary file then rename) and return its path."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        p = self.path(dataset_id, extractor_name)
        meta = {"dataset_id": dataset_id, "extractor": extractor_name, "n": stats.n, "created": time.time()}
        arrays: dict[str, Any] = dict(stats.to_dict())
        arrays["meta"] = np.asarray(json.dumps(meta))
        if features is not None:
            f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
            arrays["features"] = f.astype(np.float32)
        tmp = p.with_name(p.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, p)
        return p
