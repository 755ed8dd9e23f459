#!/usr/bin/env bash
# Short CPU trainings on the embedded demo dataset whose sample grids illustrate the bundle docs (FastGAN with its
# mask channel, alpha-WGAN-GP on the 3D demo volumes, DF-GAN, CycleGAN, GA-UNet). Budgets are tiny (2-core CPU): the grids show
# what a few hundred iterations give, not converged models.
# Usage (repository root): bash experiments/sample_grids.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-150}
run() { $PY -m monai.bundle run --config_file "['bundles/$1/configs/common.json','bundles/$1/configs/train.json']" --seed 0 --save_interval 100 \
        --sample_interval 100 --output_dir "$OUT/grid_$2" "${@:3}"; }
run fastgan fastgan --image_size 64 --base_channels 32 --max_iterations 300
run alpha_wgan_gp alpha3d --spatial_dims 3 --image_size 32 --base_channels 16 --batch_size 4 --max_iterations "$ITERS"
run dfgan dfgan --image_size 64 --max_iterations "$ITERS"
run cyclegan cyclegan --image_size 64 --max_iterations "$ITERS"
# GA-UNet is expensive (21 M-parameter generator, DenseNet critic, 5 critic steps): 32 px, narrower networks
run ga_unet ga_unet --image_size 32 --base_channels 16 --critic_channels 32 --growth_rate 16 --n_critic 2 \
    --max_iterations 100
