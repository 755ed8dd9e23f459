# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Progress bar and end-of-run summary for GAN workflows."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import dist_info, losses_from_output

__all__ = ["GanProgressBar", "TrainingSummary"]

logger = logging.getLogger(__name__)


class GanProgressBar:
    """tqdm progress bar over all iterations of a run. The bar moves every iteration (host-side only); the losses
    it shows are refreshed every ``every`` iterations, since reading them moves them to the host (one device sync:
    on a GPU a sync per iteration stalls the queue of kernels). Rank 0 only."""

    def __init__(self, every: int = 10, desc: str = "train", show_losses: bool = True) -> None:
        self.every, self.desc, self.show_losses = max(1, int(every)), desc, show_losses

    def attach(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        from tqdm.auto import tqdm

        state: dict = {}

        def _start(e: Engine) -> None:
            total = None
            if e.state.epoch_length and e.state.max_epochs:
                total = e.state.epoch_length * e.state.max_epochs
                if getattr(e, "max_iterations", None):
                    total = min(total, e.max_iterations)
            state["bar"] = tqdm(total=total, initial=e.state.iteration, desc=self.desc, file=sys.stderr,
                                dynamic_ncols=True, mininterval=0.5)
            state["last"] = e.state.iteration

        def _step(e: Engine) -> None:
            bar = state.get("bar")
            if bar is None:
                return
            bar.update(e.state.iteration - state["last"])
            state["last"] = e.state.iteration
            if self.show_losses and (e.state.iteration % self.every == 0 or "shown" not in state):
                state["shown"] = True
                losses = losses_from_output(e.state.output)
                main = {k: v for k, v in losses.items() if k.endswith("_loss")}
                bar.set_postfix({k: f"{v:.3g}" for k, v in main.items()}, refresh=False)

        def _close(e: Engine, *args) -> None:
            bar = state.pop("bar", None)
            if bar is not None:
                bar.close()

        engine.add_event_handler(Events.STARTED, _start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, _step)
        engine.add_event_handler(Events.COMPLETED, _close)
        engine.add_event_handler(Events.TERMINATE, _close)
        # no EXCEPTION_RAISED handler: ignite stops re-raising an exception once that event has any handler, so a
        # generation workflow (which has no checkpoint handler to re-raise) would end "successfully" after an error


class TrainingSummary:
    """Prints where a run's outputs are when it ends (and logs it), e.g.
    ``{"checkpoints": dir, "samples": dir, "tensorboard": dir}``."""

    def __init__(self, outputs: Mapping[str, str | Path], title: str = "outputs") -> None:
        self.outputs, self.title = dict(outputs), title

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        lines = [f"{self.title} (iteration {engine.state.iteration}):"]
        lines += [f"  {k:12s} {Path(v).resolve()}" for k, v in self.outputs.items()]
        print("\n".join(lines), flush=True)
