# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Paired comparison of two arms of a downstream experiment: bootstrap confidence interval and verdict.

An arm (e.g. "real + GAN") and its baseline (e.g. "real + classic augmentation") are trained with the same seeds
on the same real subset and scored on the same real test patients. Their difference is uncertain for two reasons:
the training seed (network initialisation, sample order) and which patients happen to be in the test split.
:func:`paired_bootstrap` resamples both, with replacement and *jointly for the two arms* (the same seeds and the
same patients in every replicate), and recomputes the metric of each arm as a ratio of sums over the drawn
patients, so sensitivity (lesions found / lesions), false positives per slice (FPs / slices) and mean Dice (sum of
per-image Dice / images) are all handled exactly:

    metric(arm, seed, patients) = sum_p num[arm, seed, p] / sum_p den[arm, seed, p]
    difference = mean over drawn seeds of metric(arm) - metric(baseline)

:func:`verdict` turns the interval into "helps", "hurts" or "cannot tell" (the interval crosses zero).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["PatientScores", "arm_metric", "paired_bootstrap", "bootstrap_interval", "verdict", "VERDICTS"]

VERDICTS = ("helps", "hurts", "cannot tell")


class PatientScores:
    """Per-seed, per-test-patient numerators and denominators of one metric of one arm.

    Args:
        num: ``(n_seeds, n_patients)`` numerators (e.g. lesions found per patient).
        den: ``(n_seeds, n_patients)`` denominators (e.g. lesions per patient); broadcastable, e.g. ``(1, n_patients)``
            when they do not depend on the seed. A patient with denominator 0 contributes nothing.
        seeds: the seed of each row, to check that two arms are paired.
        patients: the patient of each column, likewise.
    """

    def __init__(self, num: Any, den: Any, seeds: Sequence[Any], patients: Sequence[Any]) -> None:
        num = np.asarray(num, dtype=np.float64)
        den = np.broadcast_to(np.asarray(den, dtype=np.float64), num.shape).copy()
        if num.ndim != 2:
            raise ValueError(f"num must be (n_seeds, n_patients), got shape {num.shape}.")
        if num.shape != (len(seeds), len(patients)):
            raise ValueError(f"num has shape {num.shape} for {len(seeds)} seeds and {len(patients)} patients.")
        if not (np.isfinite(num).all() and np.isfinite(den).all()) or (den < 0).any():
            raise ValueError("num and den must be finite, and den >= 0.")
        self.num, self.den = num, den
        self.seeds, self.patients = list(seeds), list(patients)

    @classmethod
    def from_records(
        cls, records: Mapping[Any, Sequence[Mapping[str, Any]]], num_key: str, den_key: str | None = None,
        patient_key: str = "patient",
    ) -> PatientScores:
        """From per-seed lists of per-test-image records (``{"patient": ..., num_key: x, den_key: y}``), summed per
        patient. Without ``den_key`` each image counts 1 (the metric is the mean of ``num_key`` over images)."""
        seeds = list(records)
        if not seeds:
            raise ValueError("no runs to compare.")
        patients = sorted({r[patient_key] for s in seeds for r in records[s]}, key=str)
        col = {p: j for j, p in enumerate(patients)}
        num = np.zeros((len(seeds), len(patients)))
        den = np.zeros_like(num)
        for i, s in enumerate(seeds):
            for r in records[s]:
                j = col[r[patient_key]]
                num[i, j] += float(r[num_key])
                den[i, j] += float(r[den_key]) if den_key else 1.0
        return cls(num, den, seeds, patients)

    def value(self) -> float:
        """The metric over all patients, averaged over seeds."""
        return float(np.mean(per_seed(self.num, self.den)))

    def per_seed(self) -> np.ndarray:
        return per_seed(self.num, self.den)


def per_seed(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Metric of each row (seed): sum of numerators over sum of denominators (nan where the denominators are 0)."""
    n, d = num.sum(axis=-1), den.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)


def arm_metric(scores: PatientScores) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of one arm's metric, and the per-seed values."""
    v = scores.per_seed()
    finite = v[np.isfinite(v)]
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        "n": int(finite.size),
        "values": [float(x) for x in v],
    }


def _check_paired(a: PatientScores, b: PatientScores) -> None:
    if a.seeds != b.seeds:
        raise ValueError(f"the arms are not paired: seeds {a.seeds} vs {b.seeds}.")
    if a.patients != b.patients:
        raise ValueError("the arms are not paired: they were scored on different test patients.")


def _replicates(n_seeds: int, n_patients: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_seeds, (n_boot, n_seeds)), rng.integers(0, n_patients, (n_boot, n_patients))


def _bootstrap_values(scores: Sequence[PatientScores], seed_idx: np.ndarray, pat_idx: np.ndarray) -> list[np.ndarray]:
    """For each replicate, each arm's metric averaged over the drawn seeds, on the drawn patients."""
    out = []
    for s in scores:
        # num[seeds_b][:, patients_b] summed over patients -> (n_boot, n_seeds)
        num = s.num[seed_idx[:, :, None], pat_idx[:, None, :]].sum(-1)
        den = s.den[seed_idx[:, :, None], pat_idx[:, None, :]].sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        out.append(m)
    return out


def paired_bootstrap(
    arm: PatientScores, baseline: PatientScores, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Difference ``arm - baseline`` of the metric (averaged over seeds) with a percentile bootstrap interval that
    resamples seeds and test patients, the same draws for both arms.

    Returns ``{"difference", "low", "high", "level", "n_boot", "n_seeds", "n_patients"}``; replicates whose
    metric is undefined (no denominator among the drawn patients) are dropped.
    """
    _check_paired(arm, baseline)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    seed_idx, pat_idx = _replicates(len(arm.seeds), len(arm.patients), int(n_boot), seed)
    a, b = _bootstrap_values([arm, baseline], seed_idx, pat_idx)
    with warnings.catch_warnings():  # replicates whose drawn patients have no denominator are dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        diffs = np.nanmean(a - b, axis=1) if a.size else np.zeros(0)
        point = float(np.nanmean(arm.per_seed() - baseline.per_seed()))
    diffs = diffs[np.isfinite(diffs)]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = (np.percentile(diffs, [tail, 100.0 - tail]) if diffs.size else (np.nan, np.nan))
    return {
        "difference": point,
        "low": float(low),
        "high": float(high),
        "level": float(level),
        "n_boot": int(diffs.size),
        "n_seeds": len(arm.seeds),
        "n_patients": len(arm.patients),
    }


def bootstrap_interval(scores: PatientScores, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of one arm's metric (seeds and patients resampled): the bands of the plots."""
    seed_idx, pat_idx = _replicates(len(scores.seeds), len(scores.patients), int(n_boot), seed)
    (m,) = _bootstrap_values([scores], seed_idx, pat_idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v = np.nanmean(m, axis=1)
    v = v[np.isfinite(v)]
    tail = (1.0 - level) / 2.0 * 100.0
    if not v.size:
        return float("nan"), float("nan")
    low, high = np.percentile(v, [tail, 100.0 - tail])
    return float(low), float(high)


def verdict(interval: Mapping[str, float], higher_is_better: bool = True) -> str:
    """``"helps"`` when the whole interval lies on the better side of zero, ``"hurts"`` when it lies on the worse
    side, else ``"cannot tell"`` (the interval touches or crosses zero, or is undefined)."""
    low, high = float(interval["low"]), float(interval["high"])
    if not (np.isfinite(low) and np.isfinite(high)):
        return "cannot tell"
    if not higher_is_better:
        low, high = -high, -low
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts"
    return "cannot tell"
