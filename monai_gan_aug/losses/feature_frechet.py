# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A differentiable Frechet distance to fixed real statistics, as a training loss (DF-GAN, eq. 3 and Algorithm 1).

:class:`FeatureFrechetLoss` holds what the loss needs besides the generated batch: a frozen feature network, the
mean and covariance of the real images' features (from one pass over a loader, a
:class:`~monai_gan_aug.metrics.stats.FeatureStats`, a mapping or a batch of images) and, optionally, a memory of
recent generated feature vectors, so that small batches (down to one image) still give a covariance. The distance is
:class:`monai_gan_aug.metrics.frechet.FrechetDistanceLoss` (float64, real-valued and with finite gradients when the
batch is smaller than the feature dimension), differentiated through the feature network into the generated images.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from monai_gan_aug.metrics.frechet import FrechetDistanceLoss
from monai_gan_aug.metrics.stats import FeatureStats
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["FeatureFrechetLoss"]


def _f64(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).clone()
    return torch.from_numpy(np.array(x, dtype=np.float64))


class FeatureFrechetLoss:
    """Frechet distance between the features of generated images (plus the memory) and fixed real statistics.

    Args:
        extractor: feature network (a :class:`~monai_gan_aug.metrics.extractors.FeatureExtractor` module); its
            parameters are frozen and it is kept in eval mode.
        memory: recent generated feature vectors (detached) added to each batch's; 0 uses the batch alone (which
            then needs >= 2 images). While fewer than 2 vectors are known the loss is 0 (DF-GAN's Algorithm 1: no
            FID term until enough fakes were generated).
        name: how error messages name the owner (e.g. the objective that holds the loss).

    Attributes:
        real_mu, real_sigma: the real statistics (float64 CPU tensors; None until set).
        memory: the newest ``memory`` feature vectors, this batch's first (None before the first call).
    """

    def __init__(self, extractor: torch.nn.Module, memory: int = 0, name: str = "FeatureFrechetLoss") -> None:
        self.name = str(name)
        if memory < 0:
            raise ValueError(f"{self.name}: fid_memory must be >= 0, got {memory}.")
        if not isinstance(extractor, torch.nn.Module):
            raise TypeError(f"{self.name}: extractor must be a FeatureExtractor module, got {type(extractor).__name__}.")
        for p in extractor.parameters():
            p.requires_grad_(False)
        self.extractor = extractor.eval()
        self.memory_size = int(memory)
        self.real_mu: torch.Tensor | None = None
        self.real_sigma: torch.Tensor | None = None
        self.memory: torch.Tensor | None = None
        self._distance: FrechetDistanceLoss | None = None

    @property
    def has_real_statistics(self) -> bool:
        return self._distance is not None

    def set_real_statistics(self, stats: FeatureStats | Mapping | torch.Tensor) -> None:
        """Set the real-data statistics: a :class:`FeatureStats`, a mapping with ``mu``/``sigma``, or a batch of real
        images ``(N, C, *spatial)`` in ``[-1, 1]`` (``N >= 2``) whose features are computed here."""
        if isinstance(stats, torch.Tensor):
            stats = FeatureStats().update(self.extractor.extract(stats))
        if isinstance(stats, FeatureStats):
            mu, sigma = stats.mean, stats.cov
        elif isinstance(stats, Mapping) and "mu" in stats and "sigma" in stats:
            mu, sigma = stats["mu"], stats["sigma"]
        else:
            raise TypeError(
                "real statistics must be a FeatureStats, a mapping with 'mu' and 'sigma', or a tensor of real images; "
                f"got {type(stats).__name__}."
            )
        self.real_mu, self.real_sigma = _f64(mu), _f64(sigma)
        self._distance = FrechetDistanceLoss(self.real_mu, self.real_sigma)

    @torch.no_grad()
    def compute_real_statistics(
        self, loader: Iterable, device: torch.device | str = "cpu", image_key: str = GanKeys.IMAGE,
        max_batches: int | None = None,
    ) -> FeatureStats:
        """One pass over ``loader`` (dict batches, real images under ``image_key``; at most ``max_batches``).

        The pass runs inside a forked random state (torch, numpy, python), so it does not shift the random streams
        of training: a run that computes the statistics and one that restores them from a checkpoint continue alike.
        """
        stats, image_key = FeatureStats(), str(image_key)
        self.extractor.to(device)
        py_state, np_state = random.getstate(), np.random.get_state()
        devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                for i, batch in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    if not isinstance(batch, Mapping) or image_key not in batch:
                        raise ValueError(
                            f"{self.name}: real-statistics batches must be dicts holding {image_key!r}; got "
                            f"{type(batch).__name__}{' with keys ' + str(sorted(batch)) if isinstance(batch, Mapping) else ''}."
                        )
                    stats.update(self.extractor.extract(torch.as_tensor(batch[image_key]).float().to(device)))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        if stats.n < 2:
            raise ValueError(f"{self.name}: the real loader gave {stats.n} image(s); at least 2 are needed for a covariance.")
        return stats

    def to(self, device: torch.device | str) -> FeatureFrechetLoss:
        """Move the feature network and the real statistics' distance module to ``device``."""
        self.extractor.to(device)
        if self._distance is not None:
            self._distance.to(device)
        return self

    def __call__(self, fakes: torch.Tensor) -> torch.Tensor:
        """The Frechet distance of ``fakes`` (plus the memory), differentiable w.r.t. ``fakes``; updates the memory."""
        if self._distance is None:
            raise ValueError(
                f"{self.name}: no real statistics yet; train through AdversarialTrainer (computed at the first iteration) "
                "or call set_real_statistics()."
            )
        self.to(fakes.device)
        feats = self.extractor(fakes).float()
        if self.memory_size and self.memory is not None:
            feats = torch.cat([feats, self.memory.to(feats.device)], dim=0)
        if self.memory_size:  # the newest vectors first: this batch, then the older memory
            self.memory = feats.detach()[: self.memory_size].clone()
        if feats.shape[0] < 2:
            if self.memory_size:  # Algorithm 1: no FID term until enough fakes were generated
                return feats.sum() * 0.0
            raise ValueError(
                f"{self.name}: the Frechet term needs >= 2 generated images per step, got {feats.shape[0]}; raise "
                "batch_size or set fid_memory (e.g. 15 with batch_size 1, as DF-GAN's batch of 16)."
            )
        return self._distance(feats)

    def state_dict(self) -> dict:
        """The real statistics and the feature memory (CPU tensors)."""
        return {
            "real_mu": self.real_mu,
            "real_sigma": self.real_sigma,
            "memory": None if self.memory is None else self.memory.detach().cpu(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("real_mu") is not None and state.get("real_sigma") is not None:
            self.set_real_statistics({"mu": torch.as_tensor(state["real_mu"]), "sigma": torch.as_tensor(state["real_sigma"])})
        memory = state.get("memory")
        self.memory = None if memory is None else torch.as_tensor(memory).clone()
