# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Time real engine iterations: an ignite engine run over one repeated batch, per-iteration wall times recorded by
event handlers, median after warm-up. Shared by the per-family benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from ignite.engine import Engine, Events

__all__ = ["RepeatBatch", "time_engine_iterations", "generation_images_per_s"]


class RepeatBatch:
    """A loader that yields the same batch ``n`` times (no data-loading cost in the timings)."""

    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.batch


def time_engine_iterations(engine: Engine, warmup: int = 2, repeats: int = 7, device: str = "cpu") -> float:
    """Run ``engine`` (whose loader has ``warmup + repeats`` batches) and return the median iteration seconds
    after warm-up."""
    marks: list[float] = []

    def _sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    def start(_: Engine) -> None:
        _sync()
        marks.append(time.perf_counter())

    def end(_: Engine) -> None:
        _sync()
        marks.append(time.perf_counter())

    engine.add_event_handler(Events.ITERATION_STARTED, start)
    engine.add_event_handler(Events.ITERATION_COMPLETED, end)
    engine.run()
    durations = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    return statistics.median(durations[warmup:])


@torch.no_grad()
def generation_images_per_s(generate: Callable[[], torch.Tensor], batch: int, warmup: int = 2, repeats: int = 5,
                            device: str = "cpu") -> float:
    from bench.common import median_seconds

    return batch / median_seconds(generate, warmup=warmup, repeats=repeats, device=device)
