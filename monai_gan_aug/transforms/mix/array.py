# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``SyntheticMix``: with probability ``prob`` the image is replaced by a synthetic one (array version).

For labelled data use the dictionary version :class:`~monai_gan_aug.transforms.mix.dictionary.SyntheticMixd`,
which replaces the whole sample (image, mask, boxes, class together); for an exact per-epoch ratio wrap the dataset
in :class:`~monai_gan_aug.data.mix.SyntheticMixDataset` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from monai.utils import MAX_SEED

from monai_gan_aug.data.mix import (
    IMAGE_KEYS,
    SyntheticMixError,
    SyntheticSource,
    _as_like,
    _check_number,
    check_compatible,
    mark_provenance,
)

__all__ = ["SourceIndexStream", "SyntheticMix"]


class SourceIndexStream:
    """Draws source indices with a transform's ``R``: runs of ``source.block_size`` consecutive indices starting at a
    random block, so a :class:`~monai_gan_aug.engines.GeneratorSource` generates each block once (its cache) and a
    virtual source (2**48 samples) practically never repeats a sample; a file source (block 1) is sampled uniformly.

    Each DataLoader worker re-seeds the owning transform (MONAI's ``worker_init_fn``), which restarts the stream from
    the worker's own random state, so workers do not draw the same samples. If a worker was started without MONAI's
    ``worker_init_fn`` (a plain ``torch.utils.data.DataLoader``), the owner re-seeds itself from the worker's torch
    seed before its first draw there, for the same reason.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.position, self.left = 0, 0
        self.pid = os.getpid()

    def next(self, R: np.random.RandomState, source: SyntheticSource) -> int:
        n = len(source)
        block = max(1, min(int(source.block_size), n))
        if self.left <= 0:
            self.position = int(R.randint(n // block)) * block
            self.left = block
        index = self.position
        self.position += 1
        self.left -= 1
        return index


class _MixBase(RandomizableTransform):
    """Shared parts of the array and dictionary transforms: source checks, worker-aware seeding, index stream."""

    def _init_mix(self, source: SyntheticSource, prob: float) -> None:
        if not isinstance(source, SyntheticSource):
            raise TypeError(
                f"{type(self).__name__}: source must be a SyntheticSource (FolderSource, GeneratorSource), got "
                f"{type(source).__name__}."
            )
        prob = _check_number(f"{type(self).__name__}: prob", prob, 1.0)
        if len(source) < 1:
            raise SyntheticMixError(f"{type(self).__name__}: the synthetic source {source.name} is empty.")
        RandomizableTransform.__init__(self, prob=prob)
        self.source = source
        self._stream = SourceIndexStream()
        self._index = -1

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _MixBase:
        super().set_random_state(seed, state)
        self._stream.reset()
        self.source.set_random_state(seed=None if seed is None else (int(seed) + 1) % MAX_SEED, state=state)
        return self

    def _ensure_worker_seeded(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None and self._stream.pid != os.getpid():
            self.set_random_state(seed=int(info.seed) % MAX_SEED)

    def randomize(self, data: Any = None) -> None:
        self._ensure_worker_seeded()
        super().randomize(None)
        if self._do_transform:
            self._index = self._stream.next(self.R, self.source)

    def _draw(self, condition: Mapping | None) -> dict:
        if self.source.conditional:
            return self.source.get_batch([self._index], [condition or {}])[0]
        return self.source[self._index]


class SyntheticMix(_MixBase):
    """Replace an image by a synthetic one with probability ``prob`` (array transform).

    The synthetic-data counterpart of MONAI's MixUp / CutMix (``monai.transforms.regularization``): instead of
    blending samples of a batch, a sample is swapped for a GAN-generated one. Han et al. (2019) found real:synthetic
    1:1 to 1:2 best (``prob`` 0.5 to 0.67 here); more synthetic data hurt. The image carries provenance in its
    ``MetaTensor`` meta (``synthetic``, ``source``, ``checkpoint``, ``seed``; real images get ``synthetic=False``).
    Only the image changes, so use this for unlabelled pipelines (e.g. GAN or self-supervised training) and
    :class:`SyntheticMixd` for labelled ones. Randomness only through ``self.R`` (``set_random_state``).

    Args:
        source: a :class:`~monai_gan_aug.data.mix.SyntheticSource`; a conditional source receives ``{image_key:
            img}`` (e.g. an image-to-image translator).
        prob: probability of replacing the image, in [0, 1].
        image_key: key of the image in the source's samples.
        reference: a real image as it arrives here; when given, shape / channels / spacing are checked now.
        spacing_tolerance: see :func:`~monai_gan_aug.data.mix.check_compatible`.

    Raises:
        SyntheticMixError: ``prob`` outside [0, 1], an empty source, or (with ``reference``) a mismatching source;
            at call time a synthetic image whose shape differs from the input.
    """

    def __init__(
        self,
        source: SyntheticSource,
        prob: float = 0.5,
        image_key: str = IMAGE_KEYS[0],
        reference: Any = None,
        spacing_tolerance: float | None = 0.5,
    ) -> None:
        self._init_mix(source, prob)
        self.image_key = image_key
        self.spacing_tolerance = spacing_tolerance
        if reference is not None:
            self.check_against(reference)

    def check_against(self, real_image: Any) -> SyntheticMix:
        """Check the source's first sample against a real image (shape, channels, spacing). Returns ``self``."""
        syn = self.source.example({self.image_key: real_image} if self.source.conditional else None)
        if self.image_key not in syn:
            raise SyntheticMixError(f"{self.source.name} produces no {self.image_key!r} (keys {sorted(map(str, syn))}).")
        check_compatible(
            {self.image_key: real_image}, {self.image_key: syn[self.image_key]}, (self.image_key,), (), (), (),
            self.spacing_tolerance, self.source.name, check_spacing=self.source.has_spacing,
        )
        return self

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return mark_provenance({self.image_key: img}, False, image_keys=(self.image_key,))[self.image_key]
        syn = self._draw({self.image_key: img})
        if self.image_key not in syn:
            raise SyntheticMixError(f"{self.source.name} produced no {self.image_key!r} (keys {sorted(map(str, syn))}).")
        out = _as_like(syn[self.image_key], img, self.image_key)
        if tuple(np.shape(out)) != tuple(np.shape(img)):
            raise SyntheticMixError(
                f"SyntheticMix: the synthetic image has shape {tuple(np.shape(out))}, the input {tuple(np.shape(img))}; "
                "resize in the source's transform."
            )
        if isinstance(out, MetaTensor) and isinstance(syn[self.image_key], MetaTensor):
            out.meta = dict(syn[self.image_key].meta)
        return out
