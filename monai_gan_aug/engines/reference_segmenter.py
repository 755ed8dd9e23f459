# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The segmentation model of the "output honours its mask" check: trained on real images with MONAI's
``SupervisedTrainer`` (:func:`fit_reference_segmenter`), or loaded (:func:`load_segmenter`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from monai_gan_aug.utils.enums import GanKeys

__all__ = ["fit_reference_segmenter", "load_segmenter", "reference_segmenter"]


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
    :class:`~monai_gan_aug.handlers.HonoursMaskHandler` instead.

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
