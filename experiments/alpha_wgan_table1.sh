#!/usr/bin/env bash
# Thyroid paper Table I on the embedded demo dataset: WGAN-GP vs alpha-WGAN-GP (Kwon et al.) vs improved
# alpha-WGAN-GP (Liang & Chen), the same 2D networks, budget and data; MMD / 1-NN over 10 tests of 100 images per
# distribution, MS-SSIM over 10 tests of 32 generated images. CPU budget sized for 2 cores (~15 minutes).
# Usage (repository root): bash experiments/alpha_wgan_table1.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-300}
COMMON="--image_size 64 --base_channels 32"
for v in wgan_gp original improved; do
    $PY -m monai.bundle run --config_file "['bundles/alpha_wgan_gp/configs/common.json','bundles/alpha_wgan_gp/configs/train.json']" --variant $v $COMMON --batch_size 16 --seed 0 \
        --max_iterations "$ITERS" --save_interval 100 --sample_interval 100 --output_dir "$OUT/alpha_$v"
    test -f "$OUT/alpha_$v/synthetic/datalist.json" || $PY -m monai.bundle run \
        --config_file "['bundles/alpha_wgan_gp/configs/common.json','bundles/alpha_wgan_gp/configs/inference.json']" $COMMON --num_samples 200 \
        --output_dir "$OUT/alpha_$v" --synthetic_dir "$OUT/alpha_$v/synthetic"
done
# the three sets have no masks, so the protocol's U-Net part (Table II) has nothing to add: metrics only
$PY -m monai.bundle run --config_file "['bundles/alpha_wgan_gp/configs/common.json','bundles/alpha_wgan_gp/configs/evaluate_thyroid.json']" --segmentation False \
    --synthetic_sets "{'WGAN-GP': '$OUT/alpha_wgan_gp/synthetic', 'alpha-WGAN-GP': '$OUT/alpha_original/synthetic', 'improved alpha-WGAN-GP': '$OUT/alpha_improved/synthetic'}" \
    --evaluation_dir "$OUT/thyroid_table1"
