# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handler that evaluates GAN metrics during training, logs them and keeps the best checkpoint.

The thin Ignite layer over :mod:`monai_gan_aug.metrics` (MONAI's two-layer pattern: pure metric + handler).
Every ``interval`` iterations it draws ``num_samples`` images from ``generate``, embeds them with the extractor,
computes the metrics against the real set (whose features are computed once, and cached on disk when a cache
directory is given), writes the values to ``engine.state.metrics`` and TensorBoard, and saves the given objects
when the chosen metric improves (Ignite ``Checkpoint`` with ``DiskSaver`` and a score function).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_gan_aug.engines.utils import attached_objects
from monai_gan_aug.metrics.extractors import FeatureExtractor
from monai_gan_aug.metrics.gan_metrics import (
    METRICS,
    FIDMetric,
    GanMetric,
    canonical_metric_name,
    create_metric,
)
from monai_gan_aug.metrics.io import ImageLoader, list_images
from monai_gan_aug.metrics.stats import (
    FeatureStats,
    Reservoir,
    StatsCache,
    dataset_identity,
)

__all__ = ["GanMetricHandler"]


def _find_writer(engine: Engine) -> Any | None:
    """A SummaryWriter already attached to ``engine`` (MONAI TensorBoard handlers or an Ignite TensorboardLogger)."""
    for owner in attached_objects(engine):
        for attr in ("_writer", "writer"):
            w = getattr(owner, attr, None)
            if w is not None and hasattr(w, "add_scalar"):
                return w
    return None


class GanMetricHandler:
    """Periodic GAN-quality evaluation for an Ignite engine (e.g. the GAN trainer).

    Args:
        metrics: metric names (``fid``, ``kid``, ``is``, ``mmd``, ``1nn``, ``msssim``, ``prd``, ``pa``), or a dict
            name -> keyword arguments or a ready :class:`GanMetric`.
        extractor: feature network (:class:`FeatureExtractor`), on the device it should run on.
        real_data: real images in ``[-1, 1]``: a ``(N, C, *spatial)`` tensor, an iterable/DataLoader of batches
            (tensors, dicts with ``image_key`` or tuples whose first element is the images), or a folder / datalist
            JSON path (read with :class:`ImageLoader` and ``intensity``).
        generate: ``generate(n)`` returns ``n`` generated images in ``[-1, 1]``, or ``(images, targets)`` for paired
            metrics (``pa``). Called under ``torch.no_grad``; put the generator in eval mode inside if needed.
        num_samples: generated samples per evaluation.
        interval: evaluate every ``interval`` iterations.
        tag_prefix: prefix of the keys in ``engine.state.metrics`` and of the TensorBoard tags.
        summary_writer: TensorBoard writer; ``None`` uses ``log_dir`` or a writer already attached to the engine
            (MONAI ``TensorBoardStatsHandler``, Ignite ``TensorboardLogger``), else no TensorBoard output.
        log_dir: directory of a new ``SummaryWriter`` when no writer is given.
        save_best: ``{"metric": "fid", "mode": "min" | "max", "dir": path, "objects": {name: obj}, "n_saved": 1,
            "filename_prefix": "best"}``: objects with ``state_dict`` saved by Ignite's ``Checkpoint`` when the metric
            improves (``mode`` defaults to the metric's direction).
        batch_size: chunk size of generation and feature extraction.
        n_bootstrap: bootstrap replicates of the intervals (0 by default: values only, fast).
        seed: metric seed.
        cache_dir: directory of the real-set statistics cache (``None``: computed once per handler, in memory).
        real_key: dataset identity for the cache when ``real_data`` is not a path (e.g. ``"thyroid_A_v1"``).
        image_key: key of the images in dict batches.
        intensity: intensity mapping when ``real_data`` is a path.
        run_on_completed: also evaluate when the engine completes.

    Example::

        handler = GanMetricHandler(["fid", "kid"], RandomConvFeatures(), real_images, trainer.generate,
                                   num_samples=256, interval=500,
                                   save_best={"metric": "fid", "dir": "ckpt", "objects": {"generator": g}})
        handler.attach(trainer)
    """

    def __init__(
        self,
        metrics: Sequence[str] | Mapping[str, Mapping[str, Any] | GanMetric],
        extractor: FeatureExtractor,
        real_data: Any,
        generate: Callable[[int], Any],
        num_samples: int = 1000,
        interval: int = 1000,
        tag_prefix: str = "gan_metrics/",
        summary_writer: Any | None = None,
        log_dir: str | os.PathLike | None = None,
        save_best: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        n_bootstrap: int = 0,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        real_key: str | None = None,
        image_key: str = "image",
        intensity: str = "auto",
        run_on_completed: bool = False,
    ) -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise TypeError(f"`extractor` must be a FeatureExtractor, got {type(extractor).__name__}.")
        if not callable(generate):
            raise TypeError("`generate` must be a callable generate(n) -> images in [-1, 1].")
        if int(num_samples) < 2 or int(interval) < 1 or int(batch_size) < 1:
            raise ValueError("`num_samples` must be >= 2, `interval` and `batch_size` >= 1.")
        specs = {m: {} for m in metrics} if not isinstance(metrics, Mapping) else dict(metrics)
        if not specs:
            raise ValueError("`metrics` is empty.")
        self.specs: dict[str, Mapping[str, Any] | GanMetric] = {}
        for name, spec in specs.items():
            key = canonical_metric_name(name)
            if not isinstance(spec, (Mapping, GanMetric)):
                raise TypeError(f"Metric {name!r}: give keyword arguments (dict) or a GanMetric, got {type(spec).__name__}.")
            self.specs[key] = spec
        if "is" in self.specs and not extractor.has_logits:
            raise ValueError(f"The Inception Score needs class logits; extractor {extractor.name} has no classifier head.")
        self.extractor = extractor
        self.real_data = real_data
        self.generate = generate
        self.num_samples, self.interval, self.batch_size = int(num_samples), int(interval), int(batch_size)
        self.tag_prefix = tag_prefix
        self.summary_writer = summary_writer
        self.log_dir = log_dir
        self.n_bootstrap, self.seed = int(n_bootstrap), int(seed)
        self.cache = StatsCache(cache_dir) if cache_dir is not None else None
        self.real_key, self.image_key, self.intensity = real_key, image_key, intensity
        self.run_on_completed = run_on_completed
        self._real: tuple[FeatureStats, torch.Tensor] | None = None
        self._real_images: Reservoir | None = None
        self.last_results: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, dict[str, float]]] = []
        self.best: dict[str, Any] | None = None
        self._checkpoint: Checkpoint | None = None
        self._best_key: str | None = None
        self._best_sign = 1.0
        if save_best is not None:
            self._setup_checkpoint(save_best)

    # ----------------------------------------------------------------------------------------------------------
    def _setup_checkpoint(self, cfg: Mapping[str, Any]) -> None:
        missing = [k for k in ("metric", "dir", "objects") if k not in cfg]
        if missing:
            raise ValueError(f"`save_best` needs the keys {missing} (metric, dir, objects).")
        metric = str(cfg["metric"])
        owner = next((n for n in self.specs if metric in self._output_names(n)), None)
        if owner is None:
            raise ValueError(f"`save_best` metric {metric!r} is not an output of the requested metrics {list(self.specs)}.")
        higher = METRICS[owner].higher_is_better.get(metric, False)
        mode = cfg.get("mode", "max" if higher else "min")
        if mode not in ("min", "max"):
            raise ValueError(f"`save_best['mode']` must be 'min' or 'max', got {mode!r}.")
        objects = cfg["objects"]
        if not isinstance(objects, Mapping) or not objects:
            raise TypeError("`save_best['objects']` must be a non-empty dict name -> object with state_dict().")
        self._best_key = f"{self.tag_prefix}{metric}"
        self._best_sign = 1.0 if mode == "max" else -1.0
        key, sign = self._best_key, self._best_sign
        self._checkpoint = Checkpoint(
            to_save=objects,
            save_handler=DiskSaver(os.fspath(cfg["dir"]), create_dir=True, require_empty=False),
            filename_prefix=str(cfg.get("filename_prefix", "best")),
            score_function=lambda e: sign * float(e.state.metrics[key]),
            score_name=metric,
            n_saved=int(cfg.get("n_saved", 1)),
            global_step_transform=lambda e, _: e.state.iteration,
        )

    @staticmethod
    def _output_names(name: str) -> tuple[str, ...]:
        return METRICS[name].output_names

    def attach(self, engine: Engine) -> None:
        """Evaluate every ``interval`` iterations (and at completion when ``run_on_completed``)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        if self.run_on_completed:
            engine.add_event_handler(Events.COMPLETED, self)

    # ----------------------------------------------------------------------------------------------------------
    def _real_batches(self) -> Iterable[torch.Tensor]:
        data = self.real_data
        if isinstance(data, torch.Tensor):
            for s in range(0, data.shape[0], self.batch_size):
                yield data[s : s + self.batch_size]
            return
        if isinstance(data, (str, os.PathLike)):
            files = list_images(data)
            for images, _ in ImageLoader(self.intensity).batches(files, self.batch_size):
                yield images
            return
        for batch in data:
            if isinstance(batch, Mapping):
                if self.image_key not in batch:
                    raise ValueError(f"Real batches are dicts without the key {self.image_key!r}; set `image_key`.")
                batch = batch[self.image_key]
            elif isinstance(batch, (list, tuple)):
                batch = batch[0]
            if not isinstance(batch, torch.Tensor):
                raise TypeError(f"Real batches must be tensors (or dicts/tuples of them), got {type(batch).__name__}.")
            yield batch

    def _dataset_id(self) -> str | None:
        if self.real_key is not None:
            return dataset_identity(key=self.real_key)
        data = self.real_data
        if isinstance(data, (str, os.PathLike)):
            return dataset_identity(list_images(data), extra=f"intensity={self.intensity}")
        if isinstance(data, torch.Tensor):
            t = data.detach().cpu().contiguous()
            return dataset_identity(key="tensor:" + hashlib.sha256(t.view(-1).view(torch.uint8).numpy().tobytes()).hexdigest())
        items = getattr(getattr(data, "dataset", None), "data", None)
        if isinstance(items, Sequence):
            paths = [it.get(self.image_key) if isinstance(it, Mapping) else it for it in items]
            if paths and all(isinstance(p, str) and os.path.isfile(p) for p in paths):
                return dataset_identity(paths, extra=f"loader:{self.image_key}")
        return None

    def real_features(self) -> tuple[FeatureStats, torch.Tensor]:
        """Real-set statistics and features, computed once (and cached on disk when possible)."""
        if self._real is not None:
            return self._real
        dataset_id = self._dataset_id() if self.cache is not None else None
        if self.cache is not None and dataset_id is not None:
            cached = self.cache.load(dataset_id, self.extractor.name)
            if cached is not None and cached.features is not None:
                self._real = (cached.stats, torch.from_numpy(cached.features))
                if "msssim" in self.specs:
                    self._collect_real_images(self._real_batches())
                return self._real
        stats, feats = FeatureStats(), []
        need_images = "msssim" in self.specs
        for batch in self._real_batches():
            f = self.extractor.extract(batch, batch_size=self.batch_size)
            stats.update(f)
            feats.append(f)
            if need_images:
                self._collect_real_images([batch])
        if stats.n < 2:
            raise ValueError("The real data hold fewer than 2 images.")
        features = torch.cat(feats)  # type: ignore[arg-type]
        if self.cache is not None and dataset_id is not None:
            self.cache.save(dataset_id, self.extractor.name, stats, features)
        self._real = (stats, features)
        return self._real

    def _collect_real_images(self, batches: Iterable[torch.Tensor]) -> None:
        if self._real_images is None:
            self._real_images = Reservoir(320, seed=self.seed)
        for b in batches:
            self._real_images.add(b)

    def _make_metrics(self) -> dict[str, GanMetric]:
        out = {}
        for name, spec in self.specs.items():
            if isinstance(spec, GanMetric):
                spec.reset()
                out[name] = spec
            else:
                kw = {"n_bootstrap": self.n_bootstrap, "seed": self.seed}
                if name == "msssim":
                    kw["spatial_dims"] = self.extractor.spatial_dims
                kw.update(spec)
                out[name] = create_metric(name, **kw)
        return out

    def compute(self) -> dict[str, dict[str, Any]]:
        """Run one evaluation (without logging): ``{output name: result dict}``."""
        stats, real_feats = self.real_features()
        metrics = self._make_metrics()
        with_logits = "is" in metrics
        for m in metrics.values():
            if m.input_kind == "features":
                if isinstance(m, FIDMetric):
                    m.set_real_statistics(stats, real_feats)
                else:
                    m(y=real_feats)
            elif m.input_kind == "images" and self._real_images is not None and len(self._real_images):
                m(y=self._real_images.data)
        remaining = self.num_samples
        with torch.no_grad():
            while remaining > 0:
                n = min(self.batch_size, remaining)
                out = self.generate(n)
                images, targets = (out[0], out[1]) if isinstance(out, (tuple, list)) else (out, None)
                if not isinstance(images, torch.Tensor) or images.shape[0] != n:
                    raise ValueError(f"generate({n}) must return {n} images as a tensor (or an (images, targets) pair).")
                if with_logits:
                    feats, logits = self.extractor.extract(images, self.batch_size, with_logits=True)  # type: ignore[misc]
                else:
                    feats, logits = self.extractor.extract(images, self.batch_size), None
                for m in metrics.values():
                    if m.input_kind == "features":
                        m(y_pred=feats)
                    elif m.input_kind == "logits":
                        m(y_pred=logits)
                    elif m.input_kind == "images":
                        m(y_pred=images)
                    elif m.input_kind == "paired":
                        if targets is None:
                            raise ValueError("Per-pixel accuracy needs generate(n) to return (images, targets).")
                        m(y_pred=images, y=targets)
                remaining -= n
        results: dict[str, dict[str, Any]] = {}
        for m in metrics.values():
            results.update(m.aggregate())
        return results

    def _writer(self, engine: Engine) -> Any | None:
        if self.summary_writer is None:
            if self.log_dir is not None:
                from torch.utils.tensorboard import SummaryWriter

                self.summary_writer = SummaryWriter(log_dir=os.fspath(self.log_dir))
            else:
                self.summary_writer = _find_writer(engine)
        return self.summary_writer

    def __call__(self, engine: Engine) -> dict[str, dict[str, Any]]:
        """Evaluate, write ``engine.state.metrics`` and TensorBoard, save the best checkpoint; returns the results."""
        results = self.compute()
        step = int(engine.state.iteration)
        writer = self._writer(engine)
        values = {}
        for name, r in results.items():
            tag = f"{self.tag_prefix}{name}"
            engine.state.metrics[tag] = r["value"]
            values[name] = r["value"]
            if writer is not None:
                writer.add_scalar(tag, r["value"], step)
                if r.get("ci_low") is not None:
                    writer.add_scalar(f"{tag}_ci_low", r["ci_low"], step)
                    writer.add_scalar(f"{tag}_ci_high", r["ci_high"], step)
        if writer is not None and hasattr(writer, "flush"):
            writer.flush()
        self.last_results = results
        self.history.append((step, values))
        if self._checkpoint is not None and self._best_key is not None:
            value = float(engine.state.metrics[self._best_key])
            self._checkpoint(engine)  # Checkpoint keeps the n_saved best scores
            if self.best is None or self._best_sign * value > self._best_sign * self.best["value"]:
                self.best = {"metric": self._best_key, "value": value, "iteration": step, "path": self.best_checkpoint}
        return results

    @property
    def best_checkpoint(self) -> str | None:
        """Path of the best checkpoint saved so far."""
        if self._checkpoint is None or self._checkpoint.last_checkpoint is None:
            return None
        return os.fspath(self._checkpoint.last_checkpoint)
