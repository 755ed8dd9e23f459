# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Paired bootstrap of two arms (issue 14): known answers and the verdict logic."""

from __future__ import annotations

import numpy as np
import pytest

from monai_gan_aug.metrics.paired import PatientScores, arm_metric, bootstrap_interval, paired_bootstrap, verdict

SEEDS, PATIENTS = [0, 1, 2, 3, 4], [f"P{i}" for i in range(12)]


def _scores(values, den=1.0):
    return PatientScores(values, np.full_like(np.asarray(values, float), den), SEEDS, PATIENTS)


def test_constant_difference_gives_zero_width_interval():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, (5, 12))
    ci = paired_bootstrap(_scores(base + 0.07), _scores(base), n_boot=500)
    assert ci["difference"] == pytest.approx(0.07)
    assert ci["low"] == pytest.approx(0.07) and ci["high"] == pytest.approx(0.07)
    assert verdict(ci) == "helps" and verdict(ci, higher_is_better=False) == "hurts"


def test_pure_noise_interval_covers_zero():
    covered = 0
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        a, b = rng.normal(0.5, 0.1, (5, 12)), rng.normal(0.5, 0.1, (5, 12))
        ci = paired_bootstrap(_scores(a), _scores(b), n_boot=400, seed=k)
        assert ci["low"] < ci["high"]
        covered += ci["low"] <= 0 <= ci["high"]
    assert covered >= 17  # a 95 % interval covers the true 0 in most of 20 noise draws


def test_ratio_metric_is_a_ratio_of_sums():
    # sensitivity: lesions found / lesions, per patient; patient P0 has 3 lesions, the others 1
    den = np.ones((5, 12))
    den[:, 0] = 3
    num = np.zeros((5, 12))
    num[:, 0] = 3  # all of P0's lesions found, none elsewhere
    s = PatientScores(num, den, SEEDS, PATIENTS)
    assert s.value() == pytest.approx(3 / 14)
    assert arm_metric(s)["std"] == 0.0
    low, high = bootstrap_interval(s, n_boot=300)
    assert 0 <= low <= 3 / 14 <= high <= 1


def test_from_records_and_pairing_checks():
    records = {0: [{"patient": "A", "hit": 1, "n": 2}, {"patient": "B", "hit": 0, "n": 1}],
               1: [{"patient": "A", "hit": 2, "n": 2}, {"patient": "B", "hit": 1, "n": 1}]}
    s = PatientScores.from_records(records, "hit", "n")
    assert s.per_seed().tolist() == pytest.approx([1 / 3, 1.0])
    other = PatientScores.from_records({0: records[0], 2: records[1]}, "hit", "n")
    with pytest.raises(ValueError, match="not paired"):
        paired_bootstrap(s, other)
    with pytest.raises(ValueError, match="shape"):
        PatientScores(np.zeros((2, 3)), 1.0, [0, 1], ["A", "B"])


@pytest.mark.parametrize("low,high,hib,expected", [
    (0.01, 0.2, True, "helps"), (-0.2, -0.01, True, "hurts"), (-0.1, 0.1, True, "cannot tell"),
    (0.0, 0.1, True, "cannot tell"), (0.01, 0.2, False, "hurts"), (-0.2, -0.01, False, "helps"),
    (float("nan"), 0.1, True, "cannot tell"),
])
def test_verdict(low, high, hib, expected):
    assert verdict({"low": low, "high": high}, higher_is_better=hib) == expected
