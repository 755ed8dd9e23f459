# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The reference figures of issue #8 ("Speed"), in one place.

Measured by the issue on a 2-core CPU machine of this project's kind: fp32, 2 threads, median of 7 training steps
after 2 warm-ups, FLOPs counted with ``torch.utils.flop_counter.FlopCounterMode``; that machine's 2048 x 2048 fp32
matmul ran at about 175 GFLOP/s (:data:`REFERENCE_MATMUL_GFLOPS`).

Each entry: ``family``, ``implementation`` (the reference code base), ``config`` (the settings the issue states;
only these are compared with a benchmark's own config), ``label`` (the issue's wording), ``step_s`` (seconds per
training step), ``gflop`` (GFLOP per training step), ``gen_img_s`` (generated images, or volumes, per second) and
``gen_batch`` (the generation batch where the issue states it, else ``None``).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["REFERENCES", "REFERENCE_MATMUL_GFLOPS", "REFERENCE_PROTOCOL", "TARGETS", "reference"]

REFERENCE_MATMUL_GFLOPS = 175.0

REFERENCE_PROTOCOL = {
    "machine": "2-core CPU, fp32, 2 threads",
    "timing": "median of 7 training steps after 2 warm-ups",
    "flops": "torch.utils.flop_counter.FlopCounterMode",
    "matmul_gflops": REFERENCE_MATMUL_GFLOPS,
    "source": "issue #8 'Speed'",
}

# step_ratio_equal_flops = (our_step_s / our_gflop) / (ref_step_s / ref_gflop) must be <= this
# gen_ratio = our_gen_img_s / ref_gen_img_s must be >= this
TARGETS = {"step_ratio_equal_flops_max": 0.8, "gen_ratio_min": 1.25}

_JUNYANZ = "junyanz/pytorch-CycleGAN-and-pix2pix"
_GAN_ZOO = "facebookresearch/pytorch_GAN_zoo"

REFERENCES: dict[str, dict[str, Any]] = {
    "pix2pix_256_b1": {
        "family": "pix2pix",
        "implementation": _JUNYANZ,
        "label": "unet_256 G + 70x70 PatchGAN, 256^2, 3->3, batch 1",
        "config": {"resolution": 256, "batch": 1, "in_channels": 3, "out_channels": 3, "generator": "unet_256",
                   "discriminator": "patchgan_70"},
        "step_s": 0.67, "gflop": 86.9, "gen_img_s": 15.4, "gen_batch": 32,
    },
    "pix2pix_256_b4": {
        "family": "pix2pix",
        "implementation": _JUNYANZ,
        "label": "unet_256 G + 70x70 PatchGAN, 256^2, 3->3, batch 4",
        "config": {"resolution": 256, "batch": 4, "in_channels": 3, "out_channels": 3, "generator": "unet_256",
                   "discriminator": "patchgan_70"},
        "step_s": 1.54, "gflop": 347.8, "gen_img_s": 14.3, "gen_batch": None,
    },
    "cyclegan_128_b1": {
        "family": "cyclegan",
        "implementation": _JUNYANZ,
        "label": "resnet_9blocks, batch 1, 128^2",
        "config": {"resolution": 128, "batch": 1, "generator": "resnet_9blocks", "discriminator": "patchgan_70"},
        "step_s": 1.98, "gflop": 469.0, "gen_img_s": 6.8, "gen_batch": None,
    },
    "cyclegan_256_b1": {
        "family": "cyclegan",
        "implementation": _JUNYANZ,
        "label": "resnet_9blocks, batch 1, 256^2",
        "config": {"resolution": 256, "batch": 1, "generator": "resnet_9blocks", "discriminator": "patchgan_70"},
        "step_s": 6.44, "gflop": 1879.0, "gen_img_s": 1.7, "gen_batch": None,
    },
    "fastgan_256_b8": {
        "family": "fastgan",
        "implementation": "odegeasslbc/FastGAN-pytorch",
        "label": "256^2, batch 8, ngf = ndf = 64, L1 instead of LPIPS",
        "config": {"resolution": 256, "batch": 8, "base_channels": 64, "recon_loss": "l1"},
        "step_s": 5.86, "gflop": 885.0, "gen_img_s": 5.0, "gen_batch": None,
    },
    "dcgan_64_b16": {
        "family": "dcgan",
        "implementation": f"{_GAN_ZOO} DCGAN",
        "label": "64^2, batch 16",
        "config": {"resolution": 64, "batch": 16},
        "step_s": 0.27, "gflop": 43.1, "gen_img_s": 598.0, "gen_batch": None,
    },
    "pggan_32_stable_b16": {
        "family": "pggan",
        "implementation": f"{_GAN_ZOO} PGAN, WGAN-GP",
        "label": "32^2 stable phase, batch 16",
        "config": {"resolution": 32, "phase": "stable", "batch": 16, "loss": "wgan_gp"},
        "step_s": 15.6, "gflop": 3882.0, "gen_img_s": 22.6, "gen_batch": None,
    },
    "pggan_64_stable_b16": {
        "family": "pggan",
        "implementation": f"{_GAN_ZOO} PGAN, WGAN-GP",
        "label": "64^2 stable phase, batch 16",
        "config": {"resolution": 64, "phase": "stable", "batch": 16, "loss": "wgan_gp"},
        "step_s": 37.9, "gflop": 8290.0, "gen_img_s": 12.0, "gen_batch": None,
    },
    "monai_gantrainer_64_b32": {
        "family": "monai_gantrainer",
        "implementation": "Project-MONAI/model-zoo mednist_gan (monai.engines.GanTrainer)",
        "label": "64^2, batch 32, 5 D steps",
        "config": {"resolution": 64, "batch": 32, "d_steps": 5, "networks": "mednist_gan"},
        "step_s": 0.40, "gflop": 15.7, "gen_img_s": 1361.0, "gen_batch": None,
    },
    "alpha_wgan_3d_64_b4": {
        "family": "alpha_wgan",
        "implementation": "cyclomon/3dbraingen (alpha-WGAN-GP)",
        "label": "64^3, batch 4 (generation in volumes/s)",
        "config": {"spatial_dims": 3, "resolution": 64, "batch": 4},
        "step_s": 16.1, "gflop": 1806.0, "gen_img_s": 2.9, "gen_batch": None,
    },
}


def reference(key: str | None) -> dict[str, Any] | None:
    """A copy of one reference entry with its ``key`` (``None`` for ``None``); raises ``KeyError`` for unknown keys."""
    if key is None:
        return None
    if key not in REFERENCES:
        raise KeyError(f"unknown reference {key!r}; known: {sorted(REFERENCES)}")
    return {"key": key, **copy.deepcopy(REFERENCES[key])}
