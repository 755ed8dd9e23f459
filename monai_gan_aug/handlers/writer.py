# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Writes generated samples with their labels, each marked synthetic, plus a manifest and a MONAI datalist."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import as_bool

__all__ = ["SyntheticWriter", "DiskSpaceError", "file_sha256", "config_hash", "reference_affine", "human_bytes", "synthetic_outputs"]

logger = logging.getLogger(__name__)

SYNTHETIC_DESCRIP = b"SYNTHETIC monai_gan_aug"
MANIFEST_NAME = "manifest.json"
DATALIST_NAME = "datalist.json"
STAGING_NAME = ".writing"  # files are written here first, then renamed into images/ and labels/
SPACE_MARGIN = 1.10  # the size estimate of a set is multiplied by this ...
SPACE_RESERVE = 64 * 2**20  # ... and this much is left free on the disk
_BLOCK = 4096  # a file takes at least one file-system block
_SUBDIRS = ("images", "labels")
_FILE_KEYS = ("image", "png", "label", "yolo")


class DiskSpaceError(OSError):
    """The disk has less free space than the synthetic set to be written needs."""


def file_sha256(path: str | os.PathLike | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(paths: Sequence[str | os.PathLike] | str | os.PathLike, overrides: Mapping | None = None) -> str:
    """Short sha256 over config files' contents (and overrides): identifies the configuration that made a file."""
    h = hashlib.sha256()
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        h.update(p.read_bytes() if p.is_file() else str(p).encode())
    if overrides:
        h.update(json.dumps(dict(overrides), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def synthetic_outputs(synthetic_dir: str | os.PathLike, spatial_dims: int) -> dict[str, str]:
    """Where a generation run's :class:`SyntheticWriter` set lies, as the ``outputs`` of
    :class:`~monai_gan_aug.handlers.TrainingSummary`: ``images``, the labels (``yolo_labels`` for 2D, ``masks`` for
    3D, both in ``<synthetic_dir>/labels``), ``manifest`` and ``datalist``."""
    root = str(synthetic_dir)
    return {
        "images": root + "/images",
        ("yolo_labels" if spatial_dims == 2 else "masks"): root + "/labels",
        "manifest": root + "/manifest.json",
        "datalist": root + "/datalist.json",
    }


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``"1.5 GiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def free_disk_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the disk that holds ``path`` (or would hold it: its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def reference_affine(reference: str | None, spatial_shape: Sequence[int]) -> np.ndarray:
    """Affine (RAS, as MONAI/nibabel use) for a generated image of ``spatial_shape``: the reference training
    image's orientation and origin with its spacing scaled by the size ratio; identity when there is none."""
    dims = len(spatial_shape)
    if not reference:
        return np.eye(4)
    from monai.transforms import LoadImage

    try:
        ref = LoadImage(image_only=True, ensure_channel_first=True)(reference)
    except Exception as err:
        raise ValueError(f"cannot read reference image {reference} for spacing/orientation: {err}") from err
    aff = np.asarray(ref.affine, dtype=np.float64)
    if aff.shape[0] == 3:  # 2D affine -> 3D
        full = np.eye(4)
        full[:2, :2], full[:2, 3] = aff[:2, :2], aff[:2, 2]
        aff = full
    ref_shape = list(ref.shape[1:])
    scale = np.ones(3)
    for i in range(min(dims, len(ref_shape))):
        scale[i] = ref_shape[i] / float(spatial_shape[i])
    out = aff.copy()
    out[:3, :3] = aff[:3, :3] * scale[None, :]
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _on_disk(size: int) -> int:
    return max(_BLOCK, -(-int(size) // _BLOCK) * _BLOCK)


def _seed_indexed(dataset: Any) -> bool:
    """True for datasets whose item ``i`` is ``{"index": i, "seed": dataset.seed + i, ...}`` (``SeedDataset``,
    ``BoxConditionDataset``)."""
    try:
        return (
            isinstance(getattr(dataset, "seed", None), int)
            and isinstance(getattr(dataset, "num_samples", None), int)
            and len(dataset) == dataset.num_samples
        )
    except TypeError:
        return False


class SyntheticWriter:
    """Ignite handler writing each generated sample as NIfTI (``.nii.gz``) and/or PNG, its label (mask as NIfTI/PNG,
    boxes as YOLO ``.txt``), a ``manifest.json`` (checkpoint, its sha256, seed and config hash of every file) and a
    MONAI ``datalist.json`` (the format every loader of this project reads, with ``synthetic: true``). When the
    generator adds lesions to real slices (lesion_inpaint: outputs ``new_boxes`` / ``new_box_labels`` /
    ``source_image``), each record also lists the added boxes apart (``boxes`` holds the slice's own, then the new
    ones) and the real slice they were added to.

    For 3D samples the PNG is a preview of the middle slice along the last axis (the NIfTI holds the volume).
    Every image is marked synthetic: the NIfTI header's ``descrip`` reads "SYNTHETIC monai_gan_aug", PNGs carry
    ``synthetic``/``source``/``seed`` text chunks.

    Reliability:

    - Files are written under ``.writing/``; after a batch they are renamed into ``images/`` / ``labels/`` and the
      manifest is rewritten atomically (temporary file + rename) to list them (batches are grouped as
      ``flush_fraction`` says, to keep the rewrites cheap for large sets). So the manifest lists exactly the
      files in ``images/`` and ``labels/`` (only a kill within the few milliseconds between those renames and the
      manifest's own leaves complete files it does not list yet; a restart deletes them with ``.writing/``), and a
      file under its final name is never truncated. ``"complete": false`` marks a set whose run has not
      finished; ``datalist.json`` is written when the run completes.
    - An earlier synthetic set is never replaced silently; the folder is checked at construction, before anything
      is generated. A *partial* set (an interrupted run) is resumed when its checkpoint sha256, config hash,
      formats and prefix match (checked at construction) and its seed and number of samples match the run's seed
      dataset (checked when the run starts): only the missing samples are generated and written, and since every
      file depends on its seed alone the result equals an uninterrupted run. Otherwise the error says what differs.
    - ``overwrite=True`` deletes the earlier set (the files its manifest lists and this writer's files in
      ``images/`` and ``labels/``) before the first new file is written, so no stale file remains. A folder that
      also holds other files is refused: they are never deleted.
    - Before the first file is written the size of the set (samples still to write x bytes per sample, estimated
      from the first generated batch, plus 10 % and 64 MiB) is compared with the free disk space; a set that does
      not fit is refused with both figures.

    Args:
        output_dir: where to write.
        formats: any of ``"nifti"``, ``"png"``.
        checkpoint: generator checkpoint path (recorded with its sha256).
        config_hash: hash of the configuration (see :func:`config_hash`).
        reference_image: a training image whose orientation/spacing the NIfTI files take.
        prefix: file name prefix.
        value_range: intensity range of the generated images (for PNG scaling).
        overwrite: replace the synthetic set already in ``output_dir``.
        setting_name: how the user sets ``output_dir``, named in error messages: a command-line option such as
            ``"--synthetic_dir"`` (the bundles' inference configs; the other hints then read ``--overwrite true``)
            or a Python argument name such as ``"output_dir"`` (hints then read ``overwrite=True``).
        free_space: ``path -> free bytes`` on the disk holding ``path`` (default: ``shutil.disk_usage``).
        flush_fraction: the files of a batch are moved into place and listed in the manifest once the samples
            waiting in ``.writing/`` reach this fraction of those already listed, so the manifest is rewritten about
            log(n) / fraction times instead of once per batch (measured on CPU: 3,000 samples at batch size 1,
            237 rewrites, 0.18 s instead of 3,000 rewrites, 4 s; 30,000 samples at batch size 16, 0.7 s instead of
            14 s) and a kill loses at most this fraction of the work done. 0: after every batch.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        formats: Sequence[str] = ("nifti", "png"),
        checkpoint: str | None = None,
        config_hash: str | None = None,
        reference_image: str | None = None,
        prefix: str = "syn",
        value_range: tuple[float, float] = (-1.0, 1.0),
        overwrite: bool = False,
        setting_name: str = "--synthetic_dir",
        free_space: Callable[[Path], int] | None = None,
        flush_fraction: float = 0.02,
    ) -> None:
        formats = [formats] if isinstance(formats, str) else list(formats)
        bad = [f for f in formats if f not in ("nifti", "png")]
        if bad or not formats:
            raise ValueError(f"formats must be a non-empty subset of ('nifti', 'png'), got {formats}.")
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise ValueError(f"prefix must be a file-name prefix of letters, digits, '_', '.', '-', got {prefix!r}.")
        self.output_dir = Path(output_dir)
        self.setting_name = str(setting_name)
        self._cli = self.setting_name.startswith("-")
        overwrite = as_bool(overwrite, "overwrite")
        self.formats = tuple(formats)
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = file_sha256(checkpoint)
        self.config_hash = config_hash
        self.reference_image = reference_image
        self.prefix = prefix
        self.value_range = value_range
        self.free_space = free_space or free_disk_bytes
        self.records: list[dict[str, Any]] = []
        self._lines: list[str] = []  # the records, serialized once (the manifest is rewritten at every commit)
        self._done: dict[int, dict[str, Any]] = {}  # samples whose files are in place and listed
        self._pending: dict[int, dict[str, Any]] = {}  # samples whose files wait in .writing/ for the next commit
        self._pending_files: list[str] = []
        self.flush_fraction = float(flush_fraction)
        if not 0 <= self.flush_fraction <= 1:
            raise ValueError(f"flush_fraction must be within [0, 1], got {flush_fraction!r}.")
        self._affine: np.ndarray | None = None
        self._created = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self._planned: int | None = None
        self._seed: int | None = None
        self._complete = False
        self._prepared = False
        self._to_delete: list[Path] = []
        self._earlier: dict[str, Any] | None = None  # the manifest of the partial set being resumed
        self.mode = "new"
        self._inspect(overwrite)

    # ------------------------------------------------------------------------------------------ messages
    def _opt(self, name: str, value: Any) -> str:
        """How the user sets ``name`` to ``value``: ``--name value`` on the command line, ``name=value`` in Python."""
        if self._cli:
            return f"--{name} {str(value).lower() if isinstance(value, bool) else value}"
        return f"{name}={value!r}"

    def _where(self) -> str:
        return f"{self.setting_name} {self.output_dir}"

    @staticmethod
    def _some(paths: Sequence[str], n: int = 3) -> str:
        shown = ", ".join(paths[:n])
        return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")

    def _partial(self, manifest: Mapping[str, Any], n_done: int) -> str:
        planned = manifest.get("planned_samples")
        of = f"{n_done} of {planned}" if planned is not None else f"{n_done} of an unknown number of"
        return f"{self._where()} holds a partial synthetic set: {of} samples (an interrupted run)"

    # ------------------------------------------------------------------------------------------ the folder
    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.output_dir / MANIFEST_NAME
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(manifest, dict) and manifest.get("generator") == "monai_gan_aug" and isinstance(
            manifest.get("files"), list
        ):
            return manifest
        return None

    @staticmethod
    def _listed(record: Mapping[str, Any]) -> list[str]:
        """The files of a manifest record that lie in ``images/`` or ``labels/`` (anything else is never ours)."""
        out = []
        for key in _FILE_KEYS:
            rel = record.get(key)
            if isinstance(rel, str) and re.fullmatch(r"(images|labels)/[^/\\]+", rel) and ".." not in rel:
                out.append(rel)
        return out

    def _classify(self, manifest: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
        """Files of ``output_dir`` (relative posix paths): those this writer wrote, and all others."""
        listed: set[str] = set()
        prefixes = {self.prefix}
        if manifest is not None:
            if isinstance(manifest.get("prefix"), str):
                prefixes.add(manifest["prefix"])
            for rec in manifest["files"]:
                if isinstance(rec, Mapping):
                    for rel in self._listed(rec):
                        listed.add(rel)
                        m = re.match(r"(.+)_\d+\.", rel.split("/")[1])
                        if m:
                            prefixes.add(m.group(1))
        pattern = re.compile(rf"(?:{'|'.join(map(re.escape, sorted(prefixes)))})_\d+\.(?:nii\.gz|png|txt)")
        top_ours = {f".{MANIFEST_NAME}.tmp", f".{DATALIST_NAME}.tmp"}
        if manifest is not None:
            top_ours |= {MANIFEST_NAME, DATALIST_NAME}
        ours, foreign = [], []
        for root, dirs, files in os.walk(self.output_dir):
            rel_root = Path(root).relative_to(self.output_dir).as_posix()
            for d in dirs:
                if Path(root, d).is_symlink():
                    foreign.append(f"{d}" if rel_root == "." else f"{rel_root}/{d}")
            for name in files:
                rel = name if rel_root == "." else f"{rel_root}/{name}"
                top = rel.split("/")[0]
                if rel in top_ours or top == STAGING_NAME or rel in listed:
                    ours.append(rel)
                elif top in _SUBDIRS and rel.count("/") == 1 and pattern.fullmatch(name):
                    ours.append(rel)
                else:
                    foreign.append(rel)
        return sorted(ours), sorted(foreign)

    def _inspect(self, overwrite: bool) -> None:
        """Decide, before anything is generated, whether to write a new set, replace or resume the one there."""
        d = self.output_dir
        if d.exists() and not d.is_dir():
            raise NotADirectoryError(f"{self._where()} is a file, not a folder; nothing was written. Pass a folder.")
        if not d.is_dir():
            return
        manifest = self._read_manifest()
        ours, foreign = self._classify(manifest)
        if foreign:
            if overwrite:
                raise FileExistsError(
                    f"{self._where()} holds {len(foreign)} file(s) this writer did not write ({self._some(foreign)}); "
                    f"{self._opt('overwrite', True)} only deletes a synthetic set written here, so nothing was deleted "
                    f"or written. Move those files away or pass another {self.setting_name}."
                )
            raise FileExistsError(
                f"{self._where()} already holds files ({self._some(foreign)}), not all of them a synthetic set of this "
                f"writer; nothing was written. Pass another {self.setting_name} (a new or empty folder)."
            )
        if not ours:
            return
        if overwrite:
            self.mode = "overwrite"
            self._to_delete = [d / rel for rel in ours]
            return
        images = [rel for rel in ours if rel.split("/")[0] in _SUBDIRS]
        if manifest is None:
            raise FileExistsError(
                f"{self._where()} already holds {len(images)} synthetic file(s) ({self._some(images)}) but no "
                f"{MANIFEST_NAME}: an interrupted run of an older version, which cannot be resumed. Nothing was "
                f"written. Pass {self._opt('overwrite', True)} to delete them and start again, or another "
                f"{self.setting_name}."
            )
        records = [r for r in manifest["files"] if isinstance(r, Mapping)]
        if manifest.get("complete", True):
            raise FileExistsError(
                f"{self._where()} already holds files: a complete synthetic set of {len(records)} samples "
                f"({MANIFEST_NAME}); nothing was written. Pass another {self.setting_name}, or "
                f"{self._opt('overwrite', True)} to replace it."
            )
        done = [r for r in records if self._listed(r) and all((d / rel).is_file() for rel in self._listed(r))]
        partial = self._partial(manifest, len(done))
        problems = self._mismatch(manifest)
        if problems:
            raise FileExistsError(
                f"{partial}; it cannot be resumed by this run: {'; '.join(problems)}. Nothing was written. Pass "
                f"{self._opt('overwrite', True)} to delete it and start again, or another {self.setting_name}."
            )
        self.mode = "resume"
        self._earlier = dict(manifest)
        self._created = str(manifest.get("created") or self._created)
        for rec in done:
            rec = dict(rec)
            if "index" not in rec:
                m = re.search(r"_(\d+)\.", self._listed(rec)[0])
                rec["index"] = int(m.group(1)) if m else -1
            self._add(rec)
        kept = {rel for rec in done for rel in self._listed(rec)} | {MANIFEST_NAME}
        self._to_delete = [d / rel for rel in ours if rel not in kept]  # unlisted files of the interrupted batch
        logger.warning(
            "%s; resuming it: only the missing samples are written (%s starts again).",
            partial, self._opt("overwrite", True),
        )

    def _mismatch(self, manifest: Mapping[str, Any]) -> list[str]:
        problems = []
        if manifest.get("checkpoint_sha256") is None or self.checkpoint_sha256 is None:
            problems.append("no checkpoint file is recorded for it or given now, so the generator weights cannot be verified")
        elif manifest.get("checkpoint_sha256") != self.checkpoint_sha256:
            problems.append(
                f"its checkpoint differs (sha256 {str(manifest.get('checkpoint_sha256'))[:12]}... of "
                f"{manifest.get('checkpoint')}, now {self.checkpoint_sha256[:12]}... of {self.checkpoint})"
            )
        if manifest.get("config_hash") != self.config_hash:
            problems.append(f"its config hash differs ({manifest.get('config_hash')}, now {self.config_hash})")
        if list(manifest.get("formats") or []) != list(self.formats):
            problems.append(f"its formats differ ({manifest.get('formats')}, now {list(self.formats)})")
        if manifest.get("prefix") != self.prefix:
            problems.append(f"its file prefix differs ({manifest.get('prefix')!r}, now {self.prefix!r})")
        return problems

    # ------------------------------------------------------------------------------------------ engine events
    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._on_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self._on_completed)

    def _on_started(self, engine: Engine) -> None:
        loader = engine.state.dataloader
        dataset = getattr(loader, "dataset", None)
        try:
            self._planned = len(dataset) if dataset is not None else None
        except TypeError:
            self._planned = None
        self._seed = int(dataset.seed) if _seed_indexed(dataset) else None
        if self.mode != "resume" or self._earlier is None:
            return
        earlier, problems = self._earlier, []
        planned = earlier.get("planned_samples")
        if planned is not None and planned != self._planned:
            problems.append(
                f"it was started for {planned} samples, this run asks for {self._planned} "
                f"({self._opt('num_samples', planned)} resumes it)"
            )
        if earlier.get("seed") != self._seed:
            problems.append(
                f"it was written with seed {earlier.get('seed')}, this run uses {self._seed}"
                + (f" ({self._opt('seed', earlier.get('seed'))} resumes it)" if earlier.get("seed") is not None else "")
            )
        elif self._seed is not None:
            bad = [r for r in self.records if r.get("seed") != self._seed + int(r["index"])]
            if bad:
                problems.append(f"{len(bad)} of its files were written with other seeds (e.g. {self._listed(bad[0])[0]})")
        if problems:
            raise FileExistsError(
                f"{self._partial(earlier, len(self.records))}; it cannot be resumed by this run: {'; '.join(problems)}. "
                f"Nothing was written. Pass {self._opt('overwrite', True)} to delete it and start again, or another "
                f"{self.setting_name}."
            )
        self._skip_done(engine, loader, dataset)

    def _skip_done(self, engine: Engine, loader: Any, dataset: Any) -> None:
        """Resume: let the engine generate only the missing samples, when its loader is a plain sequential
        ``DataLoader`` over a seed dataset (otherwise every sample is generated and the done ones are not written)."""
        from torch.utils.data import DataLoader, SequentialSampler, Subset

        if not (
            _seed_indexed(dataset)
            and isinstance(loader, DataLoader)
            and isinstance(loader.sampler, SequentialSampler)
            and loader.batch_size is not None
            and not loader.drop_last
            and engine.state.max_epochs == 1
            and engine.state.iteration == 0
        ):
            return
        n, done = len(dataset), self._done.keys()
        if not done or len(done) >= n:
            return
        if all(i in self._done for i in range(len(done))):
            missing: Sequence[int] = range(len(done), n)
        elif n <= 10_000_000:
            missing = [i for i in range(n) if i not in self._done]
        else:
            return
        kwargs: dict[str, Any] = {}
        if loader.num_workers > 0:
            kwargs = {"worker_init_fn": loader.worker_init_fn, "multiprocessing_context": loader.multiprocessing_context}
        engine.state.dataloader = DataLoader(
            Subset(dataset, missing), batch_size=loader.batch_size, shuffle=False, num_workers=loader.num_workers,
            collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, **kwargs,
        )
        engine.state.epoch_length = len(engine.state.dataloader)

    def _on_completed(self, engine: Engine) -> None:
        self._commit()
        if self._planned is not None:
            self._complete = len(self._done) >= self._planned
        else:
            self._complete = not engine.should_terminate
        shutil.rmtree(self.output_dir / STAGING_NAME, ignore_errors=True)
        self.write_manifest()

    # ------------------------------------------------------------------------------------------ before writing
    def _sample_bytes(self, image: np.ndarray, label: Any, n_boxes: int | None) -> int:
        """Bytes one sample takes on disk (upper bound: NIfTI gzip is assumed not to compress)."""
        spatial = image.shape[1:]
        plane = int(np.prod(spatial[:2]))
        colour = image.shape[0] if image.shape[0] in (3, 4) else 1
        size = 0
        if "nifti" in self.formats:
            size += _on_disk(352 + image.size * 4)
        if "png" in self.formats:
            size += _on_disk(plane * colour + 2048)
        if label is not None:
            lab = np.asarray(label)
            if "nifti" in self.formats:
                size += _on_disk(352 + lab.size)
            if "png" in self.formats:
                size += _on_disk(plane + 2048)
        if n_boxes is not None and image.ndim == 3:
            size += _on_disk(64 * max(n_boxes, 1))
        return size + 2048  # its manifest and datalist entries

    def _samples_to_write(self, engine: Engine | None, batch_size: int) -> int | None:
        if self._planned is not None:
            return max(self._planned - len(self._done), 0)
        state = getattr(engine, "state", None)
        if state is not None and state.epoch_length and state.max_epochs:
            return max(int(state.epoch_length) * int(state.max_epochs) * batch_size - len(self._done), 0)
        return None

    def check_disk_space(self, num_samples: int, sample_bytes: int) -> None:
        """Refuse (:class:`DiskSpaceError`) when ``num_samples`` samples of ``sample_bytes`` each, plus the safety
        margin, exceed the free space of the disk (counting the space the files to be replaced free)."""
        freed = sum(p.stat().st_size for p in self._to_delete if p.is_file())
        free = int(self.free_space(self.output_dir)) + freed
        needed = math.ceil(num_samples * sample_bytes * SPACE_MARGIN) + SPACE_RESERVE
        if needed > free:
            raise DiskSpaceError(
                f"not enough free disk space for the synthetic set in {self._where()}: {num_samples} samples of about "
                f"{human_bytes(sample_bytes)} each need about {human_bytes(needed)} (with a 10% margin and "
                f"{human_bytes(SPACE_RESERVE)} kept free), but only {human_bytes(free)} is free"
                + (f" (counting {human_bytes(freed)} of the set it replaces)" if freed else "")
                + f"; nothing was written. Lower {'--' if self._cli else ''}num_samples, write fewer formats, "
                f"free some space, or pass another {self.setting_name} on a larger disk."
            )

    def _prepare(self, engine: Engine | None = None, sample: tuple[np.ndarray, Any, int | None] | None = None) -> None:
        """Once, before the first file: check the free space, delete what is replaced, create the folders."""
        if self._prepared:
            return
        if sample is not None:
            batch = int(sample[0].shape[0])
            n = self._samples_to_write(engine, batch)
            if n is None:
                logger.warning("%s: the number of samples is unknown, the free disk space is not checked.", self._where())
            else:
                self.check_disk_space(n, self._sample_bytes(sample[0][0], sample[1], sample[2]))
        for p in [p for p in self._to_delete if p.name in (MANIFEST_NAME, DATALIST_NAME)] + self._to_delete:
            p.unlink(missing_ok=True)
        if self._to_delete:
            logger.info("%s: deleted %d file(s) of the earlier synthetic set.", self._where(), len(self._to_delete))
        self._to_delete = []
        shutil.rmtree(self.output_dir / STAGING_NAME, ignore_errors=True)
        for sub in _SUBDIRS:
            if (self.output_dir / sub).is_dir() and not any((self.output_dir / sub).iterdir()):
                (self.output_dir / sub).rmdir()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._prepared = True
        if self.mode == "resume":
            self._flush()

    # ------------------------------------------------------------------------------------------ per sample
    def _png(self, arr: np.ndarray, path: Path, info: Mapping[str, str], is_label: bool = False) -> None:
        from PIL import Image, PngImagePlugin

        if arr.ndim == 4:  # 3D: the PNG is a preview of the middle slice along the last axis
            arr = arr[..., arr.shape[-1] // 2]
        if is_label:
            img = np.transpose(arr[0] if arr.ndim == 3 else arr).astype(np.uint8)
            mode_img = Image.fromarray(img)
        else:
            lo, hi = self.value_range
            x = np.clip((arr - lo) / (hi - lo), 0, 1)
            x = np.transpose(x, (2, 1, 0)) if x.shape[0] in (3, 4) else np.transpose(x[0])
            mode_img = Image.fromarray((x * 255 + 0.5).astype(np.uint8))
        meta = PngImagePlugin.PngInfo()
        for k, v in info.items():
            meta.add_text(k, str(v))
        mode_img.save(path, format="PNG", pnginfo=meta)

    def _nifti(self, arr: np.ndarray, path: Path, dtype=np.float32) -> None:
        import nibabel as nib

        data = np.moveaxis(arr, 0, -1) if arr.shape[0] > 1 else arr[0]  # channels last for nibabel
        if self._affine is None:
            self._affine = reference_affine(self.reference_image, arr.shape[1:])
        img = nib.Nifti1Image(data.astype(dtype), self._affine)
        img.header["descrip"] = SYNTHETIC_DESCRIP
        img.header["intent_name"] = b"synthetic"
        nib.save(img, str(path))

    def _add(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        self._lines.append(json.dumps(rec))
        self._done[int(rec["index"])] = rec

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        images = out[GanKeys.IMAGE].detach().float().cpu().numpy()
        labels = out.get(GanKeys.LABEL)
        labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        boxes = out.get(GanKeys.BOXES)
        box_labels = out.get(GanKeys.BOX_LABELS)
        classes = out.get(GanKeys.CLASS)
        if not self._prepared:
            n_boxes = len(boxes[0]) if boxes is not None and len(boxes) else None
            self._prepare(engine, (images, None if labels is None else labels[0], n_boxes))
        stage = self.output_dir / STAGING_NAME
        for sub in _SUBDIRS:
            (stage / sub).mkdir(parents=True, exist_ok=True)
        for j in range(images.shape[0]):
            idx, seed = int(out["index"][j]), int(out["seed"][j])
            earlier = self._done.get(idx) or self._pending.get(idx)
            if earlier is not None:  # written before this run (resume) or earlier in it
                if earlier.get("seed") != seed:
                    raise FileExistsError(
                        f"{self._where()}: sample {idx} on disk was generated with seed {earlier.get('seed')}, this run "
                        f"generates it with seed {seed}; nothing more was written. Pass {self._opt('overwrite', True)} "
                        f"to start again, or another {self.setting_name}."
                    )
                continue
            name = f"{self.prefix}_{idx:06d}"
            info = {"synthetic": "true", "source": "monai_gan_aug", "seed": str(seed), "checkpoint": str(self.checkpoint)}
            rec: dict[str, Any] = {"synthetic": True, "seed": seed, "checkpoint": self.checkpoint, "config_hash": self.config_hash}
            staged: list[str] = []
            if "nifti" in self.formats:
                self._nifti(images[j], stage / "images" / f"{name}.nii.gz")
                rec["image"] = f"images/{name}.nii.gz"
                staged.append(rec["image"])
            if "png" in self.formats:
                self._png(images[j], stage / "images" / f"{name}.png", info)
                rec["png" if "image" in rec else "image"] = f"images/{name}.png"
                staged.append(f"images/{name}.png")
            if labels is not None:
                lab = np.asarray(labels[j])
                if "nifti" in self.formats:
                    self._nifti(lab, stage / "labels" / f"{name}.nii.gz", dtype=np.uint8)
                    rec["label"] = f"labels/{name}.nii.gz"
                    staged.append(rec["label"])
                if "png" in self.formats:
                    self._png(lab, stage / "labels" / f"{name}.png", info, is_label=True)
                    rec.setdefault("label", f"labels/{name}.png")
                    staged.append(f"labels/{name}.png")
            if boxes is not None:
                b = boxes[j]
                b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
                bl = box_labels[j] if box_labels is not None else np.zeros(len(b), dtype=int)
                bl = bl.detach().cpu().numpy() if isinstance(bl, torch.Tensor) else np.asarray(bl)
                rec["boxes"] = np.asarray(b, dtype=np.float64).reshape(-1, 2 * (images.ndim - 2)).tolist()
                rec["box_labels"] = [int(v) for v in bl]
                if images.ndim == 4:  # YOLO labels for 2D images
                    from monai_gan_aug.transforms.boxes.array import boxes_to_yolo_lines

                    lines = boxes_to_yolo_lines(np.asarray(b).reshape(-1, 4), rec["box_labels"], images.shape[2:])
                    (stage / "labels" / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
                    rec["yolo"] = f"labels/{name}.txt"
                    staged.append(rec["yolo"])
                for key in ("new_boxes", "new_box_labels"):  # lesions added to a real slice (lesion_inpaint)
                    if out.get(key) is not None:
                        v = out[key][j]
                        v = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                        rec[key] = (v.astype(np.float64).reshape(-1, 2 * (images.ndim - 2)).tolist() if key == "new_boxes"
                                    else [int(x) for x in v.reshape(-1)])
            if out.get("source_image") is not None:
                rec["source_image"] = str(out["source_image"][j])
            if classes is not None:
                c = classes[j]
                rec["class"] = int(c.item() if isinstance(c, torch.Tensor) else c)
            rec["index"] = idx
            self._pending[idx] = rec
            self._pending_files.extend(staged)
        if self._pending and len(self._pending) >= self.flush_fraction * len(self._done):
            self._commit()

    def _commit(self) -> None:
        """Rename the staged files into place and rewrite the manifest listing them."""
        if not self._pending:
            return
        stage = self.output_dir / STAGING_NAME
        for sub in {rel.split("/")[0] for rel in self._pending_files}:
            (self.output_dir / sub).mkdir(exist_ok=True)
        for rel in self._pending_files:
            os.replace(stage / rel, self.output_dir / rel)
        for rec in self._pending.values():
            self._add(rec)
        self._pending, self._pending_files = {}, []
        self._flush()

    # ------------------------------------------------------------------------------------------ manifest
    def _manifest_text(self, lines: Sequence[str]) -> str:
        header = {
            "created": self._created,
            "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "generator": "monai_gan_aug",
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config_hash": self.config_hash,
            "seed": self._seed,
            "formats": list(self.formats),
            "prefix": self.prefix,
            "complete": self._complete,
            "planned_samples": self._planned,
            "num_samples": len(lines),
        }
        head = json.dumps(header, indent=1)[: -len("\n}")]
        files = "[\n  " + ",\n  ".join(lines) + "\n ]" if lines else "[]"
        return f'{head},\n "files": {files}\n}}\n'

    def _flush(self) -> None:
        """Rewrite ``manifest.json`` atomically (the serialized records are reused: a few ms for thousands)."""
        _atomic_write(self.output_dir / MANIFEST_NAME, self._manifest_text(self._lines))

    def write_manifest(self, engine: Engine | None = None) -> Path:
        """Write ``manifest.json`` and ``datalist.json`` of every sample written so far (in index order)."""
        if not self._prepared:
            self._prepare(engine)
        self._commit()
        order = sorted(range(len(self.records)), key=lambda k: int(self.records[k]["index"]))
        self.records = [self.records[k] for k in order]
        self._lines = [self._lines[k] for k in order]
        path = self.output_dir / MANIFEST_NAME
        _atomic_write(path, self._manifest_text(self._lines))
        datalist = {"name": "monai_gan_aug synthetic set", "synthetic": True, "training": [
            {k: v for k, v in r.items() if k not in ("png", "yolo", "index")} for r in self.records
        ]}
        _atomic_write(self.output_dir / DATALIST_NAME, json.dumps(datalist, indent=1))
        logger.info("wrote %d synthetic samples, manifest %s", len(self.records), path)
        return path
