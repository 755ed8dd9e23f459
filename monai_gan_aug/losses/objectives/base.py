# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The contract between the one GAN engine and each family's maths.

The engine (:class:`monai_gan_aug.engines.AdversarialTrainer`) knows nothing about a model: each iteration it walks the
objective's :class:`Phase` list (e.g. "discriminator" x n_critic, then "generator"), and for each phase it asks the
objective for a loss, back-propagates it into the phase's networks only, and steps their optimizers. This is the
phase design of NVlabs' stylegan2-ada training loop, with the per-family maths kept in one small object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from monai_gan_aug.utils.enums import GanKeys

__all__ = ["Phase", "PhaseContext", "GanObjective", "NoiseToImageObjective", "label_from_batch", "seeds_for"]


@dataclass
class PhaseContext:
    """What a phase's loss function sees.

    Attributes:
        nets: name -> network. Networks are the plain modules (never DDP wrappers).
        batch: the prepared batch (tensors on the engine's device), shared by all phases of one iteration.
        iteration: the engine's iteration (1-based) while the phase runs.
        repeat: index of this repeat of the phase (0 .. repeats-1), e.g. the critic step.
        outputs: a dict the loss may write detached tensors into (e.g. ``GanKeys.FAKES``) for handlers.
        device: the engine's device.
    """

    nets: Mapping[str, torch.nn.Module]
    batch: dict[str, Any]
    iteration: int
    repeat: int
    outputs: dict[str, Any]
    device: torch.device


@dataclass
class Phase:
    """One optimisation step kind inside an iteration.

    Args:
        name: short name used in logs and loss keys (``"d"``, ``"g"``, ``"e"``, ``"cd"``).
        networks: names of the networks that receive gradients in this phase; all others are frozen while it runs.
        loss: ``loss(ctx) -> (total_loss, terms)`` where ``terms`` maps names to detached scalars for logging.
        optimizers: names of the optimizers to step (defaults to ``networks``).
        repeats: how many times the phase runs per iteration (``n_critic`` for a WGAN critic).
        interval: run only every ``interval`` iterations (lazy regularisation).
    """

    name: str
    networks: Sequence[str]
    loss: Callable[[PhaseContext], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    optimizers: Sequence[str] | None = None
    repeats: int = 1
    interval: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.interval < 1:
            raise ValueError(f"phase {self.name!r}: repeats and interval must be >= 1, got {self.repeats}, {self.interval}.")
        self.networks = tuple(self.networks)
        self.optimizers = tuple(self.optimizers) if self.optimizers is not None else self.networks


class GanObjective:
    """Base class of every family's objective.

    Subclasses implement :meth:`phases` and :meth:`generate`. Conditions (box maps, encoded masks, pairs) are built
    by transforms in the dataset, so :meth:`prepare_batch` moves tensors to the device (an override may rename keys
    or check dtypes); state goes through :meth:`state_dict` (e.g. image pools); the progressive-growing stage lives
    in the PGGAN networks' buffers.

    Attributes:
        generator_name: the network the engine keeps an EMA of and the inference workflow uses.
        seeded: whether :meth:`generate`'s output depends on ``seeds`` (noise drawn from them). ``False`` for
            families whose output is a deterministic function of the batch's conditions in eval mode (pix2pix,
            CycleGAN): other seeds then give the same output (``tests/test_family_contracts.py`` checks both ways).
    """

    generator_name: str = "generator"
    seeded: bool = True
    #: the batch key of the training images; another key is also served as ``image`` (the engine's reals)
    image_key: str = GanKeys.IMAGE
    #: further batch keys cast to float by :meth:`prepare_batch` (e.g. a second domain, a reference image)
    float_keys: Sequence[str] = ()

    def phases(self) -> list[Phase]:
        """The phases of an iteration; subclasses set ``self._phases`` in ``__init__`` or override this."""
        if not hasattr(self, "_phases"):
            raise NotImplementedError(f"{type(self).__name__} must set self._phases or define phases().")
        return self._phases

    @property
    def network_names(self) -> tuple[str, ...]:
        """The networks (and optimizers) the phases train, in order of first use."""
        return tuple(dict.fromkeys(n for p in self.phases() for n in p.networks))

    def prepare_batch(self, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        """Move the batch's tensors to ``device``; the image (``image_key``, served as ``image`` too) and
        ``float_keys`` become float. Conditions are built by the dataset's transforms, not here."""
        out = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for key in (self.image_key, *self.float_keys):
            if isinstance(out.get(key), torch.Tensor):
                out[key] = out[key].float()
        if self.image_key != GanKeys.IMAGE and GanKeys.IMAGE not in self.float_keys and isinstance(out.get(self.image_key), torch.Tensor):
            out[GanKeys.IMAGE] = out[self.image_key]
        elif isinstance(out.get(GanKeys.IMAGE), torch.Tensor):
            out[GanKeys.IMAGE] = out[GanKeys.IMAGE].float()
        return out

    def require(self, batch: Mapping[str, Any], keys: Sequence[str], hint: str) -> list[Any]:
        """The values of ``keys`` in ``batch``; a clear error naming the missing ones (and ``hint``: where they come
        from) otherwise."""
        missing = [k for k in keys if not isinstance(batch.get(k), torch.Tensor)]
        if missing:
            raise ValueError(f"{type(self).__name__}: the batch lacks {missing} (keys: {sorted(map(str, batch))}); {hint}")
        return [batch[k] for k in keys]

    def generate(
        self, nets: Mapping[str, torch.nn.Module], num: int, batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Draw ``num`` samples; returns at least ``{GanKeys.IMAGE: (num, C, *spatial)}`` in [-1, 1]."""
        raise NotImplementedError(f"{type(self).__name__} must define generate().")

    def on_iteration_started(self, engine: Any) -> None:
        """Hook for schedules (e.g. the progressive-growing stage and fade-in alpha)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore what :meth:`state_dict` returned."""


def label_from_batch(batch: Mapping[str, Any], key: str | None, num: int, device: torch.device | str | None = None
                     ) -> torch.Tensor | None:
    """The first ``num`` maps under ``key`` as an integer tensor (a source mask handed back with a translated image:
    translation keeps the geometry), or None when ``key`` is None or not a tensor of the batch."""
    lab = batch.get(key) if key is not None else None
    if not isinstance(lab, torch.Tensor):
        return None
    lab = lab[:num] if device is None else lab[:num].to(device)
    return lab.round().long() if lab.is_floating_point() else lab


def seeds_for(num: int, seeds: Sequence[int] | None) -> list[int]:
    """``num`` integer seeds: the first ``num`` of ``seeds``, or fresh random ones when None (a clear error when
    ``num < 1`` or too few are given)."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}.")
    seeds = [int(s) for s in (torch.randint(0, 2**31 - 1, (num,)).tolist() if seeds is None else seeds)]
    if len(seeds) < num:
        raise ValueError(f"got {len(seeds)} seeds for {num} samples.")
    return seeds[:num]


def _latents_from_seeds(seeds: Sequence[int], shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """One latent per seed, independent of batch composition, so every written file can be regenerated."""
    out = torch.empty((len(seeds), *shape))
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        out[i] = torch.randn(tuple(shape), generator=g)
    return out.to(device)


class NoiseToImageObjective(GanObjective):
    """Shared parts of unconditional noise -> image families (DCGAN, WGAN-GP, ...).

    Args:
        latent_size: length of the latent vector.
        latent_spatial: trailing singleton dims of the latent (``spatial_dims`` ones for convolutional generators
            that take ``(N, z, 1, 1)``, 0 for generators that take ``(N, z)``).
    """

    def __init__(self, latent_size: int = 100, latent_spatial: int = 2) -> None:
        if latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {latent_size}.")
        self.latent_size = int(latent_size)
        self.latent_shape = (self.latent_size,) + (1,) * int(latent_spatial)

    def sample_latents(self, num: int, device: torch.device | str) -> torch.Tensor:
        return torch.randn((num, *self.latent_shape), device=device)

    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        z = (
            _latents_from_seeds(seeds, self.latent_shape, device)
            if seeds is not None
            else self.sample_latents(num, device)
        )
        return {GanKeys.IMAGE: nets[self.generator_name](z), GanKeys.LATENTS: z}
