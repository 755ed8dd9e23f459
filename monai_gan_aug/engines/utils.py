# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Small pieces the engine and handlers share: RNG state capture, distributed helpers, checkpoint discovery."""

from __future__ import annotations

import logging
import random
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from monai_gan_aug.utils.misc import as_bool

logger = logging.getLogger(__name__)

__all__ = [
    "adam_optimizers",
    "resolve_amp",
    "cpu_supports_bf16",
    "RandomStates",
    "DataPipelineState",
    "capture_global_rng",
    "restore_global_rng",
    "StateDictGroup",
    "find_latest_checkpoint",
    "checkpoint_iteration",
    "dist_info",
    "losses_from_output",
    "attached_objects",
    "CHECKPOINT_PREFIX",
]

CHECKPOINT_PREFIX = "checkpoint"
_CKPT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")


def _np_state_to_plain(state: tuple | Mapping) -> dict[str, Any]:
    """``np.random.RandomState.get_state()`` as tensors and plain values (no numpy object in the checkpoint)."""
    if isinstance(state, Mapping):  # already converted
        return dict(state)
    name, key, pos, has_gauss, cached = state[:5]
    return {
        "bit_generator": str(name),
        "key": torch.from_numpy(np.asarray(key, dtype=np.uint32).astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _np_state_from_plain(state: Any) -> tuple:
    """Inverse of :func:`_np_state_to_plain`; also accepts the tuple older checkpoints stored."""
    if isinstance(state, Mapping):
        key = torch.as_tensor(state["key"]).cpu().numpy().astype(np.uint32)
        return (str(state.get("bit_generator", "MT19937")), key, int(state["pos"]), int(state["has_gauss"]),
                float(state["cached_gaussian"]))
    return tuple(state)


def capture_global_rng(cuda: bool = True) -> dict[str, Any]:
    """The global random streams (python, numpy, torch CPU and, with ``cuda``, the initialised CUDA devices)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _np_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_global_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(int(v) for v in py[1]), py[2]))
    np.random.set_state(_np_state_from_plain(state["numpy"]))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda_states])


class RandomStates:
    """Captures and restores every global random stream a training run draws from (python, numpy, torch CPU and
    CUDA), so a resumed run continues the same streams. Exposes ``state_dict``/``load_state_dict`` for ignite's
    Checkpoint; the states are stored as tensors and plain values, which ``torch.load(weights_only=True)`` reads
    without allowing any extra global."""

    def state_dict(self) -> dict[str, Any]:
        return capture_global_rng(cuda=True)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        restore_global_rng(state)


# ---------------------------------------------------------------------------------------------------------------
# data pipeline position
# ---------------------------------------------------------------------------------------------------------------

_NO_WALK = (
    str, bytes, int, float, complex, bool, type(None), type, torch.Tensor, np.ndarray, np.generic, torch.nn.Module,
    torch.dtype, torch.device, Path, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
)
_MAX_DEPTH = 24


def _rng_slots(roots: Iterable[Any]) -> list[tuple[Any, Any, bool]]:
    """Where random generators live in a data pipeline: ``(owner, key, is_attribute)`` for every
    ``np.random.RandomState`` (MONAI ``Randomizable.R``) and ``torch.Generator`` reachable from ``roots`` through
    attributes, lists, tuples and dicts, in a fixed order. The slots (not the generators) are kept, because
    ``set_random_state`` replaces a transform's ``R`` object."""
    slots: list[tuple[Any, Any, bool]] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if depth > _MAX_DEPTH or isinstance(obj, _NO_WALK) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            items: Iterable[tuple[Any, Any]] = enumerate(obj)
            is_attr = False
        elif isinstance(obj, dict):
            items = list(obj.items())
            is_attr = False
        elif hasattr(obj, "__dict__"):
            items = list(vars(obj).items())
            is_attr = True
        else:
            return
        for key, value in items:
            if isinstance(value, (np.random.RandomState, torch.Generator)):
                if isinstance(value, torch.Generator) and value.device.type != "cpu":
                    continue
                slots.append((obj, key, is_attr))
            elif not (is_attr and isinstance(key, str) and key.startswith("__")):
                visit(value, depth + 1)

    for root in roots:
        visit(root, 0)
    return slots


def _slot_get(slot: tuple[Any, Any, bool]) -> Any:
    owner, key, is_attr = slot
    try:
        return getattr(owner, key) if is_attr else owner[key]
    except (AttributeError, KeyError, IndexError):
        return None


def _rng_get_state(rng: Any) -> Any:
    if isinstance(rng, np.random.RandomState):
        return ("numpy", rng.get_state())
    if isinstance(rng, torch.Generator):
        return ("torch", rng.get_state())
    return ("none", None)


def _rng_set_state(rng: Any, state: tuple[str, Any]) -> bool:
    kind, value = state
    if kind == "numpy" and isinstance(rng, np.random.RandomState):
        rng.set_state(_np_state_from_plain(value))
        return True
    if kind == "torch" and isinstance(rng, torch.Generator):
        rng.set_state(torch.as_tensor(value, dtype=torch.uint8).cpu())
        return True
    return kind == "none"


def _rng_state_to_plain(state: tuple[str, Any]) -> dict[str, Any]:
    kind, value = state
    if kind == "numpy":
        value = _np_state_to_plain(value)
    return {"kind": kind, "state": value}


def _rng_state_from_plain(state: Mapping[str, Any]) -> tuple[str, Any]:
    return (str(state["kind"]), state["state"])


class DataPipelineState:
    """Position of the training data pipeline, checkpointed so a resumed run draws the same batches, in the same
    order and with the same random transforms, as an uninterrupted one.

    :meth:`wrap` returns the iterable the engine runs over. Each time it starts a pass over the loader (each epoch)
    it records the random streams the pass draws from, right before the loader's iterator is created: the global
    python / numpy / torch streams (the shuffling sampler and the workers' seeds are drawn from torch's unless the
    loader has a ``generator``), the loader's and sampler's generators, and every random generator of the dataset's
    transforms (MONAI ``Randomizable.R``, used in the main process when ``num_workers=0``). It also counts the
    batches taken since. :meth:`state_dict` holds those records and the transforms' current states.

    After :meth:`load_state_dict`, the next pass restores the recorded streams, creates the iterator as the
    interrupted run did and takes (and drops) the batches the interrupted run had already trained on, then puts
    the global streams back as they were: the run continues with the next batch of the interrupted pass. Taking
    the dropped batches costs their loading, not a training step. Exactness needs transforms that draw only from
    their own generators (MONAI's convention) and no ``persistent_workers`` (whose workers carry their random state
    from one pass to the next; a warning says so).
    """

    def __init__(self) -> None:
        self._loader: Any = None
        self._slots: list[tuple[Any, Any, bool]] | None = None
        self._slots_for: int | None = None
        self._pass_start: dict[str, Any] | None = None
        self._consumed = 0
        self._pending: dict[str, Any] | None = None

    # ---------------------------------------------------------------- iteration
    def wrap(self, loader: Iterable) -> _TrackedLoader:
        """The iterable to run over instead of ``loader`` (same length and batches)."""
        if isinstance(loader, _TrackedLoader):
            loader = loader.loader
        self._loader = loader
        return _TrackedLoader(loader, self)

    @property
    def consumed(self) -> int:
        """Batches taken from the current pass."""
        return self._consumed

    def _slots_of(self, loader: Any) -> list[tuple[Any, Any, bool]]:
        if self._slots is None or self._slots_for != id(loader):
            roots = [getattr(loader, a, None) for a in ("dataset", "sampler", "batch_sampler")]
            gen_slot = [(loader, "generator", True)] if isinstance(getattr(loader, "generator", None), torch.Generator) else []
            self._slots = gen_slot + _rng_slots([r for r in roots if r is not None])
            self._slots_for = id(loader)
        return self._slots

    def _capture(self, loader: Any) -> dict[str, Any]:
        return {
            "rng": capture_global_rng(cuda=False),
            "pipeline": [_rng_get_state(_slot_get(s)) for s in self._slots_of(loader)],
        }

    def _restore_pipeline(self, loader: Any, states: list, what: str) -> None:
        slots = self._slots_of(loader)
        if len(slots) != len(states):
            logger.warning(
                "Resume: the checkpoint records %d random generator(s) in the data pipeline (%s), this run's pipeline "
                "has %d; they are not restored, so the data order / random transforms differ from an uninterrupted "
                "run. Resume with the data settings of the interrupted run for an exact continuation.",
                len(states), what, len(slots),
            )
            return
        for slot, st in zip(slots, states):
            if not _rng_set_state(_slot_get(slot), st):
                logger.warning("Resume: a data-pipeline generator changed type since the checkpoint; not restored.")

    def _iterator(self, loader: Any) -> Iterator:
        pending, self._pending = self._pending, None
        if pending is None:
            self._pass_start = self._capture(loader)
            self._consumed = 0
            return _CountingIterator(iter(loader), self)
        skip = int(pending.get("consumed", 0))
        try:
            length = len(loader)
        except TypeError:
            length = None
        start = pending.get("pass_start")
        if skip <= 0 or (length is not None and skip >= length) or start is None:
            # the interrupted run was between passes: a new pass starts from the current streams
            self._restore_pipeline(loader, pending.get("pipeline", []), "current")
            self._pass_start = self._capture(loader)
            self._consumed = 0
            return _CountingIterator(iter(loader), self)
        if getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0) > 0:
            logger.warning(
                "Resume: the data loader keeps its workers between epochs (persistent_workers=True), so their random "
                "transforms continue streams this run cannot restore; the resumed data differ from an uninterrupted "
                "run. Set persistent_workers=False for an exact resume."
            )
        logger.info("Resume: replaying the data pipeline over the %d batch(es) of this epoch trained before the "
                    "checkpoint (loaded and dropped, not trained on).", skip)
        now = capture_global_rng(cuda=False)
        restore_global_rng(start["rng"])
        self._restore_pipeline(loader, start["pipeline"], "at the start of the epoch")
        self._pass_start = start
        it = iter(loader)
        taken = 0
        try:
            while taken < skip:
                next(it)
                taken += 1
        except StopIteration:
            logger.warning("Resume: the data loader yields fewer batches (%d) than the checkpoint's epoch had taken "
                           "(%d); the data differ from an uninterrupted run.", taken, skip)
        restore_global_rng(now)
        self._restore_pipeline(loader, pending.get("pipeline", []), "current")
        self._consumed = skip
        return _CountingIterator(it, self)

    # ---------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        pipeline = [] if self._loader is None else [_rng_get_state(_slot_get(s)) for s in self._slots_of(self._loader)]
        start = None
        if self._pass_start is not None:
            start = {
                "rng": self._pass_start["rng"],
                "pipeline": [_rng_state_to_plain(st) for st in self._pass_start["pipeline"]],
            }
        return {
            "consumed": int(self._consumed),
            "pass_start": start,
            "pipeline": [_rng_state_to_plain(st) for st in pipeline],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Keep ``state`` for the next pass over the data (see the class description)."""
        start = state.get("pass_start")
        self._pending = {
            "consumed": int(state.get("consumed", 0)),
            "pass_start": None if start is None else {
                "rng": start["rng"],
                "pipeline": [_rng_state_from_plain(st) for st in start["pipeline"]],
            },
            "pipeline": [_rng_state_from_plain(st) for st in state.get("pipeline", [])],
        }


class _CountingIterator:
    def __init__(self, it: Iterator, owner: DataPipelineState) -> None:
        self.it, self.owner = it, owner

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> Any:
        batch = next(self.it)
        self.owner._consumed += 1
        return batch


class _TrackedLoader:
    """What the engine iterates: ``loader`` with its passes recorded by a :class:`DataPipelineState`."""

    def __init__(self, loader: Iterable, owner: DataPipelineState) -> None:
        self.loader, self.owner = loader, owner

    def __iter__(self) -> Iterator:
        return self.owner._iterator(self.loader)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class StateDictGroup:
    """A name -> object mapping that checkpoints as one entry (e.g. all optimizers, all grad scalers)."""

    def __init__(self, objects: Mapping[str, Any]) -> None:
        self.objects = dict(objects)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.state_dict() for k, v in self.objects.items() if v is not None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k, v in self.objects.items() if v is not None and k not in state]
        if missing:
            raise KeyError(f"checkpoint has no state for {missing}; it holds {sorted(state)}.")
        for k, v in self.objects.items():
            if v is not None:
                v.load_state_dict(state[k])


def checkpoint_iteration(path: str | Path) -> int | None:
    """Iteration encoded in a checkpoint file name written by :class:`GanCheckpointHandler`, else None."""
    m = _CKPT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def find_latest_checkpoint(directory: str | Path | None) -> str | None:
    """Path of the checkpoint with the highest iteration in ``directory`` (None if there is none)."""
    if directory is None or not Path(directory).is_dir():
        return None
    found = [(checkpoint_iteration(p), p) for p in Path(directory).iterdir()]
    found = [(i, p) for i, p in found if i is not None]
    return str(max(found)[1]) if found else None


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX); without them bf16 autocast on
    the CPU is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: bool, amp_dtype: str, device: torch.device | str) -> tuple[bool, str]:
    """The (amp, dtype) a run on ``device`` uses. CUDA: as asked. CPU: bfloat16 autocast (float16 is switched to
    bfloat16 with a warning: CPU float16 convolutions are slow and need a scaler); a warning when the CPU lacks
    native bf16 kernels. Other devices: float32 with a warning."""
    device = torch.device(device)
    if not amp:
        return False, amp_dtype
    if device.type == "cuda":
        return True, amp_dtype
    if device.type == "cpu":
        if amp_dtype != "bfloat16":
            logger.warning("amp on CPU uses bfloat16 autocast; amp_dtype=%r is ignored.", amp_dtype)
            amp_dtype = "bfloat16"
        if not cpu_supports_bf16():
            logger.warning(
                "amp=True on a CPU without native bfloat16 kernels (AVX512-BF16 / AMX): autocast is emulated and "
                "usually slower than float32; set amp=False."
            )
        return True, amp_dtype
    logger.warning("amp=True is supported on CUDA and CPU; running in float32 on %s.", device)
    return False, amp_dtype


def adam_optimizers(
    networks: Mapping[str, torch.nn.Module],
    lr: float,
    betas: Iterable[float] = (0.9, 0.999),
    fused: Any = False,
) -> dict[str, torch.optim.Adam]:
    """One ``torch.optim.Adam(net.parameters(), lr=lr, betas=tuple(betas), fused=...)`` per network, by the same names.

    For bundles whose set of networks depends on a setting (alpha_wgan_gp's variants): the optimizers follow the
    networks. ``fused`` goes through :func:`~monai_gan_aug.utils.as_bool` (a command line's ``'false'`` is False)
    and a bad value raises a ``ValueError`` naming ``fused_optimizer``.

    Raises:
        TypeError: ``networks`` is not a mapping of name to module.
    """
    if not isinstance(networks, Mapping):
        raise TypeError(f"adam_optimizers: networks must map names to modules, got {type(networks).__name__}.")
    return {
        k: torch.optim.Adam(v.parameters(), lr=lr, betas=tuple(betas), fused=as_bool(fused, "fused_optimizer"))
        for k, v in networks.items()
    }


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def losses_from_output(output: Any) -> dict[str, float]:
    """Output transform for stats / TensorBoard / progress-bar handlers: the engine's loss dict as floats.

    This is the one place losses are moved to the host, so call it only on a logging interval.
    """
    from monai_gan_aug.utils.enums import GanKeys

    if isinstance(output, list):  # decollated output: take the first item
        output = output[0] if output else {}
    losses = output.get(GanKeys.LOSSES, {}) if isinstance(output, Mapping) else {}
    if not losses:
        return {}
    keys = list(losses)
    values = torch.stack([torch.as_tensor(losses[k], dtype=torch.float32).detach().reshape(()).cpu() for k in keys])
    return dict(zip(keys, values.tolist()))


def flatten_parameters(modules: Iterable[torch.nn.Module]) -> list[torch.nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def attached_objects(engine: Any) -> list[Any]:
    """Every object behind the handlers attached to an Ignite ``engine``: each registered callable, the object it is
    bound to, what it wraps (``__wrapped__`` chains) and its extra arguments; each object once. Ignite has no public
    API for this, so it is read from ``engine._event_handlers`` here, in one place (handlers use it to find a
    ``SyntheticWriter`` or a TensorBoard writer already attached)."""
    found: list[Any] = []

    def add(obj: Any) -> None:
        if obj is not None and all(obj is not f for f in found):
            found.append(obj)

    for entries in getattr(engine, "_event_handlers", {}).values():
        for entry in entries:
            fn, args = (entry[0], entry[1] if len(entry) > 1 else ()) if isinstance(entry, tuple) else (entry, ())
            while fn is not None:
                add(fn)
                add(getattr(fn, "__self__", None))
                fn = getattr(fn, "__wrapped__", None)
            for a in args:
                add(a)
    return found
