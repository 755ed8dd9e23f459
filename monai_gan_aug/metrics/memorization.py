# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Memorization check: are synthetic samples closer to the training set than unseen real samples are?

For every synthetic sample the Euclidean distance to its nearest training sample (in feature space) is compared
with the same distance for held-out real samples (the test set): a generator that generalises produces samples
whose nearest-training distances look like those of unseen real images, a memorizing one produces near-copies
(distance far below what unseen real images reach). A synthetic sample is flagged as a near-copy when its
distance is at most ``factor`` times the ``quantile`` of the held-out distances; by construction about
``quantile`` of the samples of a non-memorizing generator are flagged, so compare ``fraction_flagged`` with
``quantile``. A one-sided Mann-Whitney U test (synthetic distances smaller than held-out ones) summarises the
whole set. Without a test set the reference is the leave-one-out nearest-neighbour distance within the training
set (weaker: it is biased low when the training set holds near-duplicates, e.g. neighbouring slices).

Related: the "data-copying" test of Meehan et al. (AISTATS 2020) and the 1-NN two-sample accuracy (values below
0.5 signal copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_gan_aug.metrics.functional import as_features, pairwise_sqdist

__all__ = ["memorization_check", "nearest_neighbours"]


def nearest_neighbours(
    queries: Any, reference: Any, exclude_self: bool = False, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each query to its nearest reference sample, computed in row blocks.

    Args:
        queries: ``(Nq, D)`` features.
        reference: ``(Nr, D)`` features.
        exclude_self: queries are the reference set; a sample is not its own neighbour.
        block: query rows per block (memory ``block x Nr``).

    Returns:
        ``(distances (Nq,), indices into reference (Nq,))``.
    """
    q = as_features(queries, "queries")
    r = as_features(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"Feature dimensions differ: {q.shape[1]} vs {r.shape[1]}.")
    if r.shape[0] < (2 if exclude_self else 1):
        raise ValueError("The reference set is too small for a nearest-neighbour search.")
    dists, idx = [], []
    for s in range(0, q.shape[0], block):
        d = pairwise_sqdist(q[s : s + block], r)
        if exclude_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + s] = float("inf")
        v, i = d.min(dim=1)
        dists.append(v.sqrt())
        idx.append(i)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


def memorization_check(
    train_features: Any,
    fake_features: Any,
    test_features: Any | None = None,
    train_names: Sequence[str] | None = None,
    fake_names: Sequence[str] | None = None,
    quantile: float = 0.01,
    factor: float = 1.0,
    max_report: int | None = 100,
) -> dict[str, Any]:
    """Flag synthetic samples that are near-copies of training samples.

    Args:
        train_features: ``(Nt, D)`` features of the generator's training set.
        fake_features: ``(Nf, D)`` features of synthetic samples.
        test_features: ``(Ne, D)`` features of held-out real samples (reference distribution); ``None`` uses the
            leave-one-out distances within the training set.
        train_names: names (file paths) of the training samples, for the report.
        fake_names: names of the synthetic samples.
        quantile: quantile of the reference distances used as threshold (expected false-positive rate).
        factor: multiplier of the threshold (``< 1`` stricter).
        max_report: maximal number of near-copies listed (closest first); ``None`` lists all.

    Returns:
        Summary dict with ``threshold``, ``n_flagged``, ``fraction_flagged``, medians, ``mannwhitney_p`` and
        ``near_copies``: ``[{"fake", "train", "distance", "ratio"}]`` with ``ratio`` = distance / median reference
        distance.
    """
    from scipy.stats import mannwhitneyu

    if not 0 < quantile < 1 or factor <= 0:
        raise ValueError(f"`quantile` must be in (0, 1) and `factor` > 0, got {quantile}, {factor}.")
    train = as_features(train_features, "train_features")
    fake = as_features(fake_features, "fake_features")
    for names, n, arg in ((train_names, train.shape[0], "train_names"), (fake_names, fake.shape[0], "fake_names")):
        if names is not None and len(names) != n:
            raise ValueError(f"`{arg}` has {len(names)} entries for {n} samples.")
    d_fake, nn_fake = nearest_neighbours(fake, train)
    if test_features is not None:
        d_ref, _ = nearest_neighbours(test_features, train)
        reference = "test"
    else:
        d_ref, _ = nearest_neighbours(train, train, exclude_self=True)
        reference = "train_leave_one_out"
    threshold = factor * float(np.quantile(d_ref, quantile))
    median_ref = float(np.median(d_ref))
    flagged = np.flatnonzero(d_fake <= threshold)
    flagged = flagged[np.argsort(d_fake[flagged], kind="stable")]
    p_value = float(mannwhitneyu(d_fake, d_ref, alternative="less").pvalue) if len(d_ref) > 0 else float("nan")
    report = []
    for i in flagged if max_report is None else flagged[:max_report]:
        j = int(nn_fake[i])
        report.append(
            {
                "fake": fake_names[i] if fake_names is not None else int(i),
                "train": train_names[j] if train_names is not None else j,
                "distance": float(d_fake[i]),
                "ratio": float(d_fake[i] / median_ref) if median_ref > 0 else float("inf"),
            }
        )
    return {
        "reference": reference,
        "n_train": int(train.shape[0]),
        "n_fake": int(fake.shape[0]),
        "n_reference": len(d_ref),
        "quantile": float(quantile),
        "factor": float(factor),
        "threshold": threshold,
        "n_flagged": len(flagged),
        "fraction_flagged": float(len(flagged) / fake.shape[0]),
        "median_fake_distance": float(np.median(d_fake)),
        "median_reference_distance": median_ref,
        "mannwhitney_p": p_value,
        "near_copies": report,
    }
