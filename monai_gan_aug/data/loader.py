# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Data loader helpers: fit the batch size of a loader to a dataset smaller than one batch.

Small medical datasets are this package's use case, and a training loader built with ``drop_last=True`` and a
``batch_size`` larger than the dataset yields no batch at all: training would silently do nothing.
:func:`fit_batch_size` rebuilds such a loader with one batch of the whole dataset, and says so.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset

__all__ = ["fit_batch_size", "loader_sample_count"]


def loader_sample_count(loader: Any) -> int | None:
    """The number of samples one epoch of ``loader`` draws (its sampler's length: per rank under a
    ``DistributedSampler``), or ``None`` when it cannot be known (an iterable dataset, a sampler without length)."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return None
    try:
        return len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:
        return None


def _rebuilt_types() -> tuple[type, ...]:
    from monai.data import DataLoader as MonaiDataLoader

    return (DataLoader, MonaiDataLoader)


def fit_batch_size(loader: Any, setting: str = "batch_size") -> Any:
    """Return ``loader``, or a copy of it whose batch size fits a dataset smaller than one batch.

    When ``loader`` is a :class:`torch.utils.data.DataLoader` (or MONAI's subclass) with an automatic batch
    sampler, and one epoch draws fewer samples than ``batch_size``:

    - with ``drop_last=True`` (which would yield no batch at all) it is rebuilt with ``batch_size`` equal to the
      number of samples, keeping its dataset, sampler (shuffling, ``DistributedSampler``), ``collate_fn``, workers,
      pinning and generator;
    - with ``drop_last=False`` it already yields one smaller batch per epoch and is returned as it is.

    Both cases warn, naming the two numbers and ``setting``. Any other loader is returned unchanged.

    Args:
        loader: the training loader.
        setting: the name of the configuration setting that holds the batch size, quoted in the warning.
    """
    n = loader_sample_count(loader)
    batch_size = getattr(loader, "batch_size", None)
    if n is None or batch_size is None or n == 0 or n >= batch_size:
        return loader
    custom_batches = type(loader.batch_sampler) is not BatchSampler or loader.batch_sampler.sampler is not loader.sampler
    if custom_batches:
        return loader
    if not loader.drop_last:
        warnings.warn(
            f"the training data has {n} samples, fewer than {setting}={batch_size}: every epoch is one batch of {n}. "
            f"Set {setting} to {n} or less to silence this warning, or add images.",
            stacklevel=2,
        )
        return loader
    if type(loader) not in _rebuilt_types():
        warnings.warn(
            f"the training data has {n} samples, fewer than {setting}={batch_size}, and the loader drops incomplete "
            f"batches (drop_last=True), so it yields no batch; {type(loader).__name__} cannot be rebuilt with a "
            f"smaller batch automatically. Set {setting} to {n} or less.",
            stacklevel=2,
        )
        return loader
    kwargs: dict[str, Any] = {
        "batch_size": n,
        "sampler": loader.sampler,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": True,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if hasattr(loader, "in_order"):
        kwargs["in_order"] = loader.in_order
    # MONAI's DataLoader re-seeds the dataset's random transforms from, and then resets, torch's global generator:
    # keep the global random stream as it was so that a rebuilt loader changes nothing else in the run
    rng = torch.random.get_rng_state()
    try:
        fitted = type(loader)(loader.dataset, **kwargs)
    finally:
        torch.random.set_rng_state(rng)
    warnings.warn(
        f"the training data has {n} samples, fewer than {setting}={batch_size}: training with batches of {n} "
        f"instead (with drop_last=True the loader would yield no batch and train nothing). Set {setting} to {n} or "
        "less to silence this warning, or add images.",
        stacklevel=2,
    )
    return fitted
