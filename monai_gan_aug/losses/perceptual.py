# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Perceptual (feature) reconstruction loss for Pix2Pix (Johnson et al., "Perceptual losses for real-time style
transfer and super-resolution", ECCV 2016), as used by Sobolev's thesis (4.4.3, eq. 4.11)::

    L_percep = 1/N * sum_i lambda_i * || F_i(y) - F_i(G(x)) ||_d

with ``F_i`` the feature maps of ``N`` layers of an ImageNet VGG16, ``d = 1`` (mean absolute error; the thesis
argues that MSE blurs) and layer weights ``lambda = (100, 200)`` (models 4-6) or ``(100, 200, 300)`` (models 7-9).
The thesis does not name the layers; the default here is Johnson et al.'s choice for content, the last ReLU of
each VGG16 block: ``relu1_2``, ``relu2_2``, ``relu3_3`` (``relu4_3`` and ``relu5_3`` are available). With two
weights only the first two layers are used.

Why not ``monai.losses.PerceptualLoss``: it fetches its networks (RadImageNet, MedicalNet, torchvision) from the
internet at construction. Nothing is downloaded here: the VGG16 weights come from a local file, either given as
``weights_path``, named by ``$MONAI_GAN_AUG_VGG16_WEIGHTS``, or found in torch hub's cache
(``torch.hub.get_dir()/checkpoints/vgg16-*.pth``, where ``torchvision.models.vgg16(weights=...)`` stores them); a
missing file raises :class:`FileNotFoundError` saying where to put it. Any other feature network can be plugged in
as ``feature_extractor`` (a module returning a list of feature maps), e.g. a 3D medical network.

This class is named ``PerceptualFeatureLoss`` because MONAI's component locator (which also scans
``monai_gan_aug``) would otherwise find two ``PerceptualLoss`` classes and refuse ``"_target_": "PerceptualLoss"``
in MONAI's own configs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from monai_gan_aug.utils.weights import hub_checkpoints_dir, local_weights_file

__all__ = ["VGG16_LAYERS", "VGG16_WEIGHTS_ENV", "PerceptualFeatureLoss", "ReconstructionLoss", "VGG16Features", "find_vgg16_weights"]

#: Index (in ``torchvision.models.vgg16().features``) of the output of each named ReLU.
VGG16_LAYERS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}  # fmt: skip
#: Environment variable that may name the VGG16 weight file.
VGG16_WEIGHTS_ENV = "MONAI_GAN_AUG_VGG16_WEIGHTS"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def find_vgg16_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """Locate a local VGG16 state-dict file; never downloads.

    Order: ``weights_path``, ``$MONAI_GAN_AUG_VGG16_WEIGHTS``, ``torch.hub.get_dir()/checkpoints/vgg16-*.pth``.

    Raises:
        FileNotFoundError: nothing found; the message says where to put the file.
    """
    found = local_weights_file(weights_path, VGG16_WEIGHTS_ENV, ["vgg16-*.pth"], "VGG16 weights of the perceptual loss")
    if found is not None:
        return found
    hub = hub_checkpoints_dir()
    raise FileNotFoundError(
        "No VGG16 weights for the perceptual loss, and monai_gan_aug never downloads them. Put torchvision's ImageNet "
        f"VGG16 state dict (vgg16-397923af.pth) into {hub}, or pass weights_path=FILE / set ${VGG16_WEIGHTS_ENV}; "
        "or use the L1 reconstruction loss (lambda_l1 > 0, perceptual null)."
    )


class VGG16Features(nn.Module):
    """Frozen ImageNet VGG16 feature maps at named ReLU layers, for ``(N, C, H, W)`` inputs in ``[-1, 1]``.

    One channel is repeated to three; values are mapped to ``[0, 1]`` and normalised with the ImageNet mean / std.
    Only the layers up to the deepest requested one are built and loaded.

    Args:
        layers: names from :data:`VGG16_LAYERS`.
        weights_path: local VGG16 state dict (torchvision key names ``features.<i>.weight``; a file holding only
            the ``features`` part, with or without that prefix, also works). ``None``: see :func:`find_vgg16_weights`.
        state_dict: the weights as a dict instead of a file.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        weights_path: str | os.PathLike | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        layers = list(layers)
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if not layers or unknown:
            raise ValueError(f"VGG16Features: unknown layers {unknown or layers}; choose from {list(VGG16_LAYERS)}.")
        self.layers = layers
        self.indices = [VGG16_LAYERS[name] for name in layers]
        last = max(self.indices)
        body = make_layers(cfgs["D"], batch_norm=False)[: last + 1]  # torchvision's vgg16().features, same indices
        if state_dict is None:
            path = find_vgg16_weights(weights_path)
            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:
                raise ValueError(f"cannot read VGG16 weights {path} ({type(err).__name__}: {err}).") from err
            source = str(path)
        else:
            source = "state_dict"
        if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
            state_dict = state_dict["state_dict"]
        wanted = body.state_dict()
        loaded = {}
        for key in wanted:
            for candidate in (f"features.{key}", key):
                if candidate in state_dict:
                    loaded[key] = state_dict[candidate]
                    break
        missing = sorted(set(wanted) - set(loaded))
        if missing:
            raise ValueError(
                f"VGG16 weights {source} lack {missing[:4]}{'...' if len(missing) > 4 else ''}; expected torchvision's "
                "vgg16 state dict (keys 'features.<i>.weight' / '.bias')."
            )
        body.load_state_dict(loaded)
        body.eval()
        for p in body.parameters():
            p.requires_grad_(False)
        self.body = body
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGG16Features:
        """The network always stays in eval mode (it is frozen)."""
        super().train(mode)
        self.body.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"VGG16Features expects (N, 1 or 3, H, W) images in [-1, 1], got {tuple(x.shape)}.")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1.0) / 2.0 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        feats = []
        wanted = set(self.indices)
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in wanted:
                feats.append(x)
        return [feats[sorted(self.indices).index(i)] for i in self.indices]


class PerceptualFeatureLoss(nn.Module):
    """``1/N * sum_i lambda_i * mean|F_i(prediction) - F_i(target)|`` (Sobolev, thesis eq. 4.11; ``d = 2`` gives
    the squared error instead).

    3D volumes go through 2D extractors slice by slice ("2.5D"): the slices along ``slice_axis`` are stacked into
    the batch, so every axial slice contributes.

    Args:
        feature_extractor: a module mapping ``(N, C, *spatial)`` images in ``[-1, 1]`` to a list (or tuple) of
            feature maps; ``None`` builds :class:`VGG16Features` with ``layers`` and ``weights_path``.
        layers: VGG16 layers when ``feature_extractor`` is None (default ``relu1_2, relu2_2, relu3_3``; only the
            first ``len(layer_weights)`` are used).
        layer_weights: ``lambda_i`` per feature map (thesis: ``(100, 200)`` or ``(100, 200, 300)``).
        weights_path: local VGG16 state dict (see :func:`find_vgg16_weights`).
        criterion: ``"l1"`` (thesis) or ``"l2"``.
        spatial_dims: 2, or 3 with a 2D extractor applied per slice.
        slice_axis: spatial axis of the slices for 3D inputs.
        extractor_spatial_dims: 2 (VGG) or 3 (a 3D extractor: volumes are passed whole).
    """

    def __init__(
        self,
        feature_extractor: nn.Module | None = None,
        layers: Sequence[str] | None = None,
        layer_weights: Sequence[float] = (100.0, 200.0),
        weights_path: str | os.PathLike | None = None,
        criterion: str = "l1",
        spatial_dims: int = 2,
        slice_axis: int = -1,
        extractor_spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "l2"):
            raise ValueError(f"PerceptualFeatureLoss: criterion must be 'l1' or 'l2', got {criterion!r}.")
        if spatial_dims not in (2, 3) or extractor_spatial_dims not in (2, 3) or extractor_spatial_dims > spatial_dims:
            raise ValueError(
                f"PerceptualFeatureLoss: spatial_dims {spatial_dims} / extractor_spatial_dims {extractor_spatial_dims} "
                "must be 2 or 3, and a 3D extractor needs 3D images."
            )
        self.layer_weights = [float(w) for w in layer_weights]
        if not self.layer_weights or any(w < 0 for w in self.layer_weights):
            raise ValueError(f"PerceptualFeatureLoss: layer_weights must be non-empty and >= 0, got {layer_weights}.")
        if feature_extractor is None:
            names = list(layers) if layers is not None else ["relu1_2", "relu2_2", "relu3_3"]
            if len(names) < len(self.layer_weights):
                raise ValueError(f"PerceptualFeatureLoss: {len(self.layer_weights)} layer_weights for layers {names}.")
            feature_extractor = VGG16Features(names[: len(self.layer_weights)], weights_path=weights_path)
        elif not isinstance(feature_extractor, nn.Module):
            raise TypeError(f"feature_extractor must be an nn.Module, got {type(feature_extractor).__name__}.")
        for p in feature_extractor.parameters():
            p.requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.criterion = criterion
        self.spatial_dims, self.extractor_spatial_dims = int(spatial_dims), int(extractor_spatial_dims)
        self.slice_axis = int(slice_axis)

    def _slices(self, x: torch.Tensor) -> torch.Tensor:
        axis = 2 + (self.slice_axis % 3)
        x = x.movedim(axis, 1)  # (N, S, C, a, b)
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted feature distance; differentiable w.r.t. ``prediction`` (the extractor is frozen)."""
        if prediction.shape != target.shape:
            raise ValueError(f"PerceptualFeatureLoss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ.")
        if prediction.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"PerceptualFeatureLoss(spatial_dims={self.spatial_dims}) got a {prediction.ndim - 2}D batch {tuple(prediction.shape)}."
            )
        if self.spatial_dims == 3 and self.extractor_spatial_dims == 2:
            prediction, target = self._slices(prediction), self._slices(target)
        with torch.no_grad():
            target_feats = self.feature_extractor(target.detach())
        pred_feats = self.feature_extractor(prediction)
        if len(pred_feats) < len(self.layer_weights):
            raise ValueError(
                f"PerceptualFeatureLoss: the extractor returned {len(pred_feats)} feature maps for "
                f"{len(self.layer_weights)} layer_weights."
            )
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        total = prediction.new_zeros((), dtype=torch.float32)
        for w, fp, ft in zip(self.layer_weights, pred_feats, target_feats):
            total = total + w * dist(fp.float(), ft.float())
        return total / len(self.layer_weights)


class ReconstructionLoss:
    """The reconstruction term of an image-to-image generator: ``lambda_l1 * L1(fake, real)`` (Isola et al.: 100)
    plus ``lambda_perceptual * perceptual(fake, real)`` (the thesis' :class:`PerceptualFeatureLoss`, or any
    ``loss(fake, real)`` module). ``__call__`` returns ``(loss, terms)`` with the detached ``l1`` / ``perceptual``.

    Raises:
        ValueError: a negative weight, or no term at all (``lambda_l1 = 0`` and no perceptual loss).
        TypeError: ``perceptual`` is not callable.
    """

    def __init__(self, lambda_l1: float = 100.0, perceptual: Any = None, lambda_perceptual: float = 1.0) -> None:
        if lambda_l1 < 0 or lambda_perceptual < 0:
            raise ValueError(f"lambda_l1 and lambda_perceptual must be >= 0, got {lambda_l1}, {lambda_perceptual}.")
        if lambda_l1 == 0 and perceptual is None:
            raise ValueError("no reconstruction term; set lambda_l1 > 0 or give a perceptual loss.")
        if perceptual is not None and not callable(perceptual):
            raise TypeError(f"perceptual must be a loss module, got {type(perceptual).__name__}.")
        self.lambda_l1, self.perceptual, self.lambda_perceptual = float(lambda_l1), perceptual, float(lambda_perceptual)

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, terms = fake.new_zeros((), dtype=torch.float32), {}
        if self.lambda_l1:
            l1 = F.l1_loss(fake.float(), real.float())
            loss, terms["l1"] = loss + self.lambda_l1 * l1, l1.detach()
        if self.perceptual is not None:
            perc = self.perceptual(fake.float(), real.float())
            loss, terms["perceptual"] = loss + self.lambda_perceptual * perc, perc.detach()
        return loss, terms
