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
The distance is :class:`monai_gan_aug.metrics.frechet.FrechetDistanceLoss` (float64, real-valued and with finite
gradients when the batch is smaller than the feature dimension). Unlike the paper's algorithm, which reads the
fakes back from a folder of saved images (so its FID term carries no gradient), the term here is differentiated
through the feature extractor into the generator.

Features come from any :class:`monai_gan_aug.metrics.extractors.FeatureExtractor`: the paper's Inception-v3
(``InceptionV3Features`` with local weights), a medical network (``MonaiNetworkFeatures``), or, by default and for
offline use, ``RandomConvFeatures`` (fixed random weights: cheap, but its distances are not FID values).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from monai_gan_aug.losses.objectives.base import PhaseContext
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.metrics.extractors import FeatureExtractor, RandomConvFeatures
from monai_gan_aug.metrics.frechet import FrechetDistanceLoss
from monai_gan_aug.metrics.stats import FeatureStats

__all__ = ["DFGANObjective"]


def _f64(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).clone()
    return torch.from_numpy(np.array(x, dtype=np.float64))


class DFGANObjective(Pix2PixObjective):
    """Pix2Pix with DF-GAN's Frechet-distance generator term.

    Networks and phases as :class:`~monai_gan_aug.losses.objectives.pix2pix.Pix2PixObjective`; the ``g`` phase logs
    the batch's Frechet distance as ``g_fid``.

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
        self,
        extractor: FeatureExtractor | None = None,
        lambda_fid: float = 1.0,
        real_loader: Iterable | None = None,
        real_stats: FeatureStats | Mapping | None = None,
        fid_memory: int = 0,
        refresh_stats_every_epoch: bool = False,
        max_real_batches: int | None = None,
        spatial_dims: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if lambda_fid < 0:
            raise ValueError(f"DFGANObjective: lambda_fid must be >= 0, got {lambda_fid}.")
        if fid_memory < 0:
            raise ValueError(f"DFGANObjective: fid_memory must be >= 0, got {fid_memory}.")
        if extractor is None:
            extractor = RandomConvFeatures(in_channels=1, dim=64, seed=0, spatial_dims=spatial_dims)
        if not isinstance(extractor, torch.nn.Module):
            raise TypeError(f"DFGANObjective: extractor must be a FeatureExtractor module, got {type(extractor).__name__}.")
        for p in extractor.parameters():
            p.requires_grad_(False)
        self.extractor = extractor.eval()
        self.lambda_fid = float(lambda_fid)
        self.real_loader = real_loader
        self.fid_memory = int(fid_memory)
        self.refresh_stats_every_epoch = bool(refresh_stats_every_epoch)
        self.max_real_batches = max_real_batches
        self._real_mu: torch.Tensor | None = None
        self._real_sigma: torch.Tensor | None = None
        self._stats_epoch = 0
        self._fid_loss: FrechetDistanceLoss | None = None
        self._memory: torch.Tensor | None = None
        if real_stats is not None:
            self.set_real_statistics(real_stats)

    # ---------------------------------------------------------------------------------------------- real statistics
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
        self._real_mu, self._real_sigma = _f64(mu), _f64(sigma)
        self._fid_loss = FrechetDistanceLoss(self._real_mu, self._real_sigma)

    @torch.no_grad()
    def compute_real_statistics(self, loader: Iterable, device: torch.device | str = "cpu") -> FeatureStats:
        """One pass over ``loader`` (dict batches, real images under ``image_key``) with the extractor.

        The pass runs inside a forked random state (torch, numpy, python), so it does not shift the random streams
        of training: a run that computes the statistics and one that restores them from a checkpoint continue alike.
        """
        stats = FeatureStats()
        self.extractor.to(device)
        py_state, np_state = random.getstate(), np.random.get_state()
        devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                for i, batch in enumerate(loader):
                    if self.max_real_batches is not None and i >= self.max_real_batches:
                        break
                    if not isinstance(batch, Mapping) or self.image_key not in batch:
                        raise ValueError(
                            f"DFGANObjective: real-statistics batches must be dicts holding {self.image_key!r}; got "
                            f"{type(batch).__name__}{' with keys ' + str(sorted(batch)) if isinstance(batch, Mapping) else ''}."
                        )
                    stats.update(self.extractor.extract(torch.as_tensor(batch[self.image_key]).float().to(device)))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        if stats.n < 2:
            raise ValueError(f"DFGANObjective: the real loader gave {stats.n} image(s); at least 2 are needed for a covariance.")
        return stats

    def on_iteration_started(self, engine: Any) -> None:
        """Compute the real statistics when training starts (and each epoch with ``refresh_stats_every_epoch``)."""
        device = engine.state.device
        self.extractor.to(device)
        epoch = int(getattr(engine.state, "epoch", 0) or 0)
        stale = self.refresh_stats_every_epoch and epoch != self._stats_epoch
        if self._fid_loss is None or stale:
            loader = self.real_loader if self.real_loader is not None else engine.data_loader
            self.set_real_statistics(self.compute_real_statistics(loader, device))
            self._stats_epoch = epoch
        self._fid_loss.to(device)

    # ---------------------------------------------------------------------------------------------- the loss
    def fid_term(self, fakes: torch.Tensor) -> torch.Tensor:
        """Frechet distance between the features of ``fakes`` (plus the memory) and the real statistics,
        differentiable w.r.t. ``fakes``; updates the memory."""
        if self._fid_loss is None:
            raise ValueError(
                "DFGANObjective: no real statistics yet; train through AdversarialTrainer (computed at the first iteration) or "
                "call set_real_statistics()."
            )
        self.extractor.to(fakes.device)
        self._fid_loss.to(fakes.device)
        feats = self.extractor(fakes).float()
        if self.fid_memory and self._memory is not None:
            feats = torch.cat([feats, self._memory.to(feats.device)], dim=0)
        if self.fid_memory:  # the newest vectors first: this batch, then the older memory
            self._memory = feats.detach()[: self.fid_memory].clone()
        if feats.shape[0] < 2:
            if self.fid_memory:  # Algorithm 1: no FID term until enough fakes were generated
                return feats.sum() * 0.0
            raise ValueError(
                f"DFGANObjective: the Frechet term needs >= 2 generated images per step, got {feats.shape[0]}; raise "
                "batch_size or set fid_memory (e.g. 15 with batch_size 1, as DF-GAN's batch of 16)."
            )
        return self._fid_loss(feats)

    def _generator_extra_loss(self, ctx: PhaseContext, fakes: torch.Tensor) -> tuple[torch.Tensor | None, dict]:
        if not self.lambda_fid:
            return None, {}
        fd = self.fid_term(fakes)
        return self.lambda_fid * fd, {"fid": fd.detach()}

    # ---------------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """Real statistics, the epoch they were computed in and the feature memory."""
        return {
            "real_mu": self._real_mu,
            "real_sigma": self._real_sigma,
            "stats_epoch": self._stats_epoch,
            "memory": None if self._memory is None else self._memory.detach().cpu(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("real_mu") is not None and state.get("real_sigma") is not None:
            self.set_real_statistics({"mu": torch.as_tensor(state["real_mu"]), "sigma": torch.as_tensor(state["real_sigma"])})
        self._stats_epoch = int(state.get("stats_epoch", 0))
        memory = state.get("memory")
        self._memory = None if memory is None else torch.as_tensor(memory).clone()
