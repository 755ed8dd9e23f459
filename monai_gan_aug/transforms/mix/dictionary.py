# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""``SyntheticMixd``: with probability ``prob`` the whole sample (image, mask, boxes, class) is replaced by a
synthetic one, so labels stay aligned with their image (dictionary version)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_gan_aug.data.mix import (
    BOX_KEYS,
    CLASS_KEYS,
    IMAGE_KEYS,
    LABEL_KEYS,
    SampleMixer,
    SyntheticSource,
    check_compatible,
)
from monai_gan_aug.transforms.mix.array import _MixBase

__all__ = ["SyntheticMixD", "SyntheticMixDict", "SyntheticMixd"]


class SyntheticMixd(MapTransform, _MixBase):
    """Replace a data dict by a synthetic sample with probability ``prob``; image and labels are swapped together.

    Put it in the real data's transform chain where the real samples have the form the source produces (e.g. after
    loading and intensity scaling, before random augmentation). The synthetic sample's image keys (``keys``), dense
    labels (``label_keys``), boxes (``box_keys``) and classes (``class_keys``) replace the real ones together,
    converted to the real entries' types, so a mask or a box list always belongs to its image. Other keys of the
    real sample are dropped from every sample (``other_keys="drop"``) or kept from the real one (``"keep"``), so real
    and synthetic samples have the same keys and collate. Every sample leaving the transform carries provenance
    (``synthetic``, ``source``, ``checkpoint``, ``seed``) in the dict and in its image's ``MetaTensor`` meta.

    A conditional :class:`~monai_gan_aug.engines.GeneratorSource` is conditioned on the sample it replaces (its
    boxes / mask / class), so the synthetic image is generated for exactly those labels.

    ``prob`` is a per-sample probability: the share of synthetic samples varies from epoch to epoch. For an exact
    ratio use :class:`~monai_gan_aug.data.mix.SyntheticMixDataset`. Han et al. (2019) found real:synthetic 1:1 to 1:2
    best and more synthetic data harmful. Randomness only through ``self.R``: ``set_random_state`` /
    ``monai.utils.set_determinism`` with MONAI's DataLoader make runs repeatable, and each worker draws its own
    samples.

    Args:
        keys: image key(s) replaced from the source.
        source: a :class:`~monai_gan_aug.data.mix.SyntheticSource`.
        prob: probability of replacing a sample, in [0, 1].
        label_keys: dense label keys (masks) replaced with the image.
        box_keys: box keys (boxes and their labels) replaced with the image.
        class_keys: image-level class keys replaced with the image.
        other_keys: ``"drop"`` or ``"keep"`` (see above).
        reference: a real data dict as it arrives at this transform; when given, the source is checked against it
            now (keys, channels, spatial shape, spacing) instead of failing later in a worker.
        spacing_tolerance: see :func:`~monai_gan_aug.data.mix.check_compatible`.
        allow_missing_keys: accepted for MONAI compatibility (keys absent from a sample are not added).

    Raises:
        SyntheticMixError: ``prob`` outside [0, 1], an empty source, or (with ``reference`` / :meth:`check_against`)
            a source that does not fit the real data; at call time a synthetic sample lacking a key the real sample
            has or with another image / label shape.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source: SyntheticSource,
        prob: float = 0.5,
        label_keys: KeysCollection | None = LABEL_KEYS,
        box_keys: KeysCollection | None = BOX_KEYS,
        class_keys: KeysCollection | None = CLASS_KEYS,
        other_keys: str = "drop",
        reference: Mapping | None = None,
        spacing_tolerance: float | None = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys if keys is not None else IMAGE_KEYS, allow_missing_keys)
        self._init_mix(source, prob)
        self.mixer = SampleMixer(tuple(self.keys), label_keys, box_keys, class_keys, other_keys)
        self.spacing_tolerance = spacing_tolerance
        if reference is not None:
            self.check_against(reference)

    def check_against(self, real_item: Mapping) -> SyntheticMixd:
        """Check the source's first sample against a real data dict as it arrives here. Returns ``self``.

        Raises:
            SyntheticMixError: see :func:`~monai_gan_aug.data.mix.check_compatible`.
        """
        if not isinstance(real_item, Mapping):
            raise TypeError(f"SyntheticMixd.check_against: expected a data dict, got {type(real_item).__name__}.")
        syn = self.source.example(real_item if self.source.conditional else None)
        m = self.mixer
        check_compatible(
            real_item, syn, m.image_keys, m.label_keys, m.box_keys, m.class_keys, self.spacing_tolerance,
            self.source.name, check_spacing=self.source.has_spacing,
        )
        m.synthetic(syn, real_item, self.source.name)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for _ in self.key_iterator(d):  # a missing image key raises (unless allow_missing_keys), as in MONAI
            pass
        self.randomize(None)
        if not self._do_transform:
            return self.mixer.real(d)
        return self.mixer.synthetic(self._draw(d), d, self.source.name)


SyntheticMixD = SyntheticMixDict = SyntheticMixd
