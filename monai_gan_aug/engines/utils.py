# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Small pieces the engine and handlers share: RNG state capture, distributed helpers, checkpoint discovery."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "resolve_amp",
    "cpu_supports_bf16",
    "RandomStates",
    "StateDictGroup",
    "find_latest_checkpoint",
    "checkpoint_iteration",
    "dist_info",
    "losses_from_output",
    "CHECKPOINT_PREFIX",
]

CHECKPOINT_PREFIX = "checkpoint"
_CKPT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")


class RandomStates:
    """Captures and restores every random stream a training run draws from (python, numpy, torch CPU and CUDA),
    so a resumed run continues the same streams. Exposes ``state_dict``/``load_state_dict`` for ignite's Checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        if "cuda" in state and torch.cuda.is_available():
            cuda_states = state["cuda"][: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda_states])


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
