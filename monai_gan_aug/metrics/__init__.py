# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""GAN-quality metrics that work offline and on small medical datasets.

* :mod:`.gan_metrics`: FID, KID, Inception Score, MMD, 1-NN accuracy, MS-SSIM diversity, improved precision and
  recall, per-pixel accuracy; MONAI cumulative API, bootstrap confidence intervals.
* :mod:`.frechet`: real-valued float64 Frechet distance and a differentiable torch version / FID loss.
* :mod:`.extractors`: Inception-v3 from local weights, any MONAI network, per-plane 2D features of volumes,
  a seeded random network for tests.
* :mod:`.stats`: streaming statistics, reservoirs, the real-set statistics cache.
* :mod:`.memorization`, :mod:`.plots`, :mod:`.evaluate` (also ``python -m monai_gan_aug.metrics``).

See ``docs/metrics.md``.
"""

from __future__ import annotations

from monai_gan_aug.metrics.evaluate import (
    build_extractor,
    evaluate_sets,
    results_markdown,
    write_results,
)
from monai_gan_aug.metrics.extractors import (
    FeatureExtractor,
    InceptionV3Features,
    MonaiNetworkFeatures,
    PerPlaneFeatures,
    RandomConvFeatures,
    find_inception_weights,
    to_channels,
)
from monai_gan_aug.metrics.frechet import (
    FrechetDistanceLoss,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_torch,
    sqrtm_psd,
    sqrtm_psd_torch,
    trace_sqrtm_product,
)
from monai_gan_aug.metrics.gan_metrics import (
    METRICS,
    FIDMetric,
    GanMetric,
    InceptionScoreMetric,
    KIDMetric,
    MMDMetric,
    MSSSIMDiversityMetric,
    OneNNMetric,
    PerPixelAccuracyMetric,
    PrecisionRecallMetric,
    canonical_metric_name,
    create_metric,
)
from monai_gan_aug.metrics.honours_mask import HonoursMaskMetric, honours_mask
from monai_gan_aug.metrics.io import ImageLoader, list_images
from monai_gan_aug.metrics.memorization import memorization_check, nearest_neighbours
from monai_gan_aug.metrics.plots import embed_features, plot_feature_embedding
from monai_gan_aug.metrics.stats import (
    CachedFeatures,
    FeatureStats,
    Reservoir,
    StatsCache,
    dataset_identity,
)

__all__ = [
    "HonoursMaskMetric",
    "honours_mask",
    "METRICS",
    "CachedFeatures",
    "FIDMetric",
    "FeatureExtractor",
    "FeatureStats",
    "FrechetDistanceLoss",
    "GanMetric",
    "ImageLoader",
    "InceptionScoreMetric",
    "InceptionV3Features",
    "KIDMetric",
    "MMDMetric",
    "MSSSIMDiversityMetric",
    "MonaiNetworkFeatures",
    "OneNNMetric",
    "PerPixelAccuracyMetric",
    "PerPlaneFeatures",
    "PrecisionRecallMetric",
    "RandomConvFeatures",
    "Reservoir",
    "StatsCache",
    "build_extractor",
    "canonical_metric_name",
    "create_metric",
    "dataset_identity",
    "embed_features",
    "evaluate_sets",
    "find_inception_weights",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_torch",
    "list_images",
    "memorization_check",
    "nearest_neighbours",
    "plot_feature_embedding",
    "results_markdown",
    "sqrtm_psd",
    "sqrtm_psd_torch",
    "to_channels",
    "trace_sqrtm_product",
    "write_results",
]
