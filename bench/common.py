# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Shared benchmark helpers: machine facts, this machine's matmul GFLOP/s, median step timing after warm-up,
FLOP counting with ``torch.utils.flop_counter.FlopCounterMode`` (conv + matmul work, a lower bound) and JSON output.

Benchmarks are never run by the test suite; run them by hand (``make bench`` or ``python -m bench.<name>``)."""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "matmul_gflops", "median_seconds", "count_gflop", "peak_rss_mb", "write_result", "RESULTS"]

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Measured GFLOP/s of an ``n x n`` matmul: the yardstick that makes figures from different machines comparable."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def median_seconds(fn: Callable[[], Any], warmup: int = 2, repeats: int = 7, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP of one ``fn()`` call counted by ``FlopCounterMode`` (forward and backward conv/matmul work)."""
    from torch.utils.flop_counter import FlopCounterMode

    class _NoModules:  # the module tracker's backward hooks break torch.autograd.grad (gradient penalties)
        parents = {"Global"}

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return None

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_info(device: str = "cpu") -> dict[str, Any]:
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": device,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}_{socket.gethostname()}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    return path
