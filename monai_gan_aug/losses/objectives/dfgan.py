# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""DF-GAN objective: Pix2Pix plus a differentiable Frechet-distance loss ("Chest X-ray segmentation from small
dataset by data augmentation using distribution fitting GAN", eq. 3 and Algorithm 1).

Generator loss::

    L_G = L_GAN + lambda_L1 * L_L1 + lambda_FID * d^2((m_r, C_r), (m_s, C_s))

where ``(m_r, C_r)`` are the mean and covariance of the real training images' features and ``(m_s, C_s)`` those
of the current batch of generated images (the paper computes the FID "once a batch instead of once an image").
The real statistics are computed once, when training starts (Algorithm 1 recomputes per epoch; pass
``refresh_stats_every_epoch=True`` when the real pipeline has random augmentation worth following), and are part
of :meth:`DFGANObjective.state_dict`, so a resumed run uses the same numbers without a new pass over the data.
The term is a :class:`monai_gan_aug.losses.feature_frechet.FeatureFrechetLoss` (the distance of
:class:`monai_gan_aug.metrics.frechet.FrechetDistanceLoss`: float64, real-valued and with finite gradients when the
batch is smaller than the feature dimension). Unlike the paper's algorithm, which reads the fakes back from a folder
of saved images (so its FID term carries no gradient), the term here is differentiated through the feature extractor
into the generator.

Features come from any :class:`monai_gan_aug.metrics.extractors.FeatureExtractor`: the paper's Inception-v3
(``InceptionV3Features`` with local weights), a medical network (``MonaiNetworkFeatures``), or, by default and for
offline use, ``RandomConvFeatures`` (fixed random weights: cheap, but its distances are not FID values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from monai_gan_aug.losses.feature_frechet import FeatureFrechetLoss
from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.metrics.extractors import FeatureExtractor, RandomConvFeatures
from monai_gan_aug.metrics.stats import FeatureStats

__all__ = ["DFGANObjective"]


class DFGANObjective(Pix2PixObjective):
    """Pix2Pix with DF-GAN's Frechet-distance generator term.

    Networks and phases as :class:`~monai_gan_aug.losses.objectives.pix2pix.Pix2PixObjective`; the ``g`` phase logs
    the batch's Frechet distance as ``g_fid``. The term, its real statistics and feature memory are a
    :class:`~monai_gan_aug.losses.feature_frechet.FeatureFrechetLoss` (:attr:`frechet`); the objective decides when
    the statistics are computed and keeps them in its :meth:`state_dict`.

    Args:
        extractor: feature network (kept frozen; moved to the training device). ``None``: ``RandomConvFeatures``
            with ``spatial_dims`` and one input channel.
        lambda_fid: weight of the Frechet term (the paper adds it unweighted: 1).
        real_loader: iterable of dict batches with the real images under ``image_key`` in ``[-1, 1]`` (e.g. a
            deterministic loader over the training set); ``None``: the trainer's own data loader.
        real_stats: precomputed real statistics instead of a pass over the data: a
            :class:`~monai_gan_aug.metrics.stats.FeatureStats` or a mapping with ``mu`` and ``sigma``.
        fid_memory: recent generated feature vectors (detached) added to each batch's, so that small batches (down
            to 1 image, Isola's setting) still give a covariance; 0 uses the batch alone (needs >= 2 images).
        refresh_stats_every_epoch: recompute the real statistics at the start of every epoch.
        max_real_batches: cap on the batches read for the real statistics (``None``: the whole loader).
        spatial_dims: for the default extractor.
        kwargs: the :class:`Pix2PixObjective` arguments (``cond_key``, ``cond_mode``, ``num_classes``,
            ``lambda_l1``...).
    """

    def __init__(
        self, extractor: FeatureExtractor | None = None, lambda_fid: float = 1.0, real_loader: Iterable | None = None,
        real_stats: FeatureStats | Mapping | None = None, fid_memory: int = 0, refresh_stats_every_epoch: bool = False,
        max_real_batches: int | None = None, spatial_dims: int = 2, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if lambda_fid < 0:
            raise ValueError(f"DFGANObjective: lambda_fid must be >= 0, got {lambda_fid}.")
        if extractor is None:
            extractor = RandomConvFeatures(in_channels=1, dim=64, seed=0, spatial_dims=spatial_dims)
        self.frechet = FeatureFrechetLoss(extractor, memory=fid_memory, name=type(self).__name__)
        self.lambda_fid = float(lambda_fid)
        self.real_loader = real_loader
        self.fid_memory = int(fid_memory)
        self.refresh_stats_every_epoch = bool(refresh_stats_every_epoch)
        self.max_real_batches = max_real_batches
        self._stats_epoch = 0
        if real_stats is not None:
            self.set_real_statistics(real_stats)

    @property
    def extractor(self) -> torch.nn.Module:
        """The (frozen) feature network of the Frechet term."""
        return self.frechet.extractor

    # ---------------------------------------------------------------------------------------------- real statistics
    def set_real_statistics(self, stats: FeatureStats | Mapping | torch.Tensor) -> None:
        """See :meth:`FeatureFrechetLoss.set_real_statistics`."""
        self.frechet.set_real_statistics(stats)

    def compute_real_statistics(self, loader: Iterable, device: torch.device | str = "cpu") -> FeatureStats:
        """One pass over ``loader`` (at most ``max_real_batches``, real images under ``image_key``) in a forked random
        state; see :meth:`FeatureFrechetLoss.compute_real_statistics`."""
        return self.frechet.compute_real_statistics(loader, device, self.image_key, self.max_real_batches)

    def on_iteration_started(self, engine: Any) -> None:
        """Compute the real statistics when training starts (and each epoch with ``refresh_stats_every_epoch``)."""
        device = engine.state.device
        self.extractor.to(device)
        epoch = int(getattr(engine.state, "epoch", 0) or 0)
        stale = self.refresh_stats_every_epoch and epoch != self._stats_epoch
        if not self.frechet.has_real_statistics or stale:
            loader = self.real_loader if self.real_loader is not None else engine.data_loader
            self.set_real_statistics(self.compute_real_statistics(loader, device))
            self._stats_epoch = epoch
        self.frechet.to(device)

    # ---------------------------------------------------------------------------------------------- the loss
    def fid_term(self, fakes: torch.Tensor) -> torch.Tensor:
        """Frechet distance between the features of ``fakes`` (plus the memory) and the real statistics,
        differentiable w.r.t. ``fakes``; updates the memory."""
        return self.frechet(fakes)

    def _generator_extra_loss(self, ctx: PhaseContext, fakes: torch.Tensor) -> tuple[torch.Tensor | None, dict]:
        if not self.lambda_fid:
            return None, {}
        fd = self.fid_term(fakes)
        return self.lambda_fid * fd, {"fid": fd.detach()}

    # ---------------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """Real statistics, the epoch they were computed in and the feature memory."""
        return {**self.frechet.state_dict(), "stats_epoch": self._stats_epoch}

    def load_state_dict(self, state: Mapping) -> None:
        self.frechet.load_state_dict(state)
        self._stats_epoch = int(state.get("stats_epoch", 0))
