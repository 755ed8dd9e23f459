# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Encoding of the conditions of mask -> image generators (pix2pix, DF-GAN, the two-stage pipeline).

A label map is one-hot encoded (``"onehot"``, ``num_classes`` channels, values -1/1) or scaled to ``[-1, 1]`` in one
channel (``"scaled"``: ``label / (num_classes - 1) * 2 - 1``); an image condition (``"image"``) is used as it is
(already in ``[-1, 1]``). Interpolated maps are rounded to the nearest class first.

:class:`EncodeConditiond` builds the encoded condition inside the dataset (``batch["cond"]``), keeping the raw map
under its key so that generation can hand it back as the sample's label. :func:`encode_condition` is the same encoder
on batches ``(N, C, *spatial)``, for conditions made at generation time (a mask generator's output, an annotator's
map). :func:`decode_mask` turns a generated or encoded condition back into a label map.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, ensure_tuple_rep

from monai_gan_aug.utils.enums import GanKeys

__all__ = [
    "check_label_values",
    "condition_outputs",
    "COND_MODES",
    "EncodeCondition",
    "EncodeConditionD",
    "EncodeConditionDict",
    "EncodeConditiond",
    "check_condition_mode",
    "condition_channels",
    "decode_mask",
    "encode_condition",
    "mask_to_display",
]

COND_MODES = ("onehot", "scaled", "image")


def check_condition_mode(cond_mode: str, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``cond_mode`` is one of :data:`COND_MODES` and, for a label condition,
    ``num_classes`` is an integer >= 2."""
    if cond_mode not in COND_MODES:
        raise ValueError(f"cond_mode must be one of {COND_MODES}, got {cond_mode!r}.")
    if cond_mode != "image" and (isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2 for a label condition, got {num_classes!r}.")


def condition_channels(cond_mode: str = "onehot", num_classes: int = 2, image_channels: int = 1) -> int:
    """Channels of an encoded condition: ``num_classes`` (one-hot), 1 (scaled) or ``image_channels`` (image)."""
    check_condition_mode(cond_mode, num_classes)
    return {"onehot": int(num_classes), "scaled": 1, "image": int(image_channels)}[cond_mode]


def encode_condition(
    cond: torch.Tensor, cond_mode: str = "onehot", num_classes: int = 2, name: str = "cond", check: bool = True
) -> torch.Tensor:
    """Encode a batch of conditions for the networks (see the module docstring).

    Args:
        cond: ``(N, 1, *spatial)`` label map with values ``0 .. num_classes - 1`` (interpolated maps are rounded),
            or ``(N, C, *spatial)`` image in ``[-1, 1]`` for ``cond_mode="image"``.
        cond_mode: ``"onehot"``, ``"scaled"`` or ``"image"``.
        num_classes: classes of the label map, background included.
        name: the condition's key, for error messages.
        check: verify that label values lie in ``0 .. num_classes - 1`` (one host sync).

    Returns:
        float32 ``(N, condition_channels, *spatial)``.

    Raises:
        ValueError: a multi-channel label map, or labels outside the class range.
    """
    check_condition_mode(cond_mode, num_classes)
    if not isinstance(cond, torch.Tensor) or cond.ndim < 3:
        raise ValueError(f"condition {name!r} must be a (N, C, *spatial) tensor, got {type(cond).__name__} {getattr(cond, 'shape', '')}.")
    if cond_mode == "image":
        return cond.float()
    if cond.shape[1] != 1:
        raise ValueError(
            f"condition {name!r} must be a single-channel label map (N, 1, *spatial), got shape {tuple(cond.shape)}; "
            "load masks with EnsureChannelFirstd and do not one-hot them in the preprocessing."
        )
    labels = cond.round().long() if cond.is_floating_point() else cond.long()
    if check and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(
            f"condition {name!r} holds values outside 0..{num_classes - 1} (min {int(labels.min())}, max "
            f"{int(labels.max())}); set num_classes to the number of classes of the map (background included) and "
            "resize masks with nearest-neighbour interpolation."
        )
    if cond_mode == "scaled":
        return labels.float() * (2.0 / (num_classes - 1)) - 1.0
    shape = list(labels.shape)
    shape[1] = num_classes
    onehot = torch.zeros(shape, device=labels.device, dtype=torch.float32).scatter_(1, labels, 1.0)
    return onehot * 2.0 - 1.0


def decode_mask(x: torch.Tensor, cond_mode: str = "onehot", num_classes: int = 2) -> torch.Tensor:
    """Turn a generated (or encoded) condition back into a valid label map ``(N, 1, *spatial)`` (int64).

    ``"onehot"``: argmax over the channels; ``"scaled"``: the nearest class level (for a binary mask, a threshold
    at 0).
    """
    check_condition_mode(cond_mode, num_classes)
    if cond_mode == "image":
        raise ValueError("decode_mask: an image condition is not a label map.")
    if cond_mode == "onehot":
        if x.shape[1] != num_classes:
            raise ValueError(f"decode_mask: one-hot input needs {num_classes} channels, got shape {tuple(x.shape)}.")
        return x.argmax(dim=1, keepdim=True)
    if x.shape[1] != 1:
        raise ValueError(f"decode_mask: scaled input needs 1 channel, got shape {tuple(x.shape)}.")
    return ((x.float() + 1.0) * 0.5 * (num_classes - 1)).round().clamp(0, num_classes - 1).long()


def check_label_values(label_values: Sequence[int] | None, cond_mode: str, num_classes: int) -> list[int] | None:
    """``label_values`` (the classes of a condition map that form a written label) as ints, checked against a label
    condition of ``num_classes`` classes; None stays None."""
    if label_values is None:
        return None
    values = [int(v) for v in label_values]
    if cond_mode == "image" or any(not 0 <= v < num_classes for v in values):
        raise ValueError(f"label_values {values} must be classes 0..{num_classes - 1} of a label condition.")
    return values


def condition_outputs(cond_map: torch.Tensor, cond_key: str, label_values: Sequence[int] | None) -> dict[str, torch.Tensor]:
    """What a sample generated from a label map hands back: ``cond`` (the int64 map), the map under ``cond_key``
    too (unless that is ``image`` / ``label``) and ``label``: the map, or its ``label_values`` classes as a uint8
    mask."""
    cond_map = cond_map.round().long() if cond_map.is_floating_point() else cond_map.long()
    out = {GanKeys.COND: cond_map}
    if cond_key not in (GanKeys.IMAGE, GanKeys.LABEL):
        out[cond_key] = cond_map
    if label_values is None:
        out[GanKeys.LABEL] = cond_map
    else:
        out[GanKeys.LABEL] = torch.isin(cond_map, torch.as_tensor(list(label_values), device=cond_map.device)).to(torch.uint8)
    return out


def mask_to_display(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A label map as a one-channel float image in ``[-1, 1]`` (class ``k`` -> ``k / (num_classes - 1) * 2 - 1``)."""
    return mask.float() * (2.0 / (num_classes - 1)) - 1.0


class EncodeCondition(Transform):
    """Encode one channel-first condition ``(C, *spatial)`` with :func:`encode_condition`.

    A label map ``(1, *spatial)`` becomes ``(num_classes, *spatial)`` (``"onehot"``, values -1/1) or
    ``(1, *spatial)`` (``"scaled"``); an image (``"image"``) becomes float32 unchanged. The output is float32, a
    :class:`~monai.data.MetaTensor` with the input's metadata when the input is one.

    Args:
        cond_mode: ``"onehot"``, ``"scaled"`` or ``"image"``.
        num_classes: classes of a label map, background included.
        check: verify that label values lie in ``0 .. num_classes - 1``.

    Raises:
        ValueError: an unknown ``cond_mode`` or ``num_classes < 2`` (at construction); a label map that is not
            ``(1, *spatial)`` or holds values outside the class range (when called).

    Example::

        EncodeCondition("onehot", num_classes=3)(torch.tensor([[[0, 2]]]))
        # -> (3, 1, 2): [[[1, -1]], [[-1, -1]], [[-1, 1]]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, cond_mode: str = "onehot", num_classes: int = 2, check: bool = True) -> None:
        check_condition_mode(cond_mode, num_classes)
        self.cond_mode, self.num_classes, self.check = cond_mode, int(num_classes), bool(check)

    def __call__(self, cond: NdarrayOrTensor, name: str = "cond") -> torch.Tensor:
        """Encode ``cond`` (``name``: its key, for error messages)."""
        meta = cond.meta if isinstance(cond, MetaTensor) else None
        if isinstance(cond, MetaTensor):
            x = cond.as_tensor()
        else:
            x = cond if isinstance(cond, torch.Tensor) else torch.as_tensor(np.asarray(cond))
        if x.ndim < 2:
            raise ValueError(f"condition {name!r} must be channel-first (C, *spatial), got shape {tuple(x.shape)}.")
        if self.cond_mode != "image" and x.shape[0] != 1:
            raise ValueError(
                f"condition {name!r} must be a single-channel label map (1, *spatial), got shape {tuple(x.shape)}; "
                "load masks with EnsureChannelFirstd and do not one-hot them in the preprocessing."
            )
        out = encode_condition(x[None], self.cond_mode, self.num_classes, name, check=self.check)[0]
        return MetaTensor(out, meta=meta) if meta is not None else out


class EncodeConditiond(MapTransform):
    """Dictionary version of :class:`EncodeCondition`: writes the encoding of ``data[key]`` to ``data[output_key]``
    (default ``"cond"``, the key the pix2pix objective reads) and keeps the raw map under ``key``.

    Put it last in the preprocessing, after every transform that moves the map (crops, flips, deformations), so that
    the encoded condition and the map stay aligned.

    Args:
        keys: key(s) of the raw condition (e.g. ``"tissue"``).
        cond_mode: ``"onehot"``, ``"scaled"`` or ``"image"``.
        num_classes: classes of a label map, background included.
        output_keys: where the encodings go, one per key (default ``"cond"``).
        check: verify that label values lie in ``0 .. num_classes - 1``.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: ``output_keys`` that do not pair with ``keys``, or the errors of :class:`EncodeCondition`.
    """

    backend = EncodeCondition.backend

    def __init__(
        self,
        keys: KeysCollection,
        cond_mode: str = "onehot",
        num_classes: int = 2,
        output_keys: KeysCollection = GanKeys.COND.value,
        check: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        try:
            self.output_keys = ensure_tuple_rep(output_keys, len(self.keys))
        except ValueError as err:
            raise ValueError(f"EncodeConditiond: output_keys {output_keys} must pair one-to-one with keys {keys}.") from err
        self.encoder = EncodeCondition(cond_mode, num_classes, check)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out_key in self.key_iterator(d, self.output_keys):
            d[out_key] = self.encoder(d[key], name=str(key))
        return d


EncodeConditionD = EncodeConditionDict = EncodeConditiond
