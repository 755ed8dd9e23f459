# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""One GAN trainer for every family: a MONAI :class:`~monai.engines.Trainer` over a dict of networks, their
optimizers and a per-family :class:`~monai_gan_aug.losses.objectives.GanObjective`.

Compared with MONAI's ``monai.engines.GanTrainer`` (one fake batch for all D steps, the discriminator hidden in a loss
closure, no autocast) this engine:

* runs each phase of the objective (e.g. ``n_critic`` critic steps, each on *fresh* fakes, then the generator),
  back-propagating only into that phase's networks (the others are frozen while it runs);
* keeps losses on the device (no ``.item()`` in the hot path) and checks them for NaN/inf on an interval; a
  non-finite loss stops training with :class:`NonFiniteLossError` (the checkpoint handler saves the state first);
* supports mixed precision on GPU (bf16 by default, fp16 with one ``GradScaler`` per phase), a generator EMA,
  ``channels_last`` and ``torch.compile`` as options;
* under ``torchrun`` averages gradients across ranks with one all-reduce per phase over a flat buffer, and
  broadcasts rank 0's weights at the first iteration, like NVlabs' stylegan3 training loop. It does not wrap
  networks in ``DistributedDataParallel``: gradient penalties need double backward and the phases update
  different subsets of networks, both of which DDP's reducer handles poorly.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.engines import Trainer
from torch.optim import Optimizer

from monai_gan_aug.data.loader import fit_batch_size
from monai_gan_aug.engines.utils import DataPipelineState, RandomStates, StateDictGroup, dist_info, resolve_amp
from monai_gan_aug.losses.objectives.base import GanObjective, Phase, PhaseContext
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import as_bool

__all__ = ["AdversarialTrainer", "GanTrainer", "NonFiniteLossError"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when a loss became NaN or infinite; training stops after the checkpoint handler saved the state."""


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _to_channels_last_(module: torch.nn.Module) -> torch.nn.Module:
    """In place: 4D weights/buffers (2D convolutions) to ``channels_last``, 5D (3D) to ``channels_last_3d``.

    ``Module.to(memory_format=torch.channels_last)`` raises on the 5D weights of 3D networks."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            fmt = _CHANNELS_LAST.get(t.ndim)
            if fmt is not None:
                t.data = t.data.contiguous(memory_format=fmt)
    return module


class AdversarialTrainer(Trainer):
    """Generic adversarial trainer.

    Args:
        device: device to train on.
        max_epochs: number of epochs (an epoch is one pass over ``train_data_loader``).
        train_data_loader: loader of real batches (dicts with at least ``"image"``).
        networks: name -> module, e.g. ``{"generator": G, "discriminator": D}``.
        optimizers: name -> optimizer; phases refer to these names.
        objective: the family's maths (phases, generation).
        epoch_length: iterations per epoch (default ``len(train_data_loader)``).
        max_iterations: stop after this many iterations in total (overrides the epoch count when reached first).
        handlers: ignite / MONAI handlers with ``attach``.
        amp: autocast: on CUDA in ``amp_dtype``; on CPU in bfloat16 (fast on CPUs with AVX512-BF16 or AMX,
            a warning on others); ignored with a warning on other devices.
        amp_dtype: ``"bfloat16"`` (no scaler needed) or ``"float16"`` (CUDA only, one GradScaler per phase; a
            CPU run uses bfloat16 with a warning).
        ema: network name -> EMA decay, e.g. ``{"generator": 0.999}``; the EMA copy is used by :meth:`generate`.
            The decay ramps up as ``min(decay, (1 + it) / (10 + it))`` so short runs are not dominated by the
            initial weights.
        ema_start_iteration: before this iteration the EMA copy just tracks the weights.
        nonfinite_check_interval: check accumulated losses for NaN/inf every N iterations (default 10; each check
            is one host sync, so 1 stalls a GPU every iteration). The check also runs before every checkpoint and
            at the end, so no regular checkpoint ever holds non-finite weights.
        channels_last: channels-last memory format (``torch.channels_last`` for 2D, ``channels_last_3d`` for 3D
            weights and inputs).
        compile: ``torch.compile`` the networks' forwards: ``True`` for all, or the names of some (e.g.
            ``["generator"]``). torch.compile cannot differentiate twice, so a critic that takes a gradient
            penalty (WGAN-GP, PGGAN, alpha-WGAN-GP, GA-UNet) must stay uncompiled: the first such step raises an
            error that says so.
        distributed: average gradients over ranks (default: when torch.distributed is initialised with >1 rank).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        networks: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, Optimizer],
        objective: GanObjective,
        epoch_length: int | None = None,
        max_iterations: int | None = None,
        handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
        ema: Mapping[str, float] | None = None,
        ema_start_iteration: int = 0,
        nonfinite_check_interval: int = 10,
        channels_last: bool = False,
        compile: bool | Sequence[str] = False,
        distributed: bool | None = None,
    ) -> None:
        if not isinstance(objective, GanObjective):
            raise TypeError(f"objective must be a GanObjective, got {type(objective).__name__}.")
        if not networks:
            raise ValueError("networks must name at least one network.")
        device = torch.device(device)
        if amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16', got {amp_dtype!r}.")
        amp, channels_last = as_bool(amp, "amp"), as_bool(channels_last, "channels_last")
        amp, amp_dtype = resolve_amp(amp, amp_dtype, device)
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}.")
        if nonfinite_check_interval < 1:
            raise ValueError(f"nonfinite_check_interval must be >= 1, got {nonfinite_check_interval}.")
        # a dataset smaller than one batch with drop_last=True would yield no batch: train with smaller batches
        train_data_loader = fit_batch_size(train_data_loader)

        self.networks = torch.nn.ModuleDict(dict(networks))
        self.optimizers = dict(optimizers)
        self.objective = objective
        self.max_iterations = max_iterations
        self.amp_dtype = getattr(torch, amp_dtype)
        self.nonfinite_check_interval = int(nonfinite_check_interval)
        self.channels_last = bool(channels_last)
        rank, world = dist_info()
        self.distributed = (world > 1) if distributed is None else bool(distributed)
        self.rank, self.world_size = rank, world
        self._synced = not self.distributed

        phases = objective.phases()
        self._check_phases(phases)
        self.scalers: dict[str, torch.amp.GradScaler | None] = {
            p.name: (torch.amp.GradScaler(device.type) if amp and amp_dtype == "float16" else None) for p in phases
        }
        self.ema_decay = dict(ema or {})
        unknown = [k for k in self.ema_decay if k not in self.networks]
        if unknown:
            raise ValueError(f"ema names networks {unknown} that are not in networks {list(self.networks)}.")
        self.ema_networks = torch.nn.ModuleDict(
            {k: copy.deepcopy(self.networks[k]).requires_grad_(False).eval() for k in self.ema_decay}
        )
        self.ema_start_iteration = int(ema_start_iteration)
        self.networks.to(device)
        self.ema_networks.to(device)
        if self.channels_last:
            for net in list(self.networks.values()) + list(self.ema_networks.values()):
                _to_channels_last_(net)
        if isinstance(compile, str):
            try:
                compile = as_bool(compile, "compile")
            except ValueError:
                compile = [compile]  # one network's name
        compiled = list(self.networks) if compile is True else list(compile or [])
        unknown_c = [k for k in compiled if k not in self.networks]
        if unknown_c:
            raise ValueError(f"compile names networks {unknown_c} that are not in networks {list(self.networks)}.")
        self.compiled = frozenset(compiled)
        self._forward = {k: (torch.compile(m) if k in self.compiled else m) for k, m in self.networks.items()}
        self._trainable: frozenset[str] | None = None
        self._finite: torch.Tensor | None = None
        self._last_phase_losses: dict[str, torch.Tensor] = {}

        if epoch_length is None and max_iterations is not None:
            try:
                epoch_length = len(train_data_loader)  # type: ignore[arg-type]
            except TypeError:
                epoch_length = max_iterations
        if max_iterations is not None and epoch_length:
            max_epochs = min(max_epochs, math.ceil(max_iterations / epoch_length)) if max_epochs else math.ceil(
                max_iterations / epoch_length
            )

        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            handlers=None,
            amp=amp,
            decollate=False,
        )
        self.add_event_handler(Events.ITERATION_STARTED, self._on_iteration_started)
        self.add_event_handler(Events.ITERATION_COMPLETED, self._on_iteration_completed)
        self.add_event_handler(Events.STARTED, self._on_started)
        if handlers is not None:
            self._register_handlers(handlers)

    # ------------------------------------------------------------------ set-up and checks
    def _check_phases(self, phases: Sequence[Phase]) -> None:
        for p in phases:
            missing_n = [n for n in p.networks if n not in self.networks]
            missing_o = [o for o in (p.optimizers or ()) if o not in self.optimizers]
            if missing_n or missing_o:
                raise ValueError(
                    f"phase {p.name!r} of {type(self.objective).__name__} needs networks {missing_n} and optimizers "
                    f"{missing_o} that were not given (networks: {list(self.networks)}, optimizers: "
                    f"{list(self.optimizers)}). Check the 'networks'/'optimizers' sections of the config."
                )

    @property
    def data_state(self) -> DataPipelineState:
        """Position of the training data pipeline (random streams at the start of the current pass over the loader,
        batches taken since), checkpointed so a resumed run continues the interrupted epoch with the same batches."""
        state = self.__dict__.get("_data_state")
        if state is None:
            state = self.__dict__["_data_state"] = DataPipelineState()
        return state

    def checkpoint_objects(self) -> dict[str, Any]:
        """Everything an exact resume needs: engine counters, networks, optimizers, EMA, scalers, objective
        state, the global random streams and the data pipeline's position (see :class:`DataPipelineState`)."""
        objects: dict[str, Any] = {
            "trainer": self,
            "networks": self.networks,
            "optimizers": StateDictGroup(self.optimizers),
            "objective": self.objective,
            "rng": RandomStates(),
            "data": self.data_state,
        }
        if len(self.ema_networks):
            objects["ema"] = self.ema_networks
        scalers = {k: v for k, v in self.scalers.items() if v is not None}
        if scalers:
            objects["scalers"] = StateDictGroup(scalers)
        return objects

    def run(self) -> None:  # type: ignore[override]
        """Train; calling again continues from the current state (the base class's ``run`` minus its scaler).

        Raises:
            RuntimeError: when the run did no iteration although training was not complete (an empty data loader,
                e.g. every batch dropped by ``drop_last``), instead of ending as if it had trained.
        """
        done = [0]

        def _count(_engine: Any) -> None:
            done[0] += 1

        self.add_event_handler(Events.ITERATION_COMPLETED, _count)
        try:
            super(Trainer, self).run()
        finally:
            self.remove_event_handler(_count, Events.ITERATION_COMPLETED)
        if done[0] == 0 and not self._at_end():
            try:
                batches = len(self.data_loader)  # type: ignore[arg-type]
            except TypeError:
                batches = None
            dataset = getattr(self.data_loader, "dataset", None)
            try:
                items = len(dataset) if dataset is not None else None  # type: ignore[arg-type]
            except TypeError:
                items = None
            raise RuntimeError(
                f"training did no iteration: the data loader yielded {batches if batches is not None else 'no'} "
                f"batch(es) per epoch (dataset of {items if items is not None else 'unknown'} item(s), batch_size="
                f"{getattr(self.data_loader, 'batch_size', '?')}, drop_last={getattr(self.data_loader, 'drop_last', '?')}"
                "), so nothing was trained. Check --dataset_dir (its training split must hold images) and --batch_size "
                "(at most the number of training items when drop_last is set)."
            )

    # ------------------------------------------------------------------ events
    def _on_started(self, engine: Any) -> None:
        if self.state.dataloader is not None:  # record each pass over the data for an exact resume
            self.state.dataloader = self.data_state.wrap(self.state.dataloader)
        if self.max_iterations is not None and self.state.iteration >= self.max_iterations:
            logger.info("Already trained for %d iterations (max_iterations=%d).", self.state.iteration, self.max_iterations)
            self.terminate()

    def _on_iteration_started(self, engine: Any) -> None:
        self.objective.on_iteration_started(self)

    def _on_iteration_completed(self, engine: Any) -> None:
        it = self.state.iteration
        if self._finite is not None and (it % self.nonfinite_check_interval == 0 or self._at_end()):
            self.check_finite()
        if self.max_iterations is not None and it >= self.max_iterations:
            self.terminate()

    def _at_end(self) -> bool:
        it = self.state.iteration
        if self.max_iterations is not None and it >= self.max_iterations:
            return True
        return bool(self.state.epoch_length) and it >= self.state.epoch_length * self.state.max_epochs

    def check_finite(self) -> None:
        """Host-sync check of the losses accumulated since the last check; raises :class:`NonFiniteLossError`."""
        if self._finite is None:
            return
        ok = bool(self._finite.item())
        self._finite = None
        if not ok:
            values = {k: float(v) for k, v in self._last_phase_losses.items()}
            raise NonFiniteLossError(
                f"non-finite loss at iteration {self.state.iteration} (epoch {self.state.epoch}): {values}. "
                "Training stopped; the state at this iteration was saved as a 'nonfinite' checkpoint for inspection "
                "and the earlier checkpoints are untouched. Resume from the last regular checkpoint with a lower "
                "learning rate, a larger gradient-penalty weight or amp disabled."
            )

    # ------------------------------------------------------------------ the iteration
    def _autocast(self):
        if self.amp:
            return torch.autocast(self.state.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def _set_trainable(self, names: Sequence[str]) -> None:
        wanted = frozenset(names)
        if wanted == self._trainable:
            return
        for k, net in self.networks.items():
            net.requires_grad_(k in wanted)
        self._trainable = wanted

    def _sync_from_rank0(self) -> None:
        for net in self.networks.values():
            for t in list(net.parameters()) + list(net.buffers()):
                dist.broadcast(t.data, src=0)
        for net in self.ema_networks.values():
            for t in list(net.parameters()) + list(net.buffers()):
                dist.broadcast(t.data, src=0)
        self._synced = True

    def _all_reduce_grads(self, names: Sequence[str]) -> None:
        params = [p for n in names for p in self.networks[n].parameters() if p.requires_grad]
        if not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def _broadcast_buffers(self) -> None:
        for net in self.networks.values():
            for b in net.buffers():
                dist.broadcast(b.data, src=0)

    def _prepare(self, batchdata: Any) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("the data loader returned an empty batch; check the dataset and its transforms.")
        if not isinstance(batchdata, Mapping):
            raise TypeError(f"AdversarialTrainer expects dict batches (MONAI dictionary transforms), got {type(batchdata).__name__}.")
        batch = self.objective.prepare_batch(batchdata, self.state.device)
        if self.channels_last:
            for k, v in batch.items():
                if isinstance(v, torch.Tensor) and v.ndim in _CHANNELS_LAST:
                    batch[k] = v.contiguous(memory_format=_CHANNELS_LAST[v.ndim])
        return batch

    def _iteration(self, engine: Any, batchdata: Any) -> dict[str, Any]:
        if not self._synced:
            self._sync_from_rank0()
        elif self.distributed:
            self._broadcast_buffers()
        batch = self._prepare(batchdata)
        it = self.state.iteration
        outputs: dict[str, Any] = {GanKeys.REALS: batch.get(GanKeys.IMAGE)}
        losses: dict[str, torch.Tensor] = {}
        nets = self._forward
        for phase in self.objective.phases():
            if it % phase.interval:
                continue
            self._set_trainable(phase.networks)
            scaler = self.scalers.get(phase.name)
            for r in range(phase.repeats):
                for o in phase.optimizers:
                    self.optimizers[o].zero_grad(set_to_none=True)
                ctx = PhaseContext(nets=nets, batch=batch, iteration=it, repeat=r, outputs=outputs, device=self.state.device)
                with self._autocast():
                    loss, terms = phase.loss(ctx)
                self._backward(scaler.scale(loss) if scaler is not None else loss, phase.name)
                if self.distributed:
                    self._all_reduce_grads(phase.networks)
                for o in phase.optimizers:
                    if scaler is not None:
                        scaler.step(self.optimizers[o])
                    else:
                        self.optimizers[o].step()
                if scaler is not None:
                    scaler.update()
                loss = loss.detach()
                fin = torch.isfinite(loss)
                self._finite = fin if self._finite is None else self._finite & fin
            losses[f"{phase.name}_loss"] = loss
            for k, v in terms.items():
                losses[f"{phase.name}_{k}"] = v.detach() if isinstance(v, torch.Tensor) else torch.as_tensor(v)
        self._last_phase_losses = losses
        self._update_ema(it)
        outputs[GanKeys.LOSSES] = losses
        return outputs

    def _backward(self, loss: torch.Tensor, phase: str) -> None:
        try:
            loss.backward()
        except RuntimeError as e:
            if self.compiled and "double backward" in str(e):
                raise RuntimeError(
                    f"phase {phase!r} of {type(self.objective).__name__} differentiates twice (a gradient penalty) "
                    f"through a torch.compile'd network ({sorted(self.compiled)}), which torch.compile does not "
                    "support. Compile only the networks without a penalty, e.g. compile=['generator']."
                ) from e
            raise

    @torch.no_grad()
    def _update_ema(self, iteration: int) -> None:
        for name, decay in self.ema_decay.items():
            src, dst = self.networks[name], self.ema_networks[name]
            # ramp-up (as TensorFlow's ExponentialMovingAverage with num_updates): early on the average must not
            # be dominated by the random initial weights
            d = 0.0 if iteration < self.ema_start_iteration else min(float(decay), (1.0 + iteration) / (10.0 + iteration))
            src_p, dst_p = list(src.parameters()), list(dst.parameters())
            if d == 0.0:
                torch._foreach_copy_(dst_p, src_p)
            else:
                torch._foreach_lerp_(dst_p, src_p, 1.0 - d)
            for b_dst, b_src in zip(dst.buffers(), src.buffers()):
                b_dst.copy_(b_src)

    # ------------------------------------------------------------------ sampling
    def generator_for_inference(self, use_ema: bool = True) -> torch.nn.Module:
        name = self.objective.generator_name
        if use_ema and name in self.ema_networks:
            return self.ema_networks[name]
        return self.networks[name]

    @torch.no_grad()
    def generate(
        self,
        num: int,
        batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
        use_ema: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Samples from the (EMA) generator in eval mode; the networks' train/eval modes are restored after."""
        nets: dict[str, torch.nn.Module] = dict(self.networks.items())
        nets[self.objective.generator_name] = self.generator_for_inference(use_ema)
        modes = {k: m.training for k, m in nets.items()}
        for m in nets.values():
            m.eval()
        try:
            if batch is not None:
                batch = self.objective.prepare_batch(batch, self.state.device)
            with self._autocast():
                out = self.objective.generate(nets, num, batch=batch, seeds=seeds, device=self.state.device)
        finally:
            for k, m in nets.items():
                m.train(modes[k])
        return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in out.items()}


class GanTrainer(AdversarialTrainer):
    """Deprecated alias of :class:`AdversarialTrainer` (renamed so it is not confused with MONAI's different
    ``monai.engines.GanTrainer``); kept for one release."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("monai_gan_aug.engines.GanTrainer is renamed AdversarialTrainer (it is not monai.engines.GanTrainer); "
                      "the old name will be removed in the next release.", FutureWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
