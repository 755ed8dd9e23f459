#!/usr/bin/env bash
# Issue 4 on the embedded demo dataset (tissue map -> T1c slice at 64 x 64):
#  1. Pix2Pix honours its mask: a U-Net trained on real slices segments the synthetic slices; Dice against the
#     input tissue maps vs against shuffled maps (bundles/pix2pix/configs/evaluate.json);
#  2. the same check for two-stage synthesis (mask_dcgan tissue maps -> Pix2Pix);
#  3. lesion segmentation with real only vs real + synthetic pairs (Pix2Pix on deformed training maps, two-stage),
#     with / without classic augmentation, several real-set sizes and seeds.
# Usage (repository root): bash experiments/pix2pix_masks.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-1200}
MASK_ITERS=${MASK_ITERS:-800}
SEEDS=${SEEDS:-0,1}
SIZE="--image_size 64"
$PY -m monai.bundle run --config_file "['bundles/pix2pix/configs/common.json','bundles/pix2pix/configs/train.json']" $SIZE --seed 0 --max_iterations "$ITERS" \
    --save_interval 200 --sample_interval 200 --output_dir "$OUT/pix2pix"
$PY -m monai.bundle run --config_file "['bundles/mask_dcgan/configs/common.json','bundles/mask_dcgan/configs/train.json']" $SIZE --seed 0 --max_iterations "$MASK_ITERS" \
    --save_interval 200 --sample_interval 200 --output_dir "$OUT/mask_dcgan"
# 1. honours-mask check on the validation maps (trains the reference segmenter, saved to eval/segmenter.pt)
$PY -m monai.bundle run --config_file "['bundles/pix2pix/configs/common.json','bundles/pix2pix/configs/evaluate.json']" $SIZE --output_dir "$OUT/pix2pix"
# 2. the same for 256 two-stage pairs, scored by the same segmenter
$PY -m monai.bundle run --config_file "['bundles/pix2pix/configs/common.json','bundles/pix2pix/configs/evaluate.json','bundles/pix2pix/configs/evaluate_two_stage.json']" \
    $SIZE --output_dir "$OUT/pix2pix" --mask_output_dir "$OUT/mask_dcgan" \
    --segmenter_checkpoint "$OUT/pix2pix/eval/segmenter.pt"
# 3. synthetic pairs (224 each = the real training set's size) and the segmentation table
test -f "$OUT/pix2pix/synthetic/datalist.json" || $PY -m monai.bundle run --config_file "['bundles/pix2pix/configs/common.json','bundles/pix2pix/configs/inference.json']" \
    $SIZE --output_dir "$OUT/pix2pix" --cond_split training
test -f "$OUT/pix2pix/synthetic_two_stage/datalist.json" || $PY -m monai.bundle run \
    --config_file "['bundles/pix2pix/configs/common.json','bundles/pix2pix/configs/inference_two_stage.json']" $SIZE --output_dir "$OUT/pix2pix" \
    --mask_output_dir "$OUT/mask_dcgan" --num_samples 224
$PY -m monai_gan_aug.evaluation.segmentation --synthetic "pix2pix=$OUT/pix2pix/synthetic" \
    "two-stage=$OUT/pix2pix/synthetic_two_stage" --real_sizes 50,100 --ratios 0,1 --classic_aug 0,1 \
    --seeds "$SEEDS" --epochs 25 --image_size 64 --out "$OUT/segmentation"
# the reference segmenter on the real validation slices (the ceiling) and the docs figure
$PY experiments/figures.py real-dice "$OUT/pix2pix" "$OUT/pix2pix/eval/real_slices_honours.json"
$PY experiments/figures.py pix2pix "$OUT/pix2pix" "$OUT/pix2pix/pix2pix_demo64.png"
