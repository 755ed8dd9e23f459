# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Two-stage synthesis of image + mask pairs with no manual annotation, and the checks that such pairs are usable.

Stage 1 (Sobolev, thesis 4.4.2): a DCGAN trained on the dataset's masks generates new masks
(:class:`MaskDCGANObjective`: masks are one-hot or scaled to ``[-1, 1]`` for training, and generated outputs are
turned back into valid label maps by argmax / nearest class). Stage 2 (thesis 4.4.3; Isola et al. 2017): a Pix2Pix
generator translates each mask into an image. :class:`TwoStageObjective` chains both for
:class:`~monai_gan_aug.engines.generation.GanGenerationEvaluator`, so ``bundles/pix2pix/configs/
inference_two_stage.json`` writes new image + label pairs from seeds alone (``SyntheticWriter`` writes ``label``).

Checks of mask-conditioned generation ("does the output honour its mask?"): a segmentation model trained on real
images segments the synthetic images; Dice against their own input masks must be clearly above Dice against the
masks of other samples (a shuffled-mask control). :func:`honours_mask` is the metric,
:class:`HonoursMaskHandler` its handler for a generation workflow, :func:`fit_reference_segmenter` the default way to
get the segmentation model (a hook: a stronger downstream segmentation experiment can hand in its own model).
:class:`SyntheticSetMetrics` adds FID/KID of a generated set against real images with any feature extractor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_gan_aug.losses.objectives.base import GanObjective, Phase
from monai_gan_aug.losses.objectives.noise import DCGANObjective
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.transforms.condition_encoding import (
    condition_channels,
    decode_mask,
    encode_condition,
    mask_to_display,
)
from monai_gan_aug.utils.enums import GanKeys
from monai_gan_aug.utils.misc import json_safe

__all__ = [
    "HonoursMaskHandler",
    "MaskDCGANObjective",
    "SyntheticSetMetrics",
    "TwoStageObjective",
    "fit_reference_segmenter",
    "honours_mask",
    "load_segmenter",
    "reference_segmenter",
    "seeded_items",
    "select_keys",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# datalist helpers
# ---------------------------------------------------------------------------------------------------------------


def select_keys(items: Sequence[Mapping], keys: Sequence[str], optional_keys: Sequence[str] = ()) -> list[dict]:
    """Keep only ``keys`` (required) and ``optional_keys`` (when present) of each datalist item; this drops e.g.
    ragged ``boxes`` lists that cannot be collated into a batch.

    Raises:
        ValueError: an item lacks one of ``keys``.
    """
    out = []
    for i, item in enumerate(items):
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(
                f"datalist item {i} ({item.get('image', '?')}) has no {missing}; the config reads keys {list(keys)}. "
                "Use a dataset with these entries (the demo dataset has image, label and tissue) or change the keys."
            )
        out.append({k: item[k] for k in [*keys, *optional_keys] if k in item})
    return out


def seeded_items(
    items: Sequence[Mapping],
    seed: int = 0,
    num_samples: int | None = None,
    keys: Sequence[str] | None = None,
    optional_keys: Sequence[str] = (),
) -> list[dict]:
    """Datalist items for a conditional generation workflow: ``keys`` (and present ``optional_keys``) of each item
    plus ``seed = seed + i`` and ``index = i`` (what :class:`~monai_gan_aug.engines.generation.GanGenerationEvaluator`
    needs). With ``num_samples`` larger than the list, the items are cycled (each condition reused with a new
    seed/index); smaller takes the first ``num_samples``."""
    items = list(items) if keys is None else select_keys(items, keys, optional_keys)
    if not items:
        raise ValueError("seeded_items: the condition datalist is empty; check dataset_dir and the split.")
    n = len(items) if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"seeded_items: num_samples must be >= 1, got {num_samples}.")
    return [{**items[i % len(items)], "seed": int(seed) + i, "index": i} for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# stage 1: masks from noise
# ---------------------------------------------------------------------------------------------------------------


class MaskDCGANObjective(DCGANObjective):
    """DCGAN (Radford et al. 2016) on segmentation masks, the mask generator of the thesis (4.4.2).

    Training: the label map under ``mask_key`` is encoded (:func:`~monai_gan_aug.losses.objectives.pix2pix.
    encode_condition`: one-hot, or one channel scaled to ``[-1, 1]``) and becomes the batch's ``image`` that the
    DCGAN learns. Generation: the generator's output is decoded into a valid label map (argmax for one-hot, nearest
    class level for scaled; a binary mask is thresholded at 0); the result holds ``label`` (the map), ``cond`` (the
    same) and ``image`` (the map shown as a ``[-1, 1]`` picture, for sample grids and PNG previews).

    The generator needs ``out_channels = condition_channels(mask_mode, num_classes)`` (see :attr:`mask_channels`).

    Args:
        mask_key: batch key of the label map (``"label"`` or ``"tissue"`` in the demo dataset).
        num_classes: classes of the map, background included (2 for a binary mask, 5 for ``tissue``).
        mask_mode: ``"onehot"`` or ``"scaled"``.
        latent_size: latent length (100 in the thesis).
        latent_spatial: trailing singleton dims of the latent (= spatial_dims).
        mode: adversarial criterion (``"vanilla"``: the thesis' "original adversarial loss").
        real_label: one-sided label smoothing of D.
    """

    def __init__(
        self,
        mask_key: str = GanKeys.LABEL,
        num_classes: int = 2,
        mask_mode: str = "onehot",
        latent_size: int = 100,
        latent_spatial: int = 2,
        mode: str = "vanilla",
        real_label: float = 1.0,
    ) -> None:
        if mask_mode not in ("onehot", "scaled"):
            raise ValueError(f"MaskDCGANObjective: mask_mode must be 'onehot' or 'scaled', got {mask_mode!r}.")
        condition_channels(mask_mode, num_classes)  # validates num_classes
        super().__init__(latent_size, latent_spatial, mode, real_label)
        self.mask_key, self.num_classes, self.mask_mode = str(mask_key), int(num_classes), mask_mode

    @property
    def mask_channels(self) -> int:
        """Generator output / discriminator input channels."""
        return condition_channels(self.mask_mode, self.num_classes)

    def prepare_batch(self, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        out = super().prepare_batch(batch, device)
        if self.mask_key not in out:
            if set(map(str, out)) <= {"seed", "index"}:  # a generation batch: seeds only
                return out
            raise ValueError(
                f"MaskDCGANObjective: the batch has no mask {self.mask_key!r} (keys: {sorted(map(str, out))}); set "
                "mask_key to the key of the label map loaded by the preprocessing."
            )
        out[GanKeys.IMAGE] = encode_condition(out[self.mask_key], self.mask_mode, self.num_classes, self.mask_key)
        return out

    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        out = super().generate(nets, num, batch=batch, seeds=seeds, device=device)
        mask = decode_mask(out[GanKeys.IMAGE], self.mask_mode, self.num_classes)
        return {
            GanKeys.IMAGE: mask_to_display(mask, self.num_classes),
            GanKeys.LABEL: mask,
            GanKeys.COND: mask,
            GanKeys.LATENTS: out[GanKeys.LATENTS],
        }


# ---------------------------------------------------------------------------------------------------------------
# stage 1 + 2
# ---------------------------------------------------------------------------------------------------------------


class TwoStageObjective(GanObjective):
    """Generation-only objective chaining a mask generator and a mask-to-image generator.

    ``generate(nets, num, seeds=...)``: mask ``i`` comes from ``seeds[i]`` through ``nets[mask_generator_name]``
    and ``mask_objective``; it is translated by ``nets["generator"]`` with ``image_objective``. Returns ``image``,
    ``label`` (the image objective's label: the map or its ``label_values`` classes), ``cond`` (the generated map)
    and ``latents``. Every written pair is reproducible from its seed.

    Use with ``GanGenerationEvaluator(network=<pix2pix generator>, extra_networks={"mask_generator": <DCGAN>},
    objective=TwoStageObjective(...))``. Train the two stages separately (``bundles/mask_dcgan``,
    ``bundles/pix2pix``) on the same ``num_classes`` and image size.

    Args:
        image_objective: the stage-2 objective (Pix2Pix / DF-GAN) with a label condition.
        mask_objective: the stage-1 objective.
        mask_generator_name: key of the mask generator in ``nets``.
    """

    generator_name = "generator"

    def __init__(
        self,
        image_objective: Pix2PixObjective,
        mask_objective: MaskDCGANObjective,
        mask_generator_name: str = "mask_generator",
    ) -> None:
        if not isinstance(image_objective, Pix2PixObjective):
            raise TypeError(f"image_objective must be a Pix2PixObjective, got {type(image_objective).__name__}.")
        if not isinstance(mask_objective, MaskDCGANObjective):
            raise TypeError(f"mask_objective must be a MaskDCGANObjective, got {type(mask_objective).__name__}.")
        if image_objective.cond_mode == "image":
            raise ValueError("TwoStageObjective: the image objective must be conditioned on a label map, not an image.")
        if image_objective.num_classes != mask_objective.num_classes:
            raise ValueError(
                f"TwoStageObjective: the mask generator makes {mask_objective.num_classes}-class maps, the image "
                f"generator was trained on {image_objective.num_classes} classes; train both on the same map."
            )
        self.image_objective, self.mask_objective = image_objective, mask_objective
        self.mask_generator_name = str(mask_generator_name)
        self.generator_name = image_objective.generator_name

    def phases(self) -> list[Phase]:
        raise TypeError(
            "TwoStageObjective only generates; train bundles/mask_dcgan and bundles/pix2pix separately, then run "
            "bundles/pix2pix/configs/inference_two_stage.json."
        )

    def prepare_batch(self, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        return GanObjective.prepare_batch(self, batch, device)  # only seeds / indices: no condition to encode

    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        if self.mask_generator_name not in nets:
            raise ValueError(
                f"TwoStageObjective needs the mask generator as nets[{self.mask_generator_name!r}] (extra_networks of "
                f"GanGenerationEvaluator); got {sorted(nets)}."
            )
        stage1 = self.mask_objective.generate(
            {self.mask_objective.generator_name: nets[self.mask_generator_name]}, num, seeds=seeds, device=device
        )
        mask = stage1[GanKeys.LABEL]
        try:  # the image objective encodes the raw map as it encodes an annotator's mask
            out = self.image_objective.generate(nets, num, batch={self.image_objective.cond_key: mask.float()},
                                                seeds=seeds, device=device)
        except ValueError as err:
            raise ValueError(
                f"TwoStageObjective: the image generator rejected the generated masks {tuple(mask.shape)} ({err}); both "
                "stages must use the same image_size and num_classes."
            ) from err
        out[GanKeys.LATENTS] = stage1[GanKeys.LATENTS]
        return out


# ---------------------------------------------------------------------------------------------------------------
# does the output honour its mask?
# ---------------------------------------------------------------------------------------------------------------


def _derangement(n: int, seed: int) -> np.ndarray:
    """A random permutation without fixed points (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _dice_per_sample(pred: torch.Tensor, target: torch.Tensor, num_classes: int, include_background: bool) -> torch.Tensor:
    """``(N, classes)`` Dice via ``monai.metrics.compute_dice``; NaN where the target class is empty."""
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    return compute_dice(
        one_hot(pred.long(), num_classes), one_hot(target.long(), num_classes),
        include_background=include_background, ignore_empty=True,
    )  # fmt: skip


def honours_mask(
    predictions: torch.Tensor,
    masks: torch.Tensor,
    num_classes: int = 2,
    include_background: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Dice of segmentations of synthetic images against their own input masks and against shuffled masks.

    A generator that honours its mask gives a ``dice`` clearly above ``dice_shuffled`` (the same segmentations
    scored against the masks of other samples, a random derangement), i.e. a clearly positive ``margin``. Dice per
    sample is the mean over the foreground classes present in the target (``monai.metrics.compute_dice`` with
    ``ignore_empty=True``); samples whose target has none of them do not count.

    Args:
        predictions: ``(N, 1, *spatial)`` label maps predicted on the synthetic images.
        masks: ``(N, 1, *spatial)`` the masks the images were generated from.
        num_classes: classes, background included.
        include_background: count class 0 too.
        seed: seed of the shuffle.

    Returns:
        ``{"dice", "dice_shuffled", "margin", "n", "n_scored", "n_scored_shuffled", "dice_per_class",
        "dice_shuffled_per_class"}`` (floats, NaN when nothing could be scored; per-class dicts keyed by class).
    """
    if predictions.shape != masks.shape or predictions.ndim < 3 or predictions.shape[1] != 1:
        raise ValueError(
            f"honours_mask: predictions {tuple(predictions.shape)} and masks {tuple(masks.shape)} must both be "
            "(N, 1, *spatial) label maps."
        )
    n = int(masks.shape[0])
    if n < 2:
        raise ValueError(f"honours_mask: the shuffled control needs >= 2 samples, got {n}.")
    predictions, masks = predictions.detach().cpu(), masks.detach().cpu()
    matched = _dice_per_sample(predictions, masks, num_classes, include_background)
    shuffled = _dice_per_sample(predictions, masks[torch.from_numpy(_derangement(n, seed))], num_classes, include_background)

    first = 0 if include_background else 1

    def summary(d: torch.Tensor) -> tuple[float, int, dict[str, float]]:
        per_sample = torch.nanmean(d, dim=1)
        ok = ~torch.isnan(per_sample)
        value = float(per_sample[ok].mean()) if ok.any() else float("nan")
        per_class = {
            str(first + c): float(torch.nanmean(d[:, c])) if (~torch.isnan(d[:, c])).any() else float("nan")
            for c in range(d.shape[1])
        }
        return value, int(ok.sum()), per_class

    dice, n_ok, per_class = summary(matched)
    dice_sh, n_ok_sh, per_class_sh = summary(shuffled)
    return {
        "dice": dice,
        "dice_shuffled": dice_sh,
        "margin": dice - dice_sh,
        "n": n,
        "n_scored": n_ok,
        "n_scored_shuffled": n_ok_sh,
        "dice_per_class": per_class,
        "dice_shuffled_per_class": per_class_sh,
    }


class HonoursMaskHandler:
    """Ignite handler for a generation workflow: segments every generated ``image`` with ``segmenter`` and, at the
    end, scores the segmentations against the input masks (the output's ``cond`` map) with :func:`honours_mask`.

    The result goes to ``engine.state.metrics["honours_mask"]`` and, with ``output_path``, a JSON file.

    Args:
        segmenter: network ``(N, C, *spatial) -> (N, num_classes, *spatial)`` logits, trained on real images.
        num_classes: classes of the masks, background included.
        output_path: JSON file to write (folders are created).
        mask_key: output key of the input masks (``cond``; ``label`` for binary masks works too).
        include_background: count class 0.
        seed: seed of the shuffled control.
    """

    def __init__(
        self,
        segmenter: torch.nn.Module,
        num_classes: int = 2,
        output_path: str | Path | None = None,
        mask_key: str = GanKeys.COND,
        include_background: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(segmenter, torch.nn.Module):
            raise TypeError(f"segmenter must be an nn.Module, got {type(segmenter).__name__}.")
        self.segmenter, self.num_classes = segmenter, int(num_classes)
        self.output_path = Path(output_path) if output_path else None
        self.mask_key, self.include_background, self.seed = str(mask_key), bool(include_background), int(seed)
        self.predictions: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.result: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._compute)

    def _reset(self, engine: Engine) -> None:
        self.predictions, self.masks = [], []
        self.segmenter.to(engine.state.device).eval()

    @torch.no_grad()
    def _update(self, engine: Engine) -> None:
        out = engine.state.output
        if self.mask_key not in out:
            raise ValueError(
                f"HonoursMaskHandler: the generation output has no {self.mask_key!r} (keys {sorted(map(str, out))}); "
                "the objective must return the input masks (Pix2Pix with a label condition does)."
            )
        images = out[GanKeys.IMAGE].to(engine.state.device).float()
        logits = self.segmenter(images)
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"HonoursMaskHandler: the segmenter gives {logits.shape[1]} channels for {self.num_classes} classes."
            )
        self.predictions.append(logits.argmax(1, keepdim=True).to(torch.uint8).cpu())
        self.masks.append(out[self.mask_key].to(torch.uint8).cpu())

    def _compute(self, engine: Engine) -> None:
        preds, masks = torch.cat(self.predictions), torch.cat(self.masks)
        self.result = honours_mask(preds, masks, self.num_classes, self.include_background, self.seed)
        engine.state.metrics["honours_mask"] = self.result
        logger.info(
            "output honours its mask: Dice %.3f vs %.3f with shuffled masks (margin %.3f, %d samples)",
            self.result["dice"], self.result["dice_shuffled"], self.result["margin"], self.result["n"],
        )  # fmt: skip
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self.output_path.write_text(json.dumps(json_safe(self.result), indent=1))


class _KeyedBatch:
    """``prepare_batch`` for MONAI's SupervisedTrainer reading any image / label keys."""

    def __init__(self, image_key: str, label_key: str) -> None:
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, batchdata: Mapping, device: torch.device | None = None, non_blocking: bool = False, **kwargs: Any):
        for k in (self.image_key, self.label_key):
            if k not in batchdata:
                raise ValueError(f"segmenter training: the batch has no {k!r} (keys {sorted(map(str, batchdata))}).")
        image = torch.as_tensor(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking).float()
        label = torch.as_tensor(batchdata[self.label_key]).to(device=device, non_blocking=non_blocking).round().long()
        return image, label


def fit_reference_segmenter(
    network: torch.nn.Module,
    train_loader: Iterable,
    max_epochs: int = 20,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    image_key: str = GanKeys.IMAGE,
    label_key: str = GanKeys.LABEL,
    save_path: str | Path | None = None,
) -> torch.nn.Module:
    """Train a segmentation network on real images (MONAI ``SupervisedTrainer``, Dice + cross-entropy, Adam).

    This is the default segmentation model of the "output honours its mask" check. It is a hook: a downstream
    segmentation experiment (e.g. the real vs real + synthetic U-Net table) can train its own model and pass it to
    :class:`HonoursMaskHandler` instead.

    Args:
        network: e.g. ``monai.networks.nets.UNet(spatial_dims, 1, num_classes, ...)``; returns logits.
        train_loader: dict batches with real images (``[-1, 1]``) and label maps.
        max_epochs: training epochs.
        lr: Adam learning rate.
        device: training device.
        image_key: image key of the batches.
        label_key: label-map key of the batches (``label`` or ``tissue``).
        save_path: write the trained state dict here (reuse with :func:`load_segmenter`).

    Returns:
        ``network``, trained, in eval mode.
    """
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceCELoss

    if max_epochs < 1:
        raise ValueError(f"fit_reference_segmenter: max_epochs must be >= 1, got {max_epochs}.")
    device = torch.device(device)
    network = network.to(device)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=int(max_epochs),
        train_data_loader=train_loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=lr),
        loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        prepare_batch=_KeyedBatch(image_key, label_key),
        decollate=False,
    )
    trainer.run()
    network.eval()
    if save_path is not None:
        Path(save_path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), save_path)
    return network


def reference_segmenter(
    network: torch.nn.Module, checkpoint: str | Path | None, train_loader: Iterable, **fit_kwargs: Any
) -> torch.nn.Module:
    """The segmenter of the "output honours its mask" check: :func:`load_segmenter` when ``checkpoint`` is set
    (truthy), else :func:`fit_reference_segmenter` on ``train_loader`` with ``fit_kwargs`` (its ``max_epochs``,
    ``lr``, ``device``, ``image_key``, ``label_key``, ``save_path``: the trained weights go there). The ``segmenter``
    of the conditional families' ``evaluate.json``."""
    if checkpoint:
        return load_segmenter(network, checkpoint)
    return fit_reference_segmenter(network, train_loader, **fit_kwargs)


def load_segmenter(network: torch.nn.Module, checkpoint: str | Path) -> torch.nn.Module:
    """Load a state dict (e.g. written by :func:`fit_reference_segmenter`) into ``network``; eval mode."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter checkpoint {path} does not exist; set segmenter_checkpoint to null to train one.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"segmenter checkpoint {path} does not fit the configured network: {err}") from err
    return network.eval()


# ---------------------------------------------------------------------------------------------------------------
# FID / KID of a generated set
# ---------------------------------------------------------------------------------------------------------------


class SyntheticSetMetrics:
    """Ignite handler for a generation workflow: GAN metrics (:mod:`monai_gan_aug.metrics.gan_metrics`, e.g. FID,
    KID) of the generated ``image`` batches against real images, in the feature space of ``extractor``.

    Real images come from the workflow's own batches (``real_key``: e.g. the paired real image of a Pix2Pix
    condition, or domain B of a CycleGAN test set) and/or from ``real_loader`` (read once when the run starts).
    Results go to ``engine.state.metrics[name]`` and, with ``output_path``, a JSON file.

    Args:
        extractor: a :class:`~monai_gan_aug.metrics.extractors.FeatureExtractor` (images in ``[-1, 1]``).
        metrics: metric names understood by ``monai_gan_aug.metrics.gan_metrics.create_metric``.
        real_key: key of real images in the generation batches.
        real_loader: dict batches with real images under ``real_loader_key``.
        real_loader_key: see ``real_loader``.
        output_path: JSON file.
        metric_kwargs: per-metric constructor arguments, e.g. ``{"fid": {"n_bootstrap": 0}}``.
    """

    def __init__(
        self,
        extractor: torch.nn.Module,
        metrics: Sequence[str] = ("fid", "kid"),
        real_key: str | None = None,
        real_loader: Iterable | None = None,
        real_loader_key: str = GanKeys.IMAGE,
        output_path: str | Path | None = None,
        metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        from monai_gan_aug.metrics.gan_metrics import create_metric

        if real_key is None and real_loader is None:
            raise ValueError("SyntheticSetMetrics needs real images: give real_key and/or real_loader.")
        kwargs = dict(metric_kwargs or {})
        self.metrics = {name: create_metric(name, **dict(kwargs.get(name, {}))) for name in metrics}
        self.extractor = extractor
        self.real_key = None if real_key is None else str(real_key)
        self.real_loader, self.real_loader_key = real_loader, str(real_loader_key)
        self.output_path = Path(output_path) if output_path else None
        self.results: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._compute)

    def _features(self, images: Any, device: torch.device) -> torch.Tensor:
        return self.extractor.extract(torch.as_tensor(images).float().to(device))

    def _start(self, engine: Engine) -> None:
        device = engine.state.device
        self.extractor.to(device)
        for m in self.metrics.values():
            m.reset()
        if self.real_loader is not None:
            for batch in self.real_loader:
                feats = self._features(batch[self.real_loader_key], device)
                for m in self.metrics.values():
                    m(y=feats)

    def _update(self, engine: Engine) -> None:
        device = engine.state.device
        fake = self._features(engine.state.output[GanKeys.IMAGE], device)
        real = None
        if self.real_key is not None:
            batch = engine.state.batch
            if not isinstance(batch, Mapping) or self.real_key not in batch:
                raise ValueError(f"SyntheticSetMetrics: the generation batches hold no real images under {self.real_key!r}.")
            real = self._features(batch[self.real_key], device)
        for m in self.metrics.values():
            m(y_pred=fake, y=real)

    def _compute(self, engine: Engine) -> None:
        for m in self.metrics.values():
            self.results.update(m.aggregate())
        engine.state.metrics.update(self.results)
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self.output_path.write_text(json.dumps(json_safe(self.results), indent=1))
