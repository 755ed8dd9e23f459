# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Two-stage synthesis of image + mask pairs with no manual annotation.

Stage 1 (Sobolev, thesis 4.4.2): a DCGAN trained on the dataset's masks generates new masks
(:class:`MaskDCGANObjective`: masks are one-hot or scaled to ``[-1, 1]`` for training, and generated outputs are
turned back into valid label maps by argmax / nearest class). Stage 2 (thesis 4.4.3; Isola et al. 2017): a Pix2Pix
generator translates each mask into an image. :class:`TwoStageObjective` chains both for the generation workflow, so
``bundles/pix2pix/configs/inference_two_stage.json`` writes new image + label pairs from seeds alone. Whether the
images honour their masks is measured by :func:`monai_gan_aug.metrics.honours_mask`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from monai_gan_aug.losses.objectives.base import GanObjective, Phase
from monai_gan_aug.losses.objectives.noise import DCGANObjective
from monai_gan_aug.losses.objectives.pix2pix import Pix2PixObjective
from monai_gan_aug.transforms.condition_encoding import condition_channels, decode_mask, mask_to_display
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["MaskDCGANObjective", "TwoStageObjective"]


class MaskDCGANObjective(DCGANObjective):
    """DCGAN (Radford et al. 2016) on segmentation masks, the mask generator of the thesis (4.4.2).

    Training: the dataset encodes the label map under ``mask_key`` into the ``image`` the DCGAN learns
    (:class:`~monai_gan_aug.transforms.EncodeConditiond` with ``output_keys="image"``: one-hot, or one channel scaled
    to ``[-1, 1]``), as ``bundles/mask_dcgan`` does. Generation: the generator's output is decoded into a valid label map (argmax for one-hot, nearest
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
        """Move the batch; a training batch must hold the encoded map as ``image`` (the dataset's transform)."""
        if self.mask_key in batch and GanKeys.IMAGE not in batch:
            raise ValueError(
                f"MaskDCGANObjective: the batch holds the map {self.mask_key!r} but no encoded 'image'; end the "
                f"preprocessing with EncodeConditiond(keys={self.mask_key!r}, cond_mode={self.mask_mode!r}, "
                f"num_classes={self.num_classes}, output_keys='image')."
            )
        return super().prepare_batch(batch, device)

    def generate(self, nets, num, batch=None, seeds=None, device="cpu"):
        out = super().generate(nets, num, batch=batch, seeds=seeds, device=device)
        mask = decode_mask(out[GanKeys.IMAGE], self.mask_mode, self.num_classes)
        return {
            GanKeys.IMAGE: mask_to_display(mask, self.num_classes),
            GanKeys.LABEL: mask,
            GanKeys.COND: mask,
            GanKeys.LATENTS: out[GanKeys.LATENTS],
        }


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

    #: generation only: it chains two trained families' generators and has no training phases of its own
    generation_only = True

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
