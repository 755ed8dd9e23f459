# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Samplers for paired downstream experiments."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

__all__ = ["PairedOrderSampler"]


class PairedOrderSampler(Sampler[int]):
    """Shuffles a dataset whose first ``n_real`` items are real and the rest added (synthetic) so that the real items
    come in the same order in every arm of a paired experiment, whatever is added.

    Each epoch (each ``iter()``), the real indices are permuted by a generator seeded with ``(seed, epoch)`` only,
    the added ones by another, and the added ones are inserted at random places; the subsequence of real indices is
    therefore identical for ``n_total = n_real`` (real only) and any ``n_total > n_real`` with the same seed.
    """

    def __init__(self, n_real: int, n_total: int, seed: int = 0) -> None:
        if not 0 <= int(n_real) <= int(n_total):
            raise ValueError(f"PairedOrderSampler: need 0 <= n_real <= n_total, got {n_real} and {n_total}.")
        self.n_real, self.n_total, self.seed = int(n_real), int(n_total), int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_total

    def order(self, epoch: int) -> list[int]:
        real = np.random.default_rng([self.seed, epoch, 0]).permutation(self.n_real)
        n_added = self.n_total - self.n_real
        if not n_added:
            return real.tolist()
        rng = np.random.default_rng([self.seed, epoch, 1])
        added = rng.permutation(n_added) + self.n_real
        slots = np.zeros(self.n_total, dtype=bool)
        slots[rng.choice(self.n_total, n_added, replace=False)] = True
        out = np.empty(self.n_total, dtype=np.int64)
        out[slots], out[~slots] = added, real
        return out.tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        self.epoch += 1
        return iter(order)
