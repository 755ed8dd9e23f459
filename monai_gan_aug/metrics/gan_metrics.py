# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GAN-quality metrics with MONAI's cumulative API and bootstrap confidence intervals.

Every metric is a :class:`monai.metrics.Metric` used like MONAI's cumulative metrics::

    metric = KIDMetric()
    for fake_batch, real_batch in ...:
        metric(y_pred=extractor.extract(fake_batch), y=extractor.extract(real_batch))  # either may be None
    results = metric.aggregate()   # {"kid": {"value", "ci_low", "ci_high", "n_real", "n_fake", ...}}
    metric.reset()

``aggregate`` returns one result dict per output name (``PrecisionRecallMetric`` has two: ``precision`` and
``recall``). Intervals come from ``n_bootstrap`` replicates that resample the real and the generated sets
independently with replacement (copies of one sample are never each other's neighbour or kernel pair). Set
metrics computed on a resample are biased (a resample has ~63 % distinct samples; FID, for one, grows as N
shrinks), so a plain percentile interval may not even contain the estimate. The interval reported is therefore
the bootstrap spread re-centred on the estimate, ``[v - (median - q_low), v + (q_high - median)]`` with the
``(1 -+ confidence) / 2`` quantiles, clipped to the metric's range; the mean replicate shift is reported as
``bootstrap_shift``. ``n_bootstrap=0``: no interval (``ci_low``/``ci_high`` are ``None``). All randomness comes
from ``seed``.

Memory: FID accumulates float64 mean/covariance over all samples (independent of N); metrics that need the
samples keep a seeded uniform reservoir of at most ``max_samples`` per set (and FID keeps one only for its
bootstrap). MONAI parts reused: ``MultiScaleSSIMMetric`` (MS-SSIM) and ``compute_mmd`` (linear-kernel MMD).
MONAI's ``FIDMetric`` is not reused because its ``scipy.linalg.sqrtm`` returns complex values for N < D (see
:mod:`monai_gan_aug.metrics.frechet`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from monai.metrics import Metric, MultiScaleSSIMMetric
from monai.metrics.mmd import compute_mmd

from monai_gan_aug.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_features,
)
from monai_gan_aug.metrics.functional import (
    _kid_subsets,
    as_features,
    gaussian_mmd,
    inception_score,
    mmd2_weighted,
    one_nn_accuracy,
    pairwise_sqdist,
    percentile_interval,
    polynomial_kernel,
    precision_recall,
    sorted_neighbours,
)
from monai_gan_aug.metrics.stats import FeatureStats, Reservoir

__all__ = [
    "METRICS",
    "FIDMetric",
    "GanMetric",
    "InceptionScoreMetric",
    "KIDMetric",
    "MMDMetric",
    "MSSSIMDiversityMetric",
    "OneNNMetric",
    "PerPixelAccuracyMetric",
    "PrecisionRecallMetric",
    "canonical_metric_name",
    "create_metric",
]


class GanMetric(Metric):
    """Base class: cumulative ``__call__(y_pred=fake, y=real)``, ``aggregate() -> {name: result}``, ``reset()``.

    Attributes:
        output_names: keys of the dict returned by :meth:`aggregate`.
        input_kind: what ``y_pred``/``y`` are: ``"features"`` (``(N, D)``), ``"logits"`` (``(N, K)`` of generated
            samples), ``"images"`` (``(N, C, *spatial)`` in ``[-1, 1]``) or ``"paired"`` (outputs and targets).
        higher_is_better: per output name, for checkpoint selection.

    Args:
        n_bootstrap: bootstrap replicates for the interval (0: none).
        confidence: interval level.
        seed: seed of subsets, reservoirs and bootstrap.
    """

    output_names: tuple[str, ...] = ()
    input_kind: str = "features"
    higher_is_better: ClassVar[dict[str, bool]] = {}

    def __init__(self, n_bootstrap: int = 100, confidence: float = 0.95, seed: int = 0) -> None:
        super().__init__()
        if int(n_bootstrap) < 0:
            raise ValueError(f"`n_bootstrap` must be >= 0, got {n_bootstrap}.")
        if not 0 < confidence < 1:
            raise ValueError(f"`confidence` must be in (0, 1), got {confidence}.")
        self.n_bootstrap = int(n_bootstrap)
        self.confidence = float(confidence)
        self.seed = int(seed)

    def __call__(self, y_pred: Any = None, y: Any = None) -> None:  # type: ignore[override]
        """Accumulate a batch: ``y_pred`` generated, ``y`` real (either may be ``None``)."""
        if y_pred is None and y is None:
            raise ValueError(f"{type(self).__name__} needs `y_pred` (generated) and/or `y` (real) data.")
        self.update(y_pred=y_pred, y=y)

    def update(self, y_pred: Any = None, y: Any = None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement `update`.")

    def reset(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement `reset`.")

    def aggregate(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} must implement `aggregate`.")

    def _rng(self, offset: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, offset])

    def _result(
        self,
        value: float,
        replicates: Sequence[float] | None,
        n_real: int,
        n_fake: int,
        bounds: tuple[float | None, float | None] = (None, None),
        **extra: Any,
    ) -> dict:
        """Result dict; the interval is the bootstrap spread re-centred on ``value`` and clipped to ``bounds``."""
        lo = hi = None
        if replicates is not None and len(replicates) > 0:
            reps = np.asarray(replicates, dtype=np.float64)
            reps = reps[np.isfinite(reps)]
            q_lo, q_hi = percentile_interval(reps, self.confidence)
            med = float(np.median(reps))
            lo, hi = float(value) - (med - q_lo), float(value) + (q_hi - med)
            if bounds[0] is not None:
                lo = max(lo, bounds[0])
            if bounds[1] is not None:
                hi = min(hi, bounds[1])
            extra = {"bootstrap_shift": float(reps.mean() - value), **extra}
        out = {
            "value": float(value),
            "ci_low": lo,
            "ci_high": hi,
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap if lo is not None else 0,
            "n_real": int(n_real),
            "n_fake": int(n_fake),
        }
        out.update(extra)
        return out


class _TwoSetFeatureMetric(GanMetric):
    """Keeps bounded reservoirs of real and generated feature vectors."""

    def __init__(self, max_samples: int | None = 2000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_samples = max_samples
        self._real = Reservoir(max_samples, seed=self.seed * 2 + 11)
        self._fake = Reservoir(max_samples, seed=self.seed * 2 + 12)
        self._dim: int | None = None

    def _check_dim(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if self._dim is None:
            self._dim = x.shape[1]
        elif x.shape[1] != self._dim:
            raise ValueError(
                f"`{name}` has feature dimension {x.shape[1]}, earlier batches had {self._dim}; use one extractor."
            )
        return x

    def update(self, y_pred: Any = None, y: Any = None) -> None:
        if y_pred is not None:
            self._add(self._check_dim(as_features(y_pred, "y_pred"), "y_pred"), real=False)
        if y is not None:
            self._add(self._check_dim(as_features(y, "y"), "y"), real=True)

    def _add(self, x: torch.Tensor, real: bool) -> None:
        (self._real if real else self._fake).add(x)

    def reset(self) -> None:
        self._real.reset()
        self._fake.reset()
        self._dim = None

    def _sets(self, min_n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self._real) < min_n or len(self._fake) < min_n:
            raise ValueError(
                f"{type(self).__name__} needs at least {min_n} real and {min_n} generated samples, "
                f"got {len(self._real)} and {len(self._fake)}."
            )
        return self._real.data.double(), self._fake.data.double()

    def _resample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, n, n)


class FIDMetric(_TwoSetFeatureMetric):
    """Frechet Inception Distance (Heusel et al., 2017) with streaming float64 statistics.

    The value uses the mean/covariance of all samples seen (memory ``O(D^2)``); the real statistics may come from
    the cache (:meth:`set_real_statistics`). The bootstrap interval resamples the reservoirs (``max_samples`` per
    set, so with more samples it describes the spread at ``max_samples``, i.e. it is conservative; when only real
    statistics are known, only the generated set is resampled). Each replicate costs one eigen-decomposition of
    ``min(D, N)`` size.
    """

    output_names = ("fid",)
    higher_is_better: ClassVar[dict[str, bool]] = {"fid": False}

    def __init__(self, n_bootstrap: int = 100, confidence: float = 0.95, seed: int = 0, max_samples: int | None = 2000) -> None:
        super().__init__(max_samples=max_samples, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        self._stats_real = FeatureStats()
        self._stats_fake = FeatureStats()

    def _add(self, x: torch.Tensor, real: bool) -> None:
        (self._stats_real if real else self._stats_fake).update(x)
        if self.n_bootstrap > 0:
            super()._add(x, real)

    def set_real_statistics(self, stats: FeatureStats, features: Any | None = None) -> None:
        """Use precomputed real statistics (e.g. from :class:`StatsCache`), optionally with real features for the
        bootstrap. Replaces any real data fed before."""
        if stats.n < 2:
            raise ValueError("Real statistics need at least 2 samples.")
        if self._dim is not None and stats.dim != self._dim:
            raise ValueError(f"Real statistics have dimension {stats.dim}, features fed so far have {self._dim}.")
        self._dim = stats.dim
        self._stats_real = stats
        self._real.reset()
        if features is not None and self.n_bootstrap > 0:
            self._real.add(as_features(features, "features"))

    def reset(self) -> None:
        super().reset()
        self._stats_real = FeatureStats()
        self._stats_fake = FeatureStats()

    def reset_generated(self) -> None:
        """Forget the generated samples only (real statistics are kept, e.g. between training evaluations)."""
        self._stats_fake = FeatureStats()
        self._fake.reset()

    def aggregate(self) -> dict[str, dict[str, Any]]:
        sr, sf = self._stats_real, self._stats_fake
        if sr.n < 2 or sf.n < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated samples, got {sr.n} and {sf.n}.")
        mu_r, cov_r = sr.mean, sr.cov
        value = frechet_distance(mu_r, cov_r, sf.mean, sf.cov)
        reps: list[float] | None = None
        if self.n_bootstrap > 0:
            rng = self._rng(1)
            xf = self._fake.data.double().numpy()
            xr = self._real.data.double().numpy() if len(self._real) >= 2 else None
            reps = []
            for _ in range(self.n_bootstrap):
                f = xf[self._resample(rng, len(xf))]
                if xr is not None:
                    reps.append(frechet_distance_from_features(xr[self._resample(rng, len(xr))], f))
                else:
                    bs = FeatureStats().update(f)
                    reps.append(frechet_distance(mu_r, cov_r, bs.mean, bs.cov))
        return {"fid": self._result(value, reps, sr.n, sf.n, (0.0, None), feature_dim=int(mu_r.shape[0]))}


class KIDMetric(_TwoSetFeatureMetric):
    """Kernel Inception Distance (Binkowski et al., 2018): unbiased MMD^2 with ``k(x, y) = (x.y / d + 1)^3``.

    The value is the mean over ``n_subsets`` random subsets of size ``min(subset_size, n_real, n_fake)`` (so it
    adapts to small datasets); ``std`` is their spread. The bootstrap interval resamples the full reservoirs and
    evaluates the full-sample U-statistic (copies of one sample never pair with each other). Subsets and
    replicates are weight columns, all evaluated with one matrix product per kernel (:func:`mmd2_weighted`).
    """

    output_names = ("kid",)
    higher_is_better: ClassVar[dict[str, bool]] = {"kid": False}

    def __init__(
        self,
        subset_size: int = 1000,
        n_subsets: int = 100,
        degree: int = 3,
        gamma: float | None = None,
        coef0: float = 1.0,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
        max_samples: int | None = 2000,
    ) -> None:
        super().__init__(max_samples=max_samples, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if subset_size < 2 or n_subsets < 1:
            raise ValueError(f"`subset_size` must be >= 2 and `n_subsets` >= 1, got {subset_size}, {n_subsets}.")
        self.subset_size, self.n_subsets = int(subset_size), int(n_subsets)
        self.degree, self.gamma, self.coef0 = int(degree), gamma, float(coef0)

    def aggregate(self) -> dict[str, dict[str, Any]]:
        x, y = self._sets(2)
        kxx = polynomial_kernel(x, x, self.degree, self.gamma, self.coef0)
        kyy = polynomial_kernel(y, y, self.degree, self.gamma, self.coef0)
        kxy = polynomial_kernel(x, y, self.degree, self.gamma, self.coef0)
        m = min(self.subset_size, x.shape[0], y.shape[0])
        mean, std, m = _kid_subsets(kxx, kyy, kxy, m, self.n_subsets, self._rng(1))
        reps = None
        if self.n_bootstrap > 0:
            rng = self._rng(2)
            wx = self._weights(rng, x.shape[0])
            wy = self._weights(rng, y.shape[0])
            reps = mmd2_weighted(kxx, kyy, kxy, wx, wy).tolist()
        return {
            "kid": self._result(
                mean, reps, self._real.seen, self._fake.seen, std=std, subset_size=m,
                n_subsets=1 if m == x.shape[0] == y.shape[0] else self.n_subsets,
            )
        }

    def _weights(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        w = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(self.n_bootstrap)], axis=1)
        return torch.from_numpy(w.astype(np.float64))


class _SubsetProtocolMetric(_TwoSetFeatureMetric):
    """The thyroid paper's protocol: average of ``n_tests`` tests on ``subset_size`` random samples of each set."""

    def __init__(
        self,
        n_tests: int = 10,
        subset_size: int | None = 100,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
        max_samples: int | None = 2000,
    ) -> None:
        super().__init__(max_samples=max_samples, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if n_tests < 1 or (subset_size is not None and subset_size < 2):
            raise ValueError(f"`n_tests` must be >= 1 and `subset_size` >= 2 or None, got {n_tests}, {subset_size}.")
        self.n_tests = int(n_tests)
        self.subset_size = subset_size

    def _test(self, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor | None, ir: np.ndarray, jf: np.ndarray) -> Any:
        raise NotImplementedError

    def _protocol(
        self, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor | None, rpos: np.ndarray, fpos: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        m = min(len(rpos), len(fpos)) if self.subset_size is None else min(self.subset_size, len(rpos), len(fpos))
        out = []
        for _ in range(self.n_tests if self.subset_size is not None else 1):
            ir = rpos if m == len(rpos) else rng.choice(rpos, m, replace=False)
            jf = fpos if m == len(fpos) else rng.choice(fpos, m, replace=False)
            out.append(np.atleast_1d(self._test(x, y, d, np.asarray(ir), np.asarray(jf))))
        return np.mean(np.stack(out), axis=0)

    def _needs_distances(self) -> bool:
        return True

    def _run(self) -> tuple[np.ndarray, list[np.ndarray], int]:
        x, y = self._sets(2)
        d = pairwise_sqdist(torch.cat([x, y]), torch.cat([x, y])) if self._needs_distances() else None
        nx, ny = x.shape[0], y.shape[0]
        rng = self._rng(1)
        value = self._protocol(x, y, d, np.arange(nx), np.arange(ny), rng)
        reps = []
        brng = self._rng(2)
        for _ in range(self.n_bootstrap):
            reps.append(self._protocol(x, y, d, self._resample(brng, nx), self._resample(brng, ny), brng))
        m = min(nx, ny) if self.subset_size is None else min(self.subset_size, nx, ny)
        return value, reps, m

    def _protocol_result(
        self, value: np.ndarray, reps: list[np.ndarray], m: int, bounds: tuple[float | None, float | None], **extra: Any
    ) -> dict:
        """:meth:`_result` of :meth:`_run`'s first output, with the subset size and the number of tests."""
        return self._result(
            float(value[0]), [float(r[0]) for r in reps] if reps else None, self._real.seen, self._fake.seen, bounds,
            **extra, subset_size=m, n_tests=self.n_tests if self.subset_size is not None else 1,
        )


class MMDMetric(_SubsetProtocolMetric):
    """Maximum Mean Discrepancy with the thyroid paper's kernel, bandwidth and protocol.

    ``kernel="gaussian"`` (default): Xu et al. 2018 / alpha-WGAN-GP, ``exp(-|x-y|^2 / (2 sigma^2 s))`` with ``s`` the
    mean squared distance within the real subset and ``sigma = 1``, reported as ``sqrt(MMD^2_biased)`` (the scale of
    the paper's 0.109 - 0.160). ``kernel="linear"``: MONAI's unbiased linear-kernel ``compute_mmd``. The value
    averages ``n_tests`` tests on ``subset_size`` random samples of each set (paper: 10 tests of 100 images);
    ``subset_size=None`` uses all samples once.
    """

    output_names = ("mmd",)
    higher_is_better: ClassVar[dict[str, bool]] = {"mmd": False}

    def __init__(
        self,
        kernel: str = "gaussian",
        sigma: float = 1.0,
        n_tests: int = 10,
        subset_size: int | None = 100,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
        max_samples: int | None = 2000,
    ) -> None:
        super().__init__(
            n_tests=n_tests, subset_size=subset_size, max_samples=max_samples, n_bootstrap=n_bootstrap,
            confidence=confidence, seed=seed,
        )
        if kernel not in ("gaussian", "linear"):
            raise ValueError(f"`kernel` must be 'gaussian' or 'linear', got {kernel!r}.")
        if sigma <= 0:
            raise ValueError(f"`sigma` must be > 0, got {sigma}.")
        self.kernel, self.sigma = kernel, float(sigma)

    def _needs_distances(self) -> bool:
        return self.kernel == "gaussian"

    def _test(self, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor | None, ir: np.ndarray, jf: np.ndarray) -> float:
        if self.kernel == "linear":
            return float(compute_mmd(x[torch.from_numpy(ir)], y[torch.from_numpy(jf)], None))
        nx = x.shape[0]
        r = torch.from_numpy(ir)
        f = torch.from_numpy(jf) + nx
        return gaussian_mmd(d[r][:, r], d[f][:, f], d[r][:, f], self.sigma)  # type: ignore[index]

    def aggregate(self) -> dict[str, dict[str, Any]]:
        value, reps, m = self._run()
        bounds = (0.0, None) if self.kernel == "gaussian" else (None, None)
        return {"mmd": self._protocol_result(value, reps, m, bounds, kernel=self.kernel)}


class OneNNMetric(_SubsetProtocolMetric):
    """Leave-one-out 1-nearest-neighbour two-sample accuracy (Lopez-Paz & Oquab 2017; Xu et al. 2018).

    A 1-NN classifier labels each sample of the union (real = 1, generated = 0) by its nearest other sample.
    0.5 is ideal; near 1 the sets are separable; near 0 the generator reproduces real samples (each copy is the
    nearest neighbour of its original). Protocol as the thyroid paper: mean of ``n_tests`` tests with
    ``subset_size`` samples per set. Extra outputs ``acc_real``/``acc_fake``.
    """

    output_names = ("1nn",)
    higher_is_better: ClassVar[dict[str, bool]] = {"1nn": False}  # closer to 0.5 is better; values below 0.5 mean memorization

    def _test(self, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor | None, ir: np.ndarray, jf: np.ndarray) -> np.ndarray:
        nx = x.shape[0]
        u = torch.from_numpy(np.concatenate([ir, jf + nx]))
        labels = torch.cat([torch.ones(len(ir)), torch.zeros(len(jf))])
        return np.asarray(one_nn_accuracy(d[u][:, u], labels, ids=u))  # type: ignore[index]

    def aggregate(self) -> dict[str, dict[str, Any]]:
        value, reps, m = self._run()
        return {"1nn": self._protocol_result(value, reps, m, (0.0, 1.0), acc_real=float(value[1]), acc_fake=float(value[2]))}


class PrecisionRecallMetric(_TwoSetFeatureMetric):
    """Improved precision and recall (Kynkaanniemi et al., 2019) with k-NN hyperspheres (``k = 3``).

    Precision: share of generated samples inside the real manifold estimate (fidelity); recall: share of real
    samples inside the generated manifold estimate (coverage). Both in ``[0, 1]``, higher is better.
    """

    output_names = ("precision", "recall")
    higher_is_better: ClassVar[dict[str, bool]] = {"precision": True, "recall": True}

    def __init__(
        self, k: int = 3, n_bootstrap: int = 100, confidence: float = 0.95, seed: int = 0, max_samples: int | None = 2000
    ) -> None:
        super().__init__(max_samples=max_samples, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if k < 1:
            raise ValueError(f"`k` must be >= 1, got {k}.")
        self.k = int(k)

    def aggregate(self) -> dict[str, dict[str, Any]]:
        x, y = self._sets(self.k + 1)
        nx = x.shape[0]
        d = pairwise_sqdist(torch.cat([x, y]), torch.cat([x, y]))
        d_rr, d_ff, d_rf = sorted_neighbours(d[:nx, :nx]), sorted_neighbours(d[nx:, nx:]), d[:nx, nx:]
        precision, recall = precision_recall(d_rr, d_ff, d_rf, self.k)
        rp: list[float] = []
        rr: list[float] = []
        rng = self._rng(2)
        for _ in range(self.n_bootstrap):
            wr = torch.from_numpy(np.bincount(rng.integers(0, nx, nx), minlength=nx))
            wf = torch.from_numpy(np.bincount(rng.integers(0, y.shape[0], y.shape[0]), minlength=y.shape[0]))
            p, r = precision_recall(d_rr, d_ff, d_rf, self.k, wr, wf)
            rp.append(p)
            rr.append(r)
        n_r, n_f = self._real.seen, self._fake.seen
        return {
            "precision": self._result(precision, rp if rp else None, n_r, n_f, (0.0, 1.0), k=self.k),
            "recall": self._result(recall, rr if rr else None, n_r, n_f, (0.0, 1.0), k=self.k),
        }


class InceptionScoreMetric(GanMetric):
    """Inception Score (Salimans et al., 2016) of generated samples from class logits (or probabilities).

    ``exp(E_x KL(p(y|x) || p(y)))``, mean over ``n_splits`` splits (adapted to small N), ``std`` across splits.
    Only meaningful with a classifier trained on relevant classes (ImageNet Inception for natural images; for
    medical data a classifier of the dataset's classes via :class:`MonaiNetworkFeatures`).
    """

    output_names = ("is",)
    input_kind = "logits"
    higher_is_better: ClassVar[dict[str, bool]] = {"is": True}

    def __init__(
        self,
        n_splits: int = 10,
        from_logits: bool = True,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
        max_samples: int | None = 10000,
    ) -> None:
        super().__init__(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        self.n_splits, self.from_logits = int(n_splits), bool(from_logits)
        self._logits = Reservoir(max_samples, seed=self.seed * 2 + 13)

    def update(self, y_pred: Any = None, y: Any = None) -> None:
        if y is not None:
            raise ValueError("The Inception Score uses generated samples only; pass their logits as `y_pred`.")
        self._logits.add(as_features(y_pred, "y_pred"))

    def reset(self) -> None:
        self._logits.reset()

    def aggregate(self) -> dict[str, dict[str, Any]]:
        if len(self._logits) < 2:
            raise ValueError(f"The Inception Score needs at least 2 generated samples, got {len(self._logits)}.")
        p = self._logits.data.double()
        mean, std = inception_score(p, self.n_splits, self.from_logits)
        rng = self._rng(2)
        reps = [inception_score(p[torch.from_numpy(rng.integers(0, len(p), len(p)))], self.n_splits, self.from_logits)[0]
                for _ in range(self.n_bootstrap)]
        return {"is": self._result(mean, reps or None, 0, self._logits.seen, (1.0, None), std=std, n_splits=max(1, min(self.n_splits, len(p) // 2)))}


class MSSSIMDiversityMetric(GanMetric):
    """Diversity of generated images as mean pairwise MS-SSIM, with the thyroid paper's protocol.

    Each of ``n_tests`` tests draws ``n_images`` random generated images and averages MS-SSIM over all their
    pairs; the value is the mean over tests (paper: 10 tests of 32 images; lower = more diverse, compare with the
    real set's value, reported as ``real_value`` when real images are fed). MS-SSIM is MONAI's
    ``MultiScaleSSIMMetric`` on images mapped from ``[-1, 1]`` to ``[0, 1]`` (``data_range=1``; SSIM's luminance
    term assumes non-negative intensities). The interval resamples the tests. Images are kept in seeded reservoirs
    of ``max_images``. MONAI's MS-SSIM needs ``min(size) > (kernel_size - 1) * 2 ** (n_scales - 1)``; for smaller
    images (e.g. 64 x 64 needs at most 3 scales with an 11-wide kernel) the coarsest scales are dropped and the
    remaining weights renormalised, and the number of scales used is reported as ``n_scales``.
    """

    output_names = ("msssim",)
    input_kind = "images"
    higher_is_better: ClassVar[dict[str, bool]] = {"msssim": False}

    def __init__(
        self,
        spatial_dims: int = 2,
        n_tests: int = 10,
        n_images: int = 32,
        kernel_size: int = 11,
        kernel_sigma: float = 1.5,
        weights: Sequence[float] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
        max_images: int = 320,
        pair_batch: int = 32,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        super().__init__(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if n_tests < 1 or n_images < 2:
            raise ValueError(f"`n_tests` must be >= 1 and `n_images` >= 2, got {n_tests}, {n_images}.")
        self.spatial_dims, self.n_tests, self.n_images, self.pair_batch = int(spatial_dims), int(n_tests), int(n_images), int(pair_batch)
        self.kernel_size, self.kernel_sigma, self.weights = int(kernel_size), float(kernel_sigma), tuple(weights)
        self._ms_ssim: dict[int, MultiScaleSSIMMetric] = {}
        self.n_scales_used: int | None = None
        self._fake = Reservoir(max_images, seed=self.seed * 2 + 14)
        self._real = Reservoir(max_images, seed=self.seed * 2 + 15)

    def _images(self, x: Any, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != self.spatial_dims + 2:
            raise ValueError(f"`{name}` must be a (N, C, *spatial) tensor with {self.spatial_dims} spatial dims.")
        x = x.detach().float().cpu()
        lo, hi = float(x.amin()), float(x.amax())
        if lo < -1.05 or hi > 1.05:
            raise ValueError(f"`{name}` must be scaled to [-1, 1] like the generator output, got [{lo:.4g}, {hi:.4g}].")
        return x

    def update(self, y_pred: Any = None, y: Any = None) -> None:
        if y_pred is not None:
            self._fake.add(self._images(y_pred, "y_pred"))
        if y is not None:
            self._real.add(self._images(y, "y"))

    def reset(self) -> None:
        self._fake.reset()
        self._real.reset()

    def _metric_for(self, spatial_shape: Sequence[int]) -> MultiScaleSSIMMetric:
        """MONAI's MS-SSIM with as many of the configured scales as the image size allows."""
        size = int(min(spatial_shape))
        n = len(self.weights)
        while n > 1 and size <= (self.kernel_size - 1) * 2 ** (n - 1):
            n -= 1
        if size <= self.kernel_size - 1:
            raise ValueError(f"MS-SSIM needs images larger than the {self.kernel_size}-wide kernel, got {tuple(spatial_shape)}.")
        if n not in self._ms_ssim:
            w = torch.tensor(self.weights[:n], dtype=torch.float64)
            self._ms_ssim[n] = MultiScaleSSIMMetric(
                spatial_dims=self.spatial_dims, data_range=1.0, kernel_size=self.kernel_size,
                kernel_sigma=self.kernel_sigma, weights=tuple((w / w.sum()).tolist()), reduction="none",
            )
        self.n_scales_used = n
        return self._ms_ssim[n]

    def pairwise(self, images: torch.Tensor) -> torch.Tensor:
        """MS-SSIM of all pairs ``i < j`` of ``images`` (in ``[-1, 1]``), ``(k (k - 1) / 2,)``."""
        ms_ssim = self._metric_for(images.shape[2:])
        x = (images.clamp(-1, 1) + 1) / 2
        ii, jj = torch.triu_indices(len(x), len(x), offset=1)
        vals = []
        for s in range(0, len(ii), self.pair_batch):
            a, b = x[ii[s : s + self.pair_batch]], x[jj[s : s + self.pair_batch]]
            vals.append(ms_ssim(a, b).reshape(len(a), -1).mean(1))
        ms_ssim.reset()
        return torch.cat(vals).double()

    def _tests(self, reservoir: Reservoir, rng: np.random.Generator) -> np.ndarray:
        images = reservoir.data
        k = min(self.n_images, len(images))
        out = []
        for _ in range(self.n_tests):
            idx = rng.choice(len(images), k, replace=False)
            out.append(float(self.pairwise(images[torch.from_numpy(np.sort(idx))]).mean()))
        return np.asarray(out)

    def aggregate(self) -> dict[str, dict[str, Any]]:
        if len(self._fake) < 2:
            raise ValueError(f"MS-SSIM diversity needs at least 2 generated images, got {len(self._fake)}.")
        tests = self._tests(self._fake, self._rng(1))
        rng = self._rng(2)
        reps = [float(tests[rng.integers(0, len(tests), len(tests))].mean()) for _ in range(self.n_bootstrap)]
        extra: dict[str, Any] = {"n_tests": self.n_tests, "n_images": min(self.n_images, len(self._fake)),
                                 "n_scales": self.n_scales_used}
        if len(self._real) >= 2:
            extra["real_value"] = float(self._tests(self._real, self._rng(3)).mean())
        return {"msssim": self._result(float(tests.mean()), reps or None, self._real.seen, self._fake.seen, (0.0, 1.0), **extra)}


class PerPixelAccuracyMetric(GanMetric):
    """Per-pixel accuracy of paired outputs (GA-UNet, after pix2pix's FCN-score and Wang & Gupta 2016).

    Three modes, by input:

    * ``segmenter`` given: ``y_pred`` generated images are segmented (``argmax`` over channels, or ``> 0`` for one
      channel) and compared with the label maps ``y`` (the FCN-score protocol);
    * integer/bool ``y_pred`` and ``y``: label maps compared directly;

    Inputs are channel-first batches ``(N, C, *spatial)`` (label maps with ``C = 1``).
    * float images: a pixel is correct when all its channels differ by at most ``tolerance`` (in the ``[-1, 1]``
      range; default 0.05 = 2.5 % of the range, about 6 grey levels of an 8-bit image).

    The value is the mean of per-pair accuracies (``ignore_index`` pixels of ``y`` excluded); the interval
    resamples pairs.
    """

    output_names = ("pa",)
    input_kind = "paired"
    higher_is_better: ClassVar[dict[str, bool]] = {"pa": True}

    def __init__(
        self,
        tolerance: float = 0.05,
        segmenter: Callable[[torch.Tensor], torch.Tensor] | None = None,
        ignore_index: int | None = None,
        n_bootstrap: int = 100,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        super().__init__(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if tolerance < 0:
            raise ValueError(f"`tolerance` must be >= 0, got {tolerance}.")
        self.tolerance, self.segmenter, self.ignore_index = float(tolerance), segmenter, ignore_index
        self._acc: list[float] = []

    def update(self, y_pred: Any = None, y: Any = None) -> None:
        if not isinstance(y_pred, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("Per-pixel accuracy needs paired tensors: `y_pred` (outputs) and `y` (targets).")
        if y.ndim < 3 or y.shape[0] != y_pred.shape[0]:
            raise ValueError(
                f"`y` must be a channel-first batch (N, C, *spatial) paired with `y_pred`, got {tuple(y.shape)} and "
                f"{tuple(y_pred.shape)}."
            )
        if self.segmenter is not None:
            if y.shape[1] != 1:
                raise ValueError(f"With a segmenter, `y` must be a label map (N, 1, *spatial), got {tuple(y.shape)}.")
            with torch.no_grad():
                out = self.segmenter(y_pred)
            pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).long()
            target = y[:, 0].cpu()
            correct = pred.cpu() == target.long()
        else:
            if y_pred.shape != y.shape:
                raise ValueError(f"`y_pred` {tuple(y_pred.shape)} and `y` {tuple(y.shape)} must have the same shape.")
            exact = not (y_pred.is_floating_point() or y.is_floating_point())
            a, b = y_pred.detach().cpu(), y.detach().cpu()
            same = (a == b) if exact else ((a.double() - b.double()).abs() <= self.tolerance + 1e-12)
            correct = same.all(dim=1)  # a pixel is correct when all its channels are
            target = b[:, 0]
        valid = torch.ones_like(correct) if self.ignore_index is None else (target != self.ignore_index)
        c = (correct & valid).reshape(len(correct), -1).sum(1).double()
        v = valid.reshape(len(valid), -1).sum(1).double()
        if (v == 0).any():
            raise ValueError("A pair has no valid pixels (all equal to `ignore_index`).")
        self._acc.extend((c / v).tolist())

    def reset(self) -> None:
        self._acc = []

    def aggregate(self) -> dict[str, dict[str, Any]]:
        if not self._acc:
            raise ValueError("Per-pixel accuracy has no pairs; feed (y_pred, y) first.")
        a = np.asarray(self._acc)
        rng = self._rng(2)
        reps = [float(a[rng.integers(0, len(a), len(a))].mean()) for _ in range(self.n_bootstrap)]
        return {"pa": self._result(float(a.mean()), reps or None, len(a), len(a), (0.0, 1.0), tolerance=self.tolerance)}


METRICS: dict[str, type[GanMetric]] = {
    "fid": FIDMetric,
    "kid": KIDMetric,
    "is": InceptionScoreMetric,
    "mmd": MMDMetric,
    "1nn": OneNNMetric,
    "msssim": MSSSIMDiversityMetric,
    "prd": PrecisionRecallMetric,
    "pa": PerPixelAccuracyMetric,
}
_ALIASES = {
    "inception_score": "is",
    "one_nn": "1nn",
    "ms_ssim": "msssim",
    "ms-ssim": "msssim",
    "precision_recall": "prd",
    "pr": "prd",
    "per_pixel_accuracy": "pa",
}


def canonical_metric_name(name: str) -> str:
    """Canonical registry name of a metric (``fid``, ``kid``, ``is``, ``mmd``, ``1nn``, ``msssim``, ``prd``, ``pa``)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; choose from {sorted(METRICS)} (aliases {sorted(_ALIASES)}).")
    return key


def create_metric(name: str, **kwargs: Any) -> GanMetric:
    """Instantiate a metric by registry name with keyword arguments (unknown keywords raise ``TypeError``)."""
    return METRICS[canonical_metric_name(name)](**kwargs)
