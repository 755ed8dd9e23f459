# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Generation workflow: a MONAI :class:`~monai.engines.Evaluator` that runs a trained generator over a loader of
seeds (and conditions, for conditional families) and hands each batch of samples to writer handlers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from monai.engines import Evaluator
from monai.networks.utils import eval_mode
from torch.utils.data import Dataset

from monai_gan_aug.engines.utils import resolve_amp
from monai_gan_aug.losses.objectives.base import GanObjective
from monai_gan_aug.utils.misc import as_bool
from monai_gan_aug.utils.settings import read_settings, settings_differences, settings_path

logger = logging.getLogger(__name__)

__all__ = ["SeedDataset", "GanGenerationEvaluator", "load_generator_weights", "generator_state_dict", "InfererCall"]


class SeedDataset(Dataset):
    """``num_samples`` items ``{"seed": seed + i, "index": i}``: the latent of item i depends on its seed only, so
    any file of a synthetic set can be regenerated alone."""

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        self.num_samples, self.seed = int(num_samples), int(seed)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict[str, int]:
        if not 0 <= i < self.num_samples:
            raise IndexError(i)
        return {"seed": self.seed + i, "index": i}


def _read_generator_file(checkpoint: str | os.PathLike | None) -> Any:
    if not checkpoint or not os.path.isfile(checkpoint):
        raise FileNotFoundError(
            f"generator checkpoint {str(checkpoint) if checkpoint else None!r} not found: no models/model.pt in the "
            "bundle folder and no checkpoint_<iteration>.pt in the run's checkpoints folder. Train first "
            "(configs/train.json), export a trained run (python -m monai_gan_aug.export), or pass --checkpoint PATH."
        )
    try:
        from monai_gan_aug.utils.checkpoint_io import load_checkpoint  # weights_only: never runs code from the file

        return load_checkpoint(checkpoint)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {checkpoint} ({type(err).__name__}: {err}).") from err


def generator_state_dict(state: Any, name: str = "generator", prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The weights of network ``name`` in a loaded checkpoint: the EMA copy of a :class:`GanCheckpointHandler`
    file when there is one, else its ``networks`` entry; ``state[name]`` of an exported ``models/model.pt``; or
    ``state`` itself when it is a plain state dict. ``{}`` when there are none."""
    if not isinstance(state, Mapping):
        return {}
    prefix = f"{name}."
    if prefer_ema and isinstance(state.get("ema"), Mapping) and any(k.startswith(prefix) for k in state["ema"]):
        return _with_growth({k[len(prefix) :]: v for k, v in state["ema"].items() if k.startswith(prefix)}, state)
    if isinstance(state.get("networks"), Mapping):
        return _with_growth({k[len(prefix) :]: v for k, v in state["networks"].items() if k.startswith(prefix)}, state)
    if isinstance(state.get(name), Mapping) and all(isinstance(v, torch.Tensor) for v in state[name].values()):
        return dict(state[name])  # an exported bundle's models/model.pt: {name: state dict, "objective": ...}
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return dict(state)
    return {}


def _with_growth(weights: dict[str, torch.Tensor], state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A PGGAN checkpoint written before the networks stored their growth stage keeps it in its ``objective`` entry:
    give it to the weights (``stage`` / ``alpha`` buffers), so an unfinished run still generates at its stage."""
    old = state.get("objective")
    if weights and "stage" not in weights and isinstance(old, Mapping) and "stage" in old:
        weights = {**weights, "stage": torch.tensor(int(old["stage"])), "alpha": torch.tensor(float(old.get("alpha", 1.0)))}
    return weights


def load_generator_weights(
    network: torch.nn.Module,
    checkpoint: str,
    name: str = "generator",
    prefer_ema: bool = True,
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """Load a generator from a :class:`GanCheckpointHandler` checkpoint (EMA weights when present), an exported
    bundle's ``models/model.pt`` or a plain state-dict file. Raises a clear error when the file is missing or holds
    no such network.

    ``settings`` are the values this run built ``network`` with (e.g. ``{"image_size": 64}``); they are compared
    with the ``settings.json`` training wrote beside the checkpoint: when the weights do not fit, the error names
    each setting that differs; when they fit, a difference is only logged (a command-line override wins).

    ``device``: when given, the loaded network is moved there (``network.to(device)``) before it is returned, so a
    config builds its generator with one ``_target_`` component instead of ``$load_generator_weights(...).to(...)``.
    """
    state = _read_generator_file(checkpoint)
    sd = generator_state_dict(state, name, prefer_ema=prefer_ema)
    if not sd:
        raise ValueError(f"checkpoint {checkpoint} holds no weights of network {name!r}.")
    trained = read_settings(checkpoint)
    diff = settings_differences(dict(settings or {}), trained)
    listed = ", ".join(f"{k}={now!r} but the checkpoint was trained with {k}={then!r}" for k, (now, then) in diff.items())
    try:
        network.load_state_dict(sd)
    except RuntimeError as err:
        if diff:
            raise ValueError(
                f"checkpoint {checkpoint} does not fit this run's {type(network).__name__}: {listed} "
                f"({settings_path(checkpoint)}). Drop these overrides: inference and evaluation read the trained "
                "settings by themselves."
            ) from err
        hint = (
            f"the settings in {settings_path(checkpoint)} are {trained}"
            if trained
            else "no settings.json lies beside it, so pass the settings training used (image_size, channels, "
            "latent_size...)"
        )
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the configured {type(network).__name__} ({hint}): {err}"
        ) from err
    if diff:
        logger.warning("Loaded %s although %s: the command-line values win.", checkpoint, listed)
    return network if device is None else network.to(device)


class InfererCall(torch.nn.Module):
    """A generator called through a MONAI inferer: ``InfererCall(inferer, net)(x, *args)`` is
    ``inferer(x, net, *args)``. Attributes other than its own are read from ``net`` (objectives read e.g. the
    noise shapes of the generator they drive)."""

    def __init__(self, inferer: Callable, network: torch.nn.Module) -> None:
        super().__init__()
        self.inferer = inferer
        self.network = network

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return self.inferer(x, self.network, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("network"), name)


_NOT_GIVEN: Any = object()


class GanGenerationEvaluator(Evaluator):
    """Runs ``objective.generate`` with ``network`` as the generator for every batch of ``data_loader``.

    Each batch must carry ``"seed"`` (see :class:`SeedDataset`), and the conditions the family needs (mask, boxes,
    class). The iteration output holds the generated ``image`` (and ``label``/``boxes`` when the family produces
    them) plus ``seed`` and ``index``, for writer handlers such as :class:`~monai_gan_aug.handlers.SyntheticWriter`.

    Args:
        checkpoint: when given (the bundles pass ``@checkpoint``), the generator's weights are loaded from it by
            :func:`load_generator_weights` when :meth:`run` starts, not when the evaluator is built: a bundle's
            inference config can then be built (``ConfigWorkflow.initialize``, ``check_properties``) before any
            training, and a missing checkpoint (None) stops the run with a message saying what to do.
        network_name: the network's name in the checkpoint (``generator``; CycleGAN: ``generator_ab``).
        generator_settings: the settings ``network`` was built with, checked against the checkpoint's
            ``settings.json`` (see :func:`load_generator_weights`).
        inferer: a MONAI inferer (e.g. ``SimpleInferer``) the generator is called through; None calls it directly.
    """

    def __init__(
        self,
        device: torch.device | str,
        data_loader: Iterable,
        network: torch.nn.Module,
        objective: GanObjective,
        handlers: Any = None,
        amp: bool = False,
        extra_networks: Mapping[str, torch.nn.Module] | None = None,
        checkpoint: str | os.PathLike | None = _NOT_GIVEN,
        network_name: str = "generator",
        generator_settings: Mapping[str, Any] | None = None,
        inferer: Callable | None = None,
    ) -> None:
        amp, _ = resolve_amp(as_bool(amp, "amp"), "bfloat16", device)
        super().__init__(device=torch.device(device), val_data_loader=data_loader, val_handlers=handlers, amp=amp, decollate=False)
        self.network = network.to(self.state.device)
        self.objective = objective
        self.extra_networks = dict(extra_networks or {})
        self.checkpoint = checkpoint
        self.network_name = network_name
        self.generator_settings = dict(generator_settings or {})
        self.inferer = inferer

    def load_weights(self) -> None:
        """Load the generator's weights from ``checkpoint`` (a no-op when the evaluator was built without one)."""
        if self.checkpoint is _NOT_GIVEN:
            return
        load_generator_weights(self.network, self.checkpoint, name=self.network_name, settings=self.generator_settings)
        self.network.to(self.state.device)

    def run(self, *args: Any, **kwargs: Any) -> None:
        self.load_weights()
        super().run(*args, **kwargs)

    def _iteration(self, engine: Any, batchdata: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(batchdata, Mapping) or "seed" not in batchdata:
            raise ValueError("GanGenerationEvaluator needs dict batches with a 'seed' entry (use SeedDataset).")
        seeds = [int(s) for s in torch.as_tensor(batchdata["seed"]).reshape(-1).tolist()]
        batch = self.objective.prepare_batch(batchdata, self.state.device)
        generator = self.network if self.inferer is None else InfererCall(self.inferer, self.network)
        nets = {self.objective.generator_name: generator, **self.extra_networks}
        with eval_mode(*nets.values()), torch.no_grad(), torch.autocast(
            self.state.device.type, dtype=torch.bfloat16, enabled=bool(self.amp)
        ):
            out = self.objective.generate(nets, len(seeds), batch=batch, seeds=seeds, device=self.state.device)
        out = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in out.items()}
        out["seed"] = seeds
        out["index"] = [int(i) for i in torch.as_tensor(batchdata.get("index", seeds)).reshape(-1).tolist()]
        return out
