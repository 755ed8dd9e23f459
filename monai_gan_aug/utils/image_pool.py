# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""History of generated images for discriminator updates (Shrivastava et al. 2017, used by CycleGAN).

Zhu et al. (2017, section 4) update the discriminators "using a history of generated images rather than the ones
produced by the latest generators", with a buffer of 50 images: this damps the oscillation between the two
adversaries. Each generated image goes into the buffer until it is full; afterwards, with probability 1/2 the
discriminator sees the new image, otherwise a random stored one, which the new image replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """A buffer of up to ``pool_size`` generated images with its own seeded random stream.

    The stored images and the random stream are part of :meth:`state_dict`, so a resumed run queries exactly as the
    uninterrupted one would. Images are stored detached, one per entry, on the device they came from (moved when a
    query comes from another device, e.g. after loading a checkpoint on the CPU).

    Args:
        pool_size: capacity (50 in CycleGAN); 0 disables the pool (queries return their input).
        seed: seed of the pool's random stream.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if isinstance(pool_size, bool) or int(pool_size) != pool_size or pool_size < 0:
            raise ValueError(f"ImagePool: pool_size must be an integer >= 0, got {pool_size!r}.")
        self.pool_size = int(pool_size)
        self.images: list[torch.Tensor] = []
        self._gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape: each image is the new one or a stored one (see the module docstring).

        Args:
            images: ``(N, C, *spatial)`` generated images; they are detached before storing and returning.
        """
        if not isinstance(images, torch.Tensor) or images.ndim < 2:
            raise TypeError(f"ImagePool.query expects a batch tensor (N, C, ...), got {type(images).__name__}.")
        images = images.detach()
        if self.pool_size == 0:
            return images
        if self.images and self.images[0].shape != images.shape[1:]:
            raise ValueError(
                f"ImagePool: images of shape {tuple(images.shape[1:])} do not match the stored ones "
                f"{tuple(self.images[0].shape)}; use one pool per image domain."
            )
        out = []
        for img in images:
            if len(self.images) < self.pool_size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand((), generator=self._gen)) < 0.5:
                idx = int(torch.randint(len(self.images), (), generator=self._gen))
                old = self.images[idx].to(img.device, img.dtype)
                self.images[idx] = img.clone()
                out.append(old)
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """Stored images (stacked, on the CPU), capacity and the random stream's state."""
        stacked = torch.stack([t.cpu() for t in self.images]) if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": stacked, "rng": self._gen.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        missing = [k for k in ("pool_size", "images", "rng") if k not in state]
        if missing:
            raise KeyError(f"ImagePool state lacks {missing}; it has {sorted(state)}.")
        if int(state["pool_size"]) != self.pool_size:
            raise ValueError(
                f"ImagePool: the checkpoint's pool holds up to {state['pool_size']} images, this one {self.pool_size}; "
                "resume with the same pool_size."
            )
        images = state["images"]
        self.images = [t.clone() for t in images] if images.numel() else []
        self._gen.set_state(torch.as_tensor(state["rng"], dtype=torch.uint8).cpu())
