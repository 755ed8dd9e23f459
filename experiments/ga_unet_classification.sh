#!/usr/bin/env bash
# Issue 5 classification on the embedded demo dataset (lesion vs no-lesion slices, 64 x 64): GA-UNet (class
# conditional) synthetic slices added to the real training set; MONAI ResNet18 and an SVM on pixels; accuracy,
# precision, recall, AUC on the real test split as mean ± std over seeds; plus the thesis' check "a classifier
# trained on real data scores the synthetic images".
# Usage (repository root): bash experiments/ga_unet_classification.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-400}
SEEDS=${SEEDS:-0,1,2}
SIZE="--image_size 64"
$PY -m monai.bundle run --config_file bundles/ga_unet/configs/train.json $SIZE --seed 0 --max_iterations "$ITERS" \
    --save_interval 100 --sample_interval 100 --output_dir "$OUT/ga_unet"
test -f "$OUT/ga_unet/synthetic/datalist.json" || $PY -m monai.bundle run --config_file bundles/ga_unet/configs/inference.json \
    $SIZE --output_dir "$OUT/ga_unet" --num_samples 224
$PY -m monai_gan_aug.evaluation.classification --synthetic "ga_unet=$OUT/ga_unet/synthetic" --networks resnet18,svm \
    --ratios 0,1 --seeds "$SEEDS" --epochs 20 --image_size 64 --out "$OUT/classification"
$PY -m monai_gan_aug.evaluation.classification --synthetic "ga_unet=$OUT/ga_unet/synthetic" --networks resnet18 \
    --score_synthetic --epochs 20 --image_size 64 --out "$OUT/classification_scores"
