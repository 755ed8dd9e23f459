# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label tasks serving the project's bundles: conditional generation and SyntheticMix segmentation.

Generation tasks subclass MONAI Label's :class:`~monailabel.tasks.infer.basic_infer.BasicInferTask`, so they run
through its request pipeline (pre-transforms, inferer, post-transforms, writer) and its ``/infer/{model}`` endpoint:

* :class:`MaskToImageTask` (pix2pix, Isola et al. 2017; the mask -> image stage of Sobolev's thesis 4.4): the label
  map the annotator drew -> a synthetic image on the same grid, returned with that label.
* :class:`BoxesToImageTask` (bounding-box-conditioned PGGAN, Han et al. 2019): boxes drawn on an image
  (``params.boxes``) -> a synthetic image of the image's size with lesions in those boxes, returned with the label
  map of the boxes and the boxes.
* :class:`LesionInpaintTask` (lesion-in-context inpainting, MCGAN, Han et al. 2019): boxes drawn on a REAL image
  (``params.boxes``) -> the same image with a generated lesion in each box (unchanged beyond the boxes' blend
  rings), returned with its lesion label (:mod:`monai_gan_aug.label.inpaint`).

The networks and objectives come from the bundle's ``configs/inference.json`` (overridable per bundle), the weights
from an exported bundle's ``models/model.pt`` or else the newest training checkpoint
(:func:`monai_gan_aug.engines.bundles.generator_checkpoint`, what the bundles' inference configs use), reloaded when a
newer one appears. Every answer is marked synthetic (NIfTI ``descrip``, ``params.synthetic``) and names its checkpoint.

Segmentation bundles go through MONAI Label's own bundle classes: :class:`SegmentationBundleInferTask` (a
:class:`~monailabel.tasks.infer.bundle.BundleInferTask` that becomes available as soon as training has written
``models/model.pt``) and :class:`MixBundleTrainTask` (a :class:`~monailabel.tasks.train.bundle.BundleTrainTask`
that runs the bundle's ``train.json``, SyntheticMix included, on the datastore's labelled images).

This module needs MONAI Label (the ``.venv-label`` environment, see ``docs/monai_label.md``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fastapi import HTTPException
from monai.bundle import ConfigParser
from monai.networks.utils import eval_mode
from monai.transforms import EnsureChannelFirstd, LoadImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

from monai_gan_aug.engines.bundles import bundle_config_files, generator_checkpoint
from monai_gan_aug.engines.generation import load_generator_weights
from monai_gan_aug.engines.utils import find_latest_checkpoint
from monai_gan_aug.handlers.writer import file_sha256
from monai_gan_aug.label.codec import (
    SYNTHETIC_DESCRIP,
    encode_label,
    nifti_bytes,
    parse_box_labels,
    parse_boxes,
)
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import as_bool

__all__ = [
    "BoxesToImageTask",
    "GenerationRequestError",
    "GenerationTask",
    "LesionInpaintTask",
    "MaskToImageTask",
    "MixBundleTrainTask",
    "SegmentationBundleInferTask",
    "load_overrides",
]

logger = logging.getLogger(__name__)


class GenerationRequestError(HTTPException, ValueError):
    """A generation request that cannot be served (missing label / boxes, wrong values or shapes). MONAI Label's
    server answers it with HTTP 422 and the message as ``detail``, so the annotator sees what to fix."""

    def __init__(self, message: str) -> None:
        HTTPException.__init__(self, status_code=422, detail=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def load_overrides(value: str | Mapping | None, name: str) -> dict[str, Any]:
    """Bundle config overrides from a ``--conf <bundle>_overrides`` value: a JSON object (text) or a mapping.

    Raises:
        ValueError: not valid JSON.
        TypeError: valid JSON but not an object.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        out = json.loads(value)
    except ValueError as err:
        raise ValueError(
            f"--conf {name}: not valid JSON ({err}); pass an object such as '{{\"image_size\": 64}}'."
        ) from err
    if not isinstance(out, dict):
        raise TypeError(f"--conf {name}: expected a JSON object of config overrides, got {type(out).__name__}.")
    return out


def _reader_for(path: Any) -> str | None:
    name = str(path).lower()
    return "NibabelReader" if name.endswith((".nii", ".nii.gz")) else None


class _LoadInputs:
    """Pre-transform: load the request's files named by ``keys`` (channel-first ``MetaTensor`` with meta/affine),
    choosing nibabel for NIfTI so the affine of the answer equals the input's; ``optional`` keys are loaded when the
    request names a file for them."""

    def __init__(self, keys: Sequence[str], optional: Sequence[str] = ()) -> None:
        self.keys = list(keys)
        self.optional = list(optional)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        for key in self.keys + [k for k in self.optional if isinstance(d.get(k), str) and d.get(k)]:
            path = d.get(key)
            if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
                raise GenerationRequestError(f"input {key!r} is not a readable file ({path!r}).")
            try:
                d = LoadImaged(keys=key, reader=_reader_for(path), image_only=True)(d)
                d = EnsureChannelFirstd(keys=key)(d)
            except Exception as err:
                raise GenerationRequestError(f"cannot read {key} {os.path.basename(str(path))}: {err}") from err
        return d


class _PickCondition:
    """Pre-transform of :class:`MaskToImageTask`: which file holds the label map to translate."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        if isinstance(d.get("label"), str) and d["label"]:
            d[self.key] = d["label"]
        elif as_bool(d.get("image_is_label", False), "image_is_label"):
            d[self.key] = d.get("image")
        else:
            raise GenerationRequestError(
                "no label map to translate: upload it as the multipart field 'label', send the label map itself as "
                'the image with params {"image_is_label": true}, or save a label for this datastore image '
                "(tag 'final', or params.condition_tag)."
            )
        return d


class GenerationTask(BasicInferTask):
    """A generator bundle served as a MONAI Label infer task (base of :class:`MaskToImageTask` and
    :class:`BoxesToImageTask`).

    Args:
        path: the bundle folder (``configs/inference.json``, ``configs/metadata.json``); an exported bundle
            (:func:`monai_gan_aug.engines.export.export_bundle`) also holds ``models/model.pt`` and
            ``models/settings.json`` and is served as it is, without overrides.
        overrides: config overrides, the settings the bundle was trained with (``image_size``, channels, ...) and
            ``output_dir`` where its checkpoints live.
        checkpoint: a checkpoint file, or a folder whose newest ``checkpoint_<iteration>.pt`` is used; default: the
            bundle's ``models/model.pt`` when it exists, else its ``ckpt_dir`` (``<output_dir>/checkpoints``),
            searched at every request. The trained settings are read beside it (``settings.json``).
        description: shown in MONAI Label's ``/info/``.
        labels: label names -> values of the returned label map.

    Raises:
        ValueError: no ``configs/inference.json`` in ``path``, or a config that does not build.
    """

    task_kind = "generation"

    def __init__(
        self,
        path: str | os.PathLike,
        overrides: Mapping[str, Any] | None = None,
        checkpoint: str | os.PathLike | None = None,
        description: str | None = None,
        labels: Mapping[str, int] | None = None,
    ) -> None:
        self.bundle_path = Path(path).resolve()
        config_file = self.bundle_path / "configs" / "inference.json"
        if not config_file.is_file():
            raise ValueError(f"{self.bundle_path} is not a generator bundle: {config_file} is missing.")
        self.overrides = dict(overrides or {})
        self.checkpoint = str(checkpoint) if checkpoint else None
        self.parser = ConfigParser()
        self.parser.read_config(_composed(self.bundle_path, config_file))
        self.parser["bundle_root"] = str(self.bundle_path)
        for key, value in self.overrides.items():
            self.parser[key] = value
        if self.checkpoint and "checkpoint" not in self.overrides:
            # the config's `trained_setting(@checkpoint, ...)` entries then read the settings.json beside it
            self.parser["checkpoint"] = (
                self.checkpoint
                if os.path.isfile(self.checkpoint)
                else f"$monai_gan_aug.engines.find_latest_checkpoint({self.checkpoint!r})"
            )
        self._prepare_parser(self.parser)
        try:
            self.parser.parse()
            self.spatial_dims = int(self.parser.get_parsed_content("spatial_dims"))
            self.image_size = int(self.parser.get_parsed_content("image_size"))
            self.ckpt_dir = str(self.parser.get_parsed_content("ckpt_dir"))
            probe = self.parser.get_parsed_content("objective", lazy=False)
        except Exception as err:
            raise ValueError(
                f"{config_file}: the inference config does not build with overrides {self.overrides}: {err}"
            ) from err
        self._check_objective(probe)
        meta_file = self.bundle_path / "configs" / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        self.version = meta.get("version")
        super().__init__(
            path=None,
            network=None,
            type=InferType.OTHERS,
            labels=dict(labels) if labels else {"lesion": 1},
            dimension=self.spatial_dims,
            description=description or meta.get("description", self.bundle_path.name),
            config={"seed": -1},
        )
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] = {}

    # ------------------------------------------------------------------ hooks for subclasses
    def _prepare_parser(self, parser: ConfigParser) -> None:
        """Adjust the parsed config before it is built (e.g. drop ids that need files the task never uses)."""

    def _check_objective(self, objective: Any) -> None:
        """Raise ValueError when the bundle's objective is not the kind this task drives."""

    # ------------------------------------------------------------------ MONAI Label interface
    def is_valid(self) -> bool:
        return True  # the configs built; a missing checkpoint is reported per request (training may still run)

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["version"] = self.version
        i["task"] = self.task_kind
        i["bundle"] = str(self.bundle_path)
        i["checkpoint"] = self._find_checkpoint(required=False)
        i["image_size"] = self.image_size
        return i

    def _find_checkpoint(self, required: bool = True) -> str | None:
        """The served weights: ``--conf <bundle>_checkpoint`` (a file, or the newest checkpoint of a folder), else
        the bundle's ``models/model.pt`` (an exported bundle), else the newest checkpoint of its ``ckpt_dir``."""
        if self.checkpoint:
            where = self.checkpoint
            found = where if os.path.isfile(where) else find_latest_checkpoint(where)
        else:
            where = f"{self.bundle_path / 'models' / 'model.pt'} or {self.ckpt_dir}"
            found = generator_checkpoint(self.bundle_path, self.ckpt_dir)
        if found is None and required:
            raise GenerationRequestError(
                f"no generator checkpoint for {self.bundle_path.name} in {where}: train the bundle first "
                f"(configs/train.json), export a trained run into the bundle folder, or start the server with "
                f"--conf {self.bundle_path.name}_checkpoint PATH."
            )
        return found

    def _generator(self, device: str) -> tuple[dict[str, torch.nn.Module], Any, str, str | None]:
        """Generator (EMA weights when the checkpoint has them) and objective for the newest checkpoint, cached
        until the checkpoint file changes."""
        ckpt = self._find_checkpoint()
        stamp = f"{ckpt}:{os.stat(ckpt).st_mtime_ns}:{device}"
        with self._lock:
            cached = self._loaded.get(device)
            if cached is None or cached[0] != stamp:
                net = self.parser.get_parsed_content("network_def", lazy=False)
                net = load_generator_weights(net, ckpt).to(torch.device(device)).eval()
                objective = self.parser.get_parsed_content("objective", lazy=False)
                self._after_load(objective, ckpt)
                cached = (stamp, {objective.generator_name: net}, objective, ckpt, file_sha256(ckpt))
                self._loaded[device] = cached
                logger.info("%s: loaded generator from %s on %s", self.bundle_path.name, ckpt, device)
        return cached[1], cached[2], cached[3], cached[4]

    def _after_load(self, objective: Any, checkpoint: str) -> None:
        """Read what a newly loaded checkpoint changes (e.g. the settings beside it)."""

    def post_transforms(self, data: Mapping[str, Any] | None = None) -> Sequence[Callable]:
        return []  # run_inferer already returns image and label on the input's grid

    # ------------------------------------------------------------------ helpers
    def _seed(self, data: Mapping[str, Any]) -> int:
        seed = data.get("seed", -1)
        try:
            seed = int(seed)
        except (TypeError, ValueError) as err:
            raise GenerationRequestError(f"seed must be an integer, got {seed!r}.") from err
        if seed < 0:
            seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
        return seed

    def _model_grid(self, labels: torch.Tensor) -> torch.Tensor:
        """A ``(N, 1, *spatial)`` label map batch on the model's ``(N, 1, image_size, ...)`` grid (nearest)."""
        size = (self.image_size,) * self.spatial_dims
        if tuple(labels.shape[2:]) == size:
            return labels.float()
        return F.interpolate(labels.float(), size=size, mode="nearest")

    def _input_grid(self, x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
        """Generated ``(N, C, *model grid)`` -> the request's grid (linear interpolation), clipped to [-1, 1]."""
        if tuple(x.shape[2:]) != tuple(spatial):
            x = F.interpolate(
                x.float(),
                size=tuple(int(s) for s in spatial),
                mode="bilinear" if len(spatial) == 2 else "trilinear",
                align_corners=False,
            )
        return x.clamp(-1.0, 1.0)

    def _batch_of(self, x: torch.Tensor, what: str) -> tuple[torch.Tensor, bool]:
        """A channel-first input as a model batch: ``(1, C, *spatial)`` when its rank matches the bundle, or the
        slices of a volume along its last axis for a 2D bundle (``(Z, C, X, Y)``, ``slices=True``)."""
        spatial = x.shape[1:]
        if len(spatial) == self.spatial_dims:
            return x[None], False
        if self.spatial_dims == 2 and len(spatial) == 3:
            return x.permute(3, 0, 1, 2).contiguous(), True
        raise GenerationRequestError(
            f"{what} has {len(spatial)} spatial dimensions {tuple(spatial)}; the {self.bundle_path.name} bundle is "
            f"{self.spatial_dims}D."
        )

    def writer(self, data: Mapping[str, Any], extension: Any = None, dtype: Any = None) -> tuple[str, dict]:
        """The synthetic image as a ``.nii.gz`` result file (affine of the input, ``descrip`` marking it synthetic)
        and the result JSON with the label (:func:`~monai_gan_aug.label.codec.encode_label`)."""
        ref = data["_reference"]
        affine = getattr(ref, "affine", None)
        image = data[self.output_label_key]
        with tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False) as out:
            out.write(nifti_bytes(image, affine, descrip=SYNTHETIC_DESCRIP, dtype=np.float32))
        result = dict(data[self.output_json_key])
        result["label"] = encode_label(data["_label"], affine)
        return out.name, result


    def _provenance(self, ckpt: Any, sha: Any, seed: int, boxes: Any, box_labels: Any) -> dict[str, Any]:
        """The provenance every generated answer carries (its ``params``): task, bundle, weights, seed, boxes."""
        return {"synthetic": True, "task": self.task_kind, "bundle": self.bundle_path.name, "checkpoint": ckpt,
                "checkpoint_sha256": sha, "seed": seed, "boxes": np.asarray(boxes).tolist(),
                "box_labels": [int(v) for v in box_labels]}


class MaskToImageTask(GenerationTask):
    """Label map -> synthetic image with a pix2pix bundle (Isola et al., CVPR 2017; Sobolev's thesis 4.4: masks are
    translated into images so that every synthetic image comes with its label).

    The condition is the label map the annotator drew, in the classes the bundle was trained on (the demo's
    ``tissue`` map 0..4 by default; a binary lesion mask for a bundle trained with ``cond_key: label,
    num_classes: 2``). It is taken from, in this order: an uploaded ``label`` file (multipart field ``label``), the
    uploaded / datastore image itself when ``params.image_is_label`` is true, or the datastore's label of the image
    (tag ``params.condition_tag``, default ``final``; filled in by the app). The map is resized (nearest) to the
    model's ``image_size``, translated, and the image resized back to the map's grid; a 3D map given to a 2D bundle
    is translated slice by slice along its last axis. The answer's label is the map (or its ``label_values`` classes
    as a binary mask, as in the bundle's inference) on the input grid, so image and label are aligned voxel by voxel.
    """

    task_kind = "mask_to_image"
    COND = "_condition"

    def _check_objective(self, objective: Any) -> None:
        if not hasattr(objective, "cond_key") or not hasattr(objective, "num_classes"):
            raise ValueError(
                f"{self.bundle_path.name}: MaskToImageTask needs a mask-conditioned objective (pix2pix), "
                f"got {type(objective).__name__}."
            )
        if getattr(objective, "cond_mode", "onehot") == "image":
            raise ValueError(
                f"{self.bundle_path.name}: cond_mode 'image' (image-to-image) is not a label -> image "
                "bundle; train it with a label condition (cond_mode onehot / scaled)."
            )
        self.num_classes = int(objective.num_classes)
        self.label_values = getattr(objective, "label_values", None)

    def pre_transforms(self, data: Mapping[str, Any] | None = None) -> Sequence[Callable]:
        return [_PickCondition(self.COND), _LoadInputs([self.COND])]

    def run_inferer(self, data: dict[str, Any], convert_to_batch: bool = True, device: str = "cpu") -> dict[str, Any]:
        cond = data[self.COND]
        values = torch.as_tensor(cond).float()
        if values.shape[0] != 1:
            raise GenerationRequestError(f"the label map must have one channel, got {values.shape[0]} channels.")
        if not torch.equal(values, values.round()) or values.min() < 0 or values.max() > self.num_classes - 1:
            found = torch.unique(values)[:10].tolist()
            raise GenerationRequestError(
                f"the label map must hold integer classes 0..{self.num_classes - 1} (the condition classes of the "
                f"{self.bundle_path.name} bundle), found {found}."
            )
        batch, slices = self._batch_of(values, "the label map")
        nets, objective, ckpt, sha = self._generator(device)
        x = self._model_grid(batch).to(torch.device(device))
        with eval_mode(*nets.values()), torch.no_grad():
            out = objective.generate(nets, x.shape[0], batch={objective.cond_key: x}, device=torch.device(device))
        image = self._input_grid(out[GanKeys.IMAGE].float().cpu(), batch.shape[2:])
        label = batch.round().long()
        if self.label_values is not None:
            label = torch.isin(label, torch.as_tensor(list(self.label_values))).long()
        if slices:
            image, label = image.permute(1, 2, 3, 0), label.permute(1, 2, 3, 0)
        else:
            image, label = image[0], label[0]
        data[self.output_label_key] = image
        data["_label"] = label.to(torch.uint8)
        data["_reference"] = cond
        data[self.output_json_key] = {
            "synthetic": True,
            "task": self.task_kind,
            "bundle": self.bundle_path.name,
            "checkpoint": ckpt,
            "checkpoint_sha256": sha,
            "seed": None,
            "condition_classes": [int(v) for v in torch.unique(values).tolist()],
            "value_range": [-1.0, 1.0],
        }
        return data


class BoxesToImageTask(GenerationTask):
    """Boxes -> synthetic image with a bounding-box-conditioned PGGAN bundle (Han et al. 2019, "Learning More with
    Less": lesions are generated inside rough boxes, so every synthetic image comes with its boxes).

    The request's image gives the grid (its spatial size and affine); ``params.boxes`` are corner boxes
    ``[x0, y0, x1, y1]`` (``[x0, y0, z0, x1, y1, z1]`` in 3D) in voxel coordinates of that image
    (``docs/conventions.md``), ``params.box_labels`` optional classes (default 0), ``params.seed`` the latent seed
    (random when absent; the answer names it, and the same seed and boxes give the same image). Boxes are scaled to
    the model's grid, the image generated there and resized to the request's grid. The answer's label is the box map
    (class + 1 inside each box, 0 elsewhere) and ``params.boxes`` / ``box_labels`` echo the boxes.
    """

    task_kind = "boxes_to_image"

    def _prepare_parser(self, parser: ConfigParser) -> None:
        parser["box_sampler"] = None  # boxes come from the request, not from the training set's box statistics

    def _check_objective(self, objective: Any) -> None:
        from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective

        if not isinstance(objective, PGGANBoxObjective):
            raise ValueError(
                f"{self.bundle_path.name}: BoxesToImageTask needs a box-conditioned objective "
                f"(PGGANBoxObjective), got {type(objective).__name__}."
            )

    def pre_transforms(self, data: Mapping[str, Any] | None = None) -> Sequence[Callable]:
        return [_LoadInputs(["image"])]

    def run_inferer(self, data: dict[str, Any], convert_to_batch: bool = True, device: str = "cpu") -> dict[str, Any]:
        ref = data["image"]
        spatial = tuple(int(s) for s in ref.shape[1:])
        if len(spatial) == 3 and self.spatial_dims == 2 and spatial[2] == 1:
            spatial = spatial[:2]
        if len(spatial) != self.spatial_dims:
            raise GenerationRequestError(
                f"the image has {len(spatial)} spatial dimensions {tuple(ref.shape[1:])}; boxes for the "
                f"{self.bundle_path.name} bundle need a {self.spatial_dims}D image."
            )
        try:
            boxes = parse_boxes(data.get("boxes"), self.spatial_dims)
            labels = parse_box_labels(data.get("box_labels"), len(boxes))
        except ValueError as err:
            raise GenerationRequestError(str(err)) from err
        d = self.spatial_dims
        outside = [
            i for i, b in enumerate(boxes) if (b[:d] < -1e-3).any() or (b[d:] > np.asarray(spatial) + 1e-3).any()
        ]
        if outside:
            raise GenerationRequestError(
                f"box {outside[0]} {boxes[outside[0]].tolist()} lies outside the image of size {list(spatial)} "
                "(voxel coordinates of the uploaded image, x along its first axis)."
            )
        from monai_gan_aug.transforms.boxes.array import (
            boxes_to_condition_map,
            resize_boxes,
        )

        model_size = (self.image_size,) * d
        scaled = np.asarray(resize_boxes(boxes, spatial, model_size), dtype=np.float32).reshape(-1, 2 * d)
        seed = self._seed(data)
        nets, objective, ckpt, sha = self._generator(device)
        batch = {GanKeys.BOXES.value: [torch.as_tensor(scaled)], GanKeys.BOX_LABELS.value: [torch.as_tensor(labels)]}
        with eval_mode(*nets.values()), torch.no_grad():
            out = objective.generate(nets, 1, batch=batch, seeds=[seed], device=torch.device(device))
        image = self._input_grid(out[GanKeys.IMAGE].float().cpu(), spatial)[0]
        label = boxes_to_condition_map(boxes, spatial, labels, mode="label").round().to(torch.uint8)
        data[self.output_label_key] = image
        data["_label"] = label
        data["_reference"] = ref
        data[self.output_json_key] = {**self._provenance(ckpt, sha, seed, boxes, labels), "value_range": [-1.0, 1.0]}
        return data


class LesionInpaintTask(GenerationTask):
    """Boxes -> lesions in THIS image, with a lesion-inpainting bundle (``bundles/lesion_inpaint``; MCGAN, Han et al.,
    3DV 2019: a generator fills boxes of a real scan with lesions and keeps the surroundings).

    The request's image is the real slice (or volume, for a 3D generator) the annotator has open, in its own units;
    ``params.boxes`` are corner boxes ``[x0, y0, x1, y1]`` (``[x0, y0, z0, x1, y1, z1]`` in 3D) in voxel coordinates
    of that image (``docs/conventions.md``), ``params.box_labels`` optional classes (default 0), ``params.seed`` the
    noise seed (random when absent; the answer names it) and ``params.resize`` whether an image of another size than
    the generator's ``image_size`` is resized to it (default: the bundle's ``resize_slices``). The image's existing
    lesion mask, when there is one (an uploaded ``label``, or the datastore's saved label of the image, filled in by
    the app), keeps new boxes ``gap`` voxels away from the lesions and is part of the answer's label.

    The answer is the same image (same grid, affine and units) with a lesion in every box: only the boxes and their
    ``feather``-voxel blend rings change, every other voxel keeps its value bit for bit; its label is the existing
    mask (1) plus ``box_label + 1`` on the new boxes. Checks, scaling and paste back:
    :func:`monai_gan_aug.label.inpaint.fill_lesions`. The generator's settings (``image_size``, ``patch_size``,
    ``margin``, channels...) are read from the ``settings.json`` training wrote beside the served checkpoint, as the
    bundle's ``inference.json`` does, and re-read when a new checkpoint appears.
    """

    task_kind = "boxes_to_lesions"

    def _check_objective(self, objective: Any) -> None:
        from monai_gan_aug.losses.objectives.lesion_inpaint import LesionInpaintObjective

        if not isinstance(objective, LesionInpaintObjective):
            raise ValueError(
                f"{self.bundle_path.name}: LesionInpaintTask needs a lesion-inpainting objective "
                f"(LesionInpaintObjective), got {type(objective).__name__}."
            )
        self._read_settings()

    def _read_settings(self) -> None:
        """The generator's settings as the config resolves them now (from the checkpoint's settings.json)."""
        get = self.parser.get_parsed_content
        self.spatial_dims = int(get("spatial_dims"))
        self.image_size = int(get("image_size"))
        self.patch_size = int(get("patch_size"))
        self.margin = int(get("margin"))
        self.gap = int(get("gap"))
        self.min_foreground = float(get("min_foreground"))
        self.resize_default = as_bool(get("resize_slices"), "resize_slices")

    def _after_load(self, objective: Any, checkpoint: str) -> None:
        self._read_settings()
        self.dimension = self.spatial_dims

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["patch_size"] = self.patch_size
        return i

    def pre_transforms(self, data: Mapping[str, Any] | None = None) -> Sequence[Callable]:
        return [_LoadInputs(["image"], optional=["label"])]

    def run_inferer(self, data: dict[str, Any], convert_to_batch: bool = True, device: str = "cpu") -> dict[str, Any]:
        from monai_gan_aug.label.inpaint import fill_lesions

        ref = data["image"]
        nets, objective, ckpt, sha = self._generator(device)
        seed = self._seed(data)
        resize = as_bool(data["resize"], "resize") if data.get("resize") is not None else self.resize_default
        existing = data.get("label") if not isinstance(data.get("label"), str) else None
        try:
            out = fill_lesions(
                nets[objective.generator_name],
                objective,
                ref,
                data.get("boxes"),
                data.get("box_labels"),
                existing,
                image_size=self.image_size,
                patch_size=self.patch_size,
                margin=self.margin,
                resize=resize,
                gap=self.gap,
                min_foreground=self.min_foreground,
                seed=seed,
                device=device,
            )
        except ValueError as err:
            raise GenerationRequestError(str(err)) from err
        data[self.output_label_key] = out["image"]
        data["_label"] = out["label"]
        data["_reference"] = ref
        data[self.output_json_key] = {
            **self._provenance(ckpt, sha, seed, out["boxes"], out["box_labels"]),
            "existing_label": existing is not None,
            "resized": out["resized"],
            "changed_voxels": out["changed"],
            "feather": int(getattr(nets[objective.generator_name], "feather", 0)),
            "value_range": None,  # the input's own units
            "intensity_scale": [float(v) for v in out["scale"]],
        }
        return data


def _composed(path: str | os.PathLike, config: str | os.PathLike | Sequence[str]) -> list[str]:
    """``config`` of the bundle folder ``path`` composed with its ``configs/common.json``, as ``monai.bundle run``
    composes a config list (:func:`~monai_gan_aug.engines.bundles.bundle_config_files`)."""
    return [str(f) for f in bundle_config_files(Path(path).resolve(), config)]


class SegmentationBundleInferTask(BundleInferTask):
    """MONAI Label's :class:`~monailabel.tasks.infer.bundle.BundleInferTask` for a segmentation bundle that may not
    have weights yet: it is listed by ``/info/`` as soon as ``models/model.pt`` exists (e.g. after training from MONAI
    Label), without a server restart. ``Invertd`` (standalone inference) is left out: MONAI Label's ``Restored``
    brings the prediction back to the input grid.

    Args:
        path: the bundle folder.
        conf: the app's ``--conf`` dictionary.
        overrides: config overrides applied to ``configs/inference.json`` (e.g. the ``image_size`` of training).
        kwargs: passed to :class:`BundleInferTask`.
    """

    def __init__(
        self, path: str, conf: Mapping[str, str], overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        from monai.transforms import Invertd, SaveImaged

        kwargs.setdefault("post_filter", [SaveImaged, Invertd])
        self._args = (path, dict(conf), dict(overrides or {}), kwargs)
        self._init_bundle()

    def _init_bundle(self) -> None:
        path, conf, _, kwargs = self._args
        BundleInferTask.__init__(self, path, conf, **kwargs)  # applies `overrides` in _load_bundle_config

    def is_valid(self) -> bool:
        if not self.valid and os.path.isfile(os.path.join(self._args[0], "models", "model.pt")):
            self._init_bundle()
        return self.valid

    def __call__(self, request: Mapping[str, Any], callbacks: Any = None) -> Any:
        if not self.is_valid():
            raise GenerationRequestError(
                f"{os.path.basename(self._args[0])} has no weights yet (models/model.pt): train it first "
                f"(POST /train/{os.path.basename(self._args[0])})."
            )
        return super().__call__(request, callbacks)

    def writer(self, data: Mapping[str, Any], extension: Any = None, dtype: Any = None) -> tuple[Any, Any]:
        """2D bundles: the mask as a 2D uint8 ``.nii.gz`` with the input image's affine (MONAI Label's writer
        assumes volumes and would write a ``(1, X, Y)`` volume without spacing); 3D: MONAI Label's writer."""
        if self.dimension != 2:
            return super().writer(data, extension, dtype)
        pred = np.asarray(torch.as_tensor(data[self.output_label_key]).detach().cpu())
        if pred.ndim == 2:
            pred = pred[None]
        if pred.ndim != 3 or pred.shape[0] != 1:
            raise GenerationRequestError(f"expected a one-channel 2D prediction, got shape {pred.shape}.")
        ref = data.get(self.input_key)
        meta = getattr(ref, "meta", None) or data.get(f"{self.input_key}_meta_dict") or {}
        affine = meta.get("original_affine", meta.get("affine"))
        with tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False) as out:
            out.write(nifti_bytes(pred, affine, dtype=np.uint8))
        return out.name, dict(data.get(self.output_json_key, {}))

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        parser = super()._load_bundle_config(path, _composed(path, config))
        for key, value in self._args[2].items():
            parser[key] = value
        return parser


class MixBundleTrainTask(BundleTrainTask):
    """MONAI Label's :class:`~monailabel.tasks.train.bundle.BundleTrainTask` for a bundle trained with SyntheticMix
    (``bundles/seg_unet_mix``): it runs the bundle's ``train.json`` on the datastore's labelled images (MONAI Label
    overrides ``train#dataset#data`` / ``validate#dataset#data``) and writes ``models/model.pt``, which
    :class:`SegmentationBundleInferTask` then serves. ``--conf <bundle>_overrides`` (e.g. ``synthetic_dir``,
    ``mix_prob``, ``image_size``) and the request's ``overrides`` (a JSON object) are applied on top.

    Args:
        path: the bundle folder.
        conf: the app's ``--conf`` dictionary.
        overrides: config overrides from the app configuration.
        kwargs: passed to :class:`BundleTrainTask`.
    """

    def __init__(
        self, path: str, conf: Mapping[str, str], overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.extra_overrides = dict(overrides or {})
        self._request_overrides: dict[str, Any] = {}
        super().__init__(path, dict(conf), **kwargs)
        # what MONAI Label's single-GPU training runs: train.json composed with common.json
        self.bundle_config_path = _composed(path, self.bundle_config_path)

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        return super()._load_bundle_config(path, _composed(path, config))

    def config(self) -> dict[str, Any]:
        c = super().config()
        c["max_epochs"] = 10
        c["val_split"] = 0.2
        c["multi_gpu"] = False
        c["overrides"] = "{}"
        c["run_id"] = "run"
        return c

    def __call__(self, request: Mapping[str, Any], datastore: Any) -> Any:
        req = dict(request)
        self._request_overrides = load_overrides(req.get("overrides"), "overrides")
        if not datastore.datalist():
            raise ValueError(
                f"{os.path.basename(self.bundle_path)}: the datastore has no labelled images (tag 'final'); save "
                "labels first."
            )
        return super().__call__(req, datastore)

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides.update(copy.deepcopy(self.extra_overrides))
        overrides.update(copy.deepcopy(self._request_overrides))
        if isinstance(overrides.get("device"), str):
            overrides["device"] = torch.device(overrides["device"])
        return overrides
