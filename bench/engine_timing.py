# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Measure real training iterations: an ignite engine run over one repeated batch (per-iteration wall times from
event handlers) or a step function called directly, then the GFLOP of one more step and the generation throughput.
Shared by every family benchmark."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ignite.engine import Engine, Events

from bench.common import count_gflop, make_record, peak_memory, reset_peak_memory, sync, time_calls

__all__ = [
    "Measurement",
    "RepeatBatch",
    "measure_calls",
    "measure_engine",
    "param_millions",
    "record_from",
    "time_engine_iterations",
]


class RepeatBatch:
    """A loader that yields the same batch ``n`` times (no data-loading cost in the timings)."""

    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.batch


def time_engine_iterations(engine: Engine, warmup: int = 2, repeats: int = 7, device: str = "cpu") -> list[float]:
    """Run ``engine`` (whose loader yields ``warmup + repeats`` batches) and return the wall seconds of the
    ``repeats`` iterations after warm-up, each from ITERATION_STARTED to ITERATION_COMPLETED (device synchronised;
    data loading excluded)."""
    marks: list[float] = []

    def mark(_: Engine) -> None:
        sync(device)
        marks.append(time.perf_counter())

    engine.add_event_handler(Events.ITERATION_STARTED, mark)
    engine.add_event_handler(Events.ITERATION_COMPLETED, mark)
    try:
        engine.run()
    finally:
        engine.remove_event_handler(mark, Events.ITERATION_STARTED)
        engine.remove_event_handler(mark, Events.ITERATION_COMPLETED)
    durations = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    if len(durations) < warmup + repeats:
        raise RuntimeError(f"the engine ran {len(durations)} iterations, {warmup + repeats} were needed; give it a "
                           "loader of warmup + repeats batches.")
    return durations[warmup : warmup + repeats]


@dataclass
class Measurement:
    """What one configuration measured: step seconds, GFLOP of one step, generation throughput, peak memory."""

    step_s_all: list[float]
    gflop_per_step: float | None = None
    gen_images_per_s: float | None = None
    gen_batch: int | None = None
    gen_s_all: list[float] = field(default_factory=list)
    peak_memory: dict[str, Any] = field(default_factory=dict)

    @property
    def step_s(self) -> float:
        return statistics.median(self.step_s_all)


def _measure(
    run_steps: Callable[[], list[float]],
    one_step: Callable[[], Any] | None,
    generate: Callable[[], Any] | None,
    gen_batch: int | None,
    device: str,
    warmup: int,
    repeats: int,
) -> Measurement:
    reset_peak_memory(device)
    steps = run_steps()
    gflop = count_gflop(one_step) if one_step is not None else None
    gen_all: list[float] = []
    gen_ips = None
    if generate is not None:
        if not gen_batch:
            raise ValueError("generate needs gen_batch (images per call).")
        with torch.no_grad():
            gen_all = time_calls(generate, warmup=max(1, warmup), repeats=repeats, device=device)
        gen_ips = gen_batch / statistics.median(gen_all)
    return Measurement(steps, gflop, gen_ips, gen_batch if generate is not None else None, gen_all, peak_memory(device))


def measure_engine(
    engine: Engine,
    batch: Any,
    *,
    device: str,
    warmup: int,
    repeats: int,
    generate: Callable[[], Any] | None = None,
    gen_batch: int | None = None,
    count_flops: bool = True,
) -> Measurement:
    """Time ``engine``'s iterations (its loader must yield ``warmup + repeats`` batches, e.g. :class:`RepeatBatch`),
    count the FLOPs of one more ``engine._iteration(engine, batch)`` (works for this project's and MONAI's
    trainers), then time ``generate()`` (``gen_batch`` images per call, under ``torch.no_grad``)."""
    one = (lambda: engine._iteration(engine, batch)) if count_flops else None
    return _measure(lambda: time_engine_iterations(engine, warmup, repeats, device), one, generate, gen_batch, device,
                    warmup, repeats)


def measure_calls(
    step: Callable[[], Any],
    *,
    device: str,
    warmup: int,
    repeats: int,
    generate: Callable[[], Any] | None = None,
    gen_batch: int | None = None,
    count_flops: bool = True,
) -> Measurement:
    """As :func:`measure_engine` for a step function called directly (e.g. one stage of a progressive schedule)."""
    return _measure(lambda: time_calls(step, warmup, repeats, device), step if count_flops else None, generate,
                    gen_batch, device, warmup, repeats)


def record_from(
    m: Measurement,
    args: argparse.Namespace,
    machine: dict[str, Any],
    *,
    family: str,
    name: str,
    label: str,
    config: dict[str, Any],
    reference_key: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`bench.common.make_record` from a :class:`Measurement` and the parsed command line."""
    return make_record(
        family=family, name=name, label=label, config=config, machine=machine, step_s_all=m.step_s_all,
        gflop_per_step=m.gflop_per_step, gen_images_per_s=m.gen_images_per_s, gen_batch=m.gen_batch,
        gen_s_all=m.gen_s_all, peak_memory=m.peak_memory, reference_key=reference_key, quick=args.quick, extra=extra,
    )


def param_millions(*modules: torch.nn.Module) -> float:
    return sum(p.numel() for m in modules for p in m.parameters()) / 1e6
