# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint saving and exact resume for :class:`~monai_gan_aug.engines.GanTrainer`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_gan_aug.engines.utils import CHECKPOINT_PREFIX, checkpoint_iteration, dist_info, find_latest_checkpoint
from monai_gan_aug.utils.misc import as_bool

__all__ = ["GanCheckpointHandler"]

logger = logging.getLogger(__name__)


class GanCheckpointHandler:
    """Saves the trainer's full state every ``save_interval`` iterations and at the end, and resumes from the
    newest checkpoint in ``save_dir`` when training starts.

    Files are ``checkpoint_<iteration>.pt`` written atomically (temporary file then rename), so a run killed at
    any moment (even SIGKILL) leaves the previous checkpoints intact. The ``n_saved`` newest are kept. When
    training stops with an exception (a non-finite loss, Ctrl-C) the state at that moment is written as
    ``<reason>_<iteration>.pt`` beside them; it is never picked for resume.

    Args:
        save_dir: checkpoint folder.
        save_interval: iterations between checkpoints (0: only at the end).
        n_saved: how many regular checkpoints to keep (None: all).
        resume: load the newest checkpoint at start. When False and the folder already holds checkpoints, training
            refuses to start rather than mixing two runs in one folder.
        objects: what to save (default: ``engine.checkpoint_objects()``).
        load_path: resume from this file instead of the newest one.
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_interval: int = 100,
        n_saved: int | None = 3,
        resume: bool = True,
        objects: dict[str, Any] | None = None,
        load_path: str | Path | None = None,
    ) -> None:
        if save_interval < 0:
            raise ValueError(f"save_interval must be >= 0, got {save_interval}.")
        self.save_dir = Path(save_dir)
        self.save_interval = int(save_interval)
        self.n_saved = n_saved
        self.resume = as_bool(resume, "resume")
        self.objects = objects
        self.load_path = Path(load_path) if load_path else None
        self.rank = dist_info()[0]
        self.resumed_from: str | None = None

    def attach(self, engine: Engine) -> None:
        if self.objects is None:
            if not hasattr(engine, "checkpoint_objects"):
                raise TypeError("GanCheckpointHandler needs 'objects' unless the engine has checkpoint_objects().")
            self.objects = engine.checkpoint_objects()
        self._checkpoint = Checkpoint(
            self.objects,
            DiskSaver(str(self.save_dir), require_empty=False, atomic=True, create_dir=True),
            filename_prefix="",
            filename_pattern=CHECKPOINT_PREFIX + "_{global_step}.{ext}",
            n_saved=self.n_saved,
            global_step_transform=lambda e, _: e.state.iteration,
            save_on_rank=0,
        )
        engine.add_event_handler(Events.STARTED, self._load)
        if self.save_interval > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self._save)
        engine.add_event_handler(Events.COMPLETED, self._save_final)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._save_on_exception)

    def _save(self, engine: Engine) -> None:
        if getattr(engine, "check_finite", None) is not None:
            engine.check_finite()  # never write a regular checkpoint holding NaNs
        self._checkpoint(engine)

    def _save_final(self, engine: Engine) -> None:
        last = self._checkpoint.last_checkpoint
        if last is not None and checkpoint_iteration(last) == engine.state.iteration:
            return
        self._save(engine)

    def _save_on_exception(self, engine: Engine, e: Exception) -> None:
        reason = "nonfinite" if type(e).__name__ == "NonFiniteLossError" else "interrupted"
        last = self._checkpoint.last_checkpoint
        newer = engine.state.iteration > (checkpoint_iteration(last) or 0) if last is not None else engine.state.iteration > 0
        if self.rank == 0 and (reason == "nonfinite" or newer):
            self.save_dir.mkdir(parents=True, exist_ok=True)
            path = self.save_dir / f"{reason}_{engine.state.iteration}.pt"
            tmp = path.with_suffix(".pt.tmp")
            torch.save({k: v.state_dict() for k, v in self.objects.items()}, tmp)
            tmp.replace(path)
            logger.error("Training stopped (%s) at iteration %d; state saved to %s.", reason, engine.state.iteration, path)
        raise e

    def _load(self, engine: Engine) -> None:
        path = self.load_path or (find_latest_checkpoint(self.save_dir) if self.resume else None)
        if path is None:
            if not self.resume and find_latest_checkpoint(self.save_dir) is not None:
                raise FileExistsError(
                    f"{self.save_dir} already holds checkpoints of an earlier run and resume is off. Resume it "
                    "(--resume true), or pass a new --output_dir; nothing was overwritten."
                )
            return
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist.")
        try:
            ckpt = torch.load(path, map_location=engine.state.device, weights_only=False)
        except Exception as err:  # a truncated or foreign file
            raise ValueError(
                f"cannot read checkpoint {path} ({type(err).__name__}: {err}). Delete it to resume from the one "
                "before, or pass another --output_dir."
            ) from err
        prior_max_epochs = engine.state.max_epochs
        prior_epoch_length = engine.state.epoch_length
        Checkpoint.load_objects(to_load=self.objects, checkpoint=ckpt)
        engine.state.max_epochs = max(prior_max_epochs or 0, 0)
        if prior_epoch_length and engine.state.epoch_length != prior_epoch_length:
            engine.state.epoch_length = prior_epoch_length
            engine.state.epoch = engine.state.iteration // prior_epoch_length
        self.resumed_from = str(path)
        logger.info("Resumed from %s at iteration %d (epoch %d).", path, engine.state.iteration, engine.state.epoch)
        if engine.state.epoch_length and engine.state.iteration >= engine.state.epoch_length * engine.state.max_epochs:
            logger.info("Training already complete at iteration %d; raise --max_epochs to continue.", engine.state.iteration)
            engine.terminate()
