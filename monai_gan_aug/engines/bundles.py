# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Finding and running the project's MONAI bundles from Python (what ``python -m monai.bundle run`` does, with
overrides given as a dict)."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_gan_aug.engines.utils import find_latest_checkpoint

__all__ = ["bundle_root", "list_bundles", "run_bundle", "generate", "workflow_bundle_root", "model_file", "generator_checkpoint",
           "bundle_config_files", "read_bundle_config", "COMMON_CONFIG", "MODELS_DIR", "MODEL_FILE"]

logger = logging.getLogger(__name__)

_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"

#: Where an exported bundle keeps its weights (MONAI model-zoo layout): ``<bundle_root>/models/model.pt``.
MODELS_DIR = "models"
MODEL_FILE = "model.pt"
#: The config every other config of a bundle is composed with (placed first): ``configs/common.json``.
COMMON_CONFIG = "common.json"


def bundle_root(name: str | os.PathLike) -> Path:
    """Folder of bundle ``name``: ``bundles/<name>`` of this repository, or ``name`` itself when it is a folder
    holding ``configs/`` (e.g. a bundle written by :func:`monai_gan_aug.engines.export.export_bundle`)."""
    given = Path(name)
    if (given / "configs").is_dir() and (len(given.parts) > 1 or not (_REPO_BUNDLES / str(name)).is_dir()):
        return given.resolve()
    root = _REPO_BUNDLES / str(name)
    if not (root / "configs").is_dir():
        raise FileNotFoundError(
            f"no bundle named {str(name)!r} in {_REPO_BUNDLES} and no folder {given} holding configs/; available: "
            f"{list_bundles()}."
        )
    return root


def workflow_bundle_root(default: str | os.PathLike) -> str:
    """The folder of the bundle whose config is being parsed: the parent of ``configs/`` of the config file the
    MONAI :class:`~monai.bundle.ConfigWorkflow` on the call stack was created with (``python -m monai.bundle run
    --config_file X/configs/inference.json`` gives ``X``, wherever the command runs), else ``default``.

    Used as ``"bundle_root": "$monai_gan_aug.engines.workflow_bundle_root('bundles/' + @bundle_name)"`` so that a
    bundle folder copied anywhere finds its own ``models/`` and ``configs/``. ``--bundle_root`` still wins."""
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow) and getattr(owner, "config_root_path", None) is not None:
                root = Path(owner.config_root_path)
                return str((root.parent if root.name == "configs" else root).resolve())
            frame = frame.f_back
    finally:
        del frame
    return str(default)


def model_file(root: str | os.PathLike | None, name: str = MODEL_FILE, fallback: Any = None) -> Any:
    """``<root>/models/<name>`` when that file exists (an exported bundle), else ``fallback``."""
    path = Path(root) / MODELS_DIR / name if root else None
    return str(path) if path is not None and path.is_file() else fallback


def generator_checkpoint(root: str | os.PathLike | None, ckpt_dir: str | os.PathLike | None) -> str | None:
    """Weights an inference config uses: ``<root>/models/model.pt`` of an exported bundle first, else the newest
    ``checkpoint_<iteration>.pt`` in ``ckpt_dir`` (a training run), else None (the run then stops with a message
    saying to train, export or pass ``--checkpoint``)."""
    return model_file(root, MODEL_FILE, None) or find_latest_checkpoint(ckpt_dir)


def list_bundles() -> list[str]:
    return sorted(p.name for p in _REPO_BUNDLES.iterdir() if (p / "configs" / "train.json").is_file()) if _REPO_BUNDLES.is_dir() else []


def bundle_config_files(root: str | os.PathLike, config: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The config files a run of ``config`` of the bundle at ``root`` (a bundle name or folder, see
    :func:`bundle_root`) composes, in order: ``configs/common.json`` first when the bundle has one and ``config``
    does not already list it, then the requested files (names in ``configs/``, or paths). MONAI composes such a list
    as ``python -m monai.bundle run --config_file "['configs/common.json','configs/train.json']"`` does: see
    :func:`read_bundle_config`."""
    configs = bundle_root(root) / "configs"
    requested = [configs / c for c in ([config] if isinstance(config, (str, os.PathLike)) else config)]
    common = configs / COMMON_CONFIG
    if common.is_file() and all(p.resolve() != common.resolve() for p in requested):
        return [common, *requested]
    return requested


def _merge_entry(config: dict, key: str, value: Any) -> None:
    """``config[key] = value`` as MONAI's ``ConfigParser.load_config_files`` does it for each top-level entry of a
    later file: ``"+id"`` extends a list / updates a dict of the earlier files, ``"a#b"`` (or ``"a::b"``) replaces
    one nested item, any other id replaces the earlier value."""
    import copy

    value = copy.deepcopy(value)
    if key.startswith("+"):
        key = key[1:]
        if key in config and isinstance(config[key], dict) and isinstance(value, dict):
            config[key].update(value)
        elif key in config and isinstance(config[key], list) and isinstance(value, list):
            config[key].extend(value)
        elif key in config:
            raise ValueError(f"config must be dict or list for key `+{key}`, but got {type(value)}: {value}.")
        else:
            config[key] = value
        return
    *parents, last = key.replace("::", "#").split("#")
    node: Any = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def read_bundle_config(root: str | os.PathLike, config: str | os.PathLike | Sequence[str | os.PathLike]) -> dict:
    """The raw (unparsed) config a run of ``config`` of the bundle at ``root`` sees: the JSON of the files of
    :func:`bundle_config_files` merged in order as MONAI merges a config list (the top-level ids of a later file
    replace the earlier ones; ``"+id"`` extends a list or dict, ``"a#b"`` replaces one nested item). For code that
    reads config values without running the config (nothing is evaluated or imported)."""
    import json

    merged: dict = {}
    for path in bundle_config_files(root, config):
        content = json.loads(Path(path).read_text())
        if not isinstance(content, dict):
            raise ValueError(f"{path}: a bundle config must hold a JSON object, got {type(content).__name__}.")
        for key, value in content.items():
            _merge_entry(merged, str(key), value)
    return merged


def run_bundle(
    name: str,
    config: str | Sequence[str] = "train.json",
    overrides: Mapping[str, Any] | None = None,
    workflow_type: str = "train",
) -> Any:
    """Run ``bundles/<name>/configs/<config>`` (or ``<name>/configs/<config>`` when ``name`` is a bundle folder),
    composed with the bundle's ``configs/common.json`` (:func:`bundle_config_files`), through MONAI's
    :class:`~monai.bundle.ConfigWorkflow` (initialize / run / finalize) with ``overrides`` (ids as on the command
    line: ``output_dir``, ``max_epochs``, ``train#dataloader#batch_size``...). Returns the workflow."""
    from monai.bundle import ConfigWorkflow

    root = bundle_root(name)
    files = [str(p) for p in bundle_config_files(root, config)]
    wf = ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=str(root / "configs" / "logging.conf"),
        workflow_type=workflow_type,
        **dict(overrides or {}),
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


_MASK_SUFFIXES = (".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".dcm", ".mha", ".nrrd")


def _mask_datalist(masks: Any, key: str, folder: Path) -> str:
    """A datalist JSON (written in ``folder``) whose items carry each mask under ``key`` (and as ``image``, which
    MONAI datalists require and which gives the synthetic NIfTI files the masks' geometry); a ``.json`` datalist is
    returned as it is."""
    import json

    if isinstance(masks, (str, os.PathLike)) and str(masks).endswith(".json"):
        return str(Path(masks).resolve())
    if isinstance(masks, (str, os.PathLike)) and Path(masks).is_dir():
        files = sorted(p for p in Path(masks).rglob("*") if p.is_file() and p.name.lower().endswith(_MASK_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"masks folder {masks} holds no image files ({', '.join(_MASK_SUFFIXES)}).")
    elif isinstance(masks, (str, os.PathLike)):
        files = [Path(masks)]
    else:
        files = [Path(m) for m in masks]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"mask file(s) not found: {', '.join(missing[:5])}.")
    path = folder / "masks_datalist.json"
    items = [{"image": str(f.resolve()), key: str(f.resolve())} for f in files]
    path.write_text(json.dumps({"name": "masks for generate()", "training": items}, indent=1))
    return str(path)


def _box_file(boxes: Any, folder: Path) -> str:
    """``boxes`` as a box file path: a path as it is; box sets (a list, see ``BoxSampler.from_file``) written to
    a JSON file named by their content."""
    import hashlib
    import json

    if isinstance(boxes, (str, os.PathLike)):
        if not Path(boxes).is_file():
            raise FileNotFoundError(f"box file {boxes} does not exist.")
        return str(Path(boxes).resolve())
    text = json.dumps(boxes if isinstance(boxes, Mapping) else {"box_sets": list(boxes)}, default=float)
    path = folder / f"boxes_{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path.write_text(text)
    return str(path)


def generate(
    bundle_dir: str | os.PathLike,
    num_samples: int,
    output_dir: str | os.PathLike,
    boxes: Any = None,
    masks: Any = None,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Write a labelled synthetic set with a bundle's ``configs/inference.json``: ``num_samples`` images (and their
    masks / boxes, YOLO labels for boxes), ``manifest.json`` (checkpoint, sha256, seed and config hash of every
    file) and ``datalist.json``, in ``output_dir``.

    Args:
        bundle_dir: an exported bundle folder (:func:`~monai_gan_aug.engines.export.export_bundle`; its
            ``models/model.pt`` is used) or a bundle name of this repository (its run's newest checkpoint).
        num_samples: number of images.
        output_dir: the synthetic set's folder (the config's ``synthetic_dir``).
        boxes: box-conditioned bundles (``pggan_bbox``, ``lesion_inpaint``): a box file, or box sets (a list of
            ``{"boxes": [[x0, y0, x1, y1], ...], "box_labels": [...]}``), one per image in order, cycled; the
            config's ``box_file``.
        masks: mask-conditioned bundles (``pix2pix``, ``dfgan``): a list of mask files, a folder of them, or a
            datalist JSON; the images are generated from these masks (the config's ``dataset_dir``, every item).
        seed: seed of sample 0 (sample i uses ``seed + i``).
        overrides: other ids of the config (``batch_size``, ``formats``, ``overwrite``, ``dataset_dir``,
            ``device``...).

    Returns:
        ``output_dir`` as a :class:`~pathlib.Path`.
    """
    import tempfile

    root = bundle_root(bundle_dir)
    config = read_bundle_config(root, "inference.json")
    settings: dict[str, Any] = {"num_samples": int(num_samples), "synthetic_dir": str(Path(output_dir).resolve()),
                                "seed": int(seed), **overrides}
    with tempfile.TemporaryDirectory(prefix="monai_gan_aug_generate_") as work:
        if boxes is not None:
            if "box_file" not in config:
                raise ValueError(f"{root}/configs/inference.json takes no boxes (no 'box_file'); boxes are for "
                                 "box-conditioned bundles such as pggan_bbox and lesion_inpaint.")
            folder = Path(output_dir).resolve().parent
            folder.mkdir(parents=True, exist_ok=True)
            settings["box_file"] = _box_file(boxes, folder if not isinstance(boxes, (str, os.PathLike)) else Path(work))
        if masks is not None:
            if "cond_key" not in config:
                raise ValueError(f"{root}/configs/inference.json takes no masks (no 'cond_key'); masks are for "
                                 "mask-conditioned bundles such as pix2pix and dfgan.")
            settings["dataset_dir"] = _mask_datalist(masks, config["cond_key"], Path(work))
            settings.setdefault("cond_split", "all")
        run_bundle(root, "inference.json", settings, workflow_type="infer")
    return Path(output_dir)
