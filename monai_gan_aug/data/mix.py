# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Synthetic data into any MONAI pipeline: synthetic sources and a mixing dataset with an exact per-epoch ratio (the
on-the-fly source, :class:`monai_gan_aug.engines.GeneratorSource`, and the handler that moves a mix to the next epoch,
:class:`monai_gan_aug.handlers.SyntheticMixEpochHandler`, live on their floors above).

Han et al., "Learning More with Less: GAN-based Medical Image Augmentation" (Med. Imaging Tech. 37(3), 2019) report
that the balance between real and synthetic images matters: adding too many synthetic images makes the downstream
model worse, and real:synthetic of 1:1 to 1:2 worked best. This module therefore makes the share of synthetic
samples an explicit, exactly honoured number per epoch (:class:`SyntheticMixDataset`), optionally following a
schedule over epochs, rather than a side effect of how many files happen to lie in a folder.

Pieces:

- :class:`SyntheticSource`: ``len(source)`` samples, ``source[i]`` a data dict with the same keys as the real data
  dicts (``image``, ``label``, ``boxes``, ``box_labels``, ``class``) plus provenance (``synthetic=True``,
  ``source``, ``checkpoint``, ``seed``), also written into the image's ``MetaTensor`` meta.
  :class:`FolderSource` reads a synthetic set written by any bundle's inference (``SyntheticWriter``'s
  ``datalist.json``); :class:`~monai_gan_aug.engines.GeneratorSource` generates on the fly, in batches, sample ``i`` from seed
  ``seed + i`` only, optionally conditioned on a real sample's boxes / mask / class.
- :class:`SyntheticMixDataset`: wraps a real dataset; ``mode="add"`` adds ``ratio`` synthetic samples per real one,
  ``mode="replace"`` replaces a ``ratio`` fraction of the real samples; the epoch's index mapping is a pure function
  of ``(seed, epoch)`` (:meth:`SyntheticMixDataset.set_epoch`), so it is identical in every DataLoader worker and every
  distributed rank, and works with any sampler (``RandomSampler``, ``DistributedSampler``).
- :class:`~monai_gan_aug.handlers.SyntheticMixEpochHandler`: calls ``set_epoch`` at each ``EPOCH_STARTED`` of an
  Ignite / MONAI engine (MONAI's ``Workflow`` only does so for a ``DistributedSampler``).
- :func:`check_compatible`: the construction-time check that synthetic samples fit the real ones (keys, channels,
  spatial shape, spacing), shared with the ``SyntheticMix`` transforms.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Randomizable
from monai.utils import ensure_tuple
from torch.utils.data import Dataset

from monai_gan_aug.utils.enums import GanKeys, Provenance

__all__ = [
    "BOX_KEYS",
    "CLASS_KEYS",
    "IMAGE_KEYS",
    "LABEL_KEYS",
    "PROVENANCE_KEYS",
    "VIRTUAL_LENGTH",
    "FolderSource",
    "MissingCheckpointError",
    "MixPlan",
    "RatioSchedule",
    "SampleMixer",
    "SyntheticMixDataset",
    "SyntheticMixError",
    "SyntheticSource",
    "check_compatible",
    "mark_provenance",
]

logger = logging.getLogger(__name__)

#: Default image keys, dense label keys, box keys and image-level class keys of a data dict.
IMAGE_KEYS: tuple[str, ...] = (GanKeys.IMAGE.value,)
LABEL_KEYS: tuple[str, ...] = (GanKeys.LABEL.value,)
BOX_KEYS: tuple[str, ...] = (GanKeys.BOXES.value, GanKeys.BOX_LABELS.value)
CLASS_KEYS: tuple[str, ...] = (GanKeys.CLASS.value,)
#: Keys every sample leaving a mix carries (real samples: ``False``, ``"real"``, ``""``, ``-1``).
PROVENANCE_KEYS: tuple[str, ...] = (
    Provenance.SYNTHETIC.value,
    Provenance.SOURCE.value,
    Provenance.CHECKPOINT.value,
    Provenance.SEED.value,
)
#: Length of a :class:`~monai_gan_aug.engines.GeneratorSource` without ``num_samples``: indices (and seeds) never run out or repeat.
VIRTUAL_LENGTH = 2**48
REAL_SOURCE_NAME = "real"
# Han et al. (2019): real:synthetic 1:1 to 1:2 worked best; more synthetic data hurt.
_PAPER_MAX_RATIO = 2.0


class SyntheticMixError(ValueError):
    """A synthetic source or a mix is configured so that it cannot work (the message says what and how to fix it)."""


class MissingCheckpointError(SyntheticMixError, FileNotFoundError):
    """The generator checkpoint of a :class:`~monai_gan_aug.engines.GeneratorSource` does not exist."""


# ---------------------------------------------------------------------------------------------------- helpers
def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return tuple(int(s) for s in value.shape)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_number(name: str, value: Any, upper: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SyntheticMixError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"[0, {upper:g}]" if upper is not None else ">= 0"
        raise SyntheticMixError(f"{name} must be {bound}, got {value:g}.")
    return value


def mark_provenance(
    item: Mapping[Hashable, Any],
    synthetic: bool,
    source: str = REAL_SOURCE_NAME,
    checkpoint: str | None = "",
    seed: int = -1,
    image_keys: Sequence[str] = IMAGE_KEYS,
) -> dict[Hashable, Any]:
    """A copy of ``item`` with ``synthetic`` / ``source`` / ``checkpoint`` / ``seed`` set in the dict and in the meta
    of every ``MetaTensor`` under ``image_keys``.

    Values are collate-friendly (bool, str, str, int: a real sample gets ``False, "real", "", -1``), so a batch of
    mixed samples collates with MONAI's ``list_data_collate`` and ``batch["synthetic"]`` is a bool tensor.
    """
    out = dict(item)
    prov = {
        Provenance.SYNTHETIC.value: bool(synthetic),
        Provenance.SOURCE.value: str(source),
        Provenance.CHECKPOINT.value: "" if checkpoint is None else str(checkpoint),
        Provenance.SEED.value: int(seed),
    }
    out.update(prov)
    for key in image_keys:
        img = out.get(key)
        if isinstance(img, MetaTensor):
            view = img.view(img.shape)  # a new MetaTensor on the same data: a cached sample's meta stays unchanged
            view.meta = {**img.meta, **prov}
            out[key] = view
    return out


def _as_like(value: Any, like: Any, key: Hashable) -> Any:
    """``value`` converted to the container type / dtype / device of ``like`` (the real sample's entry)."""
    if isinstance(like, torch.Tensor):
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
        t = t.to(device=like.device, dtype=like.dtype)
        if isinstance(like, MetaTensor) and not isinstance(t, MetaTensor):
            t = MetaTensor(t)
        elif not isinstance(like, MetaTensor) and isinstance(t, MetaTensor):
            t = t.as_tensor()
        return t
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.as_tensor() if isinstance(value, MetaTensor) else value
        value = value.numpy()
    if isinstance(like, np.ndarray):
        return np.asarray(value, dtype=like.dtype)
    if isinstance(like, (list, tuple)):
        arr = np.asarray(value)
        if arr.size == 0:
            out: Any = []
        else:
            out = arr.tolist()
        return type(like)(out) if isinstance(like, tuple) else out
    if isinstance(like, (bool, np.bool_)):
        return bool(np.asarray(value).reshape(-1)[0])
    if _is_int(like):
        return int(np.asarray(value).reshape(-1)[0])
    if isinstance(like, (float, np.floating)):
        return float(np.asarray(value).reshape(-1)[0])
    if isinstance(like, str):
        return str(value)
    return value


def check_compatible(
    real: Mapping[Hashable, Any],
    synthetic: Mapping[Hashable, Any],
    image_keys: Sequence[str] = IMAGE_KEYS,
    label_keys: Sequence[str] = LABEL_KEYS,
    box_keys: Sequence[str] = BOX_KEYS,
    class_keys: Sequence[str] = CLASS_KEYS,
    spacing_tolerance: float | None = 0.5,
    source_name: str = "synthetic source",
    check_spacing: bool = True,
) -> None:
    """Check that a synthetic sample can stand in for a real one, before any training starts.

    Checked: every image / label / box / class key of ``real`` is produced by the source; images and dense labels
    have the same channel count and spatial shape; boxes have the same number of coordinates; when both images are
    ``MetaTensor`` s (and ``check_spacing``), their voxel spacings agree within ``spacing_tolerance`` (a relative
    factor: 0.5 accepts spacings up to 1.5 x apart; ``None`` disables the spacing check). Very different intensity
    ranges only warn (apply the same intensity transform to both, e.g. via ``FolderSource(transform=...)``).

    Raises:
        SyntheticMixError: listing every mismatch and what to do.
    """
    problems: list[str] = []
    managed = [*image_keys, *label_keys, *box_keys, *class_keys]
    missing = [k for k in managed if k in real and k not in synthetic]
    if missing:
        problems.append(
            f"it produces no {missing} although the real data has them (a synthetic set written without labels, "
            "or an unconditional generator for a labelled task): use a source that writes/generates them, a "
            "conditional GeneratorSource (condition_keys=...), or remove these keys from the real data"
        )
    for key in [*image_keys, *label_keys]:
        if key not in real or key not in synthetic:
            continue
        rs, ss = _shape(real[key]), _shape(synthetic[key])
        if rs is None or ss is None:
            continue
        if len(rs) != len(ss):
            problems.append(f"{key!r} has shape {ss}, the real data {rs} (different number of dimensions)")
            continue
        if rs[0] != ss[0]:
            problems.append(
                f"{key!r} has {ss[0]} channel(s), the real data {rs[0]} (shapes {ss} vs {rs}); make the channel "
                "counts equal (e.g. EnsureChannelFirstd / a grayscale transform in the source's transform)"
            )
        if rs[1:] != ss[1:]:
            problems.append(
                f"{key!r} has spatial shape {ss[1:]}, the real data {rs[1:]}; resize one of them (e.g. pass a Resized "
                "in the source's transform) or generate at the real size"
            )
        if (
            check_spacing
            and spacing_tolerance is not None
            and key in image_keys
            and isinstance(real[key], MetaTensor)
            and isinstance(synthetic[key], MetaTensor)
            and len(rs) == len(ss)
        ):
            rsp = np.asarray(real[key].pixdim, dtype=float).reshape(-1)
            ssp = np.asarray(synthetic[key].pixdim, dtype=float).reshape(-1)
            if rsp.shape == ssp.shape and rsp.size and np.all(rsp > 0) and np.all(ssp > 0):
                factor = float(np.max(np.maximum(rsp / ssp, ssp / rsp)))
                if factor > 1.0 + float(spacing_tolerance):
                    problems.append(
                        f"{key!r} has voxel spacing {np.round(ssp, 4).tolist()}, the real data "
                        f"{np.round(rsp, 4).tolist()} ({factor:.2f} x apart, tolerance {spacing_tolerance}); resample "
                        "(Spacingd in both transform chains), write the set with SyntheticWriter(reference_image=a "
                        "real image), or pass spacing_tolerance=None if the spacing does not matter"
                    )
    for key in box_keys:
        if key in real and key in synthetic and key == GanKeys.BOXES:
            rb, sb = np.asarray(real[key], dtype=float), np.asarray(_as_like(synthetic[key], [], key), dtype=float)
            if rb.size and sb.size and rb.reshape(len(rb), -1).shape[-1] != sb.reshape(len(sb), -1).shape[-1]:
                problems.append(
                    f"{key!r} have {sb.reshape(len(sb), -1).shape[-1]} coordinates, the real ones "
                    f"{rb.reshape(len(rb), -1).shape[-1]} (2D vs 3D boxes)"
                )
    if problems:
        raise SyntheticMixError(
            f"{source_name} does not match the real data: " + "; ".join(problems) + "."
        )
    for key in image_keys:
        if key in real and key in synthetic and _shape(real[key]) and _shape(synthetic[key]):
            r = torch.as_tensor(np.asarray(_as_like(real[key], np.zeros(0, np.float32), key), dtype=np.float32))
            s = torch.as_tensor(np.asarray(_as_like(synthetic[key], np.zeros(0, np.float32), key), dtype=np.float32))
            r_lo, r_hi, s_lo, s_hi = float(r.min()), float(r.max()), float(s.min()), float(s.max())
            r_span, s_span = max(r_hi - r_lo, 1e-8), max(s_hi - s_lo, 1e-8)
            if max(r_span / s_span, s_span / r_span) > 10.0 or s_hi < r_lo or r_hi < s_lo:
                warnings.warn(
                    f"{source_name}: {key!r} intensities span [{s_lo:.3g}, {s_hi:.3g}], the real data "
                    f"[{r_lo:.3g}, {r_hi:.3g}]; apply the same intensity transform to both (generators output "
                    "[-1, 1]: e.g. ScaleIntensityd in the source's transform).",
                    stacklevel=3,
                )


class SampleMixer:
    """Gives real and synthetic samples of one mix the same keys, types and provenance.

    ``managed`` keys (images, dense labels, boxes, classes) of a synthetic sample replace the real sample's together,
    converted to the real entry's type (MetaTensor / tensor / ndarray / list / int), dtype and device, so labels stay
    aligned with their image and a batch of mixed samples collates. Any other key of the real data is dropped from
    every sample (``other_keys="drop"``: e.g. ``patient`` or a ``tissue`` map the source does not produce would be
    wrong for a synthetic image) or copied from the real sample (``"keep"``). Provenance keys are always set.

    Args:
        image_keys, label_keys, box_keys, class_keys: the managed keys.
        other_keys: ``"drop"`` or ``"keep"``.
    """

    def __init__(
        self,
        image_keys: Sequence[str] | str = IMAGE_KEYS,
        label_keys: Sequence[str] | str | None = LABEL_KEYS,
        box_keys: Sequence[str] | str | None = BOX_KEYS,
        class_keys: Sequence[str] | str | None = CLASS_KEYS,
        other_keys: str = "drop",
    ) -> None:
        if other_keys not in ("drop", "keep"):
            raise SyntheticMixError(f"other_keys must be 'drop' or 'keep', got {other_keys!r}.")
        self.image_keys = tuple(ensure_tuple(image_keys))
        if not self.image_keys:
            raise SyntheticMixError("image keys must not be empty.")
        self.label_keys = tuple(ensure_tuple(label_keys)) if label_keys is not None else ()
        self.box_keys = tuple(ensure_tuple(box_keys)) if box_keys is not None else ()
        self.class_keys = tuple(ensure_tuple(class_keys)) if class_keys is not None else ()
        self.other_keys = other_keys
        self.managed = (*self.image_keys, *self.label_keys, *self.box_keys, *self.class_keys)

    def _select(self, item: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        keep_all = self.other_keys == "keep"
        return {k: v for k, v in item.items() if k not in PROVENANCE_KEYS and (keep_all or k in self.managed)}

    def real(self, item: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """The real sample as it leaves the mix: selected keys plus ``synthetic=False`` provenance."""
        if not isinstance(item, Mapping):
            raise SyntheticMixError(f"the real data must be dicts (MONAI dictionary transforms), got {type(item).__name__}.")
        return mark_provenance(self._select(item), False, image_keys=self.image_keys)

    def synthetic(
        self, syn: Mapping[Hashable, Any], real: Mapping[Hashable, Any], source_name: str = "synthetic source"
    ) -> dict[Hashable, Any]:
        """The synthetic sample in place of ``real``: managed keys from ``syn`` (typed like ``real``), others per
        ``other_keys``, provenance from ``syn``.

        Raises:
            SyntheticMixError: ``syn`` lacks a managed key ``real`` has, or its image / label shape differs.
        """
        out = self._select(real)
        missing = [k for k in self.managed if k in real and k not in syn]
        if missing:
            raise SyntheticMixError(
                f"{source_name} produced no {missing}, which the real samples have; use a source that provides "
                "them (or check the mix at construction with check_against / SyntheticMixDataset(check=True))."
            )
        for key in self.managed:
            if key not in real:
                continue
            value = _as_like(syn[key], real[key], key)
            rs, vs = _shape(real[key]), _shape(value)
            if key in (*self.image_keys, *self.label_keys) and rs is not None and vs is not None and rs != vs:
                raise SyntheticMixError(
                    f"{source_name}: synthetic {key!r} has shape {vs}, the real sample {rs}; the shapes must match "
                    "(resize in the source's transform)."
                )
            out[key] = value
        return mark_provenance(
            out,
            True,
            source=syn.get(Provenance.SOURCE.value, source_name),
            checkpoint=syn.get(Provenance.CHECKPOINT.value, ""),
            seed=syn.get(Provenance.SEED.value, -1),
            image_keys=self.image_keys,
        )


# ---------------------------------------------------------------------------------------------------- sources
def _as_transform(transform: Any, owner: str) -> Callable | None:
    if transform is None:
        return None
    if isinstance(transform, (list, tuple)):
        return Compose(list(transform))
    if not callable(transform):
        raise TypeError(f"{owner}: transform must be callable (a MONAI Compose), got {type(transform).__name__}.")
    return transform


class SyntheticSource(Dataset):
    """Interface of a set of synthetic samples for :class:`SyntheticMixDataset` and the ``SyntheticMix`` transforms.

    ``len(source)`` samples; ``source[i]`` is a data dict with the keys of the real data dicts (``image`` and, when
    produced, ``label``, ``boxes``, ``box_labels``, ``class``) plus provenance ``synthetic=True``, ``source``,
    ``checkpoint``, ``seed`` (also in the image ``MetaTensor`` 's meta). A source is a torch ``Dataset``.

    Attributes:
        name: shown in provenance (``source``) and error messages.
        block_size: samples that are cheapest to draw together (a generator's batch); the transforms draw runs of
            consecutive indices of this length.
        conditional: samples depend on a real sample (``get_batch(indices, conditions=[real_item, ...])``).
        has_spacing: the images carry a meaningful voxel spacing (checked against the real data).
    """

    name: str = "synthetic"
    block_size: int = 1
    conditional: bool = False
    has_spacing: bool = True
    image_keys: tuple[str, ...] = IMAGE_KEYS
    transform: Callable | None = None

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__.")

    def __getitem__(self, index: int) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__.")

    def get_batch(self, indices: Sequence[int], conditions: Sequence[Mapping] | None = None) -> list[dict]:
        """Samples ``indices`` (conditioned on ``conditions[k]`` for conditional sources); default: one by one."""
        return [self[int(i)] for i in indices]

    def example(self, condition: Mapping | None = None) -> dict:
        """Sample 0 (conditioned on ``condition`` for conditional sources), for checks."""
        if self.conditional:
            if condition is None:
                raise SyntheticMixError(f"{self.name}: a conditional source needs a real sample to make an example.")
            return self.get_batch([0], [condition])[0]
        return self.get_batch([0])[0]

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> SyntheticSource:
        """Re-seed the random transforms of the source's transform chain (called by MONAI's ``set_rnd`` in each
        DataLoader worker and by the ``SyntheticMix`` transforms)."""
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed=seed, state=state)
        return self

    def _finish(self, item: Mapping, checkpoint: Any, seed: int) -> dict:
        if self.transform is not None:
            item = self.transform(dict(item))
            if not isinstance(item, Mapping):
                raise SyntheticMixError(
                    f"{self.name}: the transform must return a dict (dictionary transforms), got {type(item).__name__}."
                )
        return mark_provenance(item, True, self.name, checkpoint, seed, self.image_keys)


class FolderSource(SyntheticSource):
    """A synthetic set on disk: the folder (``datalist.json``) or datalist written by any bundle's inference
    (:class:`~monai_gan_aug.handlers.SyntheticWriter`), or any datalist of synthetic items.

    Items are read with :func:`monai_gan_aug.data.load_datalist` (files checked at construction). Each sample is
    loaded with ``transform`` (pass the real data's transform chain, so both are preprocessed alike) or, when None,
    with ``LoadMedicalImaged`` + channel-first for the path keys (``image``, ``label``, ``tissue``). Provenance:
    ``source`` is the folder, ``checkpoint`` and ``seed`` come from the item (the manifest's checkpoint otherwise).

    Args:
        path_or_datalist: a synthetic folder, a datalist JSON, or a list of item dicts (absolute paths).
        transform: MONAI dictionary transform chain applied to every item (it must load the files).
        split: datalist split to read; ``"all"`` (default) takes every item (``load_datalist`` would otherwise split
            a one-list synthetic datalist into training / validation / test parts).
        spatial_dims: 2 or 3 (for the datalist's box checks).
        image_keys: image keys of the items.
        check_files: check that every file exists and every box lies inside its image (construction time).
        name: provenance ``source`` (default: the folder path).

    Raises:
        SyntheticMixError / DatalistError: no such folder, no items, an item marked ``synthetic: false``.
    """

    def __init__(
        self,
        path_or_datalist: str | os.PathLike | Sequence[Mapping],
        transform: Callable | Sequence[Callable] | None = None,
        split: str = "all",
        spatial_dims: int = 2,
        image_keys: Sequence[str] | str = IMAGE_KEYS,
        check_files: bool = True,
        name: str | None = None,
    ) -> None:
        from monai_gan_aug.data.datalist import check_datalist, load_datalist

        self.image_keys = tuple(ensure_tuple(image_keys))
        manifest_ckpt = ""
        if isinstance(path_or_datalist, (str, os.PathLike)):
            path = Path(path_or_datalist).expanduser()
            if not path.exists():
                raise SyntheticMixError(
                    f"FolderSource: {path} does not exist; pass the synthetic folder written by a bundle's inference "
                    "(it holds datalist.json) or its datalist.json."
                )
            items = load_datalist(path, split=split, spatial_dims=spatial_dims, check=check_files)
            folder = path if path.is_dir() else path.parent
            manifest = folder / "manifest.json"
            if manifest.is_file():
                try:
                    manifest_ckpt = json.loads(manifest.read_text()).get("checkpoint") or ""
                except (OSError, ValueError):
                    manifest_ckpt = ""
            self.name = name or str(path.resolve())
        elif isinstance(path_or_datalist, Sequence) and all(isinstance(i, Mapping) for i in path_or_datalist):
            items = [dict(i) for i in path_or_datalist]
            if check_files and items:
                check_datalist(items, spatial_dims=spatial_dims)
            self.name = name or "datalist"
        else:
            raise TypeError(
                f"FolderSource: path_or_datalist must be a folder / JSON path or a list of dicts, got "
                f"{type(path_or_datalist).__name__}."
            )
        if not items:
            raise SyntheticMixError(
                f"FolderSource: {self.name} holds no synthetic samples (empty split {split!r}); generate some first "
                "(the bundle's inference.json) or point to the right folder."
            )
        real = [i for i, it in enumerate(items) if it.get(Provenance.SYNTHETIC.value) is False]
        if real:
            raise SyntheticMixError(
                f"FolderSource: {len(real)} item(s) of {self.name} are marked synthetic: false (e.g. "
                f"{items[real[0]].get('image')}); this looks like real data. Point FolderSource to a synthetic set."
            )
        unmarked = sum(1 for it in items if Provenance.SYNTHETIC.value not in it)
        if unmarked:
            logger.info("FolderSource: %d item(s) of %s carry no 'synthetic' flag; treated as synthetic.", unmarked, self.name)
        missing_img = [i for i, it in enumerate(items) if any(k not in it for k in self.image_keys)]
        if missing_img:
            raise SyntheticMixError(f"FolderSource: item {missing_img[0]} of {self.name} has no {list(self.image_keys)}.")
        self.items = items
        self.manifest_checkpoint = manifest_ckpt
        if transform is None:
            from monai_gan_aug.data.loading import LoadMedicalImaged

            path_keys = [k for k in (*self.image_keys, GanKeys.LABEL.value, GanKeys.TISSUE.value) if k in items[0]]
            transform = Compose([LoadMedicalImaged(keys=path_keys, image_only=True, ensure_channel_first=True)])
        self.transform = _as_transform(transform, "FolderSource")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not -len(self.items) <= index < len(self.items):
            raise IndexError(f"FolderSource index {index} out of range (0..{len(self.items) - 1}).")
        item = self.items[index]
        seed = item.get(Provenance.SEED.value, -1)
        checkpoint = item.get(Provenance.CHECKPOINT.value) or self.manifest_checkpoint
        return self._finish(dict(item), checkpoint, int(seed) if seed is not None else -1)


# ---------------------------------------------------------------------------------------------------- schedule
class RatioSchedule:
    """The synthetic ratio per epoch (epochs counted from 0).

    Args:
        schedule: a number (constant), a callable ``epoch -> ratio``, or a dict ``{"type": "linear", "start": a,
            "end": b, "epochs": n}`` (``a`` at epoch 0, ``b`` from epoch ``n - 1`` on, linear in between) or
            ``{"type": "constant", "value": r}``.
        upper: largest allowed value (1 for a fraction of replaced samples).
        name: argument name for messages.
    """

    def __init__(self, schedule: float | Callable[[int], float] | Mapping, upper: float | None = None, name: str = "schedule") -> None:
        self.upper, self.name = upper, name
        self.fn: Callable[[int], float] | None = None
        self.spec: dict[str, Any] | None = None
        if isinstance(schedule, Mapping):
            spec = dict(schedule)
            kind = spec.get("type", "linear")
            if kind == "constant":
                unknown = set(spec) - {"type", "value"}
                value = _check_number(f"{name}['value']", spec.get("value", None), upper)
                spec = {"type": "constant", "value": value}
            elif kind == "linear":
                unknown = set(spec) - {"type", "start", "end", "epochs"}
                missing = [k for k in ("start", "end", "epochs") if k not in spec]
                if missing:
                    raise SyntheticMixError(f"{name}: a linear schedule needs {missing} (e.g. {{'type': 'linear', 'start': 0, 'end': 1, 'epochs': 10}}).")
                start = _check_number(f"{name}['start']", spec["start"], upper)
                end = _check_number(f"{name}['end']", spec["end"], upper)
                if not _is_int(spec["epochs"]) or spec["epochs"] < 1:
                    raise SyntheticMixError(f"{name}['epochs'] must be an int >= 1, got {spec['epochs']!r}.")
                spec = {"type": "linear", "start": start, "end": end, "epochs": int(spec["epochs"])}
            else:
                raise SyntheticMixError(f"{name}: unknown schedule type {kind!r}; use 'linear' or 'constant' or pass a callable.")
            if unknown:
                raise SyntheticMixError(f"{name}: unknown key(s) {sorted(unknown)} for a {kind} schedule.")
            self.spec = spec
        elif callable(schedule):
            self.fn = schedule
        else:
            self.spec = {"type": "constant", "value": _check_number(name, schedule, upper)}

    @property
    def max(self) -> float | None:
        """The largest value the schedule takes (None for a callable)."""
        if self.spec is None:
            return None
        if self.spec["type"] == "constant":
            return self.spec["value"]
        return max(self.spec["start"], self.spec["end"])

    def __call__(self, epoch: int) -> float:
        if not _is_int(epoch) or epoch < 0:
            raise SyntheticMixError(f"epoch must be an int >= 0, got {epoch!r}.")
        if self.fn is not None:
            return _check_number(f"{self.name}({epoch})", self.fn(int(epoch)), self.upper)
        spec = self.spec or {}
        if spec["type"] == "constant":
            return spec["value"]
        n = spec["epochs"]
        t = 1.0 if n <= 1 else min(int(epoch), n - 1) / (n - 1)
        return spec["start"] + (spec["end"] - spec["start"]) * t


# ---------------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class MixPlan:
    """The index mapping of one epoch of a :class:`SyntheticMixDataset`.

    Attributes:
        epoch: the epoch.
        ratio: the requested ratio of this epoch.
        synthetic: ``(L,)`` bool, position ``p`` is a synthetic sample.
        real_index: ``(L,)`` the real sample at ``p`` (for synthetic positions: the real sample whose conditions a
            conditional source uses, in ``replace`` mode the replaced one).
        source_index: ``(L,)`` the source index at synthetic positions (-1 elsewhere).
    """

    epoch: int
    ratio: float
    synthetic: np.ndarray
    real_index: np.ndarray
    source_index: np.ndarray

    @property
    def num_synthetic(self) -> int:
        return int(self.synthetic.sum())

    @property
    def num_real(self) -> int:
        return int((~self.synthetic).sum())


def _cycled_permutations(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """``count`` indices from consecutive random permutations of ``range(n)`` (no repeats while count <= n)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    reps = -(-count // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count].astype(np.int64)


class SyntheticMixDataset(Dataset):
    """A real dataset with synthetic samples mixed in at an exact ratio per epoch.

    Han et al. (2019) found that the real/synthetic balance decides whether GAN-based augmentation helps (1:1 to
    1:2 worked best, more synthetic data hurt); this dataset makes that balance exact and repeatable.

    - ``mode="add"``: ``ratio`` synthetic samples per real sample: with ``R`` real samples an epoch has ``R`` real
      and ``round(ratio * R)`` synthetic ones (1.0 = as many synthetic as real).
    - ``mode="replace"``: ``round(ratio * R)`` of the ``R`` positions (``ratio`` in [0, 1]) hold a synthetic sample
      instead of the real one (conditioned on the replaced sample when the source is conditional).

    The epoch length is constant (Ignite and MONAI engines fix ``epoch_length`` after the first epoch): with a
    ``schedule`` in ``add`` mode it is set by the schedule's largest ratio, and epochs with a lower ratio fill the
    remaining positions with extra real samples (each real sample at least once), so that synthetic / real in the
    epoch equals the scheduled ratio up to rounding to whole samples.

    The mapping of epoch ``e`` is a pure function of ``(seed, e)``: :meth:`set_epoch` (or
    :class:`SyntheticMixEpochHandler`) draws a new one, identical in every DataLoader worker (the epoch lives in
    shared memory, so persistent workers follow too) and every distributed rank, so any sampler works, including
    ``DistributedSampler``. Synthetic indices do not repeat within an epoch while the source is large enough, and a
    virtual :class:`GeneratorSource` gives fresh samples in every epoch. DataLoaders fetch whole batches through
    :meth:`__getitems__`, so on-the-fly generation runs once per batch.

    Args:
        real_dataset: the real dataset (dict samples after its transforms, e.g. ``monai.data.Dataset``).
        source: a :class:`SyntheticSource` (e.g. ``FolderSource(folder, transform=<the real transforms>)``).
        ratio: synthetic per real (``add``, >= 0) or fraction replaced (``replace``, in [0, 1]); with a callable
            ``schedule`` its upper bound (it fixes the epoch length); ignored with a dict schedule.
        mode: ``"add"`` or ``"replace"``.
        schedule: None, a callable ``epoch -> ratio`` or ``{"type": "linear", "start": 0, "end": 1, "epochs": 10}``.
        seed: seed of the mappings.
        shuffle: interleave real and synthetic positions (``add`` mode) so that a sequential sampler mixes too.
        image_keys, label_keys, box_keys, class_keys, other_keys: see :class:`SampleMixer`.
        check: compare the first real and first synthetic sample at construction (:func:`check_compatible`).
        spacing_tolerance: see :func:`check_compatible`.

    Raises:
        SyntheticMixError: bad ratio / mode / schedule, an empty dataset or source, or a source that does not fit
            the real data (shape, channels, spacing, missing label keys).
    """

    def __init__(
        self,
        real_dataset: Dataset,
        source: SyntheticSource,
        ratio: float = 1.0,
        mode: str = "add",
        schedule: Callable[[int], float] | Mapping | None = None,
        seed: int = 0,
        shuffle: bool = True,
        image_keys: Sequence[str] | str = IMAGE_KEYS,
        label_keys: Sequence[str] | str | None = LABEL_KEYS,
        box_keys: Sequence[str] | str | None = BOX_KEYS,
        class_keys: Sequence[str] | str | None = CLASS_KEYS,
        other_keys: str = "drop",
        check: bool = True,
        spacing_tolerance: float | None = 0.5,
    ) -> None:
        if mode not in ("add", "replace"):
            raise SyntheticMixError(f"mode must be 'add' or 'replace', got {mode!r}.")
        if not isinstance(source, SyntheticSource):
            raise TypeError(
                f"source must be a SyntheticSource (FolderSource, GeneratorSource), got {type(source).__name__}."
            )
        if not _is_int(seed) or seed < 0:
            raise SyntheticMixError(f"seed must be an int >= 0, got {seed!r}.")
        upper = 1.0 if mode == "replace" else None
        self.mode, self.source, self.seed, self.shuffle = mode, source, int(seed), bool(shuffle)
        ratio = _check_number("ratio" if mode == "add" else "ratio (fraction of replaced samples)", ratio, upper)
        self.schedule = RatioSchedule(schedule if schedule is not None else ratio, upper, "schedule" if schedule is not None else "ratio")
        self.max_ratio = self.schedule.max if self.schedule.max is not None else ratio
        if mode == "add" and self.max_ratio > _PAPER_MAX_RATIO:
            warnings.warn(
                f"SyntheticMixDataset: {self.max_ratio:g} synthetic samples per real one; Han et al. (2019) found "
                "real:synthetic 1:1 to 1:2 best and worse results with more synthetic data.",
                stacklevel=2,
            )
        try:
            self.num_real = len(real_dataset)  # type: ignore[arg-type]
        except TypeError as err:
            raise TypeError(f"real_dataset must have a length, got {type(real_dataset).__name__}.") from err
        if self.num_real < 1:
            raise SyntheticMixError("real_dataset is empty: there is nothing to mix synthetic samples into.")
        if len(source) < 1:
            raise SyntheticMixError(f"the synthetic source {source.name} is empty.")
        self.real_dataset = real_dataset
        self.mixer = SampleMixer(image_keys, label_keys, box_keys, class_keys, other_keys)
        if mode == "add":
            self._length = self.num_real + math.floor(self.max_ratio * self.num_real + 0.5)
        else:
            self._length = self.num_real
        self._epoch = torch.zeros(1, dtype=torch.int64)
        try:
            self._epoch.share_memory_()
        except (RuntimeError, OSError):  # no shared memory: persistent workers will not follow set_epoch
            logger.warning("SyntheticMixDataset: shared memory unavailable; use persistent_workers=False.")
        self._spacing_tolerance = spacing_tolerance
        self._plan: MixPlan | None = None
        self.plan(0)  # validates a callable schedule at epoch 0
        self._template: dict | None = None
        if check:
            self.check()

    # ------------------------------------------------------------------ epochs
    def __len__(self) -> int:
        return self._length

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Use the mapping of ``epoch`` (0-based) from now on, in this process and in its DataLoader workers."""
        if not _is_int(epoch) or epoch < 0:
            raise SyntheticMixError(f"set_epoch: epoch must be an int >= 0, got {epoch!r}.")
        self.plan(int(epoch))  # validate the schedule value before publishing the epoch
        self._epoch[0] = int(epoch)

    def ratio_at(self, epoch: int) -> float:
        """The requested ratio of ``epoch``."""
        r = self.schedule(epoch)
        if r > self.max_ratio + 1e-12:
            raise SyntheticMixError(
                f"schedule({epoch}) = {r:g} exceeds ratio={self.max_ratio:g}, which fixes the epoch length; pass the "
                "schedule's largest value as ratio."
            )
        return r

    def num_synthetic(self, epoch: int) -> int:
        """Number of synthetic samples in ``epoch``."""
        r = self.ratio_at(epoch)
        if self.mode == "replace":
            return math.floor(r * self.num_real + 0.5)
        extra = self._length - self.num_real
        if r >= self.max_ratio:
            return extra
        return min(math.floor(self._length * r / (1.0 + r) + 0.5), extra)

    def _source_indices(self, epoch: int, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        n = len(self.source)
        if getattr(self.source, "is_virtual", False):  # fresh samples every epoch; another mix seed, other samples
            offset = (self.seed << 32) + sum(self.num_synthetic(e) for e in range(epoch))
            return ((offset + np.arange(count, dtype=np.int64)) % n).astype(np.int64)
        return _cycled_permutations(np.random.default_rng([self.seed, epoch, 1]), n, count)

    def plan(self, epoch: int | None = None) -> MixPlan:
        """The mapping of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._plan is not None and self._plan.epoch == epoch:
            return self._plan
        ratio, n_syn, n_real, length = self.ratio_at(epoch), self.num_synthetic(epoch), self.num_real, self._length
        rng = np.random.default_rng([self.seed, epoch])
        if self.mode == "add":
            reals = np.concatenate(
                [np.arange(n_real, dtype=np.int64), _cycled_permutations(rng, n_real, length - n_syn - n_real)]
            )
            cond = _cycled_permutations(rng, n_real, n_syn)
            synthetic = np.concatenate([np.zeros(len(reals), bool), np.ones(n_syn, bool)])
            real_index = np.concatenate([reals, cond])
            source_index = np.concatenate([np.full(len(reals), -1, np.int64), self._source_indices(epoch, n_syn)])
            if self.shuffle:
                order = rng.permutation(length)
                synthetic, real_index, source_index = synthetic[order], real_index[order], source_index[order]
        else:
            synthetic = np.zeros(length, bool)
            synthetic[rng.choice(length, size=n_syn, replace=False)] = True
            real_index = np.arange(length, dtype=np.int64)
            source_index = np.full(length, -1, np.int64)
            source_index[synthetic] = self._source_indices(epoch, n_syn)
        plan = MixPlan(epoch, ratio, synthetic, real_index, source_index)
        if epoch == self.epoch:
            self._plan = plan
        return plan

    # ------------------------------------------------------------------ samples
    def _real(self, index: int) -> Mapping:
        item = self.real_dataset[int(index)]
        if not isinstance(item, Mapping):
            raise SyntheticMixError(
                f"real_dataset[{index}] is a {type(item).__name__}; SyntheticMixDataset mixes dict samples (MONAI "
                "dictionary transforms)."
            )
        return item

    def check(self) -> None:
        """Compare the first real sample with the first synthetic sample (both after their transforms).

        Raises:
            SyntheticMixError: see :func:`check_compatible`.
        """
        real = self._real(0)
        syn = self.source.example(real if self.source.conditional else None)
        check_compatible(
            real, syn, self.mixer.image_keys, self.mixer.label_keys, self.mixer.box_keys, self.mixer.class_keys,
            self._spacing_tolerance, self.source.name, check_spacing=self.source.has_spacing,
        )
        self.mixer.synthetic(syn, real, self.source.name)
        self._template = self.mixer.real(real)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """Samples at ``indices``; the synthetic ones of the request are generated / loaded together."""
        plan = self.plan()
        out: list[dict | None] = [None] * len(indices)
        syn_slots: list[int] = []
        for slot, p in enumerate(indices):
            p = int(p)
            if not -self._length <= p < self._length:
                raise IndexError(f"SyntheticMixDataset index {p} out of range (length {self._length}).")
            if plan.synthetic[p]:
                syn_slots.append(slot)
            else:
                out[slot] = self.mixer.real(self._real(plan.real_index[p]))
        if syn_slots:
            pos = [int(indices[s]) for s in syn_slots]
            conds = [self._real(plan.real_index[p]) for p in pos] if self.source.conditional else None
            syn = self.source.get_batch([int(plan.source_index[p]) for p in pos], conds)
            for k, slot in enumerate(syn_slots):
                like = conds[k] if conds is not None else self._like()
                out[slot] = self.mixer.synthetic(syn[k], like, self.source.name)
        return out  # type: ignore[return-value]

    def _like(self) -> Mapping:
        if self._template is None:
            self._template = self.mixer.real(self._real(0))
        return self._template
