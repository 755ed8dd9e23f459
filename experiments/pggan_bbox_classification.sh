#!/usr/bin/env bash
# Issue 5's classification table on the embedded demo dataset: lesion vs no-lesion slices, real only vs real +
# pggan_bbox synthetic slices (class 1 = generated with boxes, 0 = generated without), MONAI ResNet18 and an SVM on
# pixels, accuracy / precision / recall / AUC on the real test split over 3 seeds; and the thesis' check "a
# classifier trained on real data scores the synthetic images". Needs the demo job's generator (make demo).
# Usage (repository root): bash experiments/pggan_bbox_classification.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}
test -f runs/demo/pggan_bbox/checkpoints/checkpoint_825.pt || $PY -m monai_gan_aug demo --output_dir runs/demo
test -f "$OUT/pggan_syn_cls/datalist.json" || $PY -m monai.bundle run --config_file "['bundles/pggan_bbox/configs/common.json','bundles/pggan_bbox/configs/inference.json']" \
    --image_size 64 --output_dir runs/demo/pggan_bbox --synthetic_dir "$OUT/pggan_syn_cls" --num_samples 600
$PY -m monai_gan_aug.evaluation.classification --synthetic "pggan_bbox=$OUT/pggan_syn_cls" --networks resnet18,svm \
    --ratios 0,1 --seeds "$SEEDS" --epochs 15 --image_size 64 --out "$OUT/classification"
$PY -m monai_gan_aug.evaluation.classification --synthetic "pggan_bbox=$OUT/pggan_syn_cls" --networks resnet18 \
    --score_synthetic --epochs 15 --image_size 64 --out "$OUT/classification_scores"
