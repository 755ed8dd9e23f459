# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The MONAI Label app of monai_gan_aug: the project's bundles as MONAI Label infer / train tasks.

Started with MONAI Label's own server (``monai_gan_aug/label/app/main.py`` imports :class:`GanAugApp`)::

    .venv-label/bin/monailabel start_server --app monai_gan_aug/label/app --studies DATA_FOLDER \\
        --conf bundles pix2pix,pggan_bbox,lesion_inpaint,seg_unet_mix

``--conf`` keys (all optional):

* ``bundles``: comma-separated bundle names (default ``pix2pix,pggan_bbox,lesion_inpaint,seg_unet_mix``);
* ``bundles_dir``: folder holding them (default: the repository's ``bundles/``); bundle folders exported by
  :func:`monai_gan_aug.engines.export.export_bundle` are served as they are, without overrides;
* ``<bundle>_overrides``: JSON object of config overrides, e.g. the settings a generator was trained with
  (``{"image_size": 64, "output_dir": "runs/my_pix2pix"}``);
* ``<bundle>_checkpoint``: a generator checkpoint file or folder (default: the bundle folder's ``models/model.pt``
  when it is an exported bundle, else ``<output_dir>/checkpoints``);
* ``<bundle>_task``: ``mask_to_image``, ``boxes_to_image``, ``boxes_to_lesions`` or ``segmentation`` (detected from
  the configs otherwise);
* ``skip_trainers``: ``true`` to register no training task.

See ``docs/monai_label.md`` for the request formats.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

from monai_gan_aug.engines.bundles import read_bundle_config
from monai_gan_aug.engines.families import bundle_services, label_bundles
from monai_gan_aug.label.tasks import (
    BoxesToImageTask,
    GenerationTask,
    LesionInpaintTask,
    MaskToImageTask,
    MixBundleTrainTask,
    SegmentationBundleInferTask,
    load_overrides,
)
from monai_gan_aug.utils.misc import as_bool
from monai_gan_aug.utils.version import __version__

__all__ = ["DEFAULT_BUNDLES", "TASK_KINDS", "GanAugApp", "default_bundles", "default_bundles_dir", "detect_task_kind"]

logger = logging.getLogger(__name__)

TASK_KINDS = ("mask_to_image", "boxes_to_image", "boxes_to_lesions", "segmentation")


def default_bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (the package is installed in editable mode from the repository)."""
    return Path(__file__).resolve().parents[2] / "bundles"


def default_bundles(root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The bundles of ``root`` (default: the repository's ``bundles/``) the app serves without ``--conf bundles``:
    those whose ``configs/metadata.json`` names a ``label_task`` (:func:`~monai_gan_aug.engines.families.label_bundles`)."""
    return label_bundles(root if root is not None else default_bundles_dir())


#: The bundles the app serves by default, as found in the repository (see :func:`default_bundles`).
DEFAULT_BUNDLES = default_bundles()


def detect_task_kind(bundle: str | os.PathLike) -> str | None:
    """Which task serves a bundle: the ``label_task`` of its ``configs/metadata.json`` if it names one, else guessed
    from its ``configs/inference.json`` (composed with ``configs/common.json``): a lesion-inpainting objective ->
    ``boxes_to_lesions``; a box-conditioned one -> ``boxes_to_image``; a mask-conditioned one (``cond_key``) ->
    ``mask_to_image``; no GAN objective but a ``network_def`` -> ``segmentation``; None otherwise."""
    declared = bundle_services(bundle)["label_task"]
    if declared is not None:
        return declared
    config = Path(bundle) / "configs" / "inference.json"
    if not config.is_file():
        return None
    cfg = read_bundle_config(Path(bundle).resolve(), "inference.json")
    objective = cfg.get("objective")
    target = str(objective.get("_target_", "")) if isinstance(objective, Mapping) else str(objective or "")
    if "LesionInpaint" in target:
        return "boxes_to_lesions"
    if "Box" in target:
        return "boxes_to_image"
    if objective is not None and "cond_key" in cfg:
        return "mask_to_image"
    if objective is None and "network_def" in cfg:
        return "segmentation"
    return None


class GanAugApp(MONAILabelApp):
    """MONAI Label app serving monai_gan_aug bundles: generation tasks for conditional generators (label map ->
    image with pix2pix, boxes -> image with the box-conditioned PGGAN, boxes -> lesions in the sent real image with
    the lesion-inpainting generator) and infer + train tasks for segmentation bundles trained with SyntheticMix.
    Generation models are listed by ``/info/`` under ``models`` with ``"type": "others"`` and ``"task":
    "mask_to_image" | "boxes_to_image" | "boxes_to_lesions"``.

    Args:
        app_dir: the app folder (``monai_gan_aug/label/app``).
        studies: the datastore (a local folder of images with ``labels/final``, or a DICOMweb URL).
        conf: the ``--conf`` key/value pairs (see the module docstring).

    Raises:
        ValueError: an unknown bundle name or task kind, or bad ``<bundle>_overrides`` JSON.
    """

    def __init__(self, app_dir: str, studies: str, conf: Mapping[str, str]) -> None:
        conf = dict(conf or {})
        root = Path(conf.get("bundles_dir") or default_bundles_dir()).expanduser().resolve()
        names = [n.strip() for n in str(conf.get("bundles", ",".join(default_bundles(root)))).split(",") if n.strip()]
        self.bundle_paths: dict[str, Path] = {}
        for name in names:
            path = root / name
            if not (path / "configs").is_dir():
                raise ValueError(
                    f"--conf bundles: no bundle {name!r} in {root} (no configs/ folder); pass --conf bundles_dir PATH "
                    "or a name from that folder."
                )
            self.bundle_paths[name] = path
        self.task_kinds: dict[str, str | None] = {}
        for name, path in self.bundle_paths.items():
            kind = conf.get(f"{name}_task") or detect_task_kind(path)
            if kind is not None and kind not in TASK_KINDS:
                raise ValueError(f"--conf {name}_task: unknown task {kind!r}; use one of {TASK_KINDS}.")
            self.task_kinds[name] = kind
        self.overrides = {name: load_overrides(conf.get(f"{name}_overrides"), f"{name}_overrides") for name in names}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_gan_aug",
            description="GAN-based augmentation: synthetic images with their labels from label maps or boxes; "
            "segmentation trained with SyntheticMix",
            version=__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, path in self.bundle_paths.items():
            kind = self.task_kinds[name]
            overrides = self.overrides[name]
            if kind == "mask_to_image":
                infers[name] = MaskToImageTask(path, overrides, self.conf.get(f"{name}_checkpoint"))
            elif kind == "boxes_to_image":
                infers[name] = BoxesToImageTask(path, overrides, self.conf.get(f"{name}_checkpoint"))
            elif kind == "boxes_to_lesions":
                infers[name] = LesionInpaintTask(path, overrides, self.conf.get(f"{name}_checkpoint"))
            elif kind == "segmentation":
                infers[name] = SegmentationBundleInferTask(str(path), self.conf, overrides, type="segmentation")
            else:
                logger.warning("monai_gan_aug: no MONAI Label task for bundle %s (set --conf %s_task)", name, name)
                continue
            logger.info("monai_gan_aug: +++ infer task %s (%s) from %s", name, kind, path)
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        if as_bool(self.conf.get("skip_trainers", "false"), "skip_trainers"):
            return {}
        trainers: dict[str, TrainTask] = {}
        for name, path in self.bundle_paths.items():
            if self.task_kinds[name] != "segmentation":
                continue
            task = MixBundleTrainTask(str(path), self.conf, self.overrides[name])
            if task.is_valid():
                trainers[name] = task
                logger.info("monai_gan_aug: +++ train task %s from %s", name, path)
        return trainers

    def init_strategies(self) -> dict[str, Strategy]:
        return {"random": Random(), "first": First()}

    def infer(self, request: Mapping[str, Any], datastore: Any = None) -> dict[str, Any]:
        """MONAI Label's inference, plus for generation tasks: the answer is never saved as the image's label
        (it is a new synthetic image, not a segmentation of the request's image); a label -> image request on a
        datastore image without an uploaded label takes the image's saved label (``params.condition_tag``, default
        ``final``) as the condition, and a boxes -> lesions request on a datastore image takes it as the image's
        existing lesions (kept away from the new boxes and returned in the label)."""
        task = self._infers.get(request.get("model"))
        if isinstance(task, GenerationTask):
            request = dict(request)
            request["save_label"] = False
            image = request.get("image")
            wants_saved_label = (
                isinstance(task, (MaskToImageTask, LesionInpaintTask))
                and not request.get("label")
                and not as_bool(request.get("image_is_label", False), "image_is_label")
                and isinstance(image, str)
                and image
                and not os.path.exists(image)
            )
            if wants_saved_label:
                store = datastore if datastore is not None else self.datastore()
                tag = str(request.get("condition_tag", "final"))
                label_id = store.get_label_by_image_id(image, tag)
                if label_id:
                    request["label"] = store.get_label_uri(label_id, tag)
        return super().infer(request, datastore)
