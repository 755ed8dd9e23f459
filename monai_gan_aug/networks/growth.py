# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Karras et al.'s progressive-growing schedule ("Progressive growing of GANs", ICLR 2018) as a pure function of the
number of iterations done: which stage (resolution) and fade-in ``alpha`` an iteration trains at, and how many images
it uses.

The schedule holds no state. The stage and ``alpha`` the networks are at live in the networks themselves (buffers of
:class:`~monai_gan_aug.networks.nets.pggan.ProgressiveNetwork`, saved in their state dict), and
:class:`~monai_gan_aug.handlers.ProgressiveGrowingHandler` sets them from :meth:`ProgressiveSchedule.at` and
``engine.state.iteration`` at the start of every iteration: a resumed run, even one stopped in the middle of a
fade-in, continues at exactly the same resolution and ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ProgressiveSchedule", "ScheduleState", "legacy_growth", "pggan_resolutions"]


def pggan_resolutions(max_resolution: int) -> list[int]:
    """``[4, 8, ..., max_resolution]``; ``max_resolution`` must be a power of two >= 4."""
    if not isinstance(max_resolution, int) or max_resolution < 4 or max_resolution & (max_resolution - 1):
        raise ValueError(f"max_resolution must be a power of two >= 4, got {max_resolution!r}.")
    return [2**k for k in range(2, int(math.log2(max_resolution)) + 1)]


def legacy_growth(checkpoint: str | None) -> tuple[int, float] | None:
    """``(stage, alpha)`` from the ``objective`` entry of a PGGAN checkpoint written before the networks held their
    stage (None for a newer file or none); loaded with ``weights_only`` like every checkpoint."""
    from monai_gan_aug.utils.checkpoint_io import load_checkpoint

    state = load_checkpoint(checkpoint) if checkpoint else None
    old = state.get("objective") if isinstance(state, Mapping) else None
    return (int(old["stage"]), float(old.get("alpha", 1.0))) if isinstance(old, Mapping) and "stage" in old else None


@dataclass(frozen=True)
class ScheduleState:
    """Where the progressive schedule is at one iteration.

    Attributes:
        stage: network stage (0 = 4 px).
        resolution: ``4 * 2 ** stage``.
        alpha: fade-in weight of the newest block (1 in stable phases).
        phase: ``"stable"`` or ``"fade"``.
        phase_index: index of the phase in :attr:`ProgressiveSchedule.phases`.
        batch_size: images used per iteration at this resolution.
        images_shown: real images shown before this iteration.
    """

    stage: int
    resolution: int
    alpha: float
    phase: str
    phase_index: int
    batch_size: int
    images_shown: int


class ProgressiveSchedule:
    """Karras et al.'s growth schedule: a stable phase at ``start_resolution``, then for each larger resolution a
    fade-in phase (``alpha`` rising linearly from 0 to 1) and a stable phase, each lasting ``images_per_phase`` real
    images (``fade_images`` for fade-ins when given); the last stable phase never ends.

    An iteration at resolution ``r`` shows ``batch_sizes[r]`` images, so a phase lasts
    ``ceil(images / batch_sizes[r])`` iterations. Everything is a function of the number of iterations done.

    Args:
        max_resolution: final resolution (power of two).
        images_per_phase: real images per phase (Karras et al. used 600k-800k), or a mapping resolution -> images
            (keys may be strings, as in JSON; every scheduled resolution must be given) to spend more of a small
            compute budget where lesions are visible.
        batch_sizes: resolution -> batch size (keys may be strings); missing resolutions use ``batch_size``.
        batch_size: default batch size.
        start_resolution: first resolution (4 in the paper).
        fade_images: images per fade-in phase, a number or a mapping like ``images_per_phase`` (default
            ``images_per_phase``).
    """

    def __init__(
        self,
        max_resolution: int,
        images_per_phase: int | Mapping,
        batch_sizes: Mapping | None = None,
        batch_size: int = 16,
        start_resolution: int = 4,
        fade_images: int | Mapping | None = None,
    ) -> None:
        all_res = pggan_resolutions(int(max_resolution))
        if start_resolution not in all_res:
            raise ValueError(f"start_resolution must be one of {all_res}, got {start_resolution!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        sizes = {int(k): int(v) for k, v in dict(batch_sizes or {}).items()}
        bad = {k: v for k, v in sizes.items() if v < 1 or k not in all_res}
        if bad:
            raise ValueError(f"batch_sizes must map resolutions in {all_res} to sizes >= 1, got {bad}.")
        self.all_resolutions = all_res
        self.resolutions = [r for r in all_res if r >= start_resolution]
        self.images_per_phase = self._per_resolution("images_per_phase", images_per_phase)
        self.fade_images = (
            self._per_resolution("fade_images", fade_images) if fade_images is not None else dict(self.images_per_phase)
        )
        self.batch_sizes = {r: sizes.get(r, int(batch_size)) for r in all_res}
        self.max_batch_size = max(self.batch_sizes[r] for r in self.resolutions)
        # (resolution, kind, iterations, images per phase); the last phase is open-ended
        self.phases: list[tuple[int, str, int, int]] = []
        for i, r in enumerate(self.resolutions):
            b = self.batch_sizes[r]
            if i > 0:
                self.phases.append((r, "fade", math.ceil(self.fade_images[r] / b), self.fade_images[r]))
            self.phases.append((r, "stable", math.ceil(self.images_per_phase[r] / b), self.images_per_phase[r]))

    def _per_resolution(self, name: str, value: int | Mapping) -> dict[int, int]:
        if isinstance(value, Mapping):
            given = {int(k): int(v) for k, v in value.items()}
            missing = [r for r in self.resolutions if r not in given]
            if missing:
                raise ValueError(f"{name} gives resolutions {sorted(given)} but not {missing}; give every one of {self.resolutions}.")
        else:
            given = {r: int(value) for r in self.resolutions}
        bad = {r: v for r, v in given.items() if v < 1}
        if bad:
            raise ValueError(f"{name} must be >= 1 images, got {bad}.")
        return {r: given[r] for r in self.resolutions}

    def at(self, iterations_done: int) -> ScheduleState:
        """State for the iteration that follows ``iterations_done`` completed iterations."""
        if iterations_done < 0:
            raise ValueError(f"iterations_done must be >= 0, got {iterations_done}.")
        left, shown = int(iterations_done), 0
        for k, (r, kind, n_it, images) in enumerate(self.phases):
            b = self.batch_sizes[r]
            last = k == len(self.phases) - 1
            if left < n_it or last:
                stage = self.all_resolutions.index(r)
                alpha = min(1.0, left * b / images) if kind == "fade" else 1.0
                return ScheduleState(stage, r, float(alpha), kind, k, b, shown + left * b)
            left -= n_it
            shown += n_it * b
        raise AssertionError("unreachable")  # pragma: no cover

    def iterations_until(self, resolution: int, kind: str = "stable") -> int:
        """Iterations done before the phase ``(resolution, kind)`` starts."""
        total = 0
        for r, k, n_it, _ in self.phases:
            if r == resolution and k == kind:
                return total
            total += n_it
        raise ValueError(f"the schedule has no {kind!r} phase at resolution {resolution} (phases: {self.phases}).")

    @property
    def total_growth_iterations(self) -> int:
        """Iterations until the final resolution's stable phase starts (plus its nominal length)."""
        return sum(n for _, _, n, _ in self.phases)
