# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Behaviour unchanged by a refactor? 3 training iterations of each family's bundle at seed 0 on a tiny demo dataset
(one thread), printing the last iteration's losses as one JSON line (``RESULT {...}``). Run it on the old tree and on
the new one and compare::

    git worktree add /tmp/old <old commit>
    (cd /tmp/old && OMP_NUM_THREADS=1 PYTHONPATH=/tmp/old /work/main/.venv/bin/python /work/main/experiments/refactor_equivalence.py)
    OMP_NUM_THREADS=1 .venv/bin/python experiments/refactor_equivalence.py

Issue 16's result (1d1a9f4 -> this session's tree): ``experiments/results/refactor_equivalence/``."""
import json
import tempfile
from pathlib import Path

import torch

import monai_gan_aug
from monai_gan_aug.bundles import run_bundle
from monai_gan_aug.data.demo import make_demo_dataset

torch.set_num_threads(1)
root = Path(tempfile.mkdtemp())
demo = str(make_demo_dataset(root / "demo", spatial_dims=2, seed=0, n_patients=3, slices_per_patient=2, image_size=32))
C = {"save_interval": 1, "sample_interval": 1, "max_iterations": 3, "seed": 0}
RUNS = {
 "pix2pix": {"image_size": 16, "base_channels": 4, "max_channels": 16, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2},
 "dfgan": {"image_size": 16, "base_channels": 4, "max_channels": 16, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2},
 "fastgan": {"image_size": 32, "base_channels": 4, "decoder_channels": 4, "sle_ratio_generator": 4, "sle_ratio_discriminator": 2, "batch_size": 2, "latent_size": 8},
 "mask_dcgan": {"image_size": 16, "base_channels": 4, "latent_size": 8, "mask_key": "tissue", "num_classes": 5, "mask_mode": "onehot", "batch_size": 2},
 "cyclegan": {"image_size": 32, "base_channels": 4, "n_blocks": 1, "d_base_channels": 4, "receptive_field": 22, "batch_size": 2, "pool_size": 3},
 "pggan_bbox": {"image_size": 16, "fmap_base": 32, "fmap_max": 8, "latent_size": 8, "batch_size": 2, "images_per_phase": 4, "fidelity_interval": 100},
 "lesion_inpaint": {"image_size": 32, "patch_size": 16, "box_crop_size": 8, "channels": [4, 8, 8], "critic_channels": [4, 8], "batch_size": 1},
 "alpha_wgan_gp": {"image_size": 16, "base_channels": 4, "batch_size": 2, "latent_size": 8, "code_hidden_size": 16},
 "ga_unet": {"image_size": 16, "base_channels": 4, "layers_per_block": 1, "noise_size": 8, "batch_size": 2, "critic_channels": 4, "growth_rate": 4, "n_critic": 2},
}
out = {}
for b, o in RUNS.items():
    try:
        wf = run_bundle(b, "train.json", {**o, **C, "dataset_dir": demo, "output_dir": str(root / b)})
        losses = wf.parser.get_parsed_content("train#trainer").state.output["losses"]
        out[b] = {k: round(float(v), 6) for k, v in sorted(losses.items())}
    except Exception as e:
        out[b] = f"ERROR {type(e).__name__}: {str(e)[:200]}"
print("RESULT " + json.dumps({"package": str(Path(monai_gan_aug.__file__).parent), "losses": out}))
