# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Drives progressive growing (Karras et al., ICLR 2018): at the start of every iteration, the stage and fade-in
``alpha`` of the schedule for that iteration go into the PGGAN networks, where they live (buffers saved in the
networks' state dict, see :class:`~monai_gan_aug.networks.nets.pggan.ProgressiveNetwork`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events
from torch import nn

from monai_gan_aug.networks.growth import ProgressiveSchedule, ScheduleState
from monai_gan_aug.networks.nets.pggan import ProgressiveNetwork

__all__ = ["ProgressiveGrowingHandler"]

logger = logging.getLogger(__name__)


class ProgressiveGrowingHandler:
    """At ``ITERATION_STARTED`` sets every progressive network to ``schedule.at(iteration - 1)`` (the state after
    ``iteration - 1`` completed iterations) with :meth:`~ProgressiveNetwork.set_growth`, and logs each new phase.

    The state is a function of ``engine.state.iteration`` only, so a run resumed from a checkpoint (even one written
    inside a fade-in) continues with exactly the stages and alphas of an uninterrupted run.

    Args:
        schedule: the growth schedule (default: ``engine.objective.schedule``, e.g. that of
            :class:`~monai_gan_aug.losses.objectives.pggan.PGGANBoxObjective`).
        networks: the networks to drive: a module, or a sequence / mapping of modules (default: every
            :class:`~monai_gan_aug.networks.nets.pggan.ProgressiveNetwork` among ``engine.networks`` and
            ``engine.ema_networks``).

    Attributes:
        current: the :class:`~monai_gan_aug.networks.growth.ScheduleState` of the running iteration (None before).
    """

    def __init__(self, schedule: ProgressiveSchedule | None = None, networks: Any = None) -> None:
        if schedule is not None and not isinstance(schedule, ProgressiveSchedule):
            raise TypeError(f"schedule must be a ProgressiveSchedule, got {type(schedule).__name__}.")
        self.schedule = schedule
        self.networks = networks
        self.current: ScheduleState | None = None
        self._targets: list[ProgressiveNetwork] = []

    def attach(self, engine: Engine) -> None:
        if self.schedule is None:
            self.schedule = getattr(getattr(engine, "objective", None), "schedule", None)
            if not isinstance(self.schedule, ProgressiveSchedule):
                raise ValueError("ProgressiveGrowingHandler needs a schedule: pass schedule=... or use an objective "
                                 "with a ProgressiveSchedule 'schedule' (PGGANBoxObjective).")
        if self.networks is None:
            found = [*getattr(engine, "networks", {}).values(), *getattr(engine, "ema_networks", {}).values()]
        elif isinstance(self.networks, nn.Module):
            found = [self.networks]
        else:
            found = list(self.networks.values() if isinstance(self.networks, Mapping) else self.networks)
        self._targets = [m for m in found if isinstance(m, ProgressiveNetwork)]
        if not self._targets or (self.networks is not None and len(self._targets) != len(found)):
            raise ValueError(f"ProgressiveGrowingHandler drives PGGAN networks (ProgressiveNetwork), got "
                             f"{[type(m).__name__ for m in found]}.")
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        done = int(engine.state.iteration) - 1
        previous, self.current = self.current, self.schedule.at(done)
        for net in self._targets:
            net.set_growth(self.current.stage, self.current.alpha)
        if previous is None or previous.phase_index != self.current.phase_index:
            st = self.current
            logger.info("PGGAN: %s phase at %d px (iteration %d, %d images shown, batch %d).", st.phase,
                        st.resolution, done + 1, st.images_shown, st.batch_size)
