# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Evaluate a synthetic image set against a real one: features, metrics, memorization, plot, JSON + markdown.

This is what ``python -m monai_gan_aug.metrics`` runs and what a bundle's ``evaluate.json`` can call::

    "imports": ["$from monai_gan_aug.metrics import evaluate_sets"],
    "evaluate": "$evaluate_sets(@real_dir, @fake_dir, metrics=['fid', 'kid'], extractor='inception',
                 out=@output_dir + '/gan_metrics.json')"
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_gan_aug.metrics.extractors import (
    FeatureExtractor,
    InceptionV3Features,
    MonaiNetworkFeatures,
    PerPlaneFeatures,
    RandomConvFeatures,
)
from monai_gan_aug.metrics.gan_metrics import (
    FIDMetric,
    GanMetric,
    canonical_metric_name,
    create_metric,
)
from monai_gan_aug.metrics.io import ImageLoader, list_images
from monai_gan_aug.metrics.memorization import memorization_check
from monai_gan_aug.metrics.plots import plot_feature_embedding
from monai_gan_aug.metrics.stats import FeatureStats, StatsCache, dataset_identity

__all__ = ["build_extractor", "evaluate_sets", "results_markdown", "write_results"]


def build_extractor(
    spec: str | FeatureExtractor,
    spatial_dims: int = 2,
    in_channels: int = 1,
    inception_weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """Extractor from a command-line spec, wrapped in :class:`PerPlaneFeatures` for 3D data and a 2D network.

    Specs: ``"inception"`` (local weights only), ``"random"`` / ``"random:DIM"`` (:class:`RandomConvFeatures`,
    smoke tests only), or a path to a TorchScript file (:class:`MonaiNetworkFeatures`; pickled modules are refused: nothing is unpickled
    from a file).
    """
    if isinstance(spec, FeatureExtractor):
        ext = spec
    elif spec == "inception":
        ext = InceptionV3Features(inception_weights)
    elif spec == "random" or spec.startswith("random:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 64
        ext = RandomConvFeatures(in_channels=in_channels, dim=dim, spatial_dims=spatial_dims)
    elif os.path.isfile(spec):
        ext = MonaiNetworkFeatures(spec)
    else:
        raise ValueError(
            f"Unknown extractor {spec!r}: use 'inception', 'random[:DIM]' or the path of a TorchScript network."
        )
    if spatial_dims == 3 and ext.spatial_dims == 2:
        ext = PerPlaneFeatures(ext)
    elif spatial_dims != ext.spatial_dims:
        raise ValueError(f"The extractor takes {ext.spatial_dims}D images but the data are {spatial_dims}D.")
    return ext.to(device)


class _SetFeatures:
    """Features (and logits) of one image set, with names; filled batch by batch."""

    def __init__(self) -> None:
        self.stats = FeatureStats()
        self.features: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.names: list[str] = []

    def add(self, feats: torch.Tensor, names: Sequence[str], logits: torch.Tensor | None = None) -> None:
        self.stats.update(feats)
        self.features.append(feats)
        self.names.extend(names)
        if logits is not None:
            self.logits.append(logits)

    @property
    def matrix(self) -> torch.Tensor:
        return torch.cat(self.features)


def _extract_set(
    files: Sequence[str],
    loader: ImageLoader,
    extractor: FeatureExtractor,
    batch_size: int,
    with_logits: bool = False,
    image_metrics: Sequence[GanMetric] = (),
    as_real: bool = False,
    compute_features: bool = True,
) -> _SetFeatures:
    out = _SetFeatures()
    for images, names in loader.batches(files, batch_size):
        for m in image_metrics:
            m(y=images) if as_real else m(y_pred=images)
        if not compute_features:
            continue
        if with_logits:
            f, lg = extractor.extract(images, batch_size=batch_size, with_logits=True)  # type: ignore[misc]
            out.add(f, names, lg)
        else:
            out.add(extractor.extract(images, batch_size=batch_size), names)  # type: ignore[arg-type]
    return out


def _real_features(
    files: Sequence[str],
    loader: ImageLoader,
    extractor: FeatureExtractor,
    batch_size: int,
    cache: StatsCache | None,
    image_metrics: Sequence[GanMetric],
) -> tuple[FeatureStats, np.ndarray, bool]:
    dataset_id = dataset_identity(files, extra=loader.settings)
    cached = cache.load(dataset_id, extractor.name) if cache is not None else None
    if cached is not None and cached.features is not None and len(cached.features) == len(files):
        if image_metrics:
            _extract_set(files, loader, extractor, batch_size, image_metrics=image_metrics, as_real=True, compute_features=False)
        return cached.stats, cached.features, True
    s = _extract_set(files, loader, extractor, batch_size, image_metrics=image_metrics, as_real=True)
    feats = s.matrix.numpy()
    if cache is not None:
        cache.save(dataset_id, extractor.name, s.stats, feats)
    return s.stats, feats, False


def _paired_files(real: Sequence[str], fake: Sequence[str]) -> list[tuple[str, str]]:
    def stem(p: str) -> str:
        name = os.path.basename(p)
        for ext in (".nii.gz",):
            if name.lower().endswith(ext):
                return name[: -len(ext)]
        return os.path.splitext(name)[0]

    by_stem = {stem(r): r for r in real}
    return [(f, by_stem[stem(f)]) for f in fake if stem(f) in by_stem]


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def evaluate_sets(
    real: str | os.PathLike | Sequence[str],
    fake: str | os.PathLike | Sequence[str],
    metrics: Sequence[str] | str = ("fid", "kid"),
    extractor: str | FeatureExtractor = "inception",
    out: str | os.PathLike | None = None,
    test: str | os.PathLike | Sequence[str] | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    n_bootstrap: int = 100,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    datalist_key: str = "training",
    spatial_size: Sequence[int] | None = None,
    intensity: str = "auto",
    inception_weights: str | os.PathLike | None = None,
    plot: str | None = None,
    metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Compute GAN metrics between a real and a synthetic image set.

    Args:
        real: real images (folder, datalist JSON or list of paths); for ``memorization`` the training set.
        fake: synthetic images (folder, datalist JSON or list).
        metrics: names among ``fid, kid, is, mmd, 1nn, msssim, prd, pa`` plus ``memorization`` (comma-separated
            string or list). ``pa`` pairs real and synthetic files by file name.
        extractor: spec for :func:`build_extractor` or a :class:`FeatureExtractor`.
        out: JSON path; a markdown table is written beside it (``.md``) and the plot as ``<stem>_<method>.png``.
        test: held-out real images, the reference of the memorization check.
        batch_size: images per forward pass.
        device: extractor device.
        n_bootstrap: bootstrap replicates of the intervals (0: none).
        seed: seed of all random choices.
        cache_dir: real-set statistics cache directory (``None``: no cache).
        datalist_key: list read from datalist JSON files.
        spatial_size: resize all images to this size (default: the first real image's size).
        intensity: intensity mapping to ``[-1, 1]`` (see :mod:`monai_gan_aug.metrics.io`).
        inception_weights: Inception weight file (else the torch hub cache).
        plot: ``"tsne"`` or ``"pca"`` embedding plot of real vs synthetic features.
        metric_kwargs: per-metric keyword arguments, e.g. ``{"kid": {"subset_size": 100}}``.

    Returns:
        ``{"metrics": {name: result}, "memorization": ..., "extractor": ..., ...}`` (also written to ``out``).
    """
    t0 = time.time()
    names = [m for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    want_memo = any(m.strip().lower() == "memorization" for m in names)
    metric_names = [canonical_metric_name(m) for m in names if m.strip().lower() != "memorization"]
    if not metric_names and not want_memo:
        raise ValueError("No metric requested; pass e.g. --metrics fid,kid.")
    real_files = list_images(real, datalist_key)
    fake_files = list_images(fake, datalist_key)
    loader = ImageLoader(intensity=intensity, spatial_size=spatial_size)
    first = loader.load(real_files[0])
    spatial_dims = first.ndim - 1
    ext = build_extractor(extractor, spatial_dims, first.shape[0], inception_weights, device)
    if "is" in metric_names and not ext.has_logits:
        raise ValueError(f"The Inception Score needs class logits, which extractor {ext.name} does not give.")

    kwargs = {k: dict(v) for k, v in (metric_kwargs or {}).items()}
    objs: dict[str, GanMetric] = {}
    for name in metric_names:
        kw = {"n_bootstrap": n_bootstrap, "seed": seed}
        if name == "msssim":
            kw["spatial_dims"] = spatial_dims
        kw.update(kwargs.get(name, {}))
        objs[name] = create_metric(name, **kw)
    feature_metrics = [m for m in objs.values() if m.input_kind == "features"]
    image_metrics = [m for m in objs.values() if m.input_kind == "images"]

    cache = StatsCache(cache_dir) if cache_dir is not None else None
    need_features = bool(feature_metrics) or want_memo or plot is not None
    real_stats, real_feats, cache_hit = (None, None, False)
    if need_features:
        real_stats, real_feats, cache_hit = _real_features(real_files, loader, ext, batch_size, cache, image_metrics)
    elif image_metrics:
        _extract_set(real_files, loader, ext, batch_size, image_metrics=image_metrics, as_real=True, compute_features=False)
    fake_set = _extract_set(
        fake_files, loader, ext, batch_size, with_logits="is" in objs, image_metrics=image_metrics,
        compute_features=need_features or "is" in objs,
    )

    for m in feature_metrics:
        if isinstance(m, FIDMetric):
            m.set_real_statistics(real_stats, real_feats)  # type: ignore[arg-type]
        else:
            m(y=torch.from_numpy(real_feats))  # type: ignore[arg-type]
        m(y_pred=fake_set.matrix)
    if "is" in objs:
        objs["is"](y_pred=torch.cat(fake_set.logits))
    if "pa" in objs:
        pairs = _paired_files(real_files, fake_files)
        if not pairs:
            raise ValueError("'pa' needs paired outputs: no synthetic file name matches a real file name.")
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s : s + batch_size]
            f = torch.stack([loader.load(p[0]) for p in chunk])
            r = torch.stack([loader.load(p[1]) for p in chunk])
            objs["pa"](y_pred=f, y=r)

    results: dict[str, Any] = {}
    for m in objs.values():
        results.update(m.aggregate())
    report: dict[str, Any] = {
        "metrics": results,
        "extractor": ext.name,
        "feature_dim": ext.feature_dim if need_features else None,
        "real": {"source": str(real) if isinstance(real, (str, os.PathLike)) else "list", "n": len(real_files)},
        "fake": {"source": str(fake) if isinstance(fake, (str, os.PathLike)) else "list", "n": len(fake_files)},
        "settings": {
            "intensity": intensity, "spatial_size": list(loader.spatial_size or ()), "n_bootstrap": n_bootstrap,
            "seed": seed, "real_stats_cached": cache_hit,
        },
    }
    if want_memo:
        test_feats = None
        if test is not None:
            test_files = list_images(test, datalist_key)
            test_feats = _real_features(test_files, loader, ext, batch_size, cache, ())[1]
        report["memorization"] = memorization_check(
            real_feats, fake_set.matrix, test_feats, train_names=real_files, fake_names=fake_set.names,
            **kwargs.get("memorization", {}),
        )
    if plot is not None:
        if out is None:
            raise ValueError("`plot` needs `out` to know where to write the PNG.")
        png = Path(out).with_name(f"{Path(out).stem}_{plot}.png")
        plot_feature_embedding(real_feats, fake_set.matrix, png, method=plot, seed=seed)
        report["plot"] = str(png)
    report["elapsed_s"] = round(time.time() - t0, 3)
    report = _clean(report)
    if out is not None:
        write_results(report, out)
    return report


def results_markdown(report: Mapping[str, Any]) -> str:
    """Markdown table of a report from :func:`evaluate_sets` (plus the memorization summary)."""
    lines = [
        f"Extractor: `{report.get('extractor')}`",
        "",
        "| metric | value | CI | n_real | n_fake |",
        "|---|---|---|---|---|",
    ]
    for name, r in report.get("metrics", {}).items():
        ci = "-" if r.get("ci_low") is None else f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}] ({100 * r['confidence']:.0f}%)"
        lines.append(f"| {name} | {r['value']:.4g} | {ci} | {r['n_real']} | {r['n_fake']} |")
    memo = report.get("memorization")
    if memo:
        p = memo["mannwhitney_p"]
        summary = (
            f"Memorization (reference: {memo['reference']}): {memo['n_flagged']} of {memo['n_fake']} synthetic samples "
            f"({100 * memo['fraction_flagged']:.1f}%, expected ~{100 * memo['quantile']:.1f}%) are closer to a training "
            f"sample than the {100 * memo['quantile']:.1f}% quantile ({memo['threshold']:.4g}) of the reference "
            f"distances; one-sided Mann-Whitney p = {'n/a' if p is None else format(p, '.3g')}."
        )
        lines += ["", summary]
        if memo["near_copies"]:
            lines += ["", "| synthetic | nearest training sample | distance | ratio |", "|---|---|---|---|"]
            for c in memo["near_copies"][:50]:
                lines.append(f"| {c['fake']} | {c['train']} | {c['distance']:.4g} | {c['ratio']:.3g} |")
    return "\n".join(lines) + "\n"


def write_results(report: Mapping[str, Any], out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report`` as JSON to ``out`` and as markdown beside it (same stem, ``.md``)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(report), indent=2))
    md = path.with_suffix(".md")
    md.write_text(results_markdown(report))
    return path, md
