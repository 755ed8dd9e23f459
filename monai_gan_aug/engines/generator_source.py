# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A :class:`~monai_gan_aug.data.mix.SyntheticSource` whose samples a generator makes on the fly (generation is an
engine's job, so it lives here; the mixing itself is on the data floor: :mod:`monai_gan_aug.data.mix`)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import ensure_tuple

from monai_gan_aug.data.mix import (
    IMAGE_KEYS,
    VIRTUAL_LENGTH,
    MissingCheckpointError,
    SyntheticMixError,
    SyntheticSource,
    _as_transform,
    _is_int,
)
from monai_gan_aug.engines.generation import load_generator_weights
from monai_gan_aug.utils.enums import GanKeys, Provenance

__all__ = ["GeneratorSource"]


class GeneratorSource(SyntheticSource):
    """Synthetic samples generated on the fly by a generator network through its family's objective.

    Sample ``i`` is ``objective.generate(..., seeds=[seed + i])``: the same index always gives the same sample,
    whatever batch it is generated in (latents come from the seed alone), so a mixed epoch is repeatable and any
    sample can be regenerated from its provenance. Unconditional samples are generated ``batch_size`` at a time
    (``source[i]`` generates the aligned block holding ``i``, :meth:`get_batch` the missing ones of a request in one
    forward pass) and kept in an LRU cache of ``cache_size`` blocks. Conditional generators (boxes, masks, class,
    a reference image) are given the condition of a real sample (:meth:`condition_from`), and the synthetic sample
    keeps that condition's labels unless the generator outputs its own, so labels and image stay aligned.

    Works on CPU or GPU (``device``); outputs are CPU tensors. With a CUDA device generate in the main process
    (``num_workers=0``, generation is batched) or use ``multiprocessing_context="spawn"``: CUDA cannot run in forked
    DataLoader workers.

    Args:
        network: the generator (moved to ``device``; run in eval mode, no gradients).
        objective: its family's :class:`~monai_gan_aug.losses.objectives.GanObjective` (for ``generate``).
        checkpoint: training checkpoint or state dict to load (EMA weights preferred); None keeps the weights.
        num_samples: number of samples; None: a virtual length of :data:`VIRTUAL_LENGTH` (fresh samples forever).
        batch_size: samples per generator forward pass.
        device: generation device.
        cache_size: generated blocks kept (0: no cache).
        condition_fn: ``real_item -> dict`` of conditions for ``objective.generate(batch=...)`` (makes the source
            conditional).
        condition_keys: keys of the real item passed as conditions (e.g. ``("boxes", "box_labels")`` or
            ``("label",)``; makes the source conditional).
        transform: dictionary transform chain applied to each generated sample (e.g. intensity scaling to the real
            data's range).
        seed: sample ``i`` uses seed ``seed + i``.
        affine: affine of the generated images (their voxel spacing); None: identity and no spacing check.
        name: provenance ``source`` (default ``"generator:<class>"``).

    Raises:
        MissingCheckpointError: ``checkpoint`` does not exist.
        SyntheticMixError: empty source, bad sizes, or an unconditional source whose objective needs conditions.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        objective: Any,
        checkpoint: str | os.PathLike | None = None,
        num_samples: int | None = None,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        cache_size: int = 4,
        condition_fn: Callable[[Mapping], Mapping] | None = None,
        condition_keys: Sequence[str] | str | None = None,
        transform: Callable | Sequence[Callable] | None = None,
        seed: int = 0,
        affine: Any = None,
        name: str | None = None,
        image_keys: Sequence[str] | str = IMAGE_KEYS,
    ) -> None:
        if not isinstance(network, torch.nn.Module):
            raise TypeError(f"GeneratorSource: network must be a torch.nn.Module, got {type(network).__name__}.")
        if not callable(getattr(objective, "generate", None)):
            raise TypeError(
                f"GeneratorSource: objective must be a GanObjective (with generate()), got {type(objective).__name__}."
            )
        if num_samples is not None and (not _is_int(num_samples) or num_samples < 1):
            raise SyntheticMixError(
                f"GeneratorSource: num_samples must be a positive int (an empty source cannot be mixed) or None for "
                f"an unbounded source, got {num_samples!r}."
            )
        if not _is_int(batch_size) or batch_size < 1:
            raise SyntheticMixError(f"GeneratorSource: batch_size must be an int >= 1, got {batch_size!r}.")
        if not _is_int(cache_size) or cache_size < 0:
            raise SyntheticMixError(f"GeneratorSource: cache_size must be an int >= 0, got {cache_size!r}.")
        if not _is_int(seed) or seed < 0:
            raise SyntheticMixError(f"GeneratorSource: seed must be an int >= 0, got {seed!r}.")
        if condition_fn is not None and not callable(condition_fn):
            raise TypeError(f"GeneratorSource: condition_fn must be callable, got {type(condition_fn).__name__}.")
        self.device = torch.device(device)
        self.objective = objective
        self.generator_name = getattr(objective, "generator_name", "generator")
        self.checkpoint = "" if checkpoint is None else str(checkpoint)
        if checkpoint is not None:
            if not Path(checkpoint).expanduser().is_file():
                raise MissingCheckpointError(
                    f"GeneratorSource: generator checkpoint {str(checkpoint)!r} not found. Train first (the bundle's "
                    "train.json writes checkpoints/checkpoint_<iteration>.pt), pass the right path, or checkpoint=None "
                    "to use the network's current weights."
                )
            load_generator_weights(network, str(checkpoint), name=self.generator_name)
        self.network = network.to(self.device)
        self.num_samples = int(num_samples) if num_samples is not None else None
        self.batch_size = self.block_size = int(batch_size)
        self.cache_size = int(cache_size)
        self.condition_fn = condition_fn
        self.condition_keys = tuple(ensure_tuple(condition_keys)) if condition_keys is not None else None
        self.conditional = condition_fn is not None or self.condition_keys is not None
        self.transform = _as_transform(transform, "GeneratorSource")
        self.seed = int(seed)
        self.image_keys = tuple(ensure_tuple(image_keys))
        self.has_spacing = affine is not None
        self.affine = None if affine is None else torch.as_tensor(np.asarray(affine, dtype=np.float64))
        self.name = name or f"generator:{type(network).__name__}"
        self._cache: OrderedDict[int, dict] = OrderedDict()
        if not self.conditional:
            try:
                self._raw([0])
            except Exception as err:
                raise SyntheticMixError(
                    f"GeneratorSource: {type(objective).__name__}.generate failed without conditions "
                    f"({type(err).__name__}: {err}). If the generator is conditional pass condition_keys=(...) or "
                    "condition_fn; otherwise check that network and objective belong together."
                ) from err

    @property
    def is_virtual(self) -> bool:
        """True when the source has no ``num_samples`` (length :data:`VIRTUAL_LENGTH`)."""
        return self.num_samples is None

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else VIRTUAL_LENGTH

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # workers start with an empty cache
        return state

    def condition_from(self, real_item: Mapping) -> dict:
        """The conditions of ``real_item`` handed to ``objective.generate(batch=...)`` (``condition_fn`` or the
        ``condition_keys`` entries)."""
        if self.condition_fn is not None:
            cond = self.condition_fn(real_item)
            if not isinstance(cond, Mapping):
                raise SyntheticMixError(f"GeneratorSource: condition_fn must return a dict, got {type(cond).__name__}.")
            return dict(cond)
        keys = self.condition_keys or ()
        missing = [k for k in keys if k not in real_item]
        if missing:
            raise SyntheticMixError(
                f"GeneratorSource: the real sample has no {missing} to condition the generator on (condition_keys="
                f"{list(keys)}, sample keys {sorted(map(str, real_item))})."
            )
        return {k: real_item[k] for k in keys}

    def _check_index(self, index: int) -> int:
        index = int(index)
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"GeneratorSource index {index} out of range (0..{n - 1}).")
        return index

    def _raw(self, indices: Sequence[int], conditions: Sequence[Mapping] | None = None) -> list[dict]:
        """Generate the samples ``indices`` (before ``transform``) in one forward pass."""
        from monai.networks.utils import eval_mode

        from monai_gan_aug.data.collate import gan_collate

        seeds = [self.seed + int(i) for i in indices]
        batch = None
        conds: list[dict] = []
        if self.conditional:
            if conditions is None or len(conditions) != len(seeds):
                raise SyntheticMixError(
                    f"{self.name} is conditional: pass one real sample per index (conditions=[...]); got "
                    f"{0 if conditions is None else len(conditions)} for {len(seeds)} indices."
                )
            conds = [self.condition_from(c) for c in conditions]
            batch = self.objective.prepare_batch(gan_collate(conds), self.device)
        nets = {self.generator_name: self.network}
        with eval_mode(self.network), torch.no_grad():
            out = self.objective.generate(nets, len(seeds), batch=batch, seeds=seeds, device=self.device)
        if not isinstance(out, Mapping) or GanKeys.IMAGE not in out:
            raise SyntheticMixError(f"{type(self.objective).__name__}.generate returned no 'image'.")
        images = out[GanKeys.IMAGE].detach().float().cpu()
        items: list[dict] = []
        for j, seed in enumerate(seeds):
            img = MetaTensor(images[j].clone(), affine=self.affine) if self.affine is not None else MetaTensor(images[j].clone())
            item: dict[Hashable, Any] = {self.image_keys[0]: img}
            for key in (GanKeys.LABEL, GanKeys.BOXES, GanKeys.BOX_LABELS, GanKeys.CLASS):
                value = out.get(key)
                if value is not None:
                    v = value[j]
                    v = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
                    if key == GanKeys.LABEL:
                        v = MetaTensor(v, affine=self.affine) if self.affine is not None else MetaTensor(v)
                    item[key.value] = v
                elif conds and key.value in conds[j]:  # the condition's labels describe the generated sample
                    item[key.value] = conds[j][key.value]
            item[Provenance.SEED.value] = seed
            items.append(item)
        return items

    def _cached(self, index: int) -> dict | None:
        item = self._cache.get(index)
        if item is not None:
            self._cache.move_to_end(index)
        return item

    def _store(self, index: int, item: dict) -> None:
        if self.cache_size <= 0:
            return
        self._cache[index] = item
        self._cache.move_to_end(index)
        while len(self._cache) > self.cache_size * self.batch_size:
            self._cache.popitem(last=False)

    def _emit(self, raw: dict) -> dict:
        item = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in raw.items()}
        seed = int(item.pop(Provenance.SEED.value))
        return self._finish(item, self.checkpoint, seed)

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        if self.conditional:
            raise SyntheticMixError(
                f"{self.name} is conditional: use get_batch([index], conditions=[real_item]) (the mix does)."
            )
        raw = self._cached(index)
        if raw is None:
            start = (index // self.batch_size) * self.batch_size
            block = list(range(start, min(start + self.batch_size, len(self))))
            for i, r in zip(block, self._raw(block)):
                self._store(i, r)
                if i == index:
                    raw = r
        return self._emit(raw)

    def get_batch(self, indices: Sequence[int], conditions: Sequence[Mapping] | None = None) -> list[dict]:
        indices = [self._check_index(i) for i in indices]
        if not indices:
            return []
        if self.conditional:
            raws: list[dict] = []
            for k in range(0, len(indices), self.batch_size):
                raws.extend(self._raw(indices[k : k + self.batch_size], list(conditions or [])[k : k + self.batch_size]))
            return [self._emit(r) for r in raws]
        found = {i: self._cached(i) for i in indices}
        todo = sorted({i for i, r in found.items() if r is None})
        for k in range(0, len(todo), self.batch_size):
            chunk = todo[k : k + self.batch_size]
            for i, r in zip(chunk, self._raw(chunk)):
                found[i] = r
                self._store(i, r)
        return [self._emit(found[i]) for i in indices]
