# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Writes a PNG grid of samples from fixed latents (and fixed conditions) every N iterations."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import dist_info
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.image import draw_boxes_rgb, make_grid_rgb, to_uint8_display

__all__ = ["SampleGridSaver"]

logger = logging.getLogger(__name__)


class SampleGridSaver:
    """Every ``interval`` iterations, ``engine.generate`` from the same seeds (and, for conditional families, the
    same conditions: the first ``num_samples`` training items seen, gathered over the first iterations so that a
    batch-1 family such as CycleGAN shows different sources; they are reused cyclically only when fewer items were
    seen before the first grid) and saves ``samples_<iteration>.png``.

    3D samples are shown as their middle slice along the last axis; boxes, when the objective returns them, are
    drawn in red. Only rank 0 writes.

    With ``log_dir`` the grid is also logged to TensorBoard as the image ``samples/grid`` at the iteration (next to
    the losses of ``TensorBoardStatsHandler``), and 3D samples as animated volumes (``samples/volume``, MONAI's
    ``plot_2d_or_3d_image``: a GIF through the last axis, first ``max_volumes`` samples).

    Args:
        output_dir: where the PNGs go.
        interval: iterations between grids.
        num_samples: images per grid.
        seed: first seed of the fixed latents.
        nrow: images per row (default: ~square).
        use_ema: sample from the EMA generator when there is one.
        log_dir: TensorBoard folder (``None``: PNG files only).
        max_volumes: 3D samples logged as volumes per grid.
    """

    def __init__(
        self,
        output_dir: str | Path,
        interval: int = 100,
        num_samples: int = 16,
        seed: int = 12345,
        nrow: int | None = None,
        use_ema: bool = True,
        log_dir: str | Path | None = None,
        max_volumes: int = 2,
    ) -> None:
        if interval < 1 or num_samples < 1:
            raise ValueError(f"interval and num_samples must be >= 1, got {interval}, {num_samples}.")
        self.output_dir = Path(output_dir)
        self.interval = int(interval)
        self.num_samples = int(num_samples)
        self.seeds = list(range(seed, seed + num_samples))
        self.nrow = nrow
        self.use_ema = use_ema
        self._cond_batch: Mapping[str, Any] | None = None
        self._seen: list[Mapping[str, Any]] = []
        self._seen_count = 0
        self._ran = False  # whether this run completed an iteration
        self.log_dir = Path(log_dir) if log_dir else None
        self.max_volumes = int(max_volumes)
        self._writer: Any = None
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self._final)

    def _final(self, engine: Engine) -> None:
        # a resumed run that was already complete trained nothing: its last grid was written by the earlier run (and
        # a conditional family has no condition batch to draw it from)
        if self._ran and engine.state.iteration % self.interval:
            self(engine)

    @staticmethod
    def _batch_size(batch: Mapping[str, Any]) -> int | None:
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                return int(v.shape[0])
        return None

    def _collect(self, engine: Engine) -> None:
        """Keep the items of the first training batches until ``num_samples`` are held (or the first grid froze
        the conditions)."""
        self._ran = True
        if self._cond_batch is not None or self._seen_count >= self.num_samples:
            return
        batch = engine.state.batch
        if not isinstance(batch, Mapping) or (n := self._batch_size(batch)) is None:
            return
        keep = min(n, self.num_samples - self._seen_count)
        part: dict[str, Any] = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == n:
                part[k] = v[:keep].detach().clone()
            elif isinstance(v, Sequence) and not isinstance(v, str) and len(v) == n:
                part[k] = list(v[:keep])
        self._seen.append(part)
        self._seen_count += keep

    def _repeat(self, parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The parts' items joined and repeated cyclically to ``num_samples``; raises RuntimeError when a tensor's
        item shape differs between parts."""
        keys = [k for k in parts[0] if all(k in part for part in parts)]
        out: dict[str, Any] = {}
        for k in keys:
            vals = [part[k] for part in parts]
            if isinstance(vals[0], torch.Tensor):
                joined = torch.cat(vals)
                out[k] = torch.cat([joined] * -(-self.num_samples // joined.shape[0]))[: self.num_samples]
            else:
                items = [x for v in vals for x in v]
                out[k] = (items * -(-self.num_samples // len(items)))[: self.num_samples]
        return out

    def _condition_batch(self, engine: Engine) -> Mapping[str, Any] | None:
        if self._cond_batch is None:
            if not self._seen:  # a grid before any completed iteration (e.g. called directly)
                self._collect(engine)
            if not self._seen:
                return None
            try:
                self._cond_batch = self._repeat(self._seen)
            except RuntimeError:  # e.g. padded box tensors of different sizes across batches: the first batch only
                self._cond_batch = self._repeat(self._seen[:1])
            self._seen = []
        return self._cond_batch

    def __call__(self, engine: Engine) -> None:
        if dist_info()[0] != 0:
            return
        out = engine.generate(self.num_samples, batch=self._condition_batch(engine), seeds=self.seeds, use_ema=self.use_ema)
        images = out[GanKeys.IMAGE].detach().float().cpu()
        boxes = out.get(GanKeys.BOXES)
        tiles = []
        for i in range(images.shape[0]):
            img = images[i]
            if img.ndim == 4:  # 3D: middle slice of the last axis
                img = img[..., img.shape[-1] // 2]
            tile = to_uint8_display(img)  # (H=rows, W=cols, 3)
            if boxes is not None and i < len(boxes):
                b = boxes[i]
                b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
                tile = draw_boxes_rgb(tile, b[:, :4] if b.size else b.reshape(0, 4))
            tiles.append(tile)
        grid = make_grid_rgb(tiles, nrow=self.nrow)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"samples_{engine.state.iteration:07d}.png"
        from PIL import Image

        Image.fromarray(grid).save(path)
        self.last_path = path
        if self.log_dir is not None:
            self._log(grid, images, engine.state.iteration)
        logger.debug("sample grid written to %s", path)

    def _log(self, grid: np.ndarray, images: torch.Tensor, step: int) -> None:
        """The grid (HWC uint8) and, for 3D samples, a few volumes, to TensorBoard."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        self._writer.add_image("samples/grid", grid, step, dataformats="HWC")
        if images.ndim == 5:  # (N, C, H, W, D)
            from monai.visualize import plot_2d_or_3d_image

            vols = images[: self.max_volumes]
            lo, hi = float(vols.min()), float(vols.max())
            vols = (vols - lo) / max(hi - lo, 1e-8)  # plot_2d_or_3d_image expects [0, 1]
            for i in range(vols.shape[0]):
                plot_2d_or_3d_image(vols, step, self._writer, index=i, max_channels=1, frame_dim=-1,
                                    tag=f"samples/volume_{i}")
        self._writer.flush()
