# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint saving and exact resume for :class:`~monai_gan_aug.engines.AdversarialTrainer`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_gan_aug.engines.utils import CHECKPOINT_PREFIX, checkpoint_iteration, dist_info, find_latest_checkpoint
from monai_gan_aug.utils.checkpoint_io import CheckpointError, UnsafeCheckpointError, load_checkpoint
from monai_gan_aug.utils.misc import as_bool

__all__ = ["GanCheckpointHandler"]

logger = logging.getLogger(__name__)

#: checkpoint entries a file may lack (written before they existed); resuming without them is not exact
_OPTIONAL_ENTRIES = ("data",)


class GanCheckpointHandler:
    """Saves the trainer's full state every ``save_interval`` iterations and at the end, and resumes from the
    newest checkpoint in ``save_dir`` when training starts.

    Files are ``checkpoint_<iteration>.pt`` written atomically (temporary file then rename), so a run killed at
    any moment (even SIGKILL) leaves the previous checkpoints intact. The ``n_saved`` newest in the folder are kept,
    also those of an earlier run that this one resumed: older ones are deleted only after a newer one was written.
    When training stops with an exception (a non-finite loss, Ctrl-C) the state at that moment is written as
    ``<reason>_<iteration>.pt`` beside them; it is never picked for resume nor deleted.

    Checkpoints are read with ``torch.load(weights_only=True)`` (:func:`~monai_gan_aug.utils.load_checkpoint`): a
    file holding anything else than tensors and plain values is refused, never executed.

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
        if n_saved is not None and int(n_saved) < 1:
            raise ValueError(f"n_saved must be >= 1 (or None to keep all checkpoints), got {n_saved}.")
        self.save_dir = Path(save_dir)
        self.save_interval = int(save_interval)
        self.n_saved = None if n_saved is None else int(n_saved)
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
            n_saved=None,  # pruned by _prune after each save: ignite deletes before writing and knows only its files
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
        self._prune(self._checkpoint.last_checkpoint)

    def _prune(self, written: str | None) -> None:
        """Keep the ``n_saved`` regular checkpoints of the folder with the highest iterations (whichever run wrote
        them), never the one just ``written``; ``nonfinite_*`` / ``interrupted_*`` files are not touched."""
        if self.n_saved is None or self.rank != 0 or not self.save_dir.is_dir():
            return
        found = sorted((it, p) for p in self.save_dir.iterdir() if (it := checkpoint_iteration(p)) is not None)
        keep = Path(written).name if written else None
        for _, p in found[: max(0, len(found) - self.n_saved)]:
            if p.name != keep:
                p.unlink(missing_ok=True)

    def _save_final(self, engine: Engine) -> None:
        last = self._checkpoint.last_checkpoint or self.resumed_from
        if last is not None and checkpoint_iteration(last) == engine.state.iteration:
            return
        self._save(engine)

    def _save_on_exception(self, engine: Engine, e: Exception) -> None:
        reason = "nonfinite" if type(e).__name__ == "NonFiniteLossError" else "interrupted"
        last = self._checkpoint.last_checkpoint or self.resumed_from
        newer = engine.state.iteration > (checkpoint_iteration(last) or 0) if last is not None else engine.state.iteration > 0
        if getattr(self, "_saved_for", None) is e:  # ignite fires EXCEPTION_RAISED once per run level
            raise e
        self._saved_for = e
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
            ckpt = load_checkpoint(path, map_location=engine.state.device)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as err:  # a truncated or foreign file
            raise CheckpointError(f"{err} Delete it to resume from the one before, or pass another --output_dir.") from err
        if not isinstance(ckpt, Mapping):
            raise CheckpointError(
                f"checkpoint {path} holds a {type(ckpt).__name__}, not the entries GanCheckpointHandler writes. Delete "
                "it to resume from the one before, or pass another --output_dir."
            )
        absent = [k for k in _OPTIONAL_ENTRIES if k in self.objects and k not in ckpt]
        if absent:
            logger.warning(
                "Checkpoint %s has no %s entry (written by an older version): training resumes, but the data order "
                "and random transforms of the interrupted epoch differ from an uninterrupted run.", path, absent
            )
        to_load = {k: v for k, v in self.objects.items() if k not in absent}
        prior_max_epochs = engine.state.max_epochs
        prior_epoch_length = engine.state.epoch_length
        Checkpoint.load_objects(to_load=to_load, checkpoint=ckpt)
        engine.state.max_epochs = max(prior_max_epochs or 0, 0)
        if prior_epoch_length and engine.state.epoch_length != prior_epoch_length:
            engine.state.epoch_length = prior_epoch_length
            engine.state.epoch = engine.state.iteration // prior_epoch_length
        self.resumed_from = str(path)
        logger.info("Resumed from %s at iteration %d (epoch %d).", path, engine.state.iteration, engine.state.epoch)
        if engine.state.epoch_length and engine.state.iteration >= engine.state.epoch_length * engine.state.max_epochs:
            logger.info("Training already complete at iteration %d; raise --max_epochs to continue.", engine.state.iteration)
            engine.terminate()
        # the engine's own max_iterations check ran at STARTED before this load (iteration 0): a run that stops on
        # max_iterations and is already there must not train one more iteration
        max_iterations = getattr(engine, "max_iterations", None)
        if max_iterations is not None and engine.state.iteration >= max_iterations:
            logger.info("Training already complete at iteration %d (max_iterations=%d).", engine.state.iteration,
                        max_iterations)
            engine.terminate()
