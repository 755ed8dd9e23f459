# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Real-versus-synthetic feature embeddings (t-SNE or PCA) saved as PNG.

Han et al. ("Learning more with less", tricks paper) recommend t-SNE to see whether synthetic images cover the
real distribution: well-mixed clouds suggest realistic and diverse samples, separated clusters an obvious domain
gap, a tight synthetic cluster mode collapse. PCA is the fast, deterministic alternative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_gan_aug.metrics.functional import as_features

__all__ = ["embed_features", "plot_feature_embedding"]


def embed_features(features: Any, method: str = "tsne", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2D embedding ``(N, 2)`` of features with scikit-learn's ``TSNE`` (perplexity capped at ``(N - 1) / 3``) or
    ``PCA`` (features standardised first)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = as_features(features).numpy()
    if x.shape[0] < 3:
        raise ValueError(f"An embedding needs at least 3 samples, got {x.shape[0]}.")
    std = x.std(0)
    x = (x - x.mean(0)) / np.where(std > 0, std, 1.0)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        perp = float(min(perplexity, max(1.0, (x.shape[0] - 1) / 3.0)))
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x)
    raise ValueError(f"`method` must be 'tsne' or 'pca', got {method!r}.")


def plot_feature_embedding(
    real_features: Any,
    fake_features: Any,
    path: str | os.PathLike,
    method: str = "tsne",
    seed: int = 0,
    max_points: int = 1000,
    perplexity: float = 30.0,
    title: str | None = None,
    labels: Sequence[str] = ("real", "synthetic"),
) -> Path:
    """Scatter plot of a joint 2D embedding of real and synthetic features, written as PNG.

    Args:
        real_features: ``(Nr, D)``.
        fake_features: ``(Nf, D)``.
        path: output ``.png``.
        method: ``"tsne"`` or ``"pca"``.
        seed: seed of the subsampling and the embedding.
        max_points: at most this many points per set (random subset).
        perplexity: t-SNE perplexity (capped for small sets).
        title: figure title.
        labels: legend labels.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    sets = []
    for f in (real_features, fake_features):
        x = as_features(f).numpy()
        if x.shape[0] > max_points:
            x = x[np.sort(rng.choice(x.shape[0], max_points, replace=False))]
        sets.append(x)
    emb = embed_features(np.concatenate(sets), method=method, seed=seed, perplexity=perplexity)
    n_real = sets[0].shape[0]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(emb[:n_real, 0], emb[:n_real, 1], s=8, alpha=0.6, label=f"{labels[0]} (n={n_real})", c="tab:blue")
    ax.scatter(emb[n_real:, 0], emb[n_real:, 1], s=8, alpha=0.6, label=f"{labels[1]} (n={sets[1].shape[0]})", c="tab:orange")
    ax.set_title(title or f"{method.upper()} of extractor features")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
